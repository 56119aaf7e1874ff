#if canImport(Glibc)
import Glibc
#endif

/// A parsed HTTP/1.x request line and header block.
///
/// Stored as the head's bytes and the positions of its parts (two allocations), not as a
/// `String` per part (~15 per upgrade): `method`, `target` and `headers` are made on demand,
/// and lookups (`value`, `count`, `containsToken`, ...) compare bytes in place.
public struct HTTPRequestHead: HTTPHeaderFields, Sendable, Equatable {
    /// The head as received (or as built by `init`).
    var bytes: [UInt8]
    /// Byte ranges in `bytes`: method start/end, target start/end, then per field its name
    /// start/end and (trimmed) value start/end.
    var spans: [UInt32]
    public var versionMajor: Int
    public var versionMinor: Int

    /// From parts already checked by the parser.
    init(bytes: [UInt8], spans: [UInt32], versionMajor: Int, versionMinor: Int) {
        self.bytes = bytes
        self.spans = spans
        self.versionMajor = versionMajor
        self.versionMinor = versionMinor
    }

    public init(method: String, target: String, versionMajor: Int = 1, versionMinor: Int = 1,
                headers: [(name: String, value: String)]) {
        var bytes: [UInt8] = [], spans: [UInt32] = []
        spans.reserveCapacity(4 + 4 * headers.count)
        func add(_ s: String) {
            spans.append(UInt32(bytes.count))
            bytes.append(contentsOf: s.utf8)
            spans.append(UInt32(bytes.count))
        }
        add(method)
        bytes.append(32)
        add(target)
        bytes.append(contentsOf: " HTTP/\(versionMajor).\(versionMinor)\r\n".utf8)
        for (name, value) in headers {
            add(name)
            bytes.append(contentsOf: ": ".utf8)
            add(value)
            bytes.append(contentsOf: "\r\n".utf8)
        }
        bytes.append(contentsOf: "\r\n".utf8)
        self.init(bytes: bytes, spans: spans, versionMajor: versionMajor, versionMinor: versionMinor)
    }

    func string(_ span: Int) -> String {
        bytes.withUnsafeBytes { String(decoding: slice($0, span), as: UTF8.self) }
    }

