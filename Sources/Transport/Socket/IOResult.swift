#if canImport(Glibc)
import Glibc
#endif

/// The outcome of one read or write on a stream. "Would block" is a result, not an error.
public enum IOResult: Equatable, Sendable {
    /// This many bytes were transferred (never 0 for reads: 0 is `.eof`).
    case done(Int)
    /// Try again when the socket is readable.
    case wantRead
    /// Try again when the socket is writable.
    case wantWrite
    /// The peer closed its side.
    case eof
    /// The stream is broken; the string says why (for a log line).
    case error(String)
}

/// `strerror` as a Swift string.
public func errnoDescription(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}
