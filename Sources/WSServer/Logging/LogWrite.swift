#if canImport(Glibc)
import Glibc
#endif

/// Writing one log line to a descriptor, shared by the access log and the log handler.
enum LogWrite {
    /// Writes all of `line`, retrying after EINTR and short writes; gives up silently on any
    /// other error (a log must never stop the server).
    static func all(_ line: inout String, to fd: Int32) {
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                offset += n
            }
        }
    }
}
