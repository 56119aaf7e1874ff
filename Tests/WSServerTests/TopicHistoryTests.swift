import Transport
import WSServer
import WebSocket
import XCTest

/// In-memory history and recovery (Centrifugo's model), driven with an injected clock.
final class TopicHistoryTests: XCTestCase {
    final class Clock: @unchecked Sendable {
        let now = Locked<UInt64>(1_000)
        func advance(_ ms: UInt64) { now.withLock { $0 += ms } }
    }

    func make(size: Int = 3, ttl: Double = 10) -> (TopicHistory, Clock) {
        let clock = Clock()
        return (TopicHistory(options: HistoryOptions(size: size, ttl: ttl), clock: { clock.now.withLock { $0 } }), clock)
    }

    @discardableResult
    func publish(_ h: TopicHistory, _ topic: String, _ text: String) -> StreamPosition {
        Array(text.utf8).withUnsafeBytes { h.append(topic, kind: .text, payload: $0) }
    }

    func texts(_ r: Recovery) -> [String] { r.messages.map { String(decoding: $0.payload, as: UTF8.self) } }

    func testOffsetsCountFromOneWithinOneEpochPerTopic() {
        let (h, _) = make()
        let p1 = publish(h, "a", "x"), p2 = publish(h, "a", "y"), q1 = publish(h, "b", "z")
        XCTAssertEqual([p1.offset, p2.offset, q1.offset], [1, 2, 1])
        XCTAssertEqual(p1.epoch, p2.epoch)
        XCTAssertNotEqual(p1.epoch, q1.epoch, "epochs are random per stream")
    }

    func testRecoveryReturnsWhatWasMissedInOrderAndSaysItIsComplete() {
        let (h, _) = make(size: 10)
        let seen = publish(h, "t", "m1")
        publish(h, "t", "m2"); publish(h, "t", "m3")
        let r = h.recover("t", since: seen)
        XCTAssertEqual(texts(r), ["m2", "m3"])
        XCTAssertEqual(r.messages.map(\.offset), [2, 3])
        XCTAssertTrue(r.recovered)
        XCTAssertEqual(r.position, StreamPosition(offset: 3, epoch: seen.epoch))
        // Up to date: nothing, complete.
        XCTAssertEqual(h.recover("t", since: r.position), Recovery(messages: [], position: r.position, recovered: true))
    }

    func testAGapOlderThanTheHistoryIsReportedIncomplete() {
        let (h, _) = make(size: 3)
        let seen = publish(h, "t", "m1")
        for i in 2...6 { publish(h, "t", "m\(i)") }  // m2 and m3 fall out of a 3-message history
        let r = h.recover("t", since: seen)
        XCTAssertEqual(texts(r), ["m4", "m5", "m6"])
        XCTAssertFalse(r.recovered)
        // From m3 on nothing is missing.
        XCTAssertTrue(h.recover("t", since: StreamPosition(offset: 3, epoch: seen.epoch)).recovered)
    }

    func testAnotherEpochOrAPositionFromTheFutureIsNotRecovered() {
        let (h, _) = make()
        let p = publish(h, "t", "m1")
        let other = h.recover("t", since: StreamPosition(offset: 1, epoch: "0000000000000000"))
        XCTAssertFalse(other.recovered)
        XCTAssertEqual(texts(other), ["m1"], "what is retained is still given")
        XCTAssertFalse(h.recover("t", since: StreamPosition(offset: 9, epoch: p.epoch)).recovered)
    }

    func testMessagesExpireAfterTheTTLButTheEpochAndOffsetOutliveThem() {
        let clock = Clock()
        let h = TopicHistory(options: HistoryOptions(size: 10, ttl: 10, metaTTL: 100), clock: { clock.now.withLock { $0 } })
        let p1 = publish(h, "t", "old")
        clock.advance(6_000)
        publish(h, "t", "newer")
        clock.advance(5_000)  // "old" is 11 s old, "newer" 5 s
        let r = h.recover("t", since: StreamPosition(offset: 0, epoch: p1.epoch))
        XCTAssertEqual(texts(r), ["newer"])
        XCTAssertFalse(r.recovered, "offset 1 expired")
        clock.advance(11_000)  // idle for longer than the TTL: the messages are gone, the stream is not
        let upToDate = h.recover("t", since: StreamPosition(offset: 2, epoch: p1.epoch))
        XCTAssertEqual(upToDate, Recovery(messages: [], position: StreamPosition(offset: 2, epoch: p1.epoch), recovered: true),
                       "a subscriber that saw everything is still complete after an idle spell")
        XCTAssertFalse(h.recover("t", since: StreamPosition(offset: 1, epoch: p1.epoch)).recovered, "offset 2 expired")
        let next = publish(h, "t", "again")
        XCTAssertEqual(next, StreamPosition(offset: 3, epoch: p1.epoch))
        clock.advance(101_000)  // idle past the meta TTL: a new stream
        let fresh = publish(h, "t", "fresh")
        XCTAssertNotEqual(fresh.epoch, p1.epoch)
        XCTAssertEqual(fresh.offset, 1)
    }

    func testTheMetaTTLDefaultsToADayOrTheTTLIfLonger() {
        XCTAssertEqual(HistoryOptions(size: 1, ttl: 300).metaTTL, 86_400)
        XCTAssertEqual(HistoryOptions(size: 1, ttl: 200_000).metaTTL, 200_000)
        XCTAssertEqual(HistoryOptions(size: 1, ttl: 300, metaTTL: 10).metaTTL, 300, "never shorter than the messages")
    }

    func testWithoutHistoryALostPositionIsReportedIncomplete() {
        let b = InProcessBackplane()
        let got = Locked<[Recovery]>([])
        b.recover("t", since: StreamPosition(offset: 4, epoch: "e")) { r in got.withLock { $0.append(r) } }
        b.recover("t", since: nil) { r in got.withLock { $0.append(r) } }
        XCTAssertEqual(got.withLock { $0 }, [Recovery(messages: [], position: nil, recovered: false),
                                             Recovery(messages: [], position: nil, recovered: true)])
    }

    /// Through a running server: publishes go into the in-process history and are recoverable.
    func testInProcessBackplaneKeepsHistoryOfPublishes() throws {
        let backplane = InProcessBackplane(history: HistoryOptions(size: 100, ttl: 60))
        let server = try startTestServer(backplane: backplane)
        defer { server.stop(); server.wait() }
        for i in 1...5 { server.topics.publish("/room", text: "m\(i)") }
        let got = Locked<Recovery?>(nil)
        backplane.recover("/room", since: nil) { r in got.withLock { $0 = r } }
        let now = try XCTUnwrap(got.withLock { $0 })
        XCTAssertEqual(now.position?.offset, 5)
        backplane.recover("/room", since: StreamPosition(offset: 2, epoch: now.position!.epoch)) { r in got.withLock { $0 = r } }
        XCTAssertEqual(got.withLock { $0 }.map(texts), ["m3", "m4", "m5"])
        XCTAssertEqual(got.withLock { $0 }?.recovered, true)
    }
}
