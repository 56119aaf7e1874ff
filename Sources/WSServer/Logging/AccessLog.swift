#if canImport(Glibc)
import Glibc
#endif
import Transport

/// Where access-log lines go (`--access-log off|stderr|FILE`) and in which format. Thread-safe:
/// loops write concurrently; each line is one `write(2)` on an `O_APPEND` descriptor, so lines
/// never interleave. `reopen()` (on SIGHUP) opens the path again, for logrotate: the old file
/// is closed once the new one is in place, and a failed reopen keeps the old one.
public final class AccessLog: Sendable {
    public enum Destination: Sendable, Equatable {
        case stderr
        case file(String)
    }

    public let destination: Destination
    public let format: LogFormat
    /// Query parameters whose values are masked in the `path` field.
    public let redaction: QueryRedaction
    private let fd: Locked<Int32>
    /// WebSocket sessions whose line is written when they close.
    let sessions = AccessSessions()

    /// Opens FILE for appending (created 0640 if missing). Throws a one-line error naming it.
    public init(_ destination: Destination, format: LogFormat, redaction: QueryRedaction = .standard) throws {
        self.destination = destination
        self.format = format
        self.redaction = redaction
        switch destination {
        case .stderr: fd = Locked(2)
        case .file(let path): fd = Locked(try Self.open(path))
        }
    }

    /// Parses the flag value: "off" (nil), "stderr", or a file path.
    public static func parse(_ value: String, format: LogFormat, redaction: QueryRedaction = .standard) throws -> AccessLog? {
        switch value {
        case "off": return nil
        case "stderr", "-": return try AccessLog(.stderr, format: format, redaction: redaction)
        default: return try AccessLog(.file(value), format: format, redaction: redaction)
        }
    }

    public func write(_ record: AccessLogRecord) {
        var line = record.formatted(format) + "\n"
        fd.withLock { LogWrite.all(&line, to: $0) }
    }

    /// Reopens FILE (after logrotate moved it); nothing to do for stderr.
    public func reopen() throws {
        guard case .file(let path) = destination else { return }
        let fresh = try Self.open(path)
        let old = fd.withLock { fd -> Int32 in
            let old = fd
            fd = fresh
            return old
        }
        Glibc.close(old)
    }

    private static func open(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw AccessLogError(description: "cannot open access log '\(path)': \(String(cString: strerror(errno)))")
        }
        return fd
    }

    deinit {
        fd.withLock { if $0 > 2 { Glibc.close($0) } }
    }
}

public struct AccessLogError: Error, CustomStringConvertible {
    public let description: String
}
