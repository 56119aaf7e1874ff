import WebSocket

/// The body of a long-poll answer and of every upstream POST (SSE and long polling alike):
/// a sequence of records, each `<kind><length>:<payload>` where kind is one ASCII letter,
/// length is the payload's size in bytes in decimal (no sign, no leading zeros, at most 10
/// digits), and payload is exactly that many raw bytes (netstring-like, no terminator):
///
///     s24:AbC…   the session id (first record of the first answer only)
///     t11:你好 🚀   a text message (UTF-8)
///     b3:<3 raw bytes>   a binary message
///     c9:1000 bye   a close: the code in decimal, a space, the reason (UTF-8)
///
/// An empty body is an empty batch (a poll that timed out). Chosen over a JSON array so
/// binary needs no base64 and the server needs no JSON parser; the page parses it with a
/// DataView and TextDecoder.
public enum BatchRecord: Equatable, Sendable {
    case session(String)
    case text([UInt8])
    case binary([UInt8])
    case close(code: UInt16, reason: String)
}

/// Why a batch was refused: a limit answers the POST with 413, a malformed batch with 400.
public enum BatchError: Error, Equatable, Sendable {
    case malformed(String)
    case tooManyMessages(limit: Int)
    case messageTooLarge(limit: Int)
    case invalidUTF8

    public var status: Int {
        switch self {
        case .messageTooLarge, .tooManyMessages: return 413
        case .malformed, .invalidUTF8: return 400
        }
    }
}

public enum LongPollBatch {
    /// Appends one record.
    public static func append(kind: UInt8, _ payload: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        out.append(kind)
        appendDecimal(payload.count, to: &out)
        out.append(UInt8(ascii: ":"))
        out.append(contentsOf: payload)
    }

    public static func append(_ record: BatchRecord, to out: inout [UInt8]) {
        switch record {
        case .session(let id): id.utf8.withContiguousStorageIfAvailable { append(kind: 0x73, UnsafeRawBufferPointer($0), to: &out) }
        case .text(let b): b.withUnsafeBytes { append(kind: 0x74, $0, to: &out) }
        case .binary(let b): b.withUnsafeBytes { append(kind: 0x62, $0, to: &out) }
        case .close(let code, let reason):
            Array("\(code) \(reason)".utf8).withUnsafeBytes { append(kind: 0x63, $0, to: &out) }
        }
    }

    public static func append(_ message: Message, to out: inout [UInt8]) {
        append(kind: message.isText ? 0x74 : 0x62, message.bytes, to: &out)
    }

    static func appendDecimal(_ n: Int, to out: inout [UInt8]) {
        if n >= 10 { appendDecimal(n / 10, to: &out) }
        out.append(UInt8(ascii: "0") + UInt8(n % 10))
    }

    /// Decodes a whole upstream body. Clients send text, binary and close records; a session
    /// record from a client is malformed. Limits: at most `maxMessages` records, each payload
    /// at most `maxMessageSize` bytes; text must be valid UTF-8 (as RFC 6455 §8.1 requires of
    /// a WebSocket text message); a close code must be one a peer may send (RFC 6455 §7.4).
    public static func decode(_ body: [UInt8], maxMessages: Int, maxMessageSize: Int) throws(BatchError) -> [BatchRecord] {
        var records: [BatchRecord] = []
        var i = 0
        while i < body.count {
            guard records.count < maxMessages else { throw .tooManyMessages(limit: maxMessages) }
            let kind = body[i]
            i += 1
            let length = try readLength(body, &i)
            guard length <= maxMessageSize else { throw .messageTooLarge(limit: maxMessageSize) }
            guard body.count - i >= length else { throw .malformed("record cut short") }
            let payload = Array(body[i..<(i + length)])
            i += length
            records.append(try record(kind: kind, payload))
        }
        return records
    }

    static func readLength(_ body: [UInt8], _ i: inout Int) throws(BatchError) -> Int {
        let start = i
        var n = 0
        while i < body.count, body[i] != UInt8(ascii: ":") {
            let d = body[i]
            guard d >= 0x30 && d <= 0x39 else { throw .malformed("length is not decimal") }
            guard i - start < 10 else { throw .malformed("length too long") }
            n = n * 10 + Int(d - 0x30)
            i += 1
        }
        guard i < body.count, i > start else { throw .malformed("missing length") }
        guard i - start == 1 || body[start] != 0x30 else { throw .malformed("leading zero in length") }
        i += 1  // ':'
        return n
    }

    static func record(kind: UInt8, _ payload: [UInt8]) throws(BatchError) -> BatchRecord {
        switch kind {
        case 0x74:
            guard UTF8Validator.isValid(payload) else { throw .invalidUTF8 }
            return .text(payload)
        case 0x62:
            return .binary(payload)
        case 0x63:
            guard UTF8Validator.isValid(payload) else { throw .invalidUTF8 }
            let text = String(decoding: payload, as: UTF8.self)
            let parts = text.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            guard let code = UInt16(parts[0]), parts[0].utf8.count == 4,
                  CloseCode(rawValue: code).isValidOnWire else { throw .malformed("bad close code") }
            return .close(code: code, reason: parts.count > 1 ? String(parts[1]) : "")
        default:
            throw .malformed("unknown record kind")
        }
    }
}
