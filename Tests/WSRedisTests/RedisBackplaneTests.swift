import Foundation
import Logging
import Transport
import WSClient
import WSRedis
import WSServer
import XCTest

/// Two servers in this process, each with its own RedisBackplane on one real redis-server.
final class RedisBackplaneTests: XCTestCase {
    /// Waits until `server`'s backplane has subscribed (the metrics say so) or fails.
    func waitForSubscription(_ backplane: RedisBackplane, resubscribes: Int = 1, seconds: Double = 5) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if metric(backplane, "wss_backplane_resubscribes_total") >= resubscribes { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        XCTFail("backplane did not subscribe within \(seconds) s")
    }

    func testMessagesCrossInstancesOnceInOrderByteForByte() async throws {
        let redis = try RedisProcess()
        let (a, bpA) = try makeServer(redisPort: redis.port)
        let (b, bpB) = try makeServer(redisPort: redis.port)
        defer { a.stop(); a.wait(); b.stop(); b.wait(); bpA.shutdown(); bpB.shutdown() }
        let ca = try await connect(a), cb = try await connect(b)
        try await Task.sleep(for: .milliseconds(200))  // both topics subscribed (SUBSCRIBE acks are not awaited)

        let count = 500
        for i in 0..<count { ca.send(text: "a\(i) 你好 🚀") }
        // B sees A's messages once each and in order, then its own binary once.
        for i in 0..<count {
            let m = try await next(cb)
            XCTAssertEqual(m?.text, "a\(i) 你好 🚀")
            if m?.text != "a\(i) 你好 🚀" { return }
        }
        let binary: [UInt8] = [0, 0x0D, 0x0A, 0xFF, 0x80, 0x57, 1]
        cb.send(binary: binary)
        let bin = try await next(cb)
        XCTAssertEqual(bin?.data, binary)
        // A sees its own messages once (local delivery, not again from Redis), then B's binary.
        for i in 0..<count {
            let m = try await next(ca)
            XCTAssertEqual(m?.text, "a\(i) 你好 🚀")
        }
        let binA = try await next(ca)
        XCTAssertEqual(binA?.data, binary)
        let nothing = try? await next(ca, timeout: 0.3)
        XCTAssertNil(nothing ?? nil, "a message arrived twice")
        XCTAssertEqual(metric(bpB, "wss_backplane_received_total"), count)
        XCTAssertEqual(metric(bpA, "wss_backplane_received_total"), 1)
        XCTAssertEqual(metric(bpA, "wss_backplane_lost_total"), 0)
    }

    func testRedisDownAtStartThenUpThenRestarted() async throws {
        let port = try RedisProcess.freePort()
        let (a, bpA) = try makeServer(redisPort: port)
        let (b, bpB) = try makeServer(redisPort: port)
        defer { a.stop(); a.wait(); b.stop(); b.wait(); bpA.shutdown(); bpB.shutdown() }
        // No Redis: local pub/sub works.
        let ca = try await connect(a), ca2 = try await connect(a), cb = try await connect(b)
        ca.send(text: "local only")
        let gotca2 = try await next(ca2)
        XCTAssertEqual(gotca2?.text, "local only")
        let gotca = try await next(ca)
        XCTAssertEqual(gotca?.text, "local only")

        // Redis appears: both reconnect and subscribe their active topic within 2 s.
        let redis = try RedisProcess(port: port)
        try await waitForSubscription(bpA, seconds: 2.5)
        try await waitForSubscription(bpB, seconds: 2.5)
        try await Task.sleep(for: .milliseconds(100))
        cb.send(text: "across")
        let gotca3 = try await next(ca)
        XCTAssertEqual(gotca3?.text, "across")

        // Redis restarted: resubscribed within 2 s, messages flow again.
        redis.kill()
        try redis.start()
        try await waitForSubscription(bpA, resubscribes: 2, seconds: 2.5)
        try await waitForSubscription(bpB, resubscribes: 2, seconds: 2.5)
        try await Task.sleep(for: .milliseconds(100))
        cb.send(text: "after restart")
        let gotca4 = try await next(ca)
        XCTAssertEqual(gotca4?.text, "after restart")
    }
}

/// Presence: clients on a topic across instances.
final class RedisPresenceTests: XCTestCase {
    func presence(_ server: Server, _ topic: String = "/chat") async -> Int {
        await withCheckedContinuation { c in server.topics.presence(topic) { c.resume(returning: $0) } }
    }

    func eventually(_ server: Server, equals n: Int, seconds: Double = 4) async throws -> Int {
        var got = -1
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            got = await presence(server)
            if got == n { return got }
            try await Task.sleep(for: .milliseconds(100))
        }
        return got
    }

    func testPresenceCountsSubscribersOnEveryInstance() async throws {
        let redis = try RedisProcess()
        let a = try makeServer(redisPort: redis.port)
        let b = try makeServer(redisPort: redis.port)
        defer { a.0.stop(); a.0.wait(); b.0.stop(); b.0.wait(); a.1.shutdown(); b.1.shutdown() }
        var clients: [WebSocketClient] = []
        for _ in 0..<2 { clients.append(try await connect(a.0)) }
        for _ in 0..<3 { clients.append(try await connect(b.0)) }
        let countA = try await eventually(a.0, equals: 5)
        XCTAssertEqual(countA, 5)
        let countB = try await eventually(b.0, equals: 5)
        XCTAssertEqual(countB, 5)
        clients[4].close()
        let after = try await eventually(a.0, equals: 4)
        XCTAssertEqual(after, 4, "a client that left stops counting")
        let other = await presence(a.0, "/elsewhere")
        XCTAssertEqual(other, 0)
    }
}
