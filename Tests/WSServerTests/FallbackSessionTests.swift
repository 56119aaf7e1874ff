import WSServer
import XCTest

/// Session ids (CSPRNG, strict parsing) and the per-loop session table with expiry, driven by an
/// integer clock: no sleeps.
final class FallbackSessionTests: XCTestCase {
    func testIDsAreRandomDistinctAndRoundTrip() throws {
        var seen = Set<String>()
        for loop in 0..<50 {
            let id = try SessionID.random(loop: UInt8(loop))
            let text = id.description
            XCTAssertEqual(text.utf8.count, SessionID.textLength)
            XCTAssertEqual(text.last, "A")
            XCTAssertEqual(SessionID(text), id)
            XCTAssertEqual(SessionID(text)?.loop, UInt8(loop))
            XCTAssertTrue(seen.insert(text).inserted, "ids repeat: not random")
        }
        // 128 random bits: over 50 ids, every bit position of `high` takes both values.
        let ids = try (0..<64).map { _ in try SessionID.random(loop: 0) }
        let ones = ids.reduce(UInt64(0)) { $0 | $1.high }, zeros = ids.reduce(UInt64(0)) { $0 | ~$1.high }
        XCTAssertEqual(ones, .max)
        XCTAssertEqual(zeros, .max)
    }

    func testIDParsingIsStrict() throws {
        let text = try SessionID.random(loop: 1).description
        XCTAssertNil(SessionID(String(text.dropLast())), "short")
        XCTAssertNil(SessionID(text + "A"), "long")
        XCTAssertNil(SessionID(String(text.dropLast()) + "B"), "padding byte not zero")
        XCTAssertNil(SessionID(String(text.dropFirst()) + "="), "outside the alphabet")
        XCTAssertNil(SessionID("../../etc/passwd/aaaaaaaA"))
        XCTAssertNil(SessionID(""))
        let forged = "A" + String(text.dropFirst())  // another loop byte: a different id
        if forged != text { XCTAssertNotEqual(SessionID(forged), SessionID(text)) }
    }

    func testTableExpiresAfterTimeoutUnlessPinned() throws {
        var table = SessionTable<String>(capacity: 10, timeoutMillis: 60_000)
        let a = try SessionID.random(loop: 0), b = try SessionID.random(loop: 0)
        try table.insert(a, "a", now: 1000)
        try table.insert(b, "b", now: 1000)
        XCTAssertEqual(table.lookup(a, now: 1000), "a")
        table.pin(b)  // an SSE stream is open on b
        XCTAssertTrue(table.expire(now: 60_999).isEmpty)
        XCTAssertNil(table.lookup(a, now: 61_000), "dead from its deadline on, before expire runs")
        let gone = table.expire(now: 61_000)
        XCTAssertEqual(gone.map(\.1), ["a"])
        XCTAssertEqual(table.count, 1)
        XCTAssertEqual(table.lookup(b, now: 500_000), "b", "pinned: no expiry")
        table.touch(b, now: 500_000)  // the stream ended
        XCTAssertTrue(table.expire(now: 559_999).isEmpty)
        XCTAssertEqual(table.expire(now: 560_000).map(\.1), ["b"])
        XCTAssertEqual(table.count, 0)
    }

    func testTouchExtendsAndLimitsHold() throws {
        var table = SessionTable<Int>(capacity: 2, timeoutMillis: 100)
        let ids = try (0..<3).map { _ in try SessionID.random(loop: 0) }
        try table.insert(ids[0], 0, now: 0)
        try table.insert(ids[1], 1, now: 0)
        XCTAssertThrowsError(try table.insert(ids[2], 2, now: 0)) {
            XCTAssertEqual($0 as? SessionTable<Int>.InsertError, .full(limit: 2))
        }
        XCTAssertThrowsError(try table.insert(ids[0], 9, now: 0)) {
            XCTAssertEqual($0 as? SessionTable<Int>.InsertError, .duplicate)
        }
        table.touch(ids[0], now: 90)
        XCTAssertEqual(table.expire(now: 100).map(\.1), [1])
        XCTAssertEqual(table.lookup(ids[0], now: 189), 0)
        XCTAssertEqual(table.remove(ids[0]), 0)
        XCTAssertNil(table.lookup(ids[0], now: 0), "removed")
        XCTAssertTrue(table.expire(now: 10_000).isEmpty)
    }
}
