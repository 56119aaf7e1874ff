import XCTest
@testable import WebSocket

final class HandshakeTests: XCTestCase {
    func testRFCAcceptVector() {
        // RFC 6455 §1.3
        XCTAssertEqual(Handshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    }

    func testBase64RoundTripAndStrictness() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            XCTAssertEqual(Base64.decode(Base64.encode(bytes).utf8), bytes)
        }
        XCTAssertEqual(Base64.encode(Array("foobar".utf8)), "Zm9vYmFy")
        XCTAssertEqual(Base64.encode(Array("fo".utf8)), "Zm8=")
        XCTAssertNil(Base64.decode("Zm8".utf8))        // not a multiple of 4
        XCTAssertNil(Base64.decode("Zm=8".utf8))       // data after padding
        XCTAssertNil(Base64.decode("Zm9=".utf8))       // non-zero unused bits
        XCTAssertNil(Base64.decode("Zm 8".utf8))       // whitespace
    }

    func head(_ lines: [String], method: String = "GET", version: String = "HTTP/1.1") throws -> HTTPRequestHead {
        var p = HTTPHeadParser()
        let text = "\(method) /chat HTTP/\(version.dropFirst(5))\r\n" + lines.map { $0 + "\r\n" }.joined() + "\r\n"
        guard case .complete(let h, _) = try p.feed(Array(text.utf8)) else { throw XCTSkip("incomplete") }
        return h
    }

    let good = ["Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]

    func without(_ prefix: String) -> [String] { good.filter { !$0.hasPrefix(prefix) } }

    func testValidRequest() throws {
        let h = try head(good + ["Sec-WebSocket-Protocol: chat, superchat"])
        guard case .success(let r) = Handshake.validate(h) else { return XCTFail() }
        XCTAssertEqual(r.key, "dGhlIHNhbXBsZSBub25jZQ==")
        XCTAssertEqual(r.subprotocols, ["chat", "superchat"])
        let resp = Handshake.response(acceptingKey: r.key)
        XCTAssertTrue(resp.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        XCTAssertTrue(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))
        XCTAssertTrue(resp.hasSuffix("\r\n\r\n"))
    }

    func testTokenListsAreCaseInsensitive() throws {
        let h = try head(["Host: a", "Upgrade: WebSocket", "Connection: keep-alive, UPGRADE",
                          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"])
        guard case .success = Handshake.validate(h) else { return XCTFail() }
    }

    // RFC 9110 §5.6.1: a list header is split on commas across all its fields; elements are
    // trimmed of OWS and empty ones ignored. A token is matched whole, not as a prefix.
    func testTokenLookupAcrossFieldsAndWhole() throws {
        let h = try head(["Host: a", "Connection: keep-alive,\t, Upgrade ", "Connection: x",
                          "Upgrade: websockets", "Upgrade: h2c"])
        XCTAssertTrue(h.containsToken("connection", "upgrade"))
        XCTAssertTrue(h.containsToken("CONNECTION", "keep-alive"))
        XCTAssertTrue(h.containsToken("Connection", "x"))
        XCTAssertFalse(h.containsToken("Connection", "close"))
        XCTAssertFalse(h.containsToken("Upgrade", "websocket"))  // "websockets" is another token
        XCTAssertFalse(h.containsToken("Missing", "x"))
        XCTAssertEqual(h.tokens("Connection"), ["keep-alive", "upgrade", "x"])
        XCTAssertEqual(h.count("connection"), 2)
        XCTAssertEqual(h.value("Connection"), "keep-alive,\t, Upgrade, x")
        XCTAssertNil(h.value("Origin"))
    }

    func testVersionMustBeExactlyOneToken13() throws {
        func validates(_ versionLines: [String]) throws -> Bool {
            if case .success = Handshake.validate(try head(without("Sec-WebSocket-Version") + versionLines)) { return true }
            return false
        }
        XCTAssertTrue(try validates(["Sec-WebSocket-Version: 13"]))
        XCTAssertTrue(try validates(["Sec-WebSocket-Version: 13,"]))
        XCTAssertFalse(try validates(["Sec-WebSocket-Version: 13, 8"]))
        XCTAssertFalse(try validates(["Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 13"]))
        XCTAssertFalse(try validates(["Sec-WebSocket-Version: 130"]))
        XCTAssertFalse(try validates(["Sec-WebSocket-Version: 1"]))
    }

    func testRejections() throws {
        func reason(_ h: HTTPRequestHead) -> HandshakeError? {
            if case .failure(let e) = Handshake.validate(h) { return e }
            return nil
        }
        XCTAssertEqual(reason(try head(good, method: "POST")), .methodNotGet("POST"))
        XCTAssertEqual(reason(try head(good, version: "HTTP/1.0")), .httpVersionTooOld)
        XCTAssertEqual(reason(try head(without("Host"))), .missingHost)
        XCTAssertEqual(reason(try head(without("Upgrade"))), .missingUpgrade)
        XCTAssertEqual(reason(try head(without("Connection"))), .missingConnectionUpgrade)
        XCTAssertEqual(reason(try head(without("Sec-WebSocket-Key"))), .missingKey)
        XCTAssertEqual(reason(try head(without("Sec-WebSocket-Key") + ["Sec-WebSocket-Key: abc"])), .invalidKey)
        // 15 bytes, valid base64
        XCTAssertEqual(reason(try head(without("Sec-WebSocket-Key") + ["Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"])), .invalidKey)
        let v8 = reason(try head(without("Sec-WebSocket-Version") + ["Sec-WebSocket-Version: 8"]))
        XCTAssertEqual(v8, .unsupportedVersion("8"))
        XCTAssertEqual(v8?.status, 426)
        XCTAssertEqual(reason(try head(without("Sec-WebSocket-Version")))?.status, 426)
        XCTAssertEqual(HandshakeError.missingKey.status, 400)
        // §4.1: Sec-WebSocket-Protocol = 1#token; anything else would be echoed into the 101 (found by fuzzing).
        for bad in ["a b", "chSec-WebSocket-Extensions: x", "\"chat\"", "chat, su/per", "é"] {
            XCTAssertEqual(reason(try head(good + ["Sec-WebSocket-Protocol: \(bad)"])), .invalidSubprotocols, bad)
        }
        XCTAssertEqual(HandshakeError.invalidSubprotocols.status, 400)
        XCTAssertNil(reason(try head(good + ["Sec-WebSocket-Protocol: chat, , v2.chat+json"])))
    }
}
