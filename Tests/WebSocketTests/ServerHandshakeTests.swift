import XCTest
@testable import WebSocket

final class ServerHandshakeTests: XCTestCase {
    let key = "dGhlIHNhbXBsZSBub25jZQ=="
    let good = ["Host: example.com", "Upgrade: websocket", "Connection: Upgrade",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13"]

    func head(_ lines: [String], method: String = "GET") throws -> HTTPRequestHead {
        var p = HTTPHeadParser()
        let text = "\(method) /chat HTTP/1.1\r\n" + lines.map { $0 + "\r\n" }.joined() + "\r\n"
        guard case .complete(let h, _) = try p.feed(Array(text.utf8)) else { throw XCTSkip("incomplete") }
        return h
    }

    func rejection(_ outcome: ServerHandshake.Outcome) -> ServerHandshake.Rejection? {
        if case .reject(let r) = outcome { return r }
        return nil
    }

    func accepted(_ outcome: ServerHandshake.Outcome, file: StaticString = #filePath, line: UInt = #line) -> ServerHandshake.Accepted? {
        if case .accept(let a) = outcome { return a }
        XCTFail("rejected: \(rejection(outcome)?.reason ?? "")", file: file, line: line)
        return nil
    }

    let plain = ServerHandshake(deflate: try! DeflateOptions(enabled: false), secure: false)

    func testAcceptWithOfferedSubprotocol() throws {
        var seen: [String] = []
        let outcome = plain.respond(to: try head(good + ["Sec-WebSocket-Protocol: chat, superchat"])) { request in
            seen = request.subprotocols
            return .accept(subprotocol: "superchat")
        }
        XCTAssertEqual(seen, ["chat", "superchat"])
        guard let a = accepted(outcome) else { return }
        XCTAssertEqual(a.subprotocol, "superchat")
        XCTAssertNil(a.ignoredSubprotocol)
        XCTAssertNil(a.deflate)
        XCTAssertTrue(a.response.hasPrefix("HTTP/1.1 101 Switching Protocols\r\n"))
        XCTAssertTrue(a.response.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"))  // RFC 6455 §1.3
        XCTAssertTrue(a.response.contains("Sec-WebSocket-Protocol: superchat\r\n"))
        XCTAssertFalse(a.response.contains("Sec-WebSocket-Extensions"))
        XCTAssertTrue(a.response.hasSuffix("\r\n\r\n"))
    }

    // §4.2.2: the server picks one of the client's subprotocols or none.
    func testSubprotocolNotOfferedIsDroppedAndReported() throws {
        let outcome = plain.respond(to: try head(good + ["Sec-WebSocket-Protocol: chat"])) { _ in
            .accept(subprotocol: "other")
        }
        guard let a = accepted(outcome) else { return }
        XCTAssertNil(a.subprotocol)
        XCTAssertEqual(a.ignoredSubprotocol, "other")
        XCTAssertFalse(a.response.contains("Sec-WebSocket-Protocol"))
    }

    func testExtraHeadersAreSent() throws {
        let outcome = plain.respond(to: try head(good)) { _ in .accept(subprotocol: nil, extraHeaders: [("X-A", "1")]) }
        XCTAssertTrue(accepted(outcome)?.response.contains("X-A: 1\r\n") ?? false)
    }

    func testApplicationRejectionKeepsAnErrorStatus() throws {
        let r = rejection(plain.respond(to: try head(good)) { _ in .reject(status: 401, reason: "no token") })
        XCTAssertEqual(r?.status, 401)
        XCTAssertEqual(r?.cause, .application)
        XCTAssertEqual(r?.body, "no token\n")
        XCTAssertEqual(r?.label, "application")
        // A status that is not an error would upgrade nothing and confuse the client: 403.
        for status in [101, 200, 302, 600, 0] {
            let r = rejection(plain.respond(to: try head(good)) { _ in .reject(status: status, reason: "x") })
            XCTAssertEqual(r?.status, 403, "\(status)")
        }
    }

    func testInvalidRequestsAreRejectedBeforeTheApplication() throws {
        var asked = false
        func outcome(_ h: HTTPRequestHead) -> ServerHandshake.Rejection? {
            rejection(plain.respond(to: h) { _ in asked = true; return .accept(subprotocol: nil) })
        }
        let version = outcome(try head(good.filter { !$0.hasPrefix("Sec-WebSocket-Version") } + ["Sec-WebSocket-Version: 8"]))
        XCTAssertEqual(version?.status, 426)
        XCTAssertEqual(version?.headers.map { "\($0.0): \($0.1)" }, ["Sec-WebSocket-Version: 13"])  // §4.2.2
        XCTAssertEqual(version?.label, "version")
        let post = outcome(try head(good, method: "POST"))
        XCTAssertEqual(post?.status, 405)
        XCTAssertEqual(post?.headers.map { "\($0.0): \($0.1)" }, ["Allow: GET"])
        let noKey = outcome(try head(good.filter { !$0.hasPrefix("Sec-WebSocket-Key") }))
        XCTAssertEqual(noKey?.status, 400)
        XCTAssertEqual(noKey?.cause, .invalid(.missingKey))
        XCTAssertEqual(noKey?.headers.count, 0)
        XCTAssertEqual(noKey?.label, "key")
        XCTAssertFalse(asked)
    }

    func testCrossOriginIsRejectedBeforeTheApplication() throws {
        var asked = false
        let r = rejection(plain.respond(to: try head(good + ["Origin: http://evil.example"])) { _ in
            asked = true
            return .accept(subprotocol: nil)
        })
        XCTAssertEqual(r?.status, 403)
        XCTAssertEqual(r?.cause, .origin("http://evil.example"))
        XCTAssertEqual(r?.label, "origin")
        XCTAssertFalse(asked)
        XCTAssertNotNil(accepted(plain.respond(to: try head(good + ["Origin: http://example.com"])) { _ in
            .accept(subprotocol: nil)
        }))
        // The same origin over TLS is https.
        let tls = ServerHandshake(deflate: try! DeflateOptions(enabled: false), secure: true)
        XCTAssertNotNil(rejection(tls.respond(to: try head(good + ["Origin: http://example.com"])) { _ in .accept(subprotocol: nil) }))
        XCTAssertNotNil(accepted(tls.respond(to: try head(good + ["Origin: https://example.com"])) { _ in .accept(subprotocol: nil) }))
        let listed = ServerHandshake(origins: OriginPolicy(allowed: ["http://evil.example"]),
                                     deflate: try! DeflateOptions(enabled: false), secure: false)
        XCTAssertNotNil(accepted(listed.respond(to: try head(good + ["Origin: http://evil.example"])) { _ in .accept(subprotocol: nil) }))
    }

    func testDeflateNegotiatedWhenEnabledAndOffered() throws {
        let server = ServerHandshake(deflate: DeflateOptions(), secure: false)
        let offer = good + ["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"]
        guard let a = accepted(server.respond(to: try head(offer)) { _ in .accept(subprotocol: nil) }) else { return }
        XCTAssertTrue(a.response.contains("Sec-WebSocket-Extensions: permessage-deflate\r\n"), a.response)
        XCTAssertEqual(a.deflate?.role, .server)
        XCTAssertEqual(a.deflate?.parameters, DeflateParameters())
        // Not offered, disabled, or a malformed offer: no compression, still accepted (RFC 7692 §5).
        for (handshake, lines) in [(server, good), (plain, offer),
                                   (server, good + ["Sec-WebSocket-Extensions: permessage-deflate; x=\""])] {
            guard let a = accepted(handshake.respond(to: try head(lines)) { _ in .accept(subprotocol: nil) }) else { continue }
            XCTAssertNil(a.deflate)
            XCTAssertFalse(a.response.contains("Sec-WebSocket-Extensions"))
        }
    }

    func testTwoStepsGiveTheSameAnswer() throws {
        let h = try head(good + ["Sec-WebSocket-Protocol: chat"])
        guard case .success(let request) = plain.validate(h) else { return XCTFail() }
        XCTAssertEqual(request.key, key)
        guard case .accept(let a) = plain.answer(request, .accept(subprotocol: "chat")) else { return XCTFail() }
        guard let b = accepted(plain.respond(to: h) { _ in .accept(subprotocol: "chat") }) else { return }
        XCTAssertEqual(a.response, b.response)
    }
}

final class OriginPolicyTests: XCTestCase {
    func testNoOriginIsAlwaysAllowed() {
        for policy in [OriginPolicy.sameOrigin, OriginPolicy(allowed: ["https://a.example"]), OriginPolicy(allowed: [])] {
            XCTAssertTrue(policy.allows(origin: nil, host: "x", secure: false))
            XCTAssertTrue(policy.allows(origin: "", host: nil, secure: true))
        }
    }

    func testSameOrigin() {
        let p = OriginPolicy.sameOrigin
        XCTAssertTrue(p.allows(origin: "http://example.com:8080", host: "example.com:8080", secure: false))
        XCTAssertTrue(p.allows(origin: "HTTP://Example.COM:8080", host: "example.com:8080", secure: false))
        XCTAssertFalse(p.allows(origin: "https://example.com:8080", host: "example.com:8080", secure: false))
        XCTAssertFalse(p.allows(origin: "http://example.com:8080", host: "example.com:8080", secure: true))
        XCTAssertFalse(p.allows(origin: "http://example.com:8081", host: "example.com:8080", secure: false))
        XCTAssertFalse(p.allows(origin: "http://example.com.evil", host: "example.com", secure: false))
        XCTAssertFalse(p.allows(origin: "null", host: "example.com", secure: false))  // sandboxed pages
        XCTAssertFalse(p.allows(origin: "http://example.com", host: nil, secure: false))
        XCTAssertFalse(p.allows(origin: "http://example.com", host: "", secure: false))
    }

    // RFC 6454 §6.2: an origin omits its scheme's default port; Host may carry it.
    func testDefaultPortInHostMatchesOriginWithout() {
        let p = OriginPolicy.sameOrigin
        XCTAssertTrue(p.allows(origin: "https://example.com", host: "example.com:443", secure: true))
        XCTAssertTrue(p.allows(origin: "http://example.com", host: "example.com:80", secure: false))
        XCTAssertFalse(p.allows(origin: "http://example.com", host: "example.com:443", secure: false))
        XCTAssertFalse(p.allows(origin: "https://example.com", host: "example.com:80", secure: true))
        XCTAssertFalse(p.allows(origin: "https://", host: ":443", secure: true))
    }

    func testAllowList() {
        let p = OriginPolicy(allowed: ["https://good.example", "http://localhost:3000"])
        XCTAssertTrue(p.allows(origin: "https://good.example", host: "api.example", secure: true))
        XCTAssertTrue(p.allows(origin: "HTTPS://GOOD.example", host: "api.example", secure: true))
        XCTAssertTrue(p.allows(origin: "http://localhost:3000", host: "api.example", secure: true))
        XCTAssertFalse(p.allows(origin: "https://good.example.evil", host: "api.example", secure: true))
        // An allow-list replaces same-origin: the server's own origin must be listed too.
        XCTAssertFalse(p.allows(origin: "https://api.example", host: "api.example", secure: true))
        XCTAssertFalse(OriginPolicy(allowed: []).allows(origin: "https://a", host: "a", secure: false))
    }

    func testWildcard() {
        XCTAssertTrue(OriginPolicy.any.allows(origin: "https://anything", host: "x", secure: true))
        XCTAssertTrue(OriginPolicy(allowed: ["https://a", "*"]).allows(origin: "null", host: nil, secure: false))
    }
}
