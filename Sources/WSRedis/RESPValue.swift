/// One RESP2 reply (https://redis.io/docs/reference/protocol-spec/).
public enum RESPValue: Equatable, Sendable {
    /// `+OK` and other status lines.
    case simple(String)
    /// `-ERR ...`: Redis refused the command (the connection stays usable).
    case error(String)
    case integer(Int64)
    /// A bulk string: binary-safe bytes.
    case bulk([UInt8])
    /// `$-1` or `*-1`.
    case null
    case array([RESPValue])

    /// The bytes of a bulk or simple string (nil for other kinds).
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let b): return b
        case .simple(let s): return Array(s.utf8)
        default: return nil
        }
    }

    /// A bulk or simple string decoded as UTF-8 (nil for other kinds).
    public var string: String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

    public var array: [RESPValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}
