/// The one lexer for list-based header fields (RFC 9110 §5.6), used by every header rule in
/// the core: `Connection`, `Upgrade`, `Sec-WebSocket-Version`, `Sec-WebSocket-Protocol`,
/// `Sec-WebSocket-Extensions` (server and client side).
///
/// - `#element` lists (§5.6.1): elements separated by commas with optional whitespace around
///   them; empty elements are ignored. A comma inside a quoted string does not split.
/// - `token` (§5.6.2) and `quoted-string` with `quoted-pair` (§5.6.4).
///
/// It works on the bytes of the field value (not on Characters: a comma or a space followed
/// by a combining mark is one Character, found by fuzzing) and allocates only for the
/// unescaped text of a quoted string.
struct HeaderLexer {
    let text: Substring.UTF8View
    private(set) var index: Substring.UTF8View.Index

    init(_ text: Substring) {
        self.text = text.utf8
        index = self.text.startIndex
    }

    var atEnd: Bool { index == text.endIndex }

    /// The next byte, if any.
    var peek: UInt8? { atEnd ? nil : text[index] }

    /// RFC 9110 §5.6.2 tchar.
    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case 48...57, 65...90, 97...122: return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
             UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
             UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default: return false
        }
    }

    /// `isTokenChar` for every byte value, for scans that test each byte of a head.
    static let tokenTable: [Bool] = (0..<256).map { isTokenChar(UInt8($0)) }

    /// qdtext and the escaped byte of a quoted-pair: HTAB, SP, VCHAR, obs-text; not DEL.
    private static func isQuotedChar(_ c: UInt8) -> Bool { c == 0x09 || (c >= 0x20 && c != 0x7F) }

    /// Skips OWS (SP, HTAB; §5.6.3).
    mutating func skipOWS() {
        while let c = peek, c == 0x20 || c == 0x09 { index = text.index(after: index) }
    }

    /// Consumes `byte` if it is next.
    mutating func skip(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index = text.index(after: index)
        return true
    }

    /// 1*tchar, or nil (nothing consumed).
    mutating func token() -> Substring? {
        let start = index
        while let c = peek, Self.isTokenChar(c) { index = text.index(after: index) }
        return start == index ? nil : Substring(text[start..<index])
    }

    /// A quoted-string, unescaped; nil if there is none here or it is malformed/unterminated.
    mutating func quotedString() -> String? {
        guard skip(UInt8(ascii: "\"")) else { return nil }
        var out: [UInt8] = []
        while let c = peek {
            index = text.index(after: index)
            if c == UInt8(ascii: "\"") { return String(decoding: out, as: UTF8.self) }
            if c == UInt8(ascii: "\\") {
                guard let escaped = peek, Self.isQuotedChar(escaped) else { return nil }
                index = text.index(after: index)
                out.append(escaped)
                continue
            }
            guard Self.isQuotedChar(c) else { return nil }
            out.append(c)
        }
        return nil
    }

    /// Calls `body` with each non-empty, OWS-trimmed element of a comma-separated list
    /// (§5.6.1). Returns false (having called `body` for the elements before it) if a quoted
    /// string is unterminated.
    @discardableResult
    static func forEachElement(of value: Substring, _ body: (Substring) -> Void) -> Bool {
        let u = value.utf8
        return forEachElementRange(of: u) { body(Substring(u[$0])) }
    }

    /// `forEachElement` on any bytes (a request head's field value in place), by index range.
    @discardableResult
    static func forEachElementRange<C: Collection>(of text: C, _ body: (Range<C.Index>) -> Void) -> Bool
    where C.Element == UInt8 {
        var i = text.startIndex
        let endIndex = text.endIndex
        while true {
            while i < endIndex, text[i] == 0x20 || text[i] == 0x09 { i = text.index(after: i) }  // OWS
            let start = i
            var end = start
            while i < endIndex, text[i] != UInt8(ascii: ",") {
                let c = text[i]
                i = text.index(after: i)
                if c == UInt8(ascii: "\"") {
                    // A quoted string, escapes skipped without unescaping; unterminated: stop.
                    var closed = false
                    while i < endIndex {
                        let q = text[i]
                        i = text.index(after: i)
                        if q == UInt8(ascii: "\"") { closed = true; break }
                        if q == UInt8(ascii: "\\") {
                            guard i < endIndex else { return false }
                            i = text.index(after: i)
                        }
                    }
                    guard closed else { return false }
                }
                if c != 0x20 && c != 0x09 { end = i }  // trailing OWS is not part of it
            }
            if end > start { body(start..<end) }
            guard i < endIndex else { return true }
            i = text.index(after: i)  // the comma
        }
    }
}
