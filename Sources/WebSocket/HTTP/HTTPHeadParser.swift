/// Why a request head was refused, with the HTTP status that answers it.
public enum HTTPHeadError: Error, Equatable, Sendable {
    /// Request line plus headers exceed the size limit (431).
    case headTooLarge(limit: Int)
    /// More header lines than allowed (431).
    case tooManyHeaders(limit: Int)
    /// Not a well-formed HTTP/1.x request head (400).
    case malformed(String)

    public var status: Int {
        switch self {
        case .headTooLarge, .tooManyHeaders: return 431
        case .malformed: return 400
        }
    }
}

/// Incremental HTTP/1.1 request-head parser (RFC 9112 §2–5). Feed it bytes as they arrive,
/// in any split; it answers when the head is complete and how many of the bytes it used, so
/// bytes that follow the head (a pipelined WebSocket frame) are not lost.
public struct HTTPHeadParser: Sendable {
    /// Request head limits; exceeding either is answered with 431.
    public struct Limits: Sendable {
        /// Request line + header lines, including CRLFs. 8 KiB is what nginx and Node allow by default.
        public var maxHeadSize: Int = 8192
        /// Header field lines. 100 is Node's and python-websockets' default.
        public var maxHeaders: Int = 100
        public init(maxHeadSize: Int = 8192, maxHeaders: Int = 100) {
            self.maxHeadSize = maxHeadSize
            self.maxHeaders = maxHeaders
        }
    }

    /// The parser's answer to a piece of input.
    public enum Result: Sendable, Equatable {
        case needMore
        case complete(HTTPRequestHead, consumed: Int)
    }

    public let limits: Limits
    private var buffer: [UInt8] = []
    private var lines = 0          // line ends seen so far
    private var lastWasLF = false  // previous line ended, tracks the empty line
    private var sawCR = false

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Bytes buffered so far.
    public var bufferedCount: Int { buffer.count }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(HTTPHeadError) -> Result {
        guard let (raw, consumed) = try feedRaw(bytes) else { return .needMore }
        return .complete(try Self.parse(raw), consumed: consumed)
    }

    /// Feeds bytes of a response head (client side of the opening handshake).
    public mutating func feedResponse(_ bytes: UnsafeRawBufferPointer) throws(HTTPHeadError) -> (HTTPResponseHead, consumed: Int)? {
        guard let (raw, consumed) = try feedRaw(bytes) else { return nil }
        return (try Self.parseResponse(raw), consumed)
    }

