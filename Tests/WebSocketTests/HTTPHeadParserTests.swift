import XCTest
@testable import WebSocket

final class HTTPHeadParserTests: XCTestCase {
    let request = "GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nX-Empty:\r\nX-Pad:   v  \r\n\r\n"

    func testWholeAndByteAtATime() throws {
        let bytes = Array(request.utf8) + [0x81, 0x80]  // a pipelined frame follows
        var whole = HTTPHeadParser()
        guard case .complete(let h1, let used1) = try whole.feed(bytes) else { return XCTFail() }
        XCTAssertEqual(used1, bytes.count - 2)
        XCTAssertEqual(h1.method, "GET")
        XCTAssertEqual(h1.path, "/chat")
        XCTAssertEqual(h1.query, "room=1")
        XCTAssertEqual(h1.value("host"), "server.example.com")
        XCTAssertEqual(h1.value("X-Empty"), "")
        XCTAssertEqual(h1.value("x-pad"), "v")

        var single = HTTPHeadParser()
        var result: HTTPRequestHead?
        for (i, b) in bytes.enumerated() {
            switch try single.feed([b]) {
            case .needMore: continue
            case .complete(let h, let used):
                XCTAssertEqual(used, 1)
                XCTAssertEqual(i, bytes.count - 3)
                result = h
            }
            break
        }
        XCTAssertEqual(result, h1)
    }

    func testBareLFTolerated() throws {
        var p = HTTPHeadParser()
        guard case .complete(let h, _) = try p.feed(Array("GET / HTTP/1.1\nHost: a\n\n".utf8)) else { return XCTFail() }
        XCTAssertEqual(h.value("Host"), "a")
    }

    /// A space followed by a combining mark is one Character: trimming must work on bytes
    /// (found by the head-parser fuzzer).
    func testWhitespaceTrimmedByBytesNotCharacters() throws {
        var p = HTTPHeadParser()
        let bytes = Array("GET / HTTP/1.1\r\nX:".utf8) + [0x20, 0xCD, 0x8D, 0x20] + Array("\r\nUpgrade: a,\u{34D}b\r\n\r\n".utf8)
        guard case .complete(let h, _) = try p.feed(bytes) else { return XCTFail() }
        XCTAssertEqual(Array(h.value("X")!.utf8), [0xCD, 0x8D])
        XCTAssertEqual(h.tokens("Upgrade").count, 2)  // the comma still separates
    }

    func testHeadTooLarge() {
        var p = HTTPHeadParser(limits: .init(maxHeadSize: 100, maxHeaders: 100))
        let big = "GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 200) + "\r\n\r\n"
        XCTAssertThrowsError(try p.feed(Array(big.utf8))) { e in
            XCTAssertEqual(e as? HTTPHeadError, .headTooLarge(limit: 100))
            XCTAssertEqual((e as? HTTPHeadError)?.status, 431)
        }
    }

    func testTooManyHeaders() {
        var p = HTTPHeadParser(limits: .init(maxHeadSize: 1 << 20, maxHeaders: 3))
        let text = "GET / HTTP/1.1\r\n" + (0..<4).map { "H\($0): v\r\n" }.joined() + "\r\n"
        XCTAssertThrowsError(try p.feed(Array(text.utf8))) { e in
            XCTAssertEqual(e as? HTTPHeadError, .tooManyHeaders(limit: 3))
        }
        var ok = HTTPHeadParser(limits: .init(maxHeadSize: 1 << 20, maxHeaders: 4))
        XCTAssertNoThrow(try ok.feed(Array(text.utf8)))
    }

    func testMalformed() {
        for bad in ["GET /\r\n\r\n", "GET  / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
                    "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", "GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
                    "G(T / HTTP/1.1\r\n\r\n", "GET / HTTX/1.1\r\n\r\n", "GET / HTTP/1.1\r\nA: b\u{1}c\r\n\r\n"] {
            var p = HTTPHeadParser()
            XCTAssertThrowsError(try p.feed(Array(bad.utf8)), bad) { e in
                XCTAssertEqual((e as? HTTPHeadError)?.status, 400, bad)
            }
        }
    }
}

final class HeaderNameMatchTests: XCTestCase {
    /// Header names match ASCII case-insensitively, letters only: '[' and '{' differ by
    /// the same bit as 'A' and 'a' but are different bytes (RFC 9110 §5.1).
    func testCaseInsensitiveLettersOnly() {
        XCTAssertTrue(asciiCaseInsensitiveEquals("Sec-WebSocket-Key", "sec-websocket-key"))
        XCTAssertTrue(asciiCaseInsensitiveEquals("", ""))
        XCTAssertFalse(asciiCaseInsensitiveEquals("Host", "Hos"))
        XCTAssertFalse(asciiCaseInsensitiveEquals("a[", "a{"))
        XCTAssertFalse(asciiCaseInsensitiveEquals("@", "`"))
        XCTAssertFalse(asciiCaseInsensitiveEquals("é", "É"))  // non-ASCII is compared exactly
        let head = HTTPRequestHead(method: "GET", target: "/", headers: [
            ("Connection", "keep-alive"), ("HOST", "a"), ("connection", "Upgrade")])
        XCTAssertEqual(head.value("host"), "a")
        XCTAssertEqual(head.values("CONNECTION"), ["keep-alive", "Upgrade"])
        XCTAssertEqual(head.value("Connection"), "keep-alive, Upgrade")
        XCTAssertEqual(head.count("connection"), 2)
        XCTAssertTrue(head.containsToken("connection", "upgrade"))
        XCTAssertNil(head.value("Origin"))
    }
}
