import Foundation
import WSClient
@testable import WSServer
import XCTest

/// The chat app's JSON envelope is built once per publication on each loop, not once per
/// recipient, and every recipient still gets its publication's own envelope.
extension LibraryAPITests {
    func testChatEnvelopeIsBuiltOncePerPublicationPerLoop() async throws {
        for history in [nil, HistoryOptions(size: 10, ttl: 60)] {
            let threads = 2
            let server = try makeServer(threads: threads, backplane: InProcessBackplane(history: history),
                                        routes: [("/chat", ChatApp())])
            defer { server.stop(); server.wait() }
            var clients: [WebSocketClient] = []
            for _ in 0..<8 {
                let c = try await WebSocketClient.connect(to: url(server, "/chat?room=big"))
                let hello = try await line(c)
                XCTAssertEqual(hello.type, "recovery")
                clients.append(c)
            }
            let before = ChatEnvelope.builds.load(ordering: .relaxed)
            publish(server, "/chat#big", 1...3)
            server.topics.publish("/chat#big", text: "m3")  // the same text again: its own offset
            for c in clients {
                let got = try await lines(c, 4)
                XCTAssertEqual(got.map(\.data), ["m1", "m2", "m3", "m3"], "history=\(history != nil)")
                XCTAssertEqual(got.map(\.offset), history == nil ? [nil, nil, nil, nil] : [1, 2, 3, 4])
            }
            let builds = ChatEnvelope.builds.load(ordering: .relaxed) - before
            XCTAssertLessThanOrEqual(builds, 4 * threads, "\(builds) envelopes for 4 publications to 8 clients on \(threads) loops")
            for c in clients { c.close() }
        }
    }
}
