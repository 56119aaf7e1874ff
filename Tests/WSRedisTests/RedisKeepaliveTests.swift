import Foundation
import Logging
import Transport
import WSClient
@testable import WSRedis
import WSServer
import XCTest
import TestSupport

/// The keepalive: a Redis connection quiet for `keepalive` is sent a PING, due within
/// `replyTimeout`. A subscription connection only receives, so without it a link gone silent
/// (partition, paused host, a failover behind a NAT: no FIN, no RST) was never noticed and
/// this instance's subscribers missed the other instances' messages for good.
final class RedisKeepaliveTests: XCTestCase {
    func makeServer(_ endpoint: RedisEndpoint, keepalive: Double, replyTimeout: Double, lines: LogLines) throws -> (Server, RedisBackplane) {
        try makeServer(endpoint, threads: 1, logger: lines.logger) {
            $0.keepalive = keepalive
            $0.replyTimeout = replyTimeout
        }
    }

    /// How many PINGs Redis has answered (INFO commandstats).
    func pingCalls(_ redis: RedisProcess) -> Int {
        let stats = redis.cli("INFO", "commandstats")
        return stats.split(whereSeparator: \.isNewline).first { $0.hasPrefix("cmdstat_ping:") }
            .flatMap { $0.split(separator: ",").first?.split(separator: "=").last }.flatMap { Int($0) } ?? 0
    }

    func waitForLine(_ lines: LogLines, within seconds: Double, _ match: (String) -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if lines.all.contains(where: { match($0.1) }) { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// A reaches Redis through a relay that goes silent; B reaches it directly. A finds the
    /// silent link by its keepalive, reconnects (through the relay, which relays new
    /// connections) and its subscriber gets B's messages again.
    func testASilentLinkIsFoundAndTheSubscriptionComesBack() async throws {
        let redis = try RedisProcess()
        let proxy = try BlackHoleProxy(to: redis.port)
        defer { proxy.stop() }
        let linesA = LogLines()
        let (a, bpA) = try makeServer(RedisEndpoint(host: "127.0.0.1", port: proxy.port), keepalive: 0.5, replyTimeout: 1, lines: linesA)
        let (b, bpB) = try makeServer(RedisEndpoint(host: "127.0.0.1", port: redis.port), keepalive: 0.5, replyTimeout: 1, lines: LogLines())
        defer { a.stop(); a.wait(); b.stop(); b.wait(); bpA.shutdown(); bpB.shutdown() }
        let ca = try await connect(a), cb = try await connect(b)
        defer { ca.close(); cb.close() }
        try await waitUntilSubscribed(bpA)
        try await waitUntilSubscribed(bpB)
        cb.send(text: "before")
        let before = try await next(ca)
        XCTAssertEqual(before?.text, "before")
        XCTAssertEqual(proxy.accepted, 2)

        proxy.blackHole()
        let began = Date()
        let found = try await waitForLine(linesA, within: 6) { $0.contains("redis subscribe:") && $0.contains("no answer to the keepalive PING within 1.0 s") }
        XCTAssertTrue(found, "the silent subscription was found: \(linesA.all)")
        XCTAssertLessThan(Date().timeIntervalSince(began), 3.5, "within keepalive + reply timeout and a few ticks")
        XCTAssertTrue(linesA.all.contains { $0.1.contains("subscription connection lost") })
        try await waitUntilSubscribed(bpA)
        XCTAssertEqual(metric(bpA, "wss_backplane_resubscribes_total"), 1, "resubscribed once, after the reconnect")
        XCTAssertGreaterThanOrEqual(proxy.accepted, 3, "reconnected through the relay")

        cb.send(text: "after")
        let after = try await next(ca)
        XCTAssertEqual(after?.text, "after", "B's messages reach A's subscriber again")
        // The publish connection, quiet too, was found the same way (its PING is a command).
        let publishFound = try await waitForLine(linesA, within: 3) { $0.contains("redis publish:") && $0.contains("no reply to a command within 1.0 s") }
        XCTAssertTrue(publishFound, "\(linesA.all)")
        ca.send(text: "from a")
        var got: [String] = []
        while got.count < 3, let m = try await next(cb) { got.append(m.text) }
        XCTAssertEqual(got, ["before", "after", "from a"], "A publishes to B again")
    }

    /// A live but quiet Redis is PINGed every `keepalive` and never cut; nothing is resubscribed.
    func testAQuietLiveRedisIsPingedAndNotCut() async throws {
        let redis = try RedisProcess()
        let lines = LogLines()
        let (s, bp) = try makeServer(RedisEndpoint(host: "127.0.0.1", port: redis.port), keepalive: 0.3, replyTimeout: 0.5, lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        let client = try await connect(s)
        defer { client.close() }
        try await waitUntilSubscribed(bp)
        try await Task.sleep(for: .milliseconds(2500))
        XCTAssertEqual(lines.all.filter { $0.1.contains("cannot reach") || $0.1.contains("lost") }.map(\.1), [])
        XCTAssertEqual(metric(bp, "wss_backplane_resubscribes_total"), 0, "never reconnected (the first SUBSCRIBE is not a resubscribe)")
        let pings = metric(bp, "wss_backplane_keepalive_pings_total")
        XCTAssertGreaterThanOrEqual(pings, 8, "both connections, about every 0.3–0.5 s (the 250 ms tick)")
        XCTAssertGreaterThanOrEqual(pingCalls(redis), 2 + 8, "Redis saw them (and each connection's login PING)")
    }

    /// Off (0): a quiet connection is sent nothing.
    func testZeroTurnsItOff() async throws {
        let redis = try RedisProcess()
        let (s, bp) = try makeServer(RedisEndpoint(host: "127.0.0.1", port: redis.port), keepalive: 0, replyTimeout: 0.5, lines: LogLines())
        defer { s.stop(); s.wait(); bp.shutdown() }
        try await waitUntilConnected(bp)
        try await Task.sleep(for: .milliseconds(1000))
        XCTAssertEqual(metric(bp, "wss_backplane_keepalive_pings_total"), 0)
        XCTAssertEqual(pingCalls(redis), 2, "only each connection's login PING")
    }
}
