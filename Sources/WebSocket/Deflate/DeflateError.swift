/// Why decompressing a message failed. RFC 7692 only says to _Fail the WebSocket Connection_;
/// `protocolError` turns each case into the `ProtocolError` that does so, and
/// `ProtocolError.closeCode` is the one map to close codes. After a throw the instance must not
/// be used again: the connection is failing.
public enum DeflateError: Error, Equatable, Sendable {
    /// The decompressed message would exceed the limit (zip bomb or just too big).
    case messageTooLarge(limit: Int)
    /// Not a valid DEFLATE stream, data after a final block, or a message that does not end
    /// on a block boundary.
    case invalidCompressedData
    /// zlib failed for a reason that is not the peer's fault.
    case internalError
}

extension DeflateError {
    /// The same failure in the protocol's one mapping to close codes.
    public var protocolError: ProtocolError {
        switch self {
        case .messageTooLarge(let l): return .messageTooLarge(limit: l)
        case .invalidCompressedData: return .invalidCompressedData
        case .internalError: return .internalError
        }
    }
}
