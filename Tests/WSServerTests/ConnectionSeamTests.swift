import Transport
import WSClient
@testable import WSServer
import XCTest

/// The connection seam for other transports: a session that is not a WebSocket stands behind
/// a `WebSocketConnection`, and an unchanged handler (the chat app) talks to it and to a real
/// WebSocket client in the same room, topics included.
extension LibraryAPITests {
    /// A fallback session as the SSE/long-polling transport would be: it keeps what it is
    /// asked to send as payloads (not frame bytes).
    final class RecordingSession: FallbackTransport, @unchecked Sendable {
        let sent = Locked<[String]>([])
        var closedWith: CloseCode?
        var kind: ConnectionTransport { .longPolling }
        func send(_ kind: Message.Kind, _ payload: UnsafeRawBufferPointer) -> SendStatus {
            let text = String(decoding: payload, as: UTF8.self)
            sent.withLock { $0.append("\(kind == .text ? "text" : "binary") \(text)") }
            return .written
        }
        func ping(_ payload: [UInt8]) {}
        func close(code: CloseCode, reason: String) { closedWith = code }
        var bufferedAmount: Int { 7 }
        var remoteAddress: String { "192.0.2.1:4242" }
        var isOpen: Bool { closedWith == nil }
    }

    func testAFallbackSessionStandsBehindTheSameHandlerAndTopics() async throws {
        let chat = ChatApp()
        let server = try makeServer(routes: [("/chat", chat)])
        defer { server.stop(); server.wait() }
        let ws = try await WebSocketClient.connect(to: url(server, "/chat"))

        let session = RecordingSession()
        let loop = server.loops[0]
        let core = server.core
        let box = Locked<UnsafeTransfer<WebSocketConnection>?>(nil)
        loop.execute {
            let c = WebSocketConnection(id: 99, loop: loop, fallback: session, route: core.routes["/chat"]!,
                                        subprotocol: "chat.v1", userData: nil, query: "room=lobby", core: core)
            c.fallbackOpened()  // ChatApp subscribes it to "/chat"
            box.withLock { $0 = UnsafeTransfer(c) }
        }
        for _ in 0..<100 where box.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
        let connection = try XCTUnwrap(box.withLock { $0 }).value
        let ref = UnsafeTransfer(connection)
        let facts = Locked<[String]>([])
        loop.execute {
            facts.withLock {
                $0 = ["\(ref.value.transport)", ref.value.path, ref.value.subprotocol ?? "-",
                      ref.value.remoteAddress, "\(ref.value.bufferedAmount)", "\(ref.value.isOpen)",
                      ref.value.query ?? "-"]
            }
        }
        for _ in 0..<100 where facts.withLock({ $0 }).isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(facts.withLock { $0 }, ["longPolling", "/chat", "chat.v1", "192.0.2.1:4242", "7", "true", "room=lobby"])

        // WebSocket → room → the fallback session gets the payload, not frame bytes.
        ws.send(text: "from ws 你好")
        let got0 = try await next(ws)?.text
        XCTAssertEqual(got0, "from ws 你好")
        for _ in 0..<100 where session.sent.withLock({ $0 }).isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(session.sent.withLock { $0 }, ["text from ws 你好"])

        // Fallback client → handler → room → the WebSocket client.
        loop.execute {
            var text = "from long-poll"
            text.withUTF8 { ref.value.fallbackReceived(Message(kind: .text, bytes: UnsafeRawBufferPointer($0))) }
        }
        let got1 = try await next(ws)?.text
        XCTAssertEqual(got1, "from long-poll")

        // A direct send goes through the session too; close is the session's to carry out.
        let status = Locked<SendStatus?>(nil)
        loop.execute {
            status.withLock { $0 = ref.value.send(text: "direct") }
            ref.value.close(code: .goingAway)
            ref.value.fallbackEnded(code: .goingAway, reason: "")
        }
        for _ in 0..<100 where status.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(status.withLock { $0 }, .written)
        XCTAssertEqual(session.sent.withLock { $0 }.last, "text direct")
        XCTAssertEqual(session.closedWith, .goingAway)
        // Unsubscribed on end: the room now reaches only the WebSocket client.
        ws.send(text: "after")
        let got2 = try await next(ws)?.text
        XCTAssertEqual(got2, "after")
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(session.sent.withLock { $0 }.count, 3)
    }
}

extension LibraryAPITests {
    final class QueryRecorder: WebSocketHandler, @unchecked Sendable {
        let seen = Locked<[String]>([])
        func onOpen(_ connection: WebSocketConnection) {
            seen.withLock { $0.append("\(connection.transport) \(connection.path) \(connection.query ?? "none")") }
        }
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {}
    }

    func testTheUpgradeQueryIsOnTheConnection() async throws {
        let recorder = QueryRecorder()
        let server = try makeServer(routes: [("/chat", recorder)])
        defer { server.stop(); server.wait() }
        let a = try await WebSocketClient.connect(to: url(server, "/chat?room=lobby"))
        let b = try await WebSocketClient.connect(to: url(server, "/chat"))
        for _ in 0..<100 where recorder.seen.withLock({ $0.count }) < 2 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(recorder.seen.withLock { $0 }, ["webSocket /chat room=lobby", "webSocket /chat none"])
        a.close()
        b.close()
    }
}
