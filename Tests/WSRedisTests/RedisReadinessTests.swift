import Foundation
import Logging
import Transport
import WSRedis
import WSServer
import XCTest
import TestSupport

/// `Server.start` waits for the backplane before it binds: on a live Redis the first
/// recovery after `start()` is complete; with Redis down (refused) the start is not held up;
/// with a Redis that never answers, the wait ends at `backplaneReadyTimeout` with a warning.
final class RedisReadinessTests: XCTestCase {
    /// A server on `endpoint` with history; returns how long `start()` took (seconds).
    func startServer(_ endpoint: RedisEndpoint, readyTimeout: Double = ServerConfiguration.defaults.backplaneReadyTimeout,
                     lines: LogLines = LogLines()) throws -> (Server, RedisBackplane, Double) {
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.threads = 1
        config.backplaneReadyTimeout = readyTimeout
        var options = RedisBackplane.Options(endpoint: endpoint)
        options.history = HistoryOptions(size: 100, ttl: 60)
        let logger = lines.logger
        let backplane = try RedisBackplane(options: options, logger: logger)
        let server = try Server(configuration: config, logger: logger, backplane: backplane)
        let began = monotonicMillis()
        try server.start()
        return (server, backplane, Double(monotonicMillis() - began) / 1000)
    }

    func recover(_ backplane: RedisBackplane, _ topic: String, since: StreamPosition?) async -> Recovery {
        await withCheckedContinuation { done in backplane.recover(topic, since: since) { done.resume(returning: $0) } }
    }

    func testARecoveryRightAfterStartIsComplete() async throws {
        let redis = try RedisProcess()
        let endpoint = RedisEndpoint(host: "127.0.0.1", port: redis.port)
        let (a, bpA, _) = try startServer(endpoint)
        defer { a.stop(); a.wait(); bpA.shutdown() }
        // Setup (not under test): three messages in the stream, read back through A.
        var head = await recover(bpA, "t", since: nil)
        for _ in 0..<250 where !head.recovered { usleep(20_000); head = await recover(bpA, "t", since: nil) }
        for i in 1...3 { a.topics.publish("t", text: "m\(i)") }
        for _ in 0..<250 where head.position?.offset != 3 { usleep(20_000); head = await recover(bpA, "t", since: nil) }
        let epoch = try XCTUnwrap(head.position?.epoch)
        XCTAssertEqual(head.position?.offset, 3)

        // A fresh instance (as in a rolling restart): the first recovery after start() returns.
        let (b, bpB, _) = try startServer(endpoint)
        defer { b.stop(); b.wait(); bpB.shutdown() }
        let r = await recover(bpB, "t", since: StreamPosition(offset: 1, epoch: epoch))
        XCTAssertTrue(r.recovered, "Redis holds the whole history: \(r)")
        XCTAssertEqual(r.messages.map(\.offset), [2, 3])
        XCTAssertEqual(r.position, StreamPosition(offset: 3, epoch: epoch))
    }

    func testWithRedisRefusingTheStartIsNotHeldUp() async throws {
        let port = try RedisProcess.freePort()  // nothing listens: refused at once
        let lines = LogLines()
        let (s, bp, took) = try startServer(RedisEndpoint(host: "127.0.0.1", port: port), lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        XCTAssertLessThan(took, 1.5, "a refused first attempt is an outage: the start goes on")
        let r = await recover(bp, "t", since: StreamPosition(offset: 1, epoch: "e"))
        XCTAssertFalse(r.recovered)
        XCTAssertTrue(lines.all.contains { $0.1.contains("cannot reach") }, "the outage line: \(lines.all)")
        XCTAssertFalse(lines.all.contains { $0.1.contains("backplane not connected") }, "\(lines.all)")
    }

    /// A Redis that accepts and never answers the login is given up after 2 s and tried again
    /// (before, the connection waited in its login for good and never reconnected).
    func testALoginWithoutAnswerTimesOutAndIsRetried() throws {
        let silent = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
        defer { silent.close() }
        let lines = LogLines()
        let (s, bp, _) = try startServer(RedisEndpoint(host: "127.0.0.1", port: silent.port, password: "pw"),
                                         readyTimeout: 0, lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        var accepted: [Int32] = []
        defer { accepted.forEach { _ = Glibc.close($0) } }
        let deadline = monotonicMillis() + 8000
        // Two connections (publish, subscribe) at first; a third only once one gave up and retried.
        while monotonicMillis() < deadline && accepted.count < 3 {
            while let fd = silent.accept() { accepted.append(fd) }
            usleep(20_000)
        }
        XCTAssertGreaterThanOrEqual(accepted.count, 3, "a connection gave up its login and reconnected")
        XCTAssertTrue(lines.all.contains { $0.0 == .warning && $0.1.contains("no answer to the login (AUTH/SELECT) within 2 s") },
                      "\(lines.all)")
    }

    func testARedisThatNeverAnswersEndsTheWaitAtTheBoundWithAWarning() throws {
        // Accepts TCP (the kernel's backlog) but never reads: the AUTH gets no answer.
        let silent = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
        defer { silent.close() }
        let lines = LogLines()
        let (s, bp, took) = try startServer(RedisEndpoint(host: "127.0.0.1", port: silent.port, password: "pw"),
                                            readyTimeout: 0.5, lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        XCTAssertGreaterThanOrEqual(took, 0.45)
        XCTAssertLessThan(took, 2)
        let warnings = lines.all.filter { $0.0 == .warning && $0.1.contains("backplane not connected after 0.5 s") }
        XCTAssertEqual(warnings.count, 1, "\(lines.all)")
        XCTAssertTrue(warnings.first?.1.contains("recoveries report incomplete") == true)
        XCTAssertTrue(RedisProcess.accepts(s.port), "it serves anyway")
    }
}
