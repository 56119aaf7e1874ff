/// A WebSocket close status code (RFC 6455 §7.4).
public struct CloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static let normal = CloseCode(1000)
    public static let goingAway = CloseCode(1001)
    public static let protocolError = CloseCode(1002)
    public static let unsupportedData = CloseCode(1003)
    /// Never sent on the wire: "no status code was present".
    public static let noStatus = CloseCode(1005)
    /// Never sent on the wire: "closed without a close frame".
    public static let abnormal = CloseCode(1006)
    public static let invalidPayload = CloseCode(1007)
    public static let policyViolation = CloseCode(1008)
    public static let messageTooBig = CloseCode(1009)
    public static let mandatoryExtension = CloseCode(1010)
    public static let internalError = CloseCode(1011)

    /// Whether a peer may send this code in a close frame: 1000–1003, 1007–1011 (§7.4.1 and the
    /// IANA registry), and 3000–4999 (registered and private use, §7.4.2). 1004–1006 and 1015 are
    /// reserved for local use; 1012–1014 are registered by IANA for servers only but are rarely
    /// understood, so a client sending them is treated as an error, as Autobahn 7.9.x expects.
    public var isValidOnWire: Bool {
        switch rawValue {
        case 1000...1003, 1007...1011: return true
        case 3000...4999: return true
        default: return false
        }
    }

    public var description: String { String(rawValue) }
}

/// Every way a peer can break the protocol, each mapped to its close code in ONE place.
public enum ProtocolError: Error, Equatable, Sendable {
    case reservedOpcode(UInt8)
    case reservedBitsSet
    case lengthMSBSet
    case controlFrameTooLong
    case fragmentedControlFrame
    case unmaskedClientFrame
    case maskedServerFrame
    case unexpectedContinuation
    case expectedContinuation
    case frameTooLarge(limit: Int)
    case messageTooLarge(limit: Int)
    case tooManyFragments(limit: Int)
    case invalidUTF8
    case closePayloadOneByte
    case invalidCloseCode(UInt16)
    case invalidCloseReason
    /// permessage-deflate data that does not inflate (RFC 7692 §6.2: fail the connection).
    /// 1007, as Node's `ws` does (python-websockets uses 1002): the payload is inconsistent
    /// with the message's (compressed) type.
    case invalidCompressedData
    case internalError

    /// RFC 6455 §7.4.1: which close code answers this failure.
    public var closeCode: CloseCode {
        switch self {
        case .invalidUTF8, .invalidCloseReason, .invalidCompressedData: return .invalidPayload  // 1007
        case .frameTooLarge, .messageTooLarge, .tooManyFragments: return .messageTooBig // 1009
        case .internalError: return .internalError                                    // 1011
        default: return .protocolError                                               // 1002
        }
    }

    /// A short reason for the close frame and the log (never internal details).
    public var reason: String {
        switch self {
        case .reservedOpcode(let op): return "reserved opcode \(op)"
        case .reservedBitsSet: return "reserved bits set"
        case .lengthMSBSet: return "64-bit length with MSB set"
        case .controlFrameTooLong: return "control frame over 125 bytes"
        case .fragmentedControlFrame: return "fragmented control frame"
        case .unmaskedClientFrame: return "client frame not masked"
        case .maskedServerFrame: return "server frame masked"
        case .unexpectedContinuation: return "continuation without a message"
        case .expectedContinuation: return "new message inside a fragmented one"
        case .frameTooLarge(let l): return "frame larger than \(l) bytes"
        case .messageTooLarge(let l): return "message larger than \(l) bytes"
        case .tooManyFragments(let l): return "more than \(l) fragments"
        case .invalidUTF8: return "invalid UTF-8 in text"
        case .closePayloadOneByte: return "close payload of 1 byte"
        case .invalidCloseCode(let c): return "invalid close code \(c)"
        case .invalidCloseReason: return "invalid UTF-8 in close reason"
        case .invalidCompressedData: return "invalid compressed data"
        case .internalError: return "internal error"
        }
    }
}
