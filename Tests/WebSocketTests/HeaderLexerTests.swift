import XCTest
@testable import WebSocket

/// The one list lexer (RFC 9110 §5.6) behind every header rule.
final class HeaderLexerTests: XCTestCase {
    func elements(_ value: String) -> ([String], Bool) {
        var out: [String] = []
        let ok = HeaderLexer.forEachElement(of: Substring(value)) { out.append(String($0)) }
        return (out, ok)
    }

    func testListElements() {
        XCTAssertEqual(elements("a, b ,c").0, ["a", "b", "c"])
        XCTAssertEqual(elements(" ,\t, a ,, b\t ,").0, ["a", "b"])  // §5.6.1: empty elements ignored
        XCTAssertEqual(elements("").0, [])
        XCTAssertEqual(elements("websocket/13, h2c").0, ["websocket/13", "h2c"])
        XCTAssertEqual(elements("x; a=1 , y").0, ["x; a=1", "y"])
    }

    // §5.6.4: a comma inside a quoted string is data, not a separator.
    func testQuotedStringsDoNotSplit() {
        XCTAssertEqual(elements(#"x; a="1,2", y"#).0, [#"x; a="1,2""#, "y"])
        XCTAssertEqual(elements(#"x; a="q\",", y"#).0, [#"x; a="q\",""#, "y"])
        let (partial, ok) = elements(#"x, y; a="open"#)
        XCTAssertFalse(ok)  // unterminated
        XCTAssertEqual(partial, ["x"])
    }

    // Bytes, not Characters: ", \u{301}" has a comma and a space that Swift joins to marks.
    func testSplitsOnBytesNotCharacters() {
        XCTAssertEqual(elements("a,\u{301}b").0, ["a", "\u{301}b"])
        XCTAssertEqual(elements("a, \u{301}").0, ["a", "\u{301}"])
    }

    func testTokensAndQuotedStrings() {
        var l = HeaderLexer(#"tok-en!; "a\"b\\c" rest"#)
        XCTAssertEqual(l.token(), "tok-en!")
        XCTAssertNil(l.token())  // ";" is not a tchar
        XCTAssertTrue(l.skip(UInt8(ascii: ";")))
        l.skipOWS()
        XCTAssertEqual(l.quotedString(), #"a"b\c"#)
        l.skipOWS()
        XCTAssertEqual(l.token(), "rest")
        XCTAssertTrue(l.atEnd)
        var bad = HeaderLexer("\"a\u{7F}\"")
        XCTAssertNil(bad.quotedString())  // DEL is not qdtext
    }

    // The extension grammar and the token headers go through the same lexer.
    func testHeaderRulesUseIt() throws {
        let offers = try XCTUnwrap(DeflateNegotiation.parse([#"permessage-deflate; client_max_window_bits="10", x; a="1,2""#]))
        XCTAssertEqual(offers.map(\.name), ["permessage-deflate", "x"])
        XCTAssertEqual(offers[1].parameters.first?.value, "1,2")
        XCTAssertNil(DeflateNegotiation.parse(["permessage-deflate; a=\"x"]))
        XCTAssertNil(DeflateNegotiation.parse(["permessage-deflate junk"]))
        let head = HTTPRequestHead(method: "GET", target: "/", headers: [("Connection", #"keep-alive, "x,upgrade""#),
                                                                          ("Upgrade", "websocket")])
        XCTAssertFalse(head.containsToken("Connection", "upgrade"), "a quoted comma is no separator")
        XCTAssertTrue(head.containsToken("Upgrade", "websocket"))
    }
}