    /// Finds the end of the head; returns its bytes and how many input bytes it used.
    mutating func feedRaw(_ bytes: UnsafeRawBufferPointer) throws(HTTPHeadError) -> ([UInt8], Int)? {
        // Scan first, copy once: the state machine looks at each byte, but bytes are appended
        // to the buffer in one piece (the whole head usually arrives in one read).
        var i = 0
        let room = limits.maxHeadSize - buffer.count
        while i < bytes.count {
            let b = bytes[i]
            i += 1
            if i > room { throw .headTooLarge(limit: limits.maxHeadSize) }
            if b == 10 {  // LF ends a line; a bare LF is tolerated (RFC 9112 §2.2)
                if lastWasLF {
                    var raw = buffer
                    raw.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[0..<i]))
                    buffer = []
                    lines = 0
                    lastWasLF = false
                    return (raw, i)
                }
                lines += 1
                // The request line is not a header field.
                if lines - 1 > limits.maxHeaders { throw .tooManyHeaders(limit: limits.maxHeaders) }
                lastWasLF = true
            } else if b == 13 {
                continue  // CR before LF does not break the empty-line detection
            } else {
                lastWasLF = false
            }
        }
        buffer.append(contentsOf: bytes)
        return nil
    }

    public mutating func feed(_ bytes: [UInt8]) throws(HTTPHeadError) -> Result {
        let copy = bytes
        let result: Swift.Result<Result, HTTPHeadError> = copy.withUnsafeBytes { p in
            do throws(HTTPHeadError) { return .success(try feed(p)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// RFC 9110 §5.6.2 tchar (method and field names are tokens).
    static func isTokenChar(_ c: UInt8) -> Bool { HeaderLexer.isTokenChar(c) }

    static func splitLines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var lines: [ArraySlice<UInt8>] = []
        lines.reserveCapacity(16)
        var start = 0
        for (i, b) in bytes.enumerated() where b == 10 {
            var end = i
            if end > start, bytes[end - 1] == 13 { end -= 1 }
            lines.append(bytes[start..<end])
            start = i + 1
        }
        return lines
    }

    static func parseResponse(_ bytes: [UInt8]) throws(HTTPHeadError) -> HTTPResponseHead {
        let lines = splitLines(bytes)
        guard let statusLine = lines.first else { throw .malformed("empty response") }
        let parts = statusLine.split(separator: UInt8(ascii: " "), maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].starts(with: Array("HTTP/1.".utf8)), parts[1].count == 3,
              let status = Int(String(decoding: parts[1], as: UTF8.self)) else {
            throw .malformed("bad status line")
        }
        let reason = parts.count == 3 ? String(decoding: parts[2], as: UTF8.self) : ""
        return HTTPResponseHead(status: status, reason: reason, headers: try parseHeaders(lines.dropFirst()))
    }

    static func parseHeaders(_ lines: ArraySlice<ArraySlice<UInt8>>) throws(HTTPHeadError) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        headers.reserveCapacity(lines.count)
        for line in lines where !line.isEmpty {
            if line.first == 32 || line.first == 9 { throw .malformed("obsolete line folding") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw .malformed("header line without ':'") }
            let name = line[line.startIndex..<colon]
            // RFC 9112 §5.1: no whitespace between name and colon.
            guard !name.isEmpty, name.allSatisfy(isTokenChar) else { throw .malformed("bad header name") }
            let rawValue = line[(colon + 1)...]
            if rawValue.contains(where: { ($0 < 32 && $0 != 9) || $0 == 127 }) {
                throw .malformed("control character in header value")
            }
            let value = trimOWS(Substring(decoding: rawValue, as: UTF8.self))
            headers.append((String(decoding: name, as: UTF8.self), String(value)))
        }
        return headers
    }

    static func parse(_ bytes: [UInt8]) throws(HTTPHeadError) -> HTTPRequestHead {
        var lines = splitLines(bytes)
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
        while let first = lines.first, first.isEmpty, lines.count > 1 { lines.removeFirst() }
        guard lines.count >= 2, let requestLine = lines.first else { throw .malformed("empty request") }
        if requestLine.contains(where: { $0 == 13 || $0 == 0 }) { throw .malformed("control character in request line") }
        let parts = requestLine.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw .malformed("request line is not 'METHOD TARGET VERSION'") }
        guard !parts[0].isEmpty, parts[0].allSatisfy(isTokenChar) else { throw .malformed("bad method") }
        guard !parts[1].isEmpty, parts[1].allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw .malformed("bad request target")
        }
        let v = parts[2]
        guard v.count == 8, v.starts(with: "HTTP/".utf8),
              v[v.startIndex + 6] == UInt8(ascii: "."),
              (48...57).contains(v[v.startIndex + 5]), (48...57).contains(v[v.startIndex + 7]) else {
            throw .malformed("bad HTTP version")
        }
        let version = (v[v.startIndex + 5], v[v.startIndex + 7])
        let headers = try parseHeaders(lines.dropFirst())
        return HTTPRequestHead(
            method: String(decoding: parts[0], as: UTF8.self),
            target: String(decoding: parts[1], as: UTF8.self),
            versionMajor: Int(version.0 - 48), versionMinor: Int(version.1 - 48),
            headers: headers)
    }
}
