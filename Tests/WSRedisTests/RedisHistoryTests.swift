import Foundation
import Transport
import WSClient
import WSRedis
import WSServer
import XCTest

/// History in Redis Streams and recovery through the Backplane API, on a real redis-server.
final class RedisHistoryTests: XCTestCase {
    /// A server on a Redis backplane with history, returned once the backplane is connected.
    func makeServer(_ port: Int, size: Int = 100) async throws -> (Server, RedisBackplane) {
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.threads = 2
        var options = RedisBackplane.Options(endpoint: RedisEndpoint(host: "127.0.0.1", port: port))
        options.history = HistoryOptions(size: size, ttl: 60)
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

    func recover(_ b: RedisBackplane, _ topic: String = "/chat", since: StreamPosition?) async -> Recovery {
        await withCheckedContinuation { c in b.recover(topic, since: since) { c.resume(returning: $0) } }
    }

    func texts(_ r: Recovery) -> [String] { r.messages.map { String(decoding: $0.payload, as: UTF8.self) } }

    func testPublishesLandInTheStreamWithOffsetsAndAreRecoveredInOrder() async throws {
        let redis = try RedisProcess()
        let (a, bpA) = try await makeServer(redis.port)
        let (b, bpB) = try await makeServer(redis.port)
        defer { a.stop(); a.wait(); b.stop(); b.wait(); bpA.shutdown(); bpB.shutdown() }
        let ca = try await connect(a), cb = try await connect(b)
        try await waitUntilSubscribed(bpA)
        try await waitUntilSubscribed(bpB)
        for i in 1...5 { ca.send(text: "m\(i)") }
        // Every subscriber, the publisher's own included, gets each message once, in order.
        for c in [ca, cb] {
            for i in 1...5 {
                let m = try await next(c)
                XCTAssertEqual(m?.text, "m\(i)")
            }
        }
        let now = await recover(bpB, since: nil)
        XCTAssertEqual(now.position?.offset, 5)
        XCTAssertTrue(now.recovered)
        let epoch = try XCTUnwrap(now.position?.epoch)
        let r = await recover(bpB, since: StreamPosition(offset: 2, epoch: epoch))
        XCTAssertEqual(texts(r), ["m3", "m4", "m5"])
        XCTAssertEqual(r.messages.map(\.offset), [3, 4, 5])
        XCTAssertTrue(r.recovered)
        let upToDate = await recover(bpA, since: StreamPosition(offset: 5, epoch: epoch))
        XCTAssertEqual(upToDate, Recovery(messages: [], position: StreamPosition(offset: 5, epoch: epoch), recovered: true))
        let otherEpoch = await recover(bpA, since: StreamPosition(offset: 2, epoch: "elsewhere"))
        XCTAssertFalse(otherEpoch.recovered)
        XCTAssertEqual(texts(otherEpoch), ["m1", "m2", "m3", "m4", "m5"])
        XCTAssertEqual(metric(bpA, "wss_backplane_received_total"), 5, "own messages come back from Redis")
    }

    func testAGapOlderThanTheHistoryIsNotRecovered() async throws {
        let redis = try RedisProcess()
        let (a, bpA) = try await makeServer(redis.port, size: 3)
        defer { a.stop(); a.wait(); bpA.shutdown() }
        // MAXLEN ~ trims whole stream nodes (100 entries by default), so publish well past that.
        for i in 1...400 { a.topics.publish("/t", text: "m\(i)") }
        var now = await recover(bpA, "/t", since: nil)
        for _ in 0..<100 where now.position?.offset != 400 {
            try await Task.sleep(for: .milliseconds(20))
            now = await recover(bpA, "/t", since: nil)
        }
        XCTAssertEqual(now.position?.offset, 400)
        let r = await recover(bpA, "/t", since: StreamPosition(offset: 1, epoch: now.position!.epoch))
        XCTAssertFalse(r.recovered)
        XCTAssertEqual(r.messages.last?.offset, 400)
        XCTAssertLessThan(r.messages.count, 399)
        XCTAssertEqual(r.messages.map(\.offset), Array(r.messages.first!.offset...400), "what is left is contiguous and ordered")
    }

    func testHistorySurvivesARedisRestartWithPersistenceAndPublishesDuringTheOutageAreKept() async throws {
        let dir = NSTemporaryDirectory() + "wss-redis-aof-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let persist = ["--dir", dir, "--appendonly", "yes", "--appendfsync", "always"]
        let redis = try RedisProcess(extra: persist)
        let (a, bpA) = try await makeServer(redis.port)
        defer { a.stop(); a.wait(); bpA.shutdown() }
        let ca = try await connect(a)
        try await waitUntilSubscribed(bpA)
        for i in 1...3 { ca.send(text: "m\(i)") }
        for i in 1...3 { let m = try await next(ca); XCTAssertEqual(m?.text, "m\(i)") }
        let before = await recover(bpA, since: nil)

        redis.kill()
        try await waitUntilDisconnected(bpA)
        ca.send(text: "during outage")  // Redis away: delivered here at once, forwarded later
        let during = try await next(ca)
        XCTAssertEqual(during?.text, "during outage")
        try redis.start(extra: persist)
        var after = await recover(bpA, since: before.position)
        for _ in 0..<150 where after.messages.isEmpty {
            try await Task.sleep(for: .milliseconds(20))
            after = await recover(bpA, since: before.position)
        }
        XCTAssertEqual(after.position?.epoch, before.position?.epoch, "history survived the restart")
        XCTAssertEqual(texts(after), ["during outage"])
        XCTAssertTrue(after.recovered)
        let dup = try? await next(ca, timeout: 0.5)
        XCTAssertNil(dup ?? nil, "delivered once only, not again when it came back from Redis")
    }
}
