@testable import WSServer
import WebSocket
import XCTest

/// The seam between recovered history and live messages: nothing twice, nothing skipped,
/// offset order, and a gap or a new epoch asks the history again.
final class RecoverySeamTests: XCTestCase {
    typealias Seam = RecoverySeam<String>
    let e = "epoch-a"

    func pos(_ o: UInt64, _ epoch: String? = nil) -> StreamPosition { StreamPosition(offset: o, epoch: epoch ?? e) }
    func history(_ offsets: ClosedRange<UInt64>, epoch: String? = nil, recovered: Bool = true) -> Recovery {
        Recovery(messages: offsets.map { RecoveredMessage(kind: .text, payload: Array("h\($0)".utf8), offset: $0) },
                 position: pos(offsets.upperBound, epoch), recovered: recovered)
    }
    /// The answer to a subscriber without a position: where the stream is, no messages.
    func at(_ last: UInt64) -> Recovery { Recovery(messages: [], position: pos(last), recovered: true) }
    /// What a release delivers, as "h<offset>" (history) or the live item's name.
    func names(_ r: Seam.Release) -> [String] {
        r.deliveries.map {
            switch $0 {
            case .history(let m, let p):
                XCTAssertEqual(m.offset, p.offset)
                return String(decoding: m.payload, as: UTF8.self)
            case .live(let item, _): return item
            }
        }
    }

    func testLiveMessagesThatArriveBeforeTheAnswerAreHeldAndTheOverlapDropped() {
        var seam = Seam(since: pos(3))
        // Published while the history was read: 5 and 6 are in the answer too, 7 and 8 are not.
        for o: UInt64 in 5...8 { XCTAssertEqual(seam.live("l\(o)", pos(o)), .hold) }
        let r = seam.finish(history(4...6))
        XCTAssertEqual(names(r), ["h4", "h5", "h6", "l7", "l8"])
        XCTAssertTrue(r.recovered)
        XCTAssertNil(r.again)
        XCTAssertEqual(seam.last, pos(8))
    }

    func testLiveMessagesQueuedBeforeTheAnswerButArrivingAfterItAreNotRepeated() {
        // In-process history answers at once, while deliveries of offsets it included may
        // still be queued on the loop: they come after the answer and must be dropped.
        var seam = Seam(since: pos(1))
        XCTAssertEqual(names(seam.finish(history(2...4))), ["h2", "h3", "h4"])
        XCTAssertEqual(seam.live("l3", pos(3)), .drop)
        XCTAssertEqual(seam.live("l4", pos(4)), .drop)
        XCTAssertEqual(seam.live("l5", pos(5)), .deliver)
        XCTAssertEqual(seam.last, pos(5))
    }

    func testAGapInLiveMessagesAsksTheHistoryFromTheLastDelivered() {
        var seam = Seam(since: nil)
        XCTAssertEqual(names(seam.finish(at(10))), [], "a fresh subscriber starts at the stream's end")
        XCTAssertEqual(seam.live("l11", pos(11)), .deliver)
        XCTAssertEqual(seam.live("l14", pos(14)), .recover(since: pos(11)), "12 and 13 never arrived (an outage)")
        XCTAssertEqual(seam.live("l15", pos(15)), .hold)
        let r = seam.finish(history(12...14))
        XCTAssertEqual(names(r), ["h12", "h13", "h14", "l15"])
        XCTAssertTrue(r.recovered)
    }

    func testANewEpochAsksAgainAndTheAnswerSaysIncomplete() {
        var seam = Seam(since: nil)
        _ = seam.finish(at(7))
        XCTAssertEqual(seam.live("x1", pos(1, "epoch-b")), .recover(since: pos(7)))
        XCTAssertEqual(seam.live("x2", pos(2, "epoch-b")), .hold)
        // The store lost the old stream: everything of the new one, flagged incomplete.
        let r = seam.finish(history(1...2, epoch: "epoch-b", recovered: false))
        XCTAssertEqual(names(r), ["h1", "h2"])
        XCTAssertFalse(r.recovered)
        XCTAssertEqual(seam.last, pos(2, "epoch-b"))
    }

    func testHeldMessagesOfAnOlderEpochThanTheAnswerAreDropped() {
        var seam = Seam(since: pos(1))
        XCTAssertEqual(seam.live("old2", pos(2)), .hold)
        let r = seam.finish(history(1...3, epoch: "epoch-b", recovered: false))
        XCTAssertEqual(names(r), ["h1", "h2", "h3"])
    }

    func testWithoutHistoryEverythingGoesThroughAndASinceIsNotRecovered() {
        var seam = Seam(since: pos(5))
        XCTAssertEqual(seam.live("a", nil), .hold)
        let r = seam.finish(Recovery(messages: [], position: nil, recovered: false))
        XCTAssertEqual(names(r), ["a"])
        XCTAssertFalse(r.recovered)
        XCTAssertEqual(seam.live("b", nil), .deliver)
        XCTAssertNil(seam.last)
    }

    func testAMessageWithoutPositionIsSkippedOnceInAStream() {
        // Published while the broker was away: it comes back with its offset later.
        var seam = Seam(since: nil)
        _ = seam.finish(at(3))
        XCTAssertEqual(seam.live("local", nil), .drop)
        XCTAssertEqual(seam.live("l4", pos(4)), .deliver)
    }

    func testTooManyHeldMessagesAreFetchedFromTheHistoryAgain() {
        var seam = Seam(since: pos(0))
        for o in 1...UInt64(Seam.maxHeld + 5) { _ = seam.live("l\(o)", pos(o)) }
        let r = seam.finish(history(1...2))
        XCTAssertEqual(names(r), ["h1", "h2"])
        XCTAssertEqual(r.again, .some(pos(2)), "the discarded ones are read from the history")
        XCTAssertTrue(seam.recovering)
        // Without history they are gone, and the answer says so.
        var bare = Seam(since: nil)
        for o in 1...UInt64(Seam.maxHeld + 5) { _ = bare.live("l\(o)", nil) }
        let lost = bare.finish(Recovery(messages: [], position: nil, recovered: true))
        XCTAssertFalse(lost.recovered)
        XCTAssertNil(lost.again)
    }
}
