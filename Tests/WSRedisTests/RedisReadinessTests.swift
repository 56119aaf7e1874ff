import Foundation
import Logging
import Transport
@testable import WSRedis
import WSServer
import XCTest
import TestSupport

/// `Server.start` waits for the backplane before it binds: on a live Redis the first
/// recovery after `start()` is complete; with Redis down (refused) the start is not held up;
/// with a Redis that never answers, the wait ends at `backplaneReadyTimeout` with a warning.
final class RedisReadinessTests: XCTestCase {
    /// A server on `endpoint` with history; returns how long `start()` took (seconds).
    func startServer(_ endpoint: RedisEndpoint, readyTimeout: Double = ServerConfiguration.defaults.backplaneReadyTimeout,
                     replyTimeout: Double? = nil, lines: LogLines = LogLines()) throws -> (Server, RedisBackplane, Double) {
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.threads = 1
        config.backplaneReadyTimeout = readyTimeout
        var options = RedisBackplane.Options(endpoint: endpoint)
        options.history = HistoryOptions(size: 100, ttl: 60)
        if let replyTimeout { options.replyTimeout = replyTimeout }
        let logger = lines.logger
        let backplane = try RedisBackplane(options: options, logger: logger)
        let server = try Server(configuration: config, logger: logger, backplane: backplane)
        server.route("/chat", ChatApp())
        let began = monotonicMillis()
        try server.start()
        return (server, backplane, Double(monotonicMillis() - began) / 1000)
    }

    /// A "Redis" that accepts TCP (the kernel's backlog) and never reads or answers.
    struct Silent {
        let listener: Listener
        let lines = LogLines()
        var endpoint: RedisEndpoint { RedisEndpoint(host: "127.0.0.1", port: listener.port) }
        init() throws { listener = try Listener(host: "127.0.0.1", port: 0, reusePort: false) }
    }

    /// Accepts what reaches `silent` until `count` connections have come or `seconds` passed.
    func accept(_ silent: Silent, until count: Int, within seconds: UInt64, into accepted: inout [Int32]) {
        let deadline = monotonicMillis() + seconds * 1000
        while monotonicMillis() < deadline && accepted.count < count {
            while let fd = silent.listener.accept() { accepted.append(fd) }
            usleep(20_000)
        }
    }

    /// `body` given a completion; the value it was called with, or nil after `seconds`.
    func answer<T: Sendable>(within seconds: Double, _ body: (@escaping @Sendable (T) -> Void) -> Void) -> T? {
        let got = Locked<T?>(nil)
        let done = expectation(description: "answered")
        body { v in got.withLock { $0 = v }; done.fulfill() }
        return XCTWaiter().wait(for: [done], timeout: seconds) == .completed ? got.withLock { $0 } : nil
    }

    func recover(_ backplane: RedisBackplane, _ topic: String, since: StreamPosition?) async -> Recovery {
        await withCheckedContinuation { done in backplane.recover(topic, since: since) { done.resume(returning: $0) } }
    }

