import Transport
import WSServer
import XCTest

/// The subprotocol of a fallback session: offered on the opening request (the
/// `Sec-WebSocket-Protocol` header, or the `protocol` query parameter an EventSource can
/// send), chosen by the same `shouldUpgrade` as for an upgrade, seen as
/// `connection.subprotocol`, and named in the opening answer's `Sec-WebSocket-Protocol`.
extension LibraryAPITests {
    final class ProtocolHandler: WebSocketHandler, @unchecked Sendable {
        let seen = Locked<[String]>([])
        func shouldUpgrade(_ request: UpgradeRequest) -> UpgradeDecision {
            seen.withLock { $0.append("offered \(request.subprotocols)") }
            if request.query?.contains("rogue") == true { return .accept(subprotocol: "never.offered") }
            return .accept(subprotocol: request.subprotocols.first { $0 == "chat.v2" })
        }
        func onOpen(_ connection: WebSocketConnection) {
            seen.withLock { $0.append("open \(connection.transport) \(connection.subprotocol ?? "none") query=\(connection.query ?? "-")") }
        }
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {}
    }

    func header(_ head: String, _ name: String) -> String? {
        head.split(separator: "\r\n").first { $0.lowercased().hasPrefix(name.lowercased() + ":") }
            .map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
    }

    func testFallbackSessionsNegotiateASubprotocolLikeAnUpgrade() throws {
        let handler = ProtocolHandler()
        let server = try makeServer(routes: [("/p", handler)])
        defer { server.stop(); server.wait() }

        let poll = try http(server.port, "GET /p?transport=longpoll HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: chat.v1, chat.v2\r\n\r\n")
        XCTAssertTrue(poll.head.hasPrefix("HTTP/1.1 200 "), poll.head)
        XCTAssertEqual(header(poll.head, "Sec-WebSocket-Protocol"), "chat.v2")

        let sse = try http(server.port, "GET /p?room=a&transport=sse&protocol=chat.v1%2Cchat.v2 HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(sse.head.hasPrefix("HTTP/1.1 200 "), sse.head)
        XCTAssertEqual(header(sse.head, "Sec-WebSocket-Protocol"), "chat.v2", "EventSource offers through the query")

        let none = try http(server.port, "GET /p?transport=longpoll&protocol=chat.v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        XCTAssertTrue(none.head.hasPrefix("HTTP/1.1 200 "), none.head)
        XCTAssertNil(header(none.head, "Sec-WebSocket-Protocol"), "chat.v2 not offered: none chosen")

        let rogue = try http(server.port, "GET /p?transport=longpoll&rogue HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: a\r\n\r\n")
        XCTAssertNil(header(rogue.head, "Sec-WebSocket-Protocol"), "a choice the client did not offer is not sent")

        let bad = try http(server.port, "GET /p?transport=longpoll HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Protocol: chat v1\r\n\r\n")
        XCTAssertTrue(bad.head.hasPrefix("HTTP/1.1 400 "), "not a token list, as for an upgrade: \(bad.head)")

        for _ in 0..<50 where handler.seen.withLock({ $0.count }) < 8 { usleep(20_000) }
        XCTAssertEqual(handler.seen.withLock { $0 }, [
            "offered [\"chat.v1\", \"chat.v2\"]", "open longPolling chat.v2 query=-",
            "offered [\"chat.v1\", \"chat.v2\"]", "open sse chat.v2 query=room=a",
            "offered [\"chat.v1\"]", "open longPolling none query=-",
            "offered [\"a\"]", "open longPolling none query=rogue",
        ], "the bad list never reaches the handler; the protocol parameter is not in the handler's query")
    }
}
