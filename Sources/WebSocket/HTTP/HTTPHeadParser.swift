#if canImport(Glibc)
import Glibc
#endif

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

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Bytes buffered so far.
    public var bufferedCount: Int { buffer.count }

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(HTTPHeadError) -> Result {
        guard let (raw, consumed, lineCount) = try feedRawCountingLines(bytes) else { return .needMore }
        return .complete(try Self.parse(raw, lines: lineCount), consumed: consumed)
    }

    /// Feeds bytes of a response head (client side of the opening handshake).
    public mutating func feedResponse(_ bytes: UnsafeRawBufferPointer) throws(HTTPHeadError) -> (HTTPResponseHead, consumed: Int)? {
        guard let (raw, consumed) = try feedRaw(bytes) else { return nil }
        return (try Self.parseResponse(raw), consumed)
    }

    /// Finds the end of the head; returns its bytes and how many input bytes it used.
    mutating func feedRaw(_ bytes: UnsafeRawBufferPointer) throws(HTTPHeadError) -> ([UInt8], Int)? {
        try feedRawCountingLines(bytes).map { ($0.0, $0.1) }
    }

    /// `feedRaw`, also saying how many lines the head has. Line ends are found with `memchr`
    /// and only the bytes between the last two are looked at (for the empty line); bytes are
    /// appended to the buffer in one piece (the whole head usually arrives in one read).
    mutating func feedRawCountingLines(_ bytes: UnsafeRawBufferPointer) throws(HTTPHeadError) -> ([UInt8], Int, Int)? {
        var i = 0
        let room = limits.maxHeadSize - buffer.count
        while i < bytes.count {
            guard let found = memchr(bytes.baseAddress! + i, 10, bytes.count - i) else {
                if bytes.count > room { throw .headTooLarge(limit: limits.maxHeadSize) }
                // CRs do not break the empty-line detection; anything else does.
                if lastWasLF { lastWasLF = bytes[i...].allSatisfy { $0 == 13 } }
                break
            }
            let lf = bytes.baseAddress!.distance(to: UnsafeRawPointer(found))
            if lf + 1 > room { throw .headTooLarge(limit: limits.maxHeadSize) }
            // LF ends a line; a bare LF is tolerated (RFC 9112 §2.2). CR before it does not
            // break the empty-line detection.
            if lastWasLF && bytes[i..<lf].allSatisfy({ $0 == 13 }) {
                let raw = buffer.isEmpty ? Self.copy(UnsafeRawBufferPointer(rebasing: bytes[0...lf]))
                    : buffer + UnsafeRawBufferPointer(rebasing: bytes[0...lf])
                let count = lines + 1
                buffer = []
                lines = 0
                lastWasLF = false
                return (raw, lf + 1, count)
            }
            lines += 1
            // The request line is not a header field.
            if lines - 1 > limits.maxHeaders { throw .tooManyHeaders(limit: limits.maxHeaders) }
            lastWasLF = true
            i = lf + 1
        }
        buffer.append(contentsOf: bytes)
        return nil
    }

    /// One exact-size array, one memcpy (appending to an empty array went the generic way).
    static func copy(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: bytes.count) { out, count in
            UnsafeMutableRawBufferPointer(out).copyMemory(from: bytes)
            count = bytes.count
        }
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

    /// The request line and fields of a complete head (`lines`: about how many it has), as
    /// byte ranges into it: no `String` is made here (`HTTPRequestHead` makes them on demand).
    static func parse(_ raw: [UInt8], lines: Int = 16) throws(HTTPHeadError) -> HTTPRequestHead {
        var spans: [UInt32] = []
        spans.reserveCapacity(4 * max(lines, 2))
        var version = (0, 0)
        let failure: HTTPHeadError? = raw.withUnsafeBytes { p in
            do throws(HTTPHeadError) {
                version = try parseSpans(p, into: &spans)
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
        return HTTPRequestHead(bytes: raw, spans: spans, versionMajor: version.0, versionMinor: version.1)
    }

    /// The lines of a head: each without its LF and one CR before it.
    struct Lines: Sequence, IteratorProtocol {
        let p: UnsafeRawBufferPointer
        var start = 0
        mutating func next() -> Range<Int>? {
            guard start < p.count, let found = memchr(p.baseAddress! + start, 10, p.count - start) else { return nil }
            let i = p.baseAddress!.distance(to: UnsafeRawPointer(found))
            var end = i
            if end > start, p[end - 1] == 13 { end -= 1 }
            defer { start = i + 1 }
            return start..<end
        }
    }

    static func parseSpans(_ p: UnsafeRawBufferPointer, into spans: inout [UInt32]) throws(HTTPHeadError) -> (Int, Int) {
        func add(_ r: Range<Int>) {
            spans.append(UInt32(truncatingIfNeeded: r.lowerBound))
            spans.append(UInt32(truncatingIfNeeded: r.upperBound))
        }
        var lines = Lines(p: p)
        guard var requestLine = lines.next() else { throw .malformed("empty request") }
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
        var rest = lines
        while requestLine.isEmpty, let following = rest.next() {
            requestLine = following
            lines = rest
        }
        var probe = lines
        guard probe.next() != nil else { throw .malformed("empty request") }
        let line = UnsafeRawBufferPointer(rebasing: p[requestLine])
        if line.contains(where: { $0 == 13 || $0 == 0 }) { throw .malformed("control character in request line") }
        guard let sp1 = line.firstIndex(of: 32),
              let sp2 = line[(sp1 + 1)...].firstIndex(of: 32),
              !line[(sp2 + 1)...].contains(32) else {
            throw .malformed("request line is not 'METHOD TARGET VERSION'")
        }
        let method = line[..<sp1], target = line[(sp1 + 1)..<sp2], v = line[(sp2 + 1)...]
        guard !method.isEmpty, method.allSatisfy(isTokenChar) else { throw .malformed("bad method") }
        guard !target.isEmpty, target.allSatisfy({ $0 > 32 && $0 < 127 }) else {
            throw .malformed("bad request target")
        }
        let s = v.startIndex  // "HTTP/" digit "." digit, compared byte by byte
        guard v.count == 8, v[s] == 72, v[s + 1] == 84, v[s + 2] == 84, v[s + 3] == 80, v[s + 4] == 47,
              v[s + 6] == UInt8(ascii: "."),
              (48...57).contains(v[s + 5]), (48...57).contains(v[s + 7]) else {
            throw .malformed("bad HTTP version")
        }
        let base = requestLine.lowerBound
        add(base..<(base + sp1))
        add((base + sp1 + 1)..<(base + sp2))
        try HeaderLexer.tokenTable.withUnsafeBufferPointer { (isToken) throws(HTTPHeadError) in
            for r in lines where !r.isEmpty {
                let first = p[r.lowerBound]
                if first == 32 || first == 9 { throw .malformed("obsolete line folding") }
                // The name: tchars up to the colon (RFC 9112 §5.1: no whitespace before it).
                var i = r.lowerBound
                while i < r.upperBound, isToken[Int(p[i])] { i += 1 }
                guard i < r.upperBound, p[i] == UInt8(ascii: ":") else {
                    if !p[i..<r.upperBound].contains(UInt8(ascii: ":")) { throw .malformed("header line without ':'") }
                    throw .malformed("bad header name")
                }
                guard i > r.lowerBound else { throw .malformed("bad header name") }
                add(r.lowerBound..<i)
                // The value: no control characters; OWS (SP, HTAB; RFC 9110 §5.6.3) trimmed, by bytes.
                var start = i + 1, end = r.upperBound
                while start < end, p[start] == 32 || p[start] == 9 { start += 1 }
                while end > start, p[end - 1] == 32 || p[end - 1] == 9 { end -= 1 }
                // One test per byte: 0x7F and every byte below 0x20 but HTAB, found with a
                // subtraction (a byte below 0x20 becomes 0xE0 or more; 0x7F becomes 0x5F).
                for j in start..<end {
                    let c = p[j] &- 0x20
                    if c >= 0xE0 || c == 0x5F, p[j] != 9 { throw .malformed("control character in header value") }
                }
                add(start..<end)
            }
        }
        return (Int(v[v.startIndex + 5] - 48), Int(v[v.startIndex + 7] - 48))
    }
}
