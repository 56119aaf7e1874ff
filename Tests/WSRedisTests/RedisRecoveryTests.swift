import Foundation
import Transport
import WSClient
import WSRedis
import WSServer
import XCTest

/// `subscribe(_:since:)` over Redis Streams (chat rooms, real redis-server): live messages
/// carry offset and epoch on every instance, a reconnect resumes without gap or repeat, and
/// a stream that Redis lost is reported, never silent.
final class RedisRecoveryTests: XCTestCase {
    /// A server on a Redis backplane with history, returned once the backplane is connected.
    func makeServer(_ port: Int, history: HistoryOptions = HistoryOptions(size: 100, ttl: 60)) async throws -> (Server, RedisBackplane) {
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.threads = 2
        var options = RedisBackplane.Options(endpoint: RedisEndpoint(host: "127.0.0.1", port: port))
        options.history = history
        let backplane = try RedisBackplane(options: options)
        let server = try Server(configuration: config, backplane: backplane)
        server.route("/chat", ChatApp())
        try server.start()
        do { try await waitUntilConnected(backplane) } catch {
            server.stop(); server.wait(); backplane.shutdown()
            throw error
        }
        return (server, backplane)
    }

    /// (type, offset, epoch, data, recovered) of the next JSON line.
    func line(_ c: WebSocketClient, timeout: Double = 5) async throws -> (String, UInt64?, String?, String?, Bool?) {
        struct NoLine: Error {}
        guard let m = try await next(c, timeout: timeout),
              let o = try JSONSerialization.jsonObject(with: Data(m.data)) as? [String: Any] else { throw NoLine() }
        return (o["type"] as? String ?? "", (o["offset"] as? NSNumber)?.uint64Value, o["epoch"] as? String,
                o["data"] as? String, o["recovered"] as? Bool)
    }

    func testPositionsOnEveryInstanceAndResumeOnAnother() async throws {
        let redis = try RedisProcess()
        let (a, bpA) = try await makeServer(redis.port)
        let (b, bpB) = try await makeServer(redis.port)
        defer { a.stop(); a.wait(); b.stop(); b.wait(); bpA.shutdown(); bpB.shutdown() }
        let ca = try await connect(a, "/chat?room=x")
        let cb = try await connect(b, "/chat?room=x")
        let (t, offset, epoch, _, recovered) = try await line(cb)
        XCTAssertEqual(t, "recovery")
        XCTAssertEqual(recovered, true)
        XCTAssertEqual(offset, 0)
        _ = try await line(ca)
        for i in 1...5 { a.topics.publish("/chat#x", text: "m\(i)") }
        for c in [ca, cb] {
            for i in 1...5 {
                let l = try await line(c)
                XCTAssertEqual(l.3, "m\(i)")
                XCTAssertEqual(l.1, UInt64(i))
                XCTAssertEqual(l.2, epoch, "the epoch travels with every live message")
            }
        }
        cb.close()
        for i in 6...8 { a.topics.publish("/chat#x", text: "m\(i)") }
        for i in 6...8 { let l = try await line(ca); XCTAssertEqual(l.3, "m\(i)") }
        // Resume on the other instance (first subscriber of the room there again: its
        // SUBSCRIBE must be confirmed before the history is read).
        // (Unwrapped with XCTUnwrap, not `!`: a missing field fails this test instead of
        // crashing the test binary and orphaning its redis-server.)
        let resumeEpoch = try XCTUnwrap(epoch, "cb's first recovery line carries the stream's epoch")
        let back = try await connect(a, "/chat?room=x&since=5&epoch=\(resumeEpoch)")
        var got: [String] = []
        for _ in 0..<4 {
            let l = try await line(back)
            func text<T>(_ v: T?) -> String { v.map { "\($0)" } ?? "nil" }
            got.append(l.0 == "recovery" ? "recovery \(text(l.4)) \(text(l.1))" : "\(text(l.1)) \(text(l.3))")
        }
        XCTAssertEqual(got, ["6 m6", "7 m7", "8 m8", "recovery true 8"])
        b.topics.publish("/chat#x", text: "m9")
        let nine = try await line(back)
        XCTAssertEqual([nine.1.map(String.init), nine.3], ["9", "m9"])
    }

    func testAStreamLostWithRedisIsReportedAsIncomplete() async throws {
        let redis = try RedisProcess()  // no persistence: a restart loses the stream
        let (a, bpA) = try await makeServer(redis.port)
        defer { a.stop(); a.wait(); bpA.shutdown() }
        let c = try await connect(a, "/chat?room=y")
        let first = try await line(c)
        for i in 1...3 { a.topics.publish("/chat#y", text: "m\(i)") }
        for _ in 1...3 { _ = try await line(c) }
        let resubscribes = metric(bpA, "wss_backplane_resubscribes_total")
        redis.kill()
        try redis.start()
        for _ in 0..<150 where metric(bpA, "wss_backplane_resubscribes_total") == resubscribes {
            try await Task.sleep(for: .milliseconds(20))
        }
        while await withCheckedContinuation({ k in bpA.recover("/other", since: nil) { k.resume(returning: $0.position) } }) == nil {
            try await Task.sleep(for: .milliseconds(20))  // the publish connection too
        }
        // The next message is from a new epoch: the subscription re-synchronises and says
        // that what the old stream held after offset 3 is gone.
        for i in 1...2 { a.topics.publish("/chat#y", text: "n\(i)") }
        var lines: [(String, UInt64?, String?, String?, Bool?)] = []
        for _ in 0..<3 { lines.append(try await line(c)) }
        let recovery = try XCTUnwrap(lines.first { $0.0 == "recovery" }, "\(lines)")
        XCTAssertEqual(recovery.4, false)
        XCTAssertNotEqual(recovery.2, first.2, "a new epoch")
        let offsets = lines.filter { $0.0 == "message" }.compactMap(\.1)
        XCTAssertEqual(offsets, Array(1...UInt64(offsets.count)), "the new stream from its start, in order")
    }

    func testAnIdleTopicLosesItsMessagesButNotItsPlace() async throws {
        let redis = try RedisProcess()
        let (a, bpA) = try await makeServer(redis.port, history: HistoryOptions(size: 100, ttl: 1, metaTTL: 60))
        defer { a.stop(); a.wait(); bpA.shutdown() }
        func recover(_ since: StreamPosition?) async -> Recovery {
            await withCheckedContinuation { k in bpA.recover("/idle", since: since) { k.resume(returning: $0) } }
        }
        while await recover(nil).position == nil { try await Task.sleep(for: .milliseconds(20)) }
        for i in 1...2 { a.topics.publish("/idle", text: "m\(i)") }
        var now = await recover(nil)
        while now.position?.offset != 2 { try await Task.sleep(for: .milliseconds(20)); now = await recover(nil) }
        let epoch = try XCTUnwrap(now.position?.epoch)
        try await Task.sleep(for: .milliseconds(2_200))  // the stream (1 s) expired, the meta (60 s) did not
        XCTAssertEqual(redis.cli("EXISTS", "wss:h:/idle"), "0")
        let upToDate = await recover(StreamPosition(offset: 2, epoch: epoch))
        XCTAssertEqual(upToDate, Recovery(messages: [], position: StreamPosition(offset: 2, epoch: epoch), recovered: true))
        let behind = await recover(StreamPosition(offset: 1, epoch: epoch))
        XCTAssertFalse(behind.recovered, "offset 2 expired with the stream")
    }
}
