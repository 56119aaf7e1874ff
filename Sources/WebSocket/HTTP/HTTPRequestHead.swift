/// A parsed HTTP/1.x request line and header block.
public struct HTTPRequestHead: HTTPHeaderFields, Sendable, Equatable {
    public var method: String
    /// The request target as sent (origin-form: path and optional query).
    public var target: String
    public var versionMajor: Int
    public var versionMinor: Int
    /// Header fields in the order received; names keep their case.
    public var headers: [(name: String, value: String)]

    public init(method: String, target: String, versionMajor: Int = 1, versionMinor: Int = 1,
                headers: [(name: String, value: String)]) {
        self.method = method
        self.target = target
        self.versionMajor = versionMajor
        self.versionMinor = versionMinor
        self.headers = headers
    }

    public static func == (a: HTTPRequestHead, b: HTTPRequestHead) -> Bool {
        a.method == b.method && a.target == b.target && a.versionMajor == b.versionMajor
            && a.versionMinor == b.versionMinor && a.headers.count == b.headers.count
            && zip(a.headers, b.headers).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }

    /// The path part of the target (before `?`).
    public var path: String {
        if let q = target.firstIndex(of: "?") { return String(target[..<q]) }
        return target
    }

    /// The query part of the target (after `?`), if any.
    public var query: String? {
        if let q = target.firstIndex(of: "?") { return String(target[target.index(after: q)...]) }
        return nil
    }
}

/// A parsed HTTP/1.x status line and header block (client side of the handshake).
public struct HTTPResponseHead: HTTPHeaderFields, Sendable {
    public var status: Int
    public var reason: String
    public var headers: [(name: String, value: String)]

}

/// Header lookup shared by request and response heads.
public protocol HTTPHeaderFields {
    var headers: [(name: String, value: String)] { get }
}

extension HTTPHeaderFields {
    /// All values of a header, matched case-insensitively.
    public func values(_ name: String) -> [String] {
        var out: [String] = []
        for i in headers.indices where asciiCaseInsensitiveEquals(headers[i].name, name) { out.append(headers[i].value) }
        return out
    }

    /// How many fields carry this header.
    public func count(_ name: String) -> Int {
        var n = 0
        for i in headers.indices where asciiCaseInsensitiveEquals(headers[i].name, name) { n += 1 }
        return n
    }

    /// The single value of a header, or nil if absent. Repeated fields are joined with ", "
    /// (RFC 9110 §5.3).
    public func value(_ name: String) -> String? {
        var found: String?
        for i in headers.indices where asciiCaseInsensitiveEquals(headers[i].name, name) {
            found = found.map { $0 + ", " + headers[i].value } ?? headers[i].value
        }
        return found
    }

    /// The comma-separated tokens of a header across all its fields, trimmed and lowercased.
    public func tokens(_ name: String) -> [String] {
        var out: [String] = []
        forEachToken(name) { out.append(asciiLowercased(Substring($0))) }
        return out
    }

    /// Whether a comma-separated header (across all its fields) lists `token`, compared
    /// ASCII case-insensitively; `token` must be lowercase. Allocates nothing.
    public func containsToken(_ name: String, _ token: StaticString) -> Bool {
        let want = UnsafeRawBufferPointer(start: token.utf8Start, count: token.utf8CodeUnitCount)
        var found = false
        forEachToken(name) { t in
            if !found, t.count == want.count,
               t.elementsEqual(want, by: { ($0 >= 65 && $0 <= 90 ? $0 + 32 : $0) == $1 }) {
                found = true
            }
        }
        return found
    }

    /// Calls `body` with each element of the header's comma lists (RFC 9110 §5.6.1, through
    /// `HeaderLexer`: OWS trimmed, empty elements skipped, commas inside quoted strings kept).
    func forEachToken(_ name: String, _ body: (Substring.UTF8View) -> Void) {
        for i in headers.indices where asciiCaseInsensitiveEquals(headers[i].name, name) {
            HeaderLexer.forEachElement(of: Substring(headers[i].value)) { body($0.utf8) }
        }
    }
}

func asciiLowercased(_ s: some StringProtocol) -> String {
    String(decoding: s.utf8.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }, as: UTF8.self)
}

/// Header lookups compare every field name of a request (a handshake makes ~60 of these):
/// lengths first (O(1) for native strings), then bytes in place, without copying either
/// string (the copies cost a retain/release pair each; callgrind).
func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    let x = a.utf8, y = b.utf8
    guard x.count == y.count else { return false }
    func same(_ p: UInt8, _ q: UInt8) -> Bool {
        p == q || ((p | 0x20) == (q | 0x20) && (p | 0x20) >= 97 && (p | 0x20) <= 122)
    }
    let fast = x.withContiguousStorageIfAvailable { xs in
        y.withContiguousStorageIfAvailable { ys in
            for i in 0..<xs.count where !same(xs[i], ys[i]) { return false }
            return true
        }
    }
    return (fast ?? nil) ?? x.elementsEqual(y, by: same)  // (bridged strings: the slow way)
}

/// Trims optional whitespace (SP, HTAB; RFC 9110 §5.6.3) by bytes, not Characters: a space
/// followed by a combining mark is one Character but still leading whitespace (found by fuzzing).
func trimOWS(_ s: Substring) -> Substring {
    let u = s.utf8
    var start = u.startIndex, end = u.endIndex
    while start < end, u[start] == 32 || u[start] == 9 { start = u.index(after: start) }
    while end > start {
        let before = u.index(before: end)
        guard u[before] == 32 || u[before] == 9 else { break }
        end = before
    }
    return Substring(u[start..<end])
}
