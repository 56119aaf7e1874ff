#if canImport(Glibc)
import Glibc
#endif
import WebSocket
import XCTest
@testable import WSServer

/// Pub/sub over a real server: a published message is compressed once and sent compressed to
/// every subscriber that negotiated permessage-deflate with server_no_context_takeover, plain to
/// everyone else (RFC 7692 §7.1.1.1; sending uncompressed is always allowed, §6).
final class PubSubDeflateTests: XCTestCase {
    let news = String(repeating: "markets up, bonds down, weather fine. ", count: 20)

    func makeServer() throws -> Server { try startTestServer(threads: 2, routes: [("/chat", ChatApp())]) }

    /// A raw client on /chat offering `extensions` (nil: none); returns it and the 101's head.
    func subscriber(_ server: Server, _ extensions: String?) throws -> (RawClient, String) {
        let c = try RawClient(port: server.port)
        let head = try c.upgrade(path: "/chat", extraHeaders: extensions.map { "Sec-WebSocket-Extensions: \($0)\r\n" } ?? "")
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 101"), head)
        return (c, head)
    }

    /// One unmasked server frame: its first byte and payload.
    func readFrame(_ c: RawClient) throws -> (UInt8, [UInt8]) {
        try c.readExactly(2)
        let b0 = c.readBuffer[0]
        var n = Int(c.readBuffer[1] & 0x7F)
        XCTAssertEqual(c.readBuffer[1] & 0x80, 0, "server frames are not masked")
        if n == 126 {
            try c.readExactly(2)
            n = Int(c.readBuffer[0]) << 8 | Int(c.readBuffer[1])
        } else if n == 127 {
            try c.readExactly(8)
            n = c.readBuffer[0..<8].reduce(0) { $0 << 8 | Int($1) }
        }
        try c.readExactly(n)
        return (b0, Array(c.readBuffer[0..<n]))
    }

    func testPublishIsCompressedOnceForNoContextSubscribersAndPlainForOthers() throws {
        let server = try makeServer()
        defer { server.stop(); server.wait() }
        let noContext = try (0..<3).map { _ in try subscriber(server, "permessage-deflate; server_no_context_takeover") }
        for (_, head) in noContext { XCTAssertTrue(head.contains("server_no_context_takeover"), head) }
        let (takeover, takeoverHead) = try subscriber(server, "permessage-deflate")
        XCTAssertTrue(takeoverHead.contains("permessage-deflate"), takeoverHead)
        let (plain, _) = try subscriber(server, nil)
        usleep(100_000)  // ChatApp subscribes in onOpen, on the connections' loops

        server.topics.publish("/chat", text: news)
        for (c, _) in noContext {
            let (b0, body) = try readFrame(c)
            XCTAssertEqual(b0, 0xC1, "FIN + RSV1 + text")
            XCTAssertLessThan(body.count, news.utf8.count / 4)
            XCTAssertEqual(String(decoding: rawInflate(body), as: UTF8.self), news)
        }
        for c in [takeover, plain] {
            let (b0, body) = try readFrame(c)
            XCTAssertEqual(b0, 0x81, "context takeover or no deflate: the plain frame")
            XCTAssertEqual(String(decoding: body, as: UTF8.self), news)
        }
        XCTAssertEqual(server.topics.compressor?.compressions.load(ordering: .relaxed), 1,
                       "one compression for three subscribers on two loops")

        // Short messages stay plain for everyone (minSizeToCompress), and nothing is compressed.
        server.topics.publish("/chat", text: "hi")
        for c in noContext.map(\.0) + [takeover, plain] {
            let (b0, body) = try readFrame(c)
            XCTAssertEqual(b0, 0x81)
            XCTAssertEqual(body, Array("hi".utf8))
        }
        XCTAssertEqual(server.topics.compressor?.compressions.load(ordering: .relaxed), 1)
    }

    func testNoCompressionWhenNoSubscriberCanTakeIt() throws {
        let server = try makeServer()
        defer { server.stop(); server.wait() }
        let (plain, _) = try subscriber(server, nil)
        usleep(100_000)
        server.topics.publish("/chat", text: news)
        let (b0, body) = try readFrame(plain)
        XCTAssertEqual(b0, 0x81)
        XCTAssertEqual(body.count, news.utf8.count)
        XCTAssertEqual(server.topics.compressor?.compressions.load(ordering: .relaxed), 0,
                       "no deflate subscriber: no CPU spent compressing")
    }
}
