import Foundation
import Transport
import WSClient
import WSServer
import XCTest

/// `subscribe(_:since:)` on a real server: missed messages in order, then live ones, no
/// duplicate and no gap at the seam, the recovery flag, and the chat app's envelope.
extension LibraryAPITests {
    struct Line: Equatable {
        var type: String
        var offset: UInt64?
        var epoch: String?
        var data: String?
        var recovered: Bool?
        var count: Int?
    }

    func line(_ c: WebSocketClient) async throws -> Line {
        guard let m = try await next(c), m.kind == .text, case let text = m.text,
              let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw XCTSkip("no JSON line")
        }
        return Line(type: o["type"] as? String ?? "", offset: (o["offset"] as? NSNumber)?.uint64Value, epoch: o["epoch"] as? String,
                    data: o["data"] as? String, recovered: o["recovered"] as? Bool, count: o["count"] as? Int)
    }

    func lines(_ c: WebSocketClient, _ n: Int) async throws -> [Line] {
        var out: [Line] = []
        for _ in 0..<n { out.append(try await line(c)) }
        return out
    }

    func publish(_ server: Server, _ topic: String, _ range: ClosedRange<Int>) {
        for i in range { server.topics.publish(topic, text: "m\(i)") }
    }

    func testAChatClientResumesFromItsLastOffsetInProcess() async throws {
        let server = try makeServer(threads: 2, backplane: InProcessBackplane(history: HistoryOptions(size: 5, ttl: 60)),
                                    routes: [("/chat", ChatApp())])
        defer { server.stop(); server.wait() }
        let a = try await WebSocketClient.connect(to: url(server, "/chat?room=r1"))
        let hello = try await line(a)
        XCTAssertEqual(hello.type, "recovery")
        XCTAssertEqual(hello.recovered, true)
        XCTAssertEqual(hello.offset, 0)
        let epoch = try XCTUnwrap(hello.epoch)
        publish(server, "/chat#r1", 1...3)
        let live = try await lines(a, 3)
        XCTAssertEqual(live.map(\.data), ["m1", "m2", "m3"])
        XCTAssertEqual(live.map(\.offset), [1, 2, 3])
        XCTAssertEqual(Set(live.map(\.epoch)), [epoch])
        a.close()

        publish(server, "/chat#r1", 4...6)  // missed while away
        let b = try await WebSocketClient.connect(to: url(server, "/chat?room=r1&since=3&epoch=\(epoch)"))
        let missed = try await lines(b, 4)
        XCTAssertEqual(missed.map(\.data), ["m4", "m5", "m6", nil])
        XCTAssertEqual(missed.map(\.offset), [4, 5, 6, 6])
        XCTAssertEqual(missed[3].type, "recovery")
        XCTAssertEqual(missed[3].recovered, true)
        XCTAssertEqual(missed[3].count, 3)
        publish(server, "/chat#r1", 7...7)
        let after = try await line(b)
        XCTAssertEqual([after.data, after.offset.map(String.init)], ["m7", "7"])
        b.close()

        publish(server, "/chat#r1", 8...20)  // more than the 5 kept
        let c = try await WebSocketClient.connect(to: url(server, "/chat?room=r1&since=7&epoch=\(epoch)"))
        let partial = try await lines(c, 6)
        XCTAssertEqual(partial.map(\.data), ["m16", "m17", "m18", "m19", "m20", nil])
        XCTAssertEqual(partial[5].recovered, false, "the gap is older than the history")
        c.close()
    }

    func testTheClassicChatAndBadRoomQueriesStayAsTheyWere() async throws {
        let server = try makeServer(backplane: InProcessBackplane(history: HistoryOptions(size: 5, ttl: 60)), routes: [("/chat", ChatApp())])
        defer { server.stop(); server.wait() }
        let bare = try await WebSocketClient.connect(to: url(server, "/chat"))
        try await Task.sleep(for: .milliseconds(50))
        bare.send(text: "raw")
        let echoed = try await next(bare)
        XCTAssertEqual(echoed?.text, "raw", "no room: byte-for-byte relay")
        bare.close()
        for bad in ["/chat?room=r&since=3", "/chat?room=r&since=x&epoch=e", "/chat?room=%zz", "/chat?room=r&since=1&epoch=a%20b"] {
            do {
                let c = try await WebSocketClient.connect(to: url(server, bad))
                c.close()
                XCTFail("\(bad) was accepted")
            } catch {
                XCTAssertTrue("\(error)".contains("400"), "\(bad): \(error)")
            }
        }
    }

    /// A history whose answers wait for the test: live messages arrive at the subscriber
    /// while its recovery is outstanding, overlapping the answer (read late) or not (early).
    final class HeldHistoryBackplane: Backplane, @unchecked Sendable {
        let inner = InProcessBackplane(history: HistoryOptions(size: 100, ttl: 60))
        let held = Locked<[@Sendable () -> Void]>([])
        let readLate: Bool
        init(readLate: Bool) { self.readLate = readLate }
        func attach(to topics: Topics) { inner.attach(to: topics) }
        func publish(_ topic: String, kind: Message.Kind, payload: UnsafeRawBufferPointer) { inner.publish(topic, kind: kind, payload: payload) }
        func recover(_ topic: String, since: StreamPosition?, completion: @escaping @Sendable (Recovery) -> Void) {
            let inner = self.inner
            if readLate {
                held.withLock { $0.append { inner.recover(topic, since: since, completion: completion) } }
            } else {
                let answer = inner.history!.recover(topic, since: since)
                held.withLock { $0.append { completion(answer) } }
            }
        }
        func release() { for run in held.withLock({ h -> [@Sendable () -> Void] in defer { h = [] }; return h }) { run() } }
    }

    func testNoDuplicateAndNoGapAtTheSeamWhateverTheRace() async throws {
        for readLate in [false, true] {
            let backplane = HeldHistoryBackplane(readLate: readLate)
            let server = try makeServer(threads: 2, backplane: backplane, routes: [("/chat", ChatApp())])
            defer { server.stop(); server.wait() }
            let epoch = backplane.inner.history!.append("/chat#s", kind: .text, payload: UnsafeRawBufferPointer(start: nil, count: 0)).epoch
            publish(server, "/chat#s", 2...5)
            let c = try await WebSocketClient.connect(to: url(server, "/chat?room=s&since=2&epoch=\(epoch)"))
            for _ in 0..<100 where backplane.held.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(10)) }
            publish(server, "/chat#s", 6...9)  // live while the answer is outstanding
            try await Task.sleep(for: .milliseconds(100))
            backplane.release()
            publish(server, "/chat#s", 10...11)
            let got = try await lines(c, 10)  // 3…11 and the recovery line
            let messages = got.filter { $0.type == "message" }
            XCTAssertEqual(messages.map(\.offset), Array(3...11), "readLate \(readLate)")
            XCTAssertEqual(messages.map(\.data), (3...11).map { "m\($0)" })
            let recovery = try XCTUnwrap(got.first { $0.type == "recovery" })
            XCTAssertEqual(recovery.recovered, true)
            XCTAssertEqual(recovery.count, readLate ? 7 : 3)
            c.close()
        }
    }
}
