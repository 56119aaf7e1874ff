import COpenSSL
import XCTest
@testable import WebSocket

/// The byte-level upgrade path: our SHA-1, the in-place key check, the request head kept as
/// bytes, and the 101 written into the output buffer. Each is checked against the slower
/// String-based or library form it replaces.
final class UpgradeBytesTests: XCTestCase {
    func hex(_ b: [UInt8]) -> String { b.map { String($0, radix: 16).leftPadded(2) }.joined() }

    func testSHA1KnownVectors() {
        // FIPS 180-4 examples: one block, the two-block padding case, many blocks.
        XCTAssertEqual(hex(SHA1.digest([UInt8]())), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(hex(SHA1.digest(Array("abc".utf8))), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(hex(SHA1.digest(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
                       "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        XCTAssertEqual(hex(SHA1.digest([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000))),
                       "34aa973cd4c4daa4f61eeb2bdbad27316534016f")
    }

    func testSHA1AgreesWithOpenSSLAtEveryLengthAroundTheBlockEdges() {
        for n in 0..<300 {
            let input = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
            var expected = [UInt8](repeating: 0, count: 20)
            input.withUnsafeBufferPointer { i in
                expected.withUnsafeMutableBufferPointer { o in _ = COpenSSL.SHA1(i.baseAddress, i.count, o.baseAddress) }
            }
            XCTAssertEqual(SHA1.digest(input), expected, "length \(n)")
        }
    }

    /// `isNonce` accepts exactly what strict decoding accepts as 16 bytes.
    func testKeyCheckInPlaceMatchesStrictDecoding() {
        var candidates = ["dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAA==", "AAAAAAAAAAAAAAAAAAAAAB==",
                          "AAAAAAAAAAAAAAAAAAAAAQ==", "AAAAAAAAAAAAAAAAAAAAAAA=", "AAAAAAAAAAAAAAAAAAAAAAAA",
                          "AAAAAAAAAAAAAAAAAAAAA===", "AAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAAA==",
                          "AAAAAAAAAAAA AAAAAAAAA==", "AAAAAAAAAAAA=AAAAAAAAA==", "", "////////////////////+w==",
                          "////////////////////+/==", "-_AAAAAAAAAAAAAAAAAAAA=="]
        // Valid keys (base64 of 16 random bytes), each also with one character replaced.
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func random() -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int(seed >> 33)
        }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= -_".utf8)
        for _ in 0..<1000 {
            let valid = Base64.encode((0..<16).map { _ in UInt8(truncatingIfNeeded: random()) })
            candidates.append(valid)
            var mutated = Array(valid.utf8)
            mutated[random() % 24] = alphabet[random() % alphabet.count]
            candidates.append(String(decoding: mutated, as: UTF8.self))
        }
        var accepted = 0
        for c in candidates {
            let strict = Base64.decode(c.utf8)?.count == 16
            let inPlace = Array(c.utf8).withUnsafeBytes { Base64.isNonce($0) }
            XCTAssertEqual(inPlace, strict, c)
            if strict { accepted += 1 }
        }
        XCTAssertGreaterThan(accepted, 1000)  // valid keys, and mutations that stay valid
        XCTAssertGreaterThan(candidates.count - accepted, 100)  // and mutations that do not
    }

    func testBase64IntoMemoryMatchesTheStringForm() {
        for n in 0..<25 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 53 &+ 3) }
            let length = (n + 2) / 3 * 4
            var out = [UInt8](repeating: 0, count: length)
            bytes.withUnsafeBytes { b in out.withUnsafeMutableBytes { Base64.encode(b, to: $0.baseAddress!) } }
            XCTAssertEqual(String(decoding: out, as: UTF8.self), Base64.encode(bytes), "length \(n)")
        }
    }

    func parse(_ text: String) throws -> HTTPRequestHead {
        var p = HTTPHeadParser()
        guard case .complete(let h, _) = try p.feed(Array(text.utf8)) else { throw XCTSkip("incomplete") }
        return h
    }

