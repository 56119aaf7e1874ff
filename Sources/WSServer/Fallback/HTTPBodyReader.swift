import WebSocket

/// Why a request body was refused, with the status that answers it.
public enum HTTPBodyError: Error, Equatable, Sendable {
    /// Larger than the limit (413, RFC 9110 §15.5.14).
    case tooLarge(limit: Int)
    /// A POST without Content-Length or chunked (411).
    case lengthRequired
    /// A transfer coding other than chunked (501, RFC 9112 §6.1).
    case unsupportedCoding
    /// Bad framing: both Content-Length and Transfer-Encoding, conflicting lengths, a broken
    /// chunk (400; RFC 9112 §6.3 says such a message must be treated as an error).
    case malformed(String)

    public var status: Int {
        switch self {
        case .tooLarge: return 413
        case .lengthRequired: return 411
        case .unsupportedCoding: return 501
        case .malformed: return 400
        }
    }
}

/// Incremental request-body reader (RFC 9112 §6): a fixed Content-Length or the chunked coding
/// (chunk extensions ignored, trailers read and dropped), under a size limit checked before any
/// byte past it is buffered. Feed bytes as they arrive in any split; it reports how many it used,
/// so a pipelined next request is not lost. Time limits (slowloris) belong to the caller.
public struct HTTPBodyReader: Sendable {
    public enum Result: Equatable, Sendable {
        case needMore
        case complete([UInt8], consumed: Int)
    }

    enum State: Equatable, Sendable {
        case fixed(remaining: Int)
        case chunkSize(digits: Int, value: Int, inExtension: Bool)
        case chunkSizeLF(value: Int)
        case chunkData(remaining: Int)
        case chunkDataCR
        case chunkDataLF
        case trailerLineStart
        case trailerLine
        case trailerLF(empty: Bool)
        case done
    }

    public let limit: Int
    private(set) var state: State
    private var body: [UInt8] = []

    /// The reader for a request, from its framing headers. `limit` bounds the body in bytes.
    public init(head: HTTPRequestHead, limit: Int) throws(HTTPBodyError) {
        self.limit = limit
        let codings = head.tokens("Transfer-Encoding")
        let lengths = head.values("Content-Length")
        if !codings.isEmpty {
            guard lengths.isEmpty else { throw .malformed("both Content-Length and Transfer-Encoding") }
            guard codings == ["chunked"] else { throw .unsupportedCoding }
            state = .chunkSize(digits: 0, value: 0, inExtension: false)
            return
        }
        guard let first = lengths.first else { throw .lengthRequired }
        guard lengths.allSatisfy({ $0 == first }), let n = Self.parseLength(first) else {
            throw .malformed("invalid Content-Length")
        }
        guard n <= limit else { throw .tooLarge(limit: limit) }
        state = n == 0 ? .done : .fixed(remaining: n)
        body.reserveCapacity(n)
    }

    /// 1*DIGIT, at most 15 digits (no sign, no spaces inside; RFC 9110 §8.6).
    static func parseLength(_ s: String) -> Int? {
        let u = s.utf8
        guard !u.isEmpty, u.count <= 15, u.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return u.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }

    public var isComplete: Bool { state == .done }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(HTTPBodyError) -> Result {
        var i = 0
        while i < bytes.count && state != .done {
            try step(bytes, &i)
        }
        if state == .done {
            let out = body
            body = []
            return .complete(out, consumed: i)
        }
        return .needMore
    }

    /// One state transition; consumes at least one byte or a run of data bytes.
    private mutating func step(_ bytes: UnsafeRawBufferPointer, _ i: inout Int) throws(HTTPBodyError) {
        let b = bytes[i]
        switch state {
        case .fixed(let remaining), .chunkData(let remaining):
            let n = min(remaining, bytes.count - i)
            body.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<(i + n)]))
            i += n
            if case .fixed = state {
                state = remaining == n ? .done : .fixed(remaining: remaining - n)
            } else {
                state = remaining == n ? .chunkDataCR : .chunkData(remaining: remaining - n)
            }
            return
        case .chunkSize(let digits, let value, let inExtension):
            if b == 13 {
                guard digits > 0 else { throw .malformed("missing chunk size") }
                state = .chunkSizeLF(value: value)
            } else if inExtension || b == UInt8(ascii: ";") {
                guard digits > 0 else { throw .malformed("missing chunk size") }
                state = .chunkSize(digits: digits, value: value, inExtension: true)
            } else {
                guard let d = Self.hexValue(b) else { throw .malformed("bad chunk size") }
                guard digits < 8 else { throw .tooLarge(limit: limit) }
                let v = value * 16 + d
                guard body.count + v <= limit else { throw .tooLarge(limit: limit) }
                state = .chunkSize(digits: digits + 1, value: v, inExtension: false)
            }
        case .chunkSizeLF(let value):
            guard b == 10 else { throw .malformed("chunk size line not ended by CRLF") }
            state = value == 0 ? .trailerLineStart : .chunkData(remaining: value)
        case .chunkDataCR:
            guard b == 13 else { throw .malformed("chunk data not followed by CRLF") }
            state = .chunkDataLF
        case .chunkDataLF:
            guard b == 10 else { throw .malformed("chunk data not followed by CRLF") }
            state = .chunkSize(digits: 0, value: 0, inExtension: false)
        case .trailerLineStart:
            state = b == 13 ? .trailerLF(empty: true) : .trailerLine
        case .trailerLine:
            if b == 13 { state = .trailerLF(empty: false) }
        case .trailerLF(let empty):
            guard b == 10 else { throw .malformed("trailer line not ended by CRLF") }
            state = empty ? .done : .trailerLineStart
        case .done:
            return
        }
        i += 1
    }

    static func hexValue(_ b: UInt8) -> Int? {
        switch b {
        case 0x30...0x39: return Int(b - 0x30)
        case 0x41...0x46: return Int(b - 0x41 + 10)
        case 0x61...0x66: return Int(b - 0x61 + 10)
        default: return nil
        }
    }
}