    func isUp(_ bp: RedisBackplane) async -> Bool {
        await withCheckedContinuation { k in bp.loop.execute { k.resume(returning: bp.commands.state == .ready) } }
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
        let silent = try Silent()
        defer { silent.listener.close() }
        var endpoint = silent.endpoint
        endpoint.password = "pw"
        let (s, bp, _) = try startServer(endpoint, readyTimeout: 0, lines: silent.lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        var accepted: [Int32] = []
        defer { accepted.forEach { _ = Glibc.close($0) } }
        // Two connections (publish, subscribe) at first; a third only once one gave up and retried.
        accept(silent, until: 3, within: 8, into: &accepted)
        XCTAssertGreaterThanOrEqual(accepted.count, 3, "a connection gave up its login and reconnected")
        let lines = silent.lines.all
        XCTAssertTrue(lines.contains { $0.0 == .warning && $0.1.contains("no answer to the login (AUTH, PING) within 2 s") }, "\(lines)")
        XCTAssertFalse(lines.contains { $0.1.contains("backplane not connected") }, "a ready timeout of 0 is no wait, so no warning: \(lines)")
    }

    /// Redis stops answering after the login (a real redis-server, SIGSTOPped: connected, and
    /// the kernel still accepts from its backlog). A recovery (publish connection), a recovery
    /// of a topic made active now (waits for its SUBSCRIBE on the subscription connection) and
    /// a presence query are answered as in an outage once the reply deadline passes, with one
    /// line each, and both connections redial (before, all three waited for good). While it
    /// stays stopped each redial's login (its PING) gets no answer: the outage is one line per
    /// connection, not a "connected" line at every retry.
    func testCommandsWithoutAnswerFailAsAnOutageAfterTheReplyDeadline() async throws {
        let redis = try RedisProcess()
        let lines = LogLines()
        let (s, bp, _) = try startServer(RedisEndpoint(host: "127.0.0.1", port: redis.port), replyTimeout: 1, lines: lines)
        defer { redis.resume(); s.stop(); s.wait(); bp.shutdown() }
        try await waitUntilConnected(bp)
        redis.pause()
        let client = try await connect(s)  // /chat becomes active: its SUBSCRIBE gets no answer
        defer { client.close() }
        let began = monotonicMillis()
        let past = StreamPosition(offset: 1, epoch: "e")
        let r: Recovery? = answer(within: 4) { done in bp.recover("t", since: past, completion: done) }
        XCTAssertEqual(r?.recovered, false, "answered as in an outage")
        XCTAssertLessThan(monotonicMillis() - began, 2500, "within the deadline (1 s) and a tick or two")
        let active: Recovery? = answer(within: 4) { done in bp.recover("/chat", since: past, completion: done) }
        XCTAssertEqual(active?.recovered, false)
        let n: Int? = answer(within: 4) { done in bp.presence("t", local: 7, completion: done) }
        XCTAssertEqual(n, 7, "the local count, as in an outage")
        try await Task.sleep(for: .milliseconds(5000))  // two more login timeouts (2 s) each
        let all = lines.all
        XCTAssertTrue(all.contains { $0.0 == .warning && $0.1.contains("redis publish:") && $0.1.contains("no reply to a command within 1.0 s") }, "\(all)")
        XCTAssertTrue(all.contains { $0.0 == .warning && $0.1.contains("redis subscribe:") && $0.1.contains("no confirmation of SUBSCRIBE within 1.0 s") }, "\(all)")
        XCTAssertEqual(all.filter { $0.1.contains("cannot reach redis://") }.count, 2, "one outage line per connection: \(all.map(\.1))")
        XCTAssertEqual(all.filter { $0.1.contains("connected to") }.count, 2, "only the first connects (a stopped Redis never answers a login): \(all.map(\.1))")
        let isUpNow = await isUp(bp)
        XCTAssertFalse(isUpNow, "a redial without an answer is not up")
        // Resumed: both come back (the next login is answered) and the subscription is redone.
        redis.resume()
        try await waitUntilConnected(bp)
        try await waitUntilSubscribed(bp)
    }

    /// A Redis slower than usual but answering (DEBUG SLEEP shorter than the deadline) is not
    /// cut: its answers come; and a subscription with nothing to say is never timed out.
    func testASlowButAnsweringRedisAndAQuietSubscriptionAreNotCut() async throws {
        let redis = try RedisProcess(extra: ["--enable-debug-command", "local"])
        let lines = LogLines()
        let (s, bp, _) = try startServer(RedisEndpoint(host: "127.0.0.1", port: redis.port), replyTimeout: 1.5, lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        try await waitUntilConnected(bp)
        let client = try await connect(s)
        defer { client.close() }
        try await waitUntilSubscribed(bp, "/chat")
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        sleeper.arguments = ["-p", "\(redis.port)", "DEBUG", "SLEEP", "0.8"]
        try sleeper.run()
        defer { sleeper.waitUntilExit() }
        try await Task.sleep(for: .milliseconds(100))
        let r: Recovery? = answer(within: 5) { done in bp.recover("t", since: nil, completion: done) }
        XCTAssertEqual(r?.recovered, true, "answered after the sleep, not cut: \(lines.all)")
        try await Task.sleep(for: .milliseconds(2500))  // quiet: well past the deadline
        let overdue = lines.all.filter { $0.1.contains("within 1.5 s") || $0.1.contains("cannot reach") }
        XCTAssertEqual(overdue.map(\.1), [])
        XCTAssertEqual(metric(bp, "wss_backplane_resubscribes_total"), 0, "the subscription was never lost (a loss resubscribes)")
    }

    func testARedisThatNeverAnswersEndsTheWaitAtTheBoundWithAWarning() throws {
        let silent = try Silent()  // the AUTH gets no answer
        defer { silent.listener.close() }
        let lines = silent.lines
        var endpoint = silent.endpoint
        endpoint.password = "pw"
        let (s, bp, took) = try startServer(endpoint, readyTimeout: 0.5, lines: lines)
        defer { s.stop(); s.wait(); bp.shutdown() }
        XCTAssertGreaterThanOrEqual(took, 0.45)
        XCTAssertLessThan(took, 2)
        let warnings = lines.all.filter { $0.0 == .warning && $0.1.contains("backplane not connected after 0.5 s") }
        XCTAssertEqual(warnings.count, 1, "\(lines.all)")
        XCTAssertTrue(warnings.first?.1.contains("recoveries report incomplete") == true)
        XCTAssertTrue(RedisProcess.accepts(s.port), "it serves anyway")
    }
}