    /// A String-based reference for the byte lookups of `HTTPRequestHead`.
    struct Fields: HTTPHeaderFields { var headers: [(name: String, value: String)] }

    func testParsedHeadEqualsTheBuiltOneAndLooksUpLikeStrings() throws {
        let h = try parse("GET /a/b?x=1&y HTTP/1.1\r\nHost:  example.com \r\nConnection: keep-alive, Upgrade\r\n"
                          + "connection: x\r\nX-Empty:\r\nUpgrade: \"web,socket\", websocket\r\nSec-WebSocket-Key: k\r\n\r\n")
        XCTAssertEqual(h.method, "GET")
        XCTAssertEqual(h.target, "/a/b?x=1&y")
        XCTAssertEqual(h.path, "/a/b")
        XCTAssertEqual(h.query, "x=1&y")
        XCTAssertTrue(h.isMethod("GET"))
        XCTAssertFalse(h.isMethod("GE"))
        XCTAssertFalse(h.isMethod("get"))
        let pairs = h.headers.map { "\($0.name)=\($0.value)" }
        XCTAssertEqual(pairs, ["Host=example.com", "Connection=keep-alive, Upgrade", "connection=x", "X-Empty=",
                               "Upgrade=\"web,socket\", websocket", "Sec-WebSocket-Key=k"])
        let built = HTTPRequestHead(method: "GET", target: "/a/b?x=1&y", headers: h.headers)
        XCTAssertEqual(built, h)
        XCTAssertNotEqual(HTTPRequestHead(method: "GET", target: "/a/b?x=1&z", headers: h.headers), h)
        let reference = Fields(headers: h.headers)
        for name in ["host", "CONNECTION", "x-empty", "Upgrade", "Missing", "Sec-WebSocket-Key", "sec-websocket-ke"] {
            XCTAssertEqual(h.value(name), reference.value(name), name)
            XCTAssertEqual(h.values(name), reference.values(name), name)
            XCTAssertEqual(h.count(name), reference.count(name), name)
            XCTAssertEqual(h.tokens(name), reference.tokens(name), name)
            for token: StaticString in ["upgrade", "keep-alive", "websocket", "x", "web"] {
                XCTAssertEqual(h.containsToken(name, token), reference.containsToken(name, token), "\(name) \(token)")
            }
        }
        // Built heads may hold untrimmed values: single-element values go the short way only
        // when the lexer would give the same.
        let built2 = HTTPRequestHead(method: "GET", target: "/", headers: [
            ("Upgrade", " websocket "), ("Connection", "a b"), ("Connection", "\"up,grade\""), ("X", ""), ("X", "\t"),
            ("Y", "upgrade"), ("Y", "UPGRADE , x")])
        let reference2 = Fields(headers: built2.headers)
        for name in ["Upgrade", "Connection", "X", "Y"] {
            XCTAssertEqual(built2.tokens(name), reference2.tokens(name), name)
            for token: StaticString in ["upgrade", "websocket", "a b", "x", "up"] {
                XCTAssertEqual(built2.containsToken(name, token), reference2.containsToken(name, token), "\(name) \(token)")
            }
        }
        XCTAssertEqual(HTTPRequestHead(method: "POST", target: "/", headers: []).path, "/")
        XCTAssertNil(HTTPRequestHead(method: "POST", target: "/", headers: []).query)
    }

    /// Field values: obs-text and HTAB are allowed, every other control byte and DEL refused
    /// (RFC 9110 §5.5), wherever they are in the value.
    func testFieldValueBytes() throws {
        for (value, ok) in [([0x61, 0xFF, 0x62], true), ([0x80], true), ([0x61, 0x09, 0x62], true), ([0x7E], true),
                            ([0x61, 0x7F], false), ([0x1F], false), ([0x61, 0x00, 0x62], false), ([0x20, 0x0B], false)]
                as [([UInt8], Bool)] {
            var p = HTTPHeadParser()
            let bytes = Array("GET / HTTP/1.1\r\nX: ".utf8) + value + Array(" \r\n\r\n".utf8)
            if ok {
                guard case .complete(let h, _) = try p.feed(bytes) else { return XCTFail() }
                // (Strings repair invalid UTF-8, as before: compare the ASCII ones.)
                if value.allSatisfy({ $0 < 0x80 }) { XCTAssertEqual(Array(h.value("x")!.utf8), value) }
            } else {
                XCTAssertThrowsError(try p.feed(bytes), "\(value)")
            }
        }
    }

