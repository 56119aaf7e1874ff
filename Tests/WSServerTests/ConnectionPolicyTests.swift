import XCTest
import Transport

/// The connection policy driven with integers for the clock: no sockets, no sleeps.
final class ConnectionPolicyTests: XCTestCase {
    let settings = ConnectionPolicy.Settings(handshakeMillis: 10_000, idleMillis: 120_000, closeMillis: 5_000,
                                             lingerMillis: 2_000, highWaterMark: 1000)

    func testSizeIsAFewDozenBytes() {
        XCTAssertLessThanOrEqual(MemoryLayout<ConnectionPolicy>.size, 24)
    }

    func testHandshakeDeadline() {
        var p = ConnectionPolicy(now: 1000, settings: settings)
        XCTAssertEqual(p.phase, .handshake)
        XCTAssertEqual(p.tick(now: 10_999, protocolOpen: true, settings: settings), .none)
        XCTAssertEqual(p.tick(now: 11_000, protocolOpen: true, settings: settings), .drop(.handshakeTimeout))
    }

    /// A limit only ever brings the handshake deadline closer, also when there was none, and
    /// does nothing once the connection is open.
    func testLimitHandshakeOnlyShortens() {
        var p = ConnectionPolicy(now: 1000, settings: settings)
        p.limitHandshake(now: 2000, millis: 1000)
        XCTAssertEqual(p.tick(now: 2999, protocolOpen: true, settings: settings), .none)
        XCTAssertEqual(p.tick(now: 3000, protocolOpen: true, settings: settings), .drop(.handshakeTimeout))
        var q = ConnectionPolicy(now: 1000, settings: settings)
        q.limitHandshake(now: 1000, millis: 60_000)
        XCTAssertEqual(q.tick(now: 11_000, protocolOpen: true, settings: settings), .drop(.handshakeTimeout), "not lengthened")
        var s = settings
        s.handshakeMillis = 0
        var r = ConnectionPolicy(now: 0, settings: s)
        r.limitHandshake(now: 0, millis: 500)
        XCTAssertEqual(r.tick(now: 500, protocolOpen: true, settings: s), .drop(.handshakeTimeout), "a limit where there was none")
        var o = ConnectionPolicy(now: 0, settings: settings)
        o.opened(now: 0)
        o.limitHandshake(now: 0, millis: 1)
        XCTAssertEqual(o.tick(now: 100, protocolOpen: true, settings: settings), .none, "open: untouched")
    }

    func testNoHandshakeDeadlineWhenDisabled() {
        var s = settings
        s.handshakeMillis = 0
        var p = ConnectionPolicy(now: 0, settings: s)
        XCTAssertEqual(p.tick(now: .max / 2, protocolOpen: true, settings: s), .none)
    }

    func testOpenClearsTheHandshakeDeadline() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        p.opened(now: 500)
        XCTAssertEqual(p.phase, .open)
        XCTAssertEqual(p.tick(now: 20_000, protocolOpen: true, settings: settings), .none)
    }

    func testIdlePingThenCloseWithoutAnswer() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        p.opened(now: 0)
        XCTAssertEqual(p.tick(now: 119_999, protocolOpen: true, settings: settings), .none)
        XCTAssertEqual(p.tick(now: 120_000, protocolOpen: true, settings: settings), .sendPing)
        XCTAssertTrue(p.pingOutstanding)
        // One ping per idle period, not one per tick.
        XCTAssertEqual(p.tick(now: 120_250, protocolOpen: true, settings: settings), .none)
        XCTAssertEqual(p.tick(now: 240_000, protocolOpen: true, settings: settings), .close(.idleTimeout))
    }

    func testAnyInputAnswersThePing() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        p.opened(now: 0)
        XCTAssertEqual(p.tick(now: 120_000, protocolOpen: true, settings: settings), .sendPing)
        p.received(now: 130_000)
        XCTAssertFalse(p.pingOutstanding)
        XCTAssertEqual(p.tick(now: 240_000, protocolOpen: true, settings: settings), .none)
        XCTAssertEqual(p.tick(now: 250_000, protocolOpen: true, settings: settings), .sendPing)
    }

    func testIdleTimeoutZeroNeverPings() {
        var s = settings
        s.idleMillis = 0
        var p = ConnectionPolicy(now: 0, settings: s)
        p.opened(now: 0)
        XCTAssertEqual(p.tick(now: 10_000_000, protocolOpen: true, settings: s), .none)
    }

    func testCloseDeadlineRunsFromOurCloseFrame() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        p.opened(now: 0)
        p.closeSent(now: 1000, settings: settings)
        // A second close step does not push the deadline out.
        p.closeSent(now: 3000, settings: settings)
        XCTAssertEqual(p.tick(now: 5999, protocolOpen: false, settings: settings), .none)
        XCTAssertEqual(p.tick(now: 6000, protocolOpen: false, settings: settings), .drop(.closeTimeout))
    }

    func testNoPingWhileClosing() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        p.opened(now: 0)
        XCTAssertEqual(p.tick(now: 500_000, protocolOpen: false, settings: settings), .none)
    }

    func testBackpressureHysteresis() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        p.opened(now: 0)
        XCTAssertEqual(p.outputChanged(bytes: 1000, settings: settings), .none)  // at the mark: fine
        XCTAssertEqual(p.outputChanged(bytes: 1001, settings: settings), .pauseReading)
        XCTAssertTrue(p.readPaused)
        XCTAssertEqual(p.outputChanged(bytes: 2000, settings: settings), .none)  // told once
        XCTAssertEqual(p.outputChanged(bytes: 501, settings: settings), .none)   // above low water
        XCTAssertEqual(p.outputChanged(bytes: 500, settings: settings), .resumeReading)
        XCTAssertFalse(p.readPaused)
        XCTAssertEqual(p.outputChanged(bytes: 0, settings: settings), .none)
    }

    func testNoPauseBeforeTheUpgrade() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        XCTAssertEqual(p.outputChanged(bytes: 1 << 30, settings: settings), .none)
    }

    func testLingerThenDrop() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        p.opened(now: 0)
        _ = p.outputChanged(bytes: 5000, settings: settings)
        XCTAssertEqual(p.startLinger(now: 100, settings: settings), .shutdownWrite)
        XCTAssertFalse(p.readPaused, "lingering reads (and discards) whatever arrives")
        XCTAssertEqual(p.startLinger(now: 200, settings: settings), .none, "one FIN")
        XCTAssertEqual(p.tick(now: 2099, protocolOpen: false, settings: settings), .none)
        XCTAssertEqual(p.tick(now: 2100, protocolOpen: false, settings: settings), .drop(.lingerDone))
    }

    func testClosedAndExternalDoNothing() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        p.closed()
        XCTAssertEqual(p.tick(now: 1 << 40, protocolOpen: false, settings: settings), .none)
        XCTAssertEqual(p.startLinger(now: 0, settings: settings), .none)
        var e = ConnectionPolicy.external
        XCTAssertEqual(e.phase, .external)
        XCTAssertEqual(e.tick(now: 1 << 40, protocolOpen: true, settings: settings), .none)
    }

    func testQuietAfterASecond() {
        var p = ConnectionPolicy(now: 0, settings: settings)
        p.received(now: 5000)
        XCTAssertFalse(p.isQuiet(now: 5999))
        XCTAssertTrue(p.isQuiet(now: 6000))
    }
}
