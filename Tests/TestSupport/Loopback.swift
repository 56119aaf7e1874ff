#if canImport(Glibc)
import Glibc
#endif

/// A blocking TCP socket connecting to 127.0.0.1:`port`: the descriptor (the caller closes
/// it) and `connect`'s result (0, or -1 with `errno` set).
public func connectLoopback(port: Int) -> (fd: Int32, rc: Int32) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return (fd, -1) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    return (fd, rc)
}
