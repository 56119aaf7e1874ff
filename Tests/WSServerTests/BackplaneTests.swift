import Transport
import WSClient
import WSServer
import XCTest

/// The `Backplane` seam: every publish goes through it, it decides what reaches this
/// instance's subscribers, and it hears when a topic gains its first or loses its last
/// local subscriber (what a broker backplane subscribes and unsubscribes by).
extension LibraryAPITests {
    /// Records what passes through; delivers locally with a marker so the test can tell the
    /// delivery came from the backplane, not from a shortcut around it.
    final class RecordingBackplane: Backplane, @unchecked Sendable {
        let events = Locked<[String]>([])
        private var topics: Topics?
        func attach(to topics: Topics) { self.topics = topics }
        func publish(_ topic: String, kind: Message.Kind, payload: UnsafeRawBufferPointer) {
            let text = String(decoding: payload, as: UTF8.self)
            events.withLock { $0.append("publish \(topic) \(text)") }
            var marked = "via-backplane:" + text
            marked.withUTF8 { topics?.deliverLocally(topic, kind: kind, payload: UnsafeRawBufferPointer($0)) }
        }
        func topicActivated(_ topic: String) { events.withLock { $0.append("activated \(topic)") } }
        func topicDeactivated(_ topic: String) { events.withLock { $0.append("deactivated \(topic)") } }
    }

    func testPublishesGoThroughTheBackplaneAndTopicActivityIsReportedOncePerInstance() async throws {
        let backplane = RecordingBackplane()
        let server = try makeServer(threads: 2, backplane: backplane, routes: [("/chat", ChatApp())])
        defer { server.stop(); server.wait() }
        var clients: [WebSocketClient] = []
        for _ in 0..<4 { clients.append(try await WebSocketClient.connect(to: url(server, "/chat"))) }
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual(backplane.events.withLock { $0 }, ["activated /chat"], "one activation for 4 subscribers on 2 loops")
        XCTAssertEqual(server.topics.activeTopics, ["/chat"])

        clients[0].send(text: "hi")
        for c in clients {
            let m = try await next(c)
            XCTAssertEqual(m?.text, "via-backplane:hi")
        }
        XCTAssertTrue(backplane.events.withLock { $0 }.contains("publish /chat hi"))

        for c in clients { c.close() }
        for _ in 0..<50 where !server.topics.activeTopics.isEmpty { try await Task.sleep(for: .milliseconds(20)) }
        XCTAssertEqual(server.topics.activeTopics, [String]())
        XCTAssertEqual(backplane.events.withLock { $0 }.filter { $0.hasPrefix("deactivated") }, ["deactivated /chat"])
    }
}
