import Foundation
import Logging
import Transport
import WSClient
import WSRedis
import WSServer
import XCTest

/// Two servers in this process, each with its own RedisBackplane on one real redis-server.
final class RedisBackplaneTests: XCTestCase {
    func makeServer(redisPort: Int, threads: Int = 2) throws -> (Server, RedisBackplane) {
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.threads = threads
        let backplane = try RedisBackplane(options: .init(endpoint: RedisEndpoint(host: "127.0.0.1", port: redisPort)))
        let server = try Server(configuration: config, backplane: backplane)
        server.route("/chat", ChatApp())
        try server.start()
        return (server, backplane)
    }

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
