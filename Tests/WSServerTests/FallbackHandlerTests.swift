#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Transport
import WSServer
import XCTest

/// A `WebSocketHandler` behind a long-polling session, seen from the handler: the transport,
/// userData from `shouldUpgrade`, messages in, sends out, pub/sub, bufferedAmount, and onClose
/// 1001 when the session times out. Raw HTTP on the client side (no library code there).
extension LibraryAPITests {
    final class RecordingHandler: WebSocketHandler, @unchecked Sendable {
        final class User {}
        let events = Locked<[String]>([])
        func shouldUpgrade(_ request: UpgradeRequest) -> UpgradeDecision {
            request.query?.contains("deny") == true ? .reject(status: 401, reason: "no") : .accept(userData: User())
        }
        func onOpen(_ connection: WebSocketConnection) {
            connection.subscribe("news")
            events.withLock { $0.append("open \(connection.transport) user=\(connection.userData is User) addr=\(!connection.remoteAddress.isEmpty) query=\(connection.query ?? "-")") }
        }
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {
            let status = connection.send(text: "got " + message.text)
            events.withLock { $0.append("message \(message.text) \(status) buffered=\(connection.bufferedAmount > 0)") }
        }
        /// Signalled by every onClose (the test waits on it instead of sleeping).
        let closed = DispatchSemaphore(value: 0)
        func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {
            events.withLock { $0.append("close \(code) \(reason)") }
            closed.signal()
        }
    }

    func http(_ port: Int, _ request: String) throws -> (head: String, body: [UInt8]) {
        let c = try RawClient(port: port)
        try c.sendAll(Array(request.utf8))
        var data: [UInt8] = []
        var byte: UInt8 = 0
        while !(data.count >= 4 && data.suffix(4) == [13, 10, 13, 10]) {
            guard recv(c.fd, &byte, 1, 0) == 1 else { throw RawClientError.io("no answer to \(request.prefix(60))") }
            data.append(byte)
        }
        let head = String(decoding: data, as: UTF8.self)
        let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
        try c.readExactly(length)
        return (head, Array(c.readBuffer[0..<length]))
    }

    func testHandlerBehindLongPollingSeesTheSameAPIAndA1001Timeout() throws {
        let handler = RecordingHandler()
        // The client's requests follow each other within a few milliseconds, but a loaded
        // machine (CI's sanitizer stages) can stall it between two of them; the session must
        // outlive such a stall, or it ends before the POST or the polls: 3 s, not 1.
        let sessionTimeout = 3.0
        let server = try makeServer(configure: {
            $0.fallback.sessionTimeout = sessionTimeout
            $0.fallback.pollTimeout = 0.5
        }, routes: [("/chat", handler)])
        defer { server.stop(); server.wait() }
        let denied = try http(server.port, "GET /chat?transport=longpoll&deny HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(denied.head.hasPrefix("HTTP/1.1 401 "), "shouldUpgrade's reject answers the GET: \(denied.head)")

        let opened = try http(server.port, "GET /chat?room=lobby&transport=longpoll HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(opened.head.hasPrefix("HTTP/1.1 200 "), opened.head)
        XCTAssertEqual(Array(opened.body.prefix(4)), Array("s24:".utf8))
        let sid = String(decoding: opened.body[4...], as: UTF8.self)
        let url = "/chat?transport=longpoll&sid=\(sid)"

        let post = try http(server.port, "POST \(url) HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nt2:hi")
        XCTAssertTrue(post.head.hasPrefix("HTTP/1.1 204 "), post.head)
        server.topics.publish("news", text: "headline")
        var delivered = ""
        for _ in 0..<10 where !delivered.contains("headline") {  // the publish crosses the loop's queue
            delivered += String(decoding: try http(server.port, "GET \(url) HTTP/1.1\r\nHost: x\r\n\r\n").body, as: UTF8.self)
        }
        XCTAssertEqual(delivered, "t6:got hit8:headline", "reply, then the topic's message")

        // No request attached for longer than the session timeout (ticks every 250 ms): the
        // handler's onClose, waited for (bounded: the timeout and 10 s more).
        XCTAssertEqual(handler.closed.wait(timeout: .now() + sessionTimeout + 10), .success, "no onClose after the session timeout")
        XCTAssertEqual(handler.events.withLock { $0 }, [
            "open longPolling user=true addr=true query=room=lobby",
            "message hi written buffered=true",
            "close 1001 session timeout",
        ])
        let gone = try http(server.port, "GET \(url) HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(gone.head.hasPrefix("HTTP/1.1 404 "), gone.head)
    }
}

extension LibraryAPITests {
    final class ClosingHandler: WebSocketHandler, @unchecked Sendable {
        let closes = Locked<[String]>([])
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {
            if message.text == "ping" { connection.ping() }
            if message.text == "close" { connection.close(code: CloseCode(4000), reason: "bye") }
        }
        func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {
            closes.withLock { $0.append("\(connection.transport) \(code) \(reason)") }
        }
    }

    /// Reads from `c` until `text` has arrived (or fails after the client's 5 s timeout).
    func readUntil(_ c: RawClient, _ text: String, into seen: inout String) throws {
        var buf = [UInt8](repeating: 0, count: 4096)
        while !seen.contains(text) {
            let n = recv(c.fd, &buf, buf.count, 0)
            guard n > 0 else { throw RawClientError.io("stream ended or timed out before \(text.debugDescription): \(seen.debugDescription)") }
            seen += String(decoding: buf[0..<n], as: UTF8.self)
        }
    }

    func testSSEStreamHeartbeatsPingsAndCarriesTheServersClose() throws {
        let handler = ClosingHandler()
        let server = try makeServer(configure: { $0.fallback.heartbeatInterval = 0.3 }, routes: [("/s", handler)])
        defer { server.stop(); server.wait() }
        let stream = try RawClient(port: server.port)
        try stream.sendAll(Array("GET /s?transport=sse HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        var seen = ""
        try readUntil(stream, "event: session\ndata: ", into: &seen)
        try readUntil(stream, "A\n\n", into: &seen)
        XCTAssertTrue(seen.hasPrefix("HTTP/1.1 200 OK\r\n"), seen)
        XCTAssertTrue(seen.contains("Transfer-Encoding: chunked\r\n") && seen.contains("X-Accel-Buffering: no\r\n"), seen)
        let sid = String(seen.split(separator: "data: ")[1].prefix(24))
        try readUntil(stream, ": hb\n\n", into: &seen)  // the heartbeat, with nothing sent
        func post(_ body: String) throws {
            let r = try http(server.port, "POST /s?transport=sse&sid=\(sid) HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            XCTAssertTrue(r.head.hasPrefix("HTTP/1.1 204 "), r.head)
        }
        seen = ""
        try post("t4:ping")
        try readUntil(stream, ": hb\n\n", into: &seen)  // ping on SSE is a comment
        try post("t5:close")
        try readUntil(stream, "event: close\ndata: 4000 bye\n\n", into: &seen)
        try readUntil(stream, "0\r\n\r\n", into: &seen)  // the stream's last chunk: it ended
        XCTAssertEqual(handler.closes.withLock { $0 }, ["sse 4000 bye"], "onClose once, with the server's code")
        let gone = try http(server.port, "POST /s?transport=sse&sid=\(sid) HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        XCTAssertTrue(gone.head.hasPrefix("HTTP/1.1 404 "), gone.head)
    }
}
