import XCTest
@testable import Transport

/// The loop's per-fd table is paid once per fd up to the highest one open (10,000 idle
/// connections: 10,000 slots), so its slot size is part of the per-connection memory budget.
final class HandlerTableLayoutTests: XCTestCase {
    func testSlotIsSixteenBytes() {
        // 32 with the handler type stored as an existential metatype.
        XCTAssertEqual(MemoryLayout<HandlerTable.Slot>.stride, 16)
    }

    /// Two instantiations are two handler types (two kinds in the table).
    final class Probe<Tag>: EventHandler {
        var events = 0
        func handleEvent(_ e: IOEvents) { events += 1 }
        func tick(now: UInt64) {}
        func flushScheduled() {}
    }
    enum TagA {}
    enum TagB {}
    typealias A = Probe<TagA>
    typealias B = Probe<TagB>

    /// Each slot calls its own handler's type, across types and past the table's first
    /// capacity (which grows into fresh zeroed memory); cleared and stale slots call nothing.
    func testDispatchReachesEachTypeAcrossGrowth() {
        let table = HandlerTable()
        let a = A(), b = B()
        let ga = table.nextGeneration(fd: 3)
        table.set(fd: 3, a)
        let gb = table.nextGeneration(fd: 5000)
        table.set(fd: 5000, b)
        XCTAssertTrue(table.dispatch(fd: 3, generation: ga, events: IOEvents.readable.rawValue))
        XCTAssertTrue(table.dispatch(fd: 5000, generation: gb, events: IOEvents.readable.rawValue))
        XCTAssertEqual(a.events, 1)
        XCTAssertEqual(b.events, 1)
        XCTAssertFalse(table.dispatch(fd: 4999, generation: 0, events: 1), "never registered")
        XCTAssertFalse(table.dispatch(fd: 3, generation: ga &+ 1, events: 1), "stale generation")
        XCTAssertTrue(table.remove(fd: 3) === a)
        XCTAssertNil(table.remove(fd: 3))
        XCTAssertFalse(table.dispatch(fd: 3, generation: ga, events: 1), "removed")
        XCTAssertEqual(a.events, 1)
    }

    /// The table owns its handlers: `set` retains, `remove` hands the reference back,
    /// `removeAll` releases, and `forEach` visits each registered one.
    func testTableOwnsItsHandlers() {
        let table = HandlerTable()
        weak var weakA: A?, weakB: B?
        do {
            let a = A(), b = B()
            weakA = a; weakB = b
            _ = table.nextGeneration(fd: 7)
            table.set(fd: 7, a)
            _ = table.nextGeneration(fd: 300)
            table.set(fd: 300, b)
        }
        XCTAssertNotNil(weakA)
        XCTAssertNotNil(weakB)
        var seen: [ObjectIdentifier] = []
        table.forEach { seen.append(ObjectIdentifier($0)) }
        XCTAssertEqual(seen, [ObjectIdentifier(weakA!), ObjectIdentifier(weakB!)])
        _ = table.remove(fd: 7)
        XCTAssertNil(weakA, "released once removed and dropped")
        table.removeAll()
        XCTAssertNil(weakB)
    }
}
