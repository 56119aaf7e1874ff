/// Why record processing stopped the connection, with the alert we send (RFC 8446 §6.2).
public enum TLSRecordError: Error, Equatable, Sendable {
    case badRecordMAC
    case recordOverflow
    case unexpectedMessage(String)
    case decodeError(String)
    /// A field with a value the protocol does not allow (e.g. KeyUpdate's request_update, §4.6.3).
    case illegalParameter(String)
    /// The peer sent a fatal alert (its description code).
    case peerAlert(UInt8)

    /// The alert description to send, or nil when the peer's alert already ended the session.
    var alert: UInt8? {
        switch self {
        case .badRecordMAC: return 20
        case .recordOverflow: return 22
        case .unexpectedMessage: return 10
        case .illegalParameter: return 47
        case .decodeError: return 50
        case .peerAlert: return nil
        }
    }

    public var description: String {
        switch self {
        case .badRecordMAC: return "TLS record failed authentication (bad_record_mac)"
        case .recordOverflow: return "TLS record too long (record_overflow)"
        case .unexpectedMessage(let what): return "unexpected TLS message: \(what)"
        case .decodeError(let what): return "malformed TLS message: \(what)"
        case .illegalParameter(let what): return "illegal TLS parameter: \(what)"
        case .peerAlert(let code): return "peer sent TLS alert \(code)"
        }
    }
}
