import CLinux
import Glibc
import Transport
import XCTest

/// The loop's per-event tables hold handlers unowned (HandlerTable, FlushQueue): what keeps a
/// handler alive is its registration, and after unregistering, the end of the iteration.
final class HandlerTableTests: LoopTestCase {
    typealias Log = Locked<[String]>

    /// Unregisters itself on its first event and asks for a flush afterwards, with nothing but
    /// the loop holding it.
    final class SelfCloser: EventHandler, @unchecked Sendable {
        let fd: Int32, loop: EventLoop, log: Log
        var note = "event-end"
        init(fd: Int32, loop: EventLoop, log: Log) { self.fd = fd; self.loop = loop; self.log = log }
        deinit { log.withLock { $0.append("deinit") } }
        func handleEvent(_ events: IOEvents) {
            loop.unregister(fd: fd)
            loop.scheduleFlush(self)
            // Still alive here: touch our own storage after giving up the registration.
            let n = note
            log.withLock { $0.append(n) }
        }
        func tick(now: UInt64) {}
        func flushScheduled() { log.withLock { $0.append("flush") } }
    }

    /// Records its index when flushed; `again` schedules one more flush from inside the flush.
    final class Flusher: EventHandler, @unchecked Sendable {
        let index: Int, loop: EventLoop, log: Log
        unowned(unsafe) var again: Flusher?
        init(_ index: Int, loop: EventLoop, log: Log) { self.index = index; self.loop = loop; self.log = log }
        func handleEvent(_ events: IOEvents) {}
        func tick(now: UInt64) {}
        func flushScheduled() {
            log.withLock { $0.append("\(index)") }
            if let a = again { again = nil; loop.scheduleFlush(a) }
        }
    }

    /// Schedules every flusher when its socket is readable (drains it first).
    final class Scheduler: EventHandler, @unchecked Sendable {
        let fd: Int32, loop: EventLoop, flushers: [Flusher]
        init(fd: Int32, loop: EventLoop, flushers: [Flusher]) { self.fd = fd; self.loop = loop; self.flushers = flushers }
        func handleEvent(_ events: IOEvents) {
            var b = [UInt8](repeating: 0, count: 64)
            while recv(fd, &b, b.count, Int32(MSG_DONTWAIT)) > 0 {}
            for f in flushers { loop.scheduleFlush(f) }
        }
        func tick(now: UInt64) {}
        func flushScheduled() {}
    }

    func testEventBitsAreEpollValues() {
        XCTAssertEqual(IOEvents.readable.rawValue, EPOLLIN.rawValue)
        XCTAssertEqual(IOEvents.writable.rawValue, EPOLLOUT.rawValue)
        XCTAssertEqual(IOEvents.hangup.rawValue, EPOLLHUP.rawValue | EPOLLERR.rawValue)
        XCTAssertTrue(IOEvents(rawValue: EPOLLERR.rawValue).wantsRead)
        XCTAssertFalse(IOEvents.writable.wantsRead)
    }

    /// A handler that unregisters itself inside its event lives until the iteration ends:
    /// its event finishes, its flush runs, then it is released.
    func testSelfUnregisteringHandlerLivesUntilIterationEnds() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = pair(high: true)
            let log = Log([])
            onLoop(loop) { try! loop.register(fd: ours, handler: SelfCloser(fd: ours, loop: loop, log: log), interest: .read) }
            XCTAssertEqual(send(peer, "x", 1, 0), 1)
            eventually("\(io): released") { log.withLock { $0.count } == 3 }
            XCTAssertEqual(log.withLock { $0 }, ["event-end", "flush", "deinit"], "\(io)")
            XCTAssertEqual(loop.registeredCount, 0, "\(io)")
        }
    }

    /// More flushes than the queue's first capacity in one iteration, plus one scheduled from
    /// inside a flush: each runs once, in order, in the same pass.
    func testFlushQueueGrowsAndKeepsOrder() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = pair()
            let log = Log([])
            let flushers = (0..<150).map { Flusher($0, loop: loop, log: log) }
            // Owned here: the queue holds handlers unowned (the scheduler's contract).
            let late = Flusher(150, loop: loop, log: log)
            flushers[10].again = late
            let scheduler = Scheduler(fd: ours, loop: loop, flushers: flushers)
            onLoop(loop) { try! loop.register(fd: ours, handler: scheduler, interest: .read) }
            XCTAssertEqual(send(peer, "x", 1, 0), 1)
            eventually("\(io): all flushed") { log.withLock { $0.count } == 151 }
            XCTAssertEqual(log.withLock { $0 }, (0...150).map(String.init), "\(io)")
            onLoop(loop) { loop.unregister(fd: ours) }
            withExtendedLifetime(late) {}
        }
    }
}