    /// Bytes of span `i` (0: method, 1: target, 2 + 2k: name of field k, 3 + 2k: its value).
    @inline(__always) func slice(_ p: UnsafeRawBufferPointer, _ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: p[Int(spans[2 * i])..<Int(spans[2 * i + 1])])
    }

    var fieldCount: Int { spans.count / 4 - 1 }

    public var method: String {
        get { string(0) }
        set { self = HTTPRequestHead(method: newValue, target: target, versionMajor: versionMajor, versionMinor: versionMinor, headers: headers) }
    }

    /// The request target as sent (origin-form: path and optional query).
    public var target: String {
        get { string(1) }
        set { self = HTTPRequestHead(method: method, target: newValue, versionMajor: versionMajor, versionMinor: versionMinor, headers: headers) }
    }

    /// Header fields in the order received; names keep their case.
    public var headers: [(name: String, value: String)] {
        get { (0..<fieldCount).map { (string(2 + 2 * $0), string(3 + 2 * $0)) } }
        set { self = HTTPRequestHead(method: method, target: target, versionMajor: versionMajor, versionMinor: versionMinor, headers: newValue) }
    }

    /// Whether the method is `m` (exact: methods are case-sensitive, RFC 9110 §9.1).
    public func isMethod(_ m: StaticString) -> Bool {
        bytes.withUnsafeBytes { p in
            let have = slice(p, 0)
            return have.count == m.utf8CodeUnitCount && (have.count == 0 || memcmp(have.baseAddress!, m.utf8Start, have.count) == 0)
        }
    }

    public static func == (a: HTTPRequestHead, b: HTTPRequestHead) -> Bool {
        guard a.versionMajor == b.versionMajor, a.versionMinor == b.versionMinor,
              a.spans.count == b.spans.count else { return false }
        return a.bytes.withUnsafeBytes { pa in
            b.bytes.withUnsafeBytes { pb in
                (0..<a.spans.count / 2).allSatisfy { a.slice(pa, $0).elementsEqual(b.slice(pb, $0)) }
            }
        }
    }

    /// Where `?` is in the target, if anywhere.
    private var queryMark: Int? {
        bytes.withUnsafeBytes { p in slice(p, 1).firstIndex(of: UInt8(ascii: "?")) }
    }

    /// The path part of the target (before `?`).
    public var path: String {
        guard let q = queryMark else { return target }
        return bytes.withUnsafeBytes { p in String(decoding: slice(p, 1)[..<q], as: UTF8.self) }
    }

    /// The query part of the target (after `?`), if any.
    public var query: String? {
        guard let q = queryMark else { return nil }
        return bytes.withUnsafeBytes { p in String(decoding: slice(p, 1)[(q + 1)...], as: UTF8.self) }
    }

    // MARK: - Lookups on the bytes (these shadow HTTPHeaderFields' String-based ones)

    /// Calls `body` with the value of every field named `name` (ASCII case-insensitive).
    /// Lengths are compared first, straight from the spans (a handshake makes ~80 of these).
    func forEachValue(_ name: String, _ body: (UnsafeRawBufferPointer) -> Void) {
        var name = name
        name.withUTF8 { w in
            let want = UnsafeRawBufferPointer(w)
            bytes.withUnsafeBytes { p in
                spans.withUnsafeBufferPointer { s in
                    var k = 4
                    while k + 3 < s.count {
                        let start = Int(s[k]), end = Int(s[k + 1])
                        if end - start == want.count,
                           asciiCaseInsensitiveEquals(UnsafeRawBufferPointer(rebasing: p[start..<end]), want) {
                            body(UnsafeRawBufferPointer(rebasing: p[Int(s[k + 2])..<Int(s[k + 3])]))
                        }
                        k += 4
                    }
                }
            }
        }
    }

    /// All values of a header, matched case-insensitively.
    public func values(_ name: String) -> [String] {
        var out: [String] = []
        forEachValue(name) { out.append(String(decoding: $0, as: UTF8.self)) }
        return out
    }

    /// How many fields carry this header.
    public func count(_ name: String) -> Int {
        var n = 0
        forEachValue(name) { _ in n += 1 }
        return n
    }

    /// The single value of a header, or nil if absent. Repeated fields are joined with ", "
    /// (RFC 9110 §5.3).
    public func value(_ name: String) -> String? {
        var found: String?
        forEachValue(name) { v in
            let s = String(decoding: v, as: UTF8.self)
            found = found.map { $0 + ", " + s } ?? s
        }
        return found
    }

    /// The comma-separated tokens of a header across all its fields, trimmed and lowercased.
    public func tokens(_ name: String) -> [String] {
        var out: [String] = []
        forEachToken(name) { t in out.append(String(decoding: t.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }, as: UTF8.self)) }
        return out
    }

    /// Whether a comma-separated header (across all its fields) lists `token`, compared
    /// ASCII case-insensitively; `token` must be lowercase. Allocates nothing.
    public func containsToken(_ name: String, _ token: StaticString) -> Bool {
        var found = false
        forEachToken(name) { if !found && isToken($0, token) { found = true } }
        return found
    }

    /// Calls `body` with each element of the header's comma lists (RFC 9110 §5.6.1, through
    /// `HeaderLexer`: OWS trimmed, empty elements skipped, commas inside quoted strings kept).
    func forEachToken(_ name: String, _ body: (UnsafeRawBufferPointer) -> Void) {
        forEachValue(name) { v in
            // Most values are one element ("websocket", "Upgrade", "13"): without a comma, a
            // quote or OWS at either end, the lexer would hand out the whole value.
            if let first = v.first, let last = v.last, first != 32, first != 9, last != 32, last != 9,
               !v.contains(where: { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") }) {
                return body(v)
            }
            HeaderLexer.forEachElementRange(of: v) { body(UnsafeRawBufferPointer(rebasing: v[$0])) }
        }
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
        var found = false
        forEachToken(name) { if !found && isToken($0, token) { found = true } }
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

/// Whether a list element is `token` (lowercase), ASCII case-insensitively: the byte form.
func isToken(_ element: UnsafeRawBufferPointer, _ token: StaticString) -> Bool {
    guard element.count == token.utf8CodeUnitCount else { return false }
    let want = token.utf8Start
    for i in 0..<element.count {
        let c = element[i]
        if (c >= 65 && c <= 90 ? c + 32 : c) != want[i] { return false }
    }
    return true
}

/// Whether a list element is `token` (lowercase), ASCII case-insensitively.
func isToken<C: Collection>(_ element: C, _ token: StaticString) -> Bool where C.Element == UInt8 {
    let want = UnsafeRawBufferPointer(start: token.utf8Start, count: token.utf8CodeUnitCount)
    return element.count == want.count && element.elementsEqual(want, by: { ($0 >= 65 && $0 <= 90 ? $0 + 32 : $0) == $1 })
}

func asciiLowercased(_ s: some StringProtocol) -> String {
    String(decoding: s.utf8.map { ($0 >= 65 && $0 <= 90) ? $0 + 32 : $0 }, as: UTF8.self)
}

/// Header names match ASCII case-insensitively, letters only ('[' and '{' differ by the same
/// bit as 'A' and 'a' but are different bytes; RFC 9110 §5.1).
@inline(__always) func asciiSameIgnoringCase(_ p: UInt8, _ q: UInt8) -> Bool {
    p == q || ((p | 0x20) == (q | 0x20) && (p | 0x20) >= 97 && (p | 0x20) <= 122)
}

/// The byte form, for request heads: lengths first, then bytes in place.
func asciiCaseInsensitiveEquals(_ x: UnsafeRawBufferPointer, _ y: UnsafeRawBufferPointer) -> Bool {
    guard x.count == y.count else { return false }
    for i in 0..<x.count where !asciiSameIgnoringCase(x[i], y[i]) { return false }
    return true
}

/// Header lookups compare every field name of a request (a handshake makes ~60 of these):
/// lengths first (O(1) for native strings), then bytes in place, without copying either
/// string (the copies cost a retain/release pair each; callgrind).
func asciiCaseInsensitiveEquals(_ a: String, _ b: String) -> Bool {
    let x = a.utf8, y = b.utf8
    guard x.count == y.count else { return false }
    let fast = x.withContiguousStorageIfAvailable { xs in
        y.withContiguousStorageIfAvailable { ys in
            asciiCaseInsensitiveEquals(UnsafeRawBufferPointer(xs), UnsafeRawBufferPointer(ys))
        }
    }
    return (fast ?? nil) ?? x.elementsEqual(y, by: asciiSameIgnoringCase)  // (bridged strings: the slow way)
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
