import Foundation
import Logging
import Transport
@testable import WSRedis
import WSServer
import XCTest
import TestSupport

/// A Redis host name is looked up off the backplane loop (`Options.lookup`, `getaddrinfo` by
/// default), and each of its addresses is dialled in turn.
final class RedisLookupTests: XCTestCase {
    /// A server whose backplane finds "redis.test" through `lookup`; how long `start()` took.
    func startServer(lookup: @escaping HostResolver.Lookup, readyTimeout: Double,
                     lines: LogLines) throws -> (Server, RedisBackplane, Double) {
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.threads = 1
        config.backplaneReadyTimeout = readyTimeout
        var options = RedisBackplane.Options(endpoint: RedisEndpoint(host: "redis.test", port: 6379))
        options.lookup = lookup
        let backplane = try RedisBackplane(options: options, logger: lines.logger)
        let server = try Server(configuration: config, logger: lines.logger, backplane: backplane)
        server.route("/chat", ChatApp())
        let began = monotonicMillis()
        try server.start()
        return (server, backplane, Double(monotonicMillis() - began) / 1000)
    }

    static func address(_ port: Int) -> SocketAddress { HostResolver.numeric("127.0.0.1", port: port)! }

    /// The states of both connections, read on the backplane loop.
    func states(_ bp: RedisBackplane) -> [RedisConnection.State] {
        let got = Locked<[RedisConnection.State]>([])
        let done = expectation(description: "read on the loop")
        bp.loop.execute { got.withLock { $0 = [bp.commands.state, bp.subscriber.state] }; done.fulfill() }
        wait(for: [done], timeout: 5)
        return got.withLock { $0 }
    }

    func waitUntilReady(_ bp: RedisBackplane, within seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if states(bp) == [.ready, .ready] { return true }
            usleep(20_000)
        }
        return false
    }

    /// While a lookup takes 1.5 s the backplane loop still runs tasks at once (before, the
    /// lookup ran on it and it served nothing: no deadlines, no other connection), and the
    /// answer is then dialled.
    func testASlowLookupDoesNotHoldTheBackplaneLoop() throws {
        let redis = try RedisProcess(), port = redis.port
        let inLookup = Locked(0)
        let (s, bp, _) = try startServer(lookup: { host, _ in
            inLookup.withLock { $0 += 1 }
            usleep(1_500_000)
            inLookup.withLock { $0 -= 1 }
            return host == "redis.test" ? .success([Self.address(port)]) : .failure(.lookup(host: host, "unknown"))
        }, readyTimeout: 0, lines: LogLines())
        defer { s.stop(); s.wait(); bp.shutdown() }
        let deadline = Date().addingTimeInterval(1)
        while inLookup.withLock({ $0 }) < 2 && Date() < deadline { usleep(5_000) }
        XCTAssertEqual(inLookup.withLock { $0 }, 2, "both connections are looking up")
        let began = monotonicMillis()
        XCTAssertEqual(states(bp), [.resolving, .resolving])
        XCTAssertLessThan(monotonicMillis() - began, 1000, "the loop answered while the lookups ran")
        XCTAssertTrue(waitUntilReady(bp, within: 5), "connected to the looked-up address")
    }

    /// The first address refuses (nothing listens), the second is Redis: connected, and no
    /// outage line (before, the first address was retried for good).
    func testEachAddressIsTriedInTurn() throws {
        let redis = try RedisProcess(), port = redis.port
        let closed = try RedisProcess.freePort()
        let lines = LogLines()
        let (s, bp, _) = try startServer(lookup: { _, _ in .success([Self.address(closed), Self.address(port)]) },
                                         readyTimeout: 5, lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        XCTAssertTrue(waitUntilReady(bp, within: 3), "the second address was dialled")
        XCTAssertFalse(lines.all.contains { $0.1.contains("cannot reach") }, "\(lines.all)")
    }

    /// Every address refuses: one outage line per connection that says so, and the start is
    /// not held.
    func testWhenEveryAddressRefusesTheLineSaysSo() throws {
        let a = try RedisProcess.freePort(), b = try RedisProcess.freePort()
        let lines = LogLines()
        let (s, bp, took) = try startServer(lookup: { _, _ in .success([Self.address(a), Self.address(b)]) },
                                            readyTimeout: 5, lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        XCTAssertLessThan(took, 3, "refused everywhere is an outage at once (not the 5 s wait)")
        func outageLines() -> [(Logger.Level, String)] { lines.all.filter { $0.0 == .warning && $0.1.contains("cannot reach") } }
        for _ in 0..<100 where outageLines().count < 2 { usleep(20_000) }  // the first one settles the start
        usleep(600_000)  // retries meanwhile (backoff 100, 200 ms) add no line
        let outage = outageLines()
        XCTAssertEqual(outage.count, 2, "one line per connection: \(lines.all)")
        XCTAssertTrue(outage.allSatisfy { $0.1.contains("(tried its 2 addresses)") }, "\(outage)")
    }

    /// A name that does not resolve is an outage with the resolver's reason.
    func testAFailedLookupIsAnOutageWithItsReason() throws {
        let lines = LogLines()
        let (s, bp, took) = try startServer(lookup: { host, _ in .failure(.lookup(host: host, "Name or service not known")) },
                                            readyTimeout: 5, lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        XCTAssertLessThan(took, 3, "an outage at once, not the 5 s wait")
        XCTAssertTrue(lines.all.contains { $0.0 == .warning && $0.1.contains("cannot resolve 'redis.test': Name or service not known") },
                      "\(lines.all)")
    }

    /// A lookup past 2 s counts as a failed attempt (one line; the start stops waiting) and
    /// its answer is still dialled when it comes.
    func testALookupPastTwoSecondsIsAnOutageUntilItAnswers() throws {
        let redis = try RedisProcess(), port = redis.port
        let lines = LogLines()
        let (s, bp, took) = try startServer(lookup: { _, _ in
            usleep(4_000_000)
            return .success([Self.address(port)])
        }, readyTimeout: 10, lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        XCTAssertGreaterThanOrEqual(took, 1.9)
        XCTAssertLessThan(took, 3.6, "the start waited for the 2 s bound, not for the 4 s lookup")
        XCTAssertTrue(lines.all.contains { $0.0 == .warning && $0.1.contains("looking up redis.test takes over 2 s") }, "\(lines.all)")
        XCTAssertTrue(waitUntilReady(bp, within: 5), "the late answer was dialled")
    }
}
