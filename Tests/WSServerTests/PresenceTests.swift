import WSClient
import WSServer
import XCTest

extension LibraryAPITests {
    /// In process, presence is the number of subscribers on every loop.
    func testPresenceCountsSubscribersAcrossLoops() async throws {
        let server = try makeServer(threads: 2, routes: [("/chat", ChatApp())])
        defer { server.stop(); server.wait() }
        var clients: [WebSocketClient] = []
        for _ in 0..<5 { clients.append(try await WebSocketClient.connect(to: url(server, "/chat"))) }
        try await Task.sleep(for: .milliseconds(100))
        let n = await withCheckedContinuation { c in server.topics.presence("/chat") { c.resume(returning: $0) } }
        XCTAssertEqual(n, 5)
        clients[0].close()
        try await Task.sleep(for: .milliseconds(200))
        let m = await withCheckedContinuation { c in server.topics.presence("/chat") { c.resume(returning: $0) } }
        XCTAssertEqual(m, 4)
    }
}