    func testVersionBytes() throws {
        for bad in ["http/1.1", "HTTP/1.1x", "HTTQ/1.1", "HTTP/1,1", "HTTP/a.1", "HTTP/1.", "XTTP/1.1", "HTTP-1.1"] {
            var p = HTTPHeadParser()
            XCTAssertThrowsError(try p.feed(Array("GET / \(bad)\r\n\r\n".utf8)), bad)
        }
        let h = try parse("GET / HTTP/2.0\r\n\r\n")
        XCTAssertEqual(h.versionMajor, 2)
        XCTAssertEqual(h.versionMinor, 0)
        XCTAssertTrue(h.isMethod("GET"))
        XCTAssertFalse(h.isMethod("GETS"))
        XCTAssertFalse(h.isMethod(""))
    }

    func testSettersKeepTheOtherParts() throws {
        var h = try parse("GET /x?q HTTP/1.0\r\nA: 1\r\nB: 2\r\n\r\n")
        h.headers.removeAll { $0.name == "A" }
        XCTAssertEqual(h.headers.map(\.name), ["B"])
        XCTAssertEqual(h.target, "/x?q")
        XCTAssertEqual(h.versionMinor, 0)
        h.method = "HEAD"
        h.target = "/y"
        XCTAssertEqual(h.method, "HEAD")
        XCTAssertEqual(h.path, "/y")
        XCTAssertEqual(h.value("b"), "2")
    }

    func testWrittenResponseIsTheStringResponse() throws {
        let key = "dGhlIHNhbXBsZSBub25jZQ=="
        let cases: [(String?, String?, [(String, String)])] = [
            (nil, nil, []), ("chat", nil, []), (nil, "permessage-deflate; server_no_context_takeover", []),
            ("v2.chat+json", "permessage-deflate", [("X-A", "1"), ("Set-Cookie", "a=b")])]
        for (sub, ext, extra) in cases {
            let out = ByteBuffer()
            out.append(Array("before".utf8))
            Array(key.utf8).withUnsafeBytes {
                Handshake.writeResponse(acceptingKey: $0, subprotocol: sub, extensions: ext, extraHeaders: extra, to: out)
            }
            var expected = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            if let sub { expected += "Sec-WebSocket-Protocol: \(sub)\r\n" }
            if let ext { expected += "Sec-WebSocket-Extensions: \(ext)\r\n" }
            for (n, v) in extra { expected += "\(n): \(v)\r\n" }
            expected += "\r\n"
            XCTAssertEqual(String(decoding: out.readableBytes, as: UTF8.self), "before" + expected)
            XCTAssertEqual(Handshake.response(acceptingKey: key, subprotocol: sub, extensions: ext, extraHeaders: extra), expected)
        }
    }

    func testAcceptedWritesWhatItsResponseSays() throws {
        let h = try parse("GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                          + "Sec-WebSocket-Protocol: chat\r\n\r\n")
        let server = ServerHandshake(origins: .sameOrigin, deflate: try DeflateOptions(enabled: false), secure: false)
        guard case .accept(let a) = server.respond(to: h, decide: { _ in .accept(subprotocol: "chat", extraHeaders: [("X", "y")]) })
        else { return XCTFail() }
        let out = ByteBuffer()
        a.write(to: out)
        XCTAssertEqual(String(decoding: out.readableBytes, as: UTF8.self), a.response)
        XCTAssertTrue(a.response.contains("Sec-WebSocket-Protocol: chat\r\nX: y\r\n\r\n"))
    }
}

extension String {
    fileprivate func leftPadded(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}
