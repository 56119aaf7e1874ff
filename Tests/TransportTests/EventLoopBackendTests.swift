import Glibc
import Transport
import TransportURing
import XCTest
import TestSupport

/// The contract both loop backends keep (LoopBackend's doc comment), each test run on epoll and
/// on io_uring with real socket pairs on a running loop: level-triggered readiness, interest
/// changes, hang-up whatever the interest, no event after unregister, a FIN as soon as a
/// registered socket is closed, cross-thread tasks and ticks.
final class EventLoopBackendTests: LoopTestCase {
    /// Counts what the loop reports; reads (and drops) input only when `drain` is set.
    final class Probe: EventHandler, @unchecked Sendable {
        let fd: Int32
        let state = Locked((readable: 0, writable: 0, hangup: 0, ticks: 0))
        let drain: Bool
        init(fd: Int32, drain: Bool) { self.fd = fd; self.drain = drain }
        func handleEvent(_ events: IOEvents) {
            state.withLock { s in
                if events.contains(.readable) { s.readable += 1 }
                if events.contains(.writable) { s.writable += 1 }
                if !events.intersection(.hangup).isEmpty { s.hangup += 1 }
            }
            if drain {
                var buf = [UInt8](repeating: 0, count: 4096)
                while recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT)) > 0 {}
            }
        }
        func tick(now: UInt64) { state.withLock { $0.ticks += 1 } }
        func flushScheduled() {}
    }

    func send(_ fd: Int32, _ text: String) {
        XCTAssertEqual(text.utf8.count, Array(text.utf8).withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) })
    }

    func testReadinessIsLevelTriggered() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = pair()
            let probe = Probe(fd: ours, drain: false)
            onLoop(loop) { try! loop.register(fd: ours, handler: probe, interest: .read) }
            send(peer, "x")
            // Never read: a level-triggered loop keeps reporting the byte.
            eventually("\(io): readable reported again while unread") { probe.state.withLock { $0.readable } >= 3 }
            onLoop(loop) { loop.unregister(fd: ours) }
        }
    }

    func testDrainedSocketIsReportedOnlyForNewBytes() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = pair()
            let probe = Probe(fd: ours, drain: true)
            onLoop(loop) { try! loop.register(fd: ours, handler: probe, interest: .read) }
            usleep(100_000)
            XCTAssertEqual(probe.state.withLock { $0.readable }, 0, "\(io): readable with nothing to read")
            send(peer, "a")
            eventually("\(io): first byte") { probe.state.withLock { $0.readable } == 1 }
            usleep(100_000)
            XCTAssertEqual(probe.state.withLock { $0.readable }, 1, "\(io): reported again after the read")
            send(peer, "b")
            eventually("\(io): second byte") { probe.state.withLock { $0.readable } == 2 }
            onLoop(loop) { loop.unregister(fd: ours) }
        }
    }

    func testInterestChangesTakeEffect() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = pair()
            let probe = Probe(fd: ours, drain: true)
            onLoop(loop) { try! loop.register(fd: ours, handler: probe, interest: []) }
            send(peer, "x")
            usleep(100_000)
            XCTAssertEqual(probe.state.withLock { $0.readable }, 0, "\(io): readable without read interest")
            onLoop(loop) { loop.modify(fd: ours, interest: .read) }
            eventually("\(io): readable once asked for") { probe.state.withLock { $0.readable } == 1 }
            // Adding write interest to an armed read poll: reported at once (the socket has room).
            onLoop(loop) { loop.modify(fd: ours, interest: [.read, .write]) }
            eventually("\(io): writable once asked for") { probe.state.withLock { $0.writable } >= 1 }
            onLoop(loop) { loop.modify(fd: ours, interest: .read) }
            let writable = probe.state.withLock { $0.writable }
            usleep(100_000)
            XCTAssertLessThanOrEqual(probe.state.withLock { $0.writable }, writable + 1, "\(io): writable after dropping it")
            onLoop(loop) { loop.unregister(fd: ours) }
        }
    }

    func testHangupIsReportedWithoutInterest() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = pair()
            let probe = Probe(fd: ours, drain: false)
            onLoop(loop) { try! loop.register(fd: ours, handler: probe, interest: []) }
            shutdown(peer, Int32(SHUT_RDWR))
            eventually("\(io): hang-up") { probe.state.withLock { $0.hangup } >= 1 }
            onLoop(loop) { loop.unregister(fd: ours) }
        }
    }

    func testNoEventAfterUnregister() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = pair()
            let probe = Probe(fd: ours, drain: false)
            onLoop(loop) {
                try! loop.register(fd: ours, handler: probe, interest: .read)
                loop.unregister(fd: ours)
            }
            send(peer, "x")
            usleep(150_000)
            XCTAssertEqual(probe.state.withLock { $0.readable }, 0, "\(io): event after unregister")
        }
    }

    /// io_uring's armed poll holds a reference to the socket: unregistering must cancel it, or
    /// the close would not reach the peer.
    func testClosingARegisteredSocketReachesThePeer() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = pair()
            fds.removeAll { $0 == ours }
            let probe = Probe(fd: ours, drain: true)
            onLoop(loop) { try! loop.register(fd: ours, handler: probe, interest: .read) }
            onLoop(loop) {
                loop.unregisterClosing(fd: ours)
                close(ours)
            }
            var byte: UInt8 = 0
            var got = -2
            eventually("\(io): peer sees end of stream", within: 1000) {
                got = recv(peer, &byte, 1, Int32(MSG_DONTWAIT))
                return got == 0
            }
        }
    }

    /// A listener closed as its loop stops refuses connections once `join` returned (the
    /// io_uring loop must let the kernel drop the cancelled poll's file reference before it ends).
    func testListenerClosedAtStopRefusesConnections() throws {
        final class Closer: EventHandler, @unchecked Sendable {
            let listener: Listener
            unowned let loop: EventLoop
            init(_ listener: Listener, _ loop: EventLoop) { self.listener = listener; self.loop = loop }
            func handleEvent(_ events: IOEvents) {}
            func tick(now: UInt64) {}
            func flushScheduled() {}
            func loopStopped() { loop.unregister(fd: listener.fd); listener.close() }
        }
        for io in backends {
            let loop = try startLoop(io)
            let listener = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
            let closer = Closer(listener, loop)
            let lfd = listener.fd
            onLoop(loop) { try! loop.register(fd: lfd, handler: closer, interest: .read) }
            loop.stop()
            loop.join()
            let (fd, rc) = connectLoopback(port: listener.port)
            defer { close(fd) }
            XCTAssertEqual(rc, -1, "\(io): connect succeeded after the loop closed its listener")
            withExtendedLifetime(loop) {}
        }
    }

    func testTasksFromOtherThreadsAndTicksRun() throws {
        for io in backends {
            let loop = try startLoop(io)
            let count = Locked(0)
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                for _ in 0..<250 { loop.execute { count.withLock { $0 += 1 } } }
            }
            eventually("\(io): every task ran") { count.withLock { $0 } == 1000 }
            let (ours, _) = pair()
            let probe = Probe(fd: ours, drain: true)
            onLoop(loop) { try! loop.register(fd: ours, handler: probe, interest: .read) }
            eventually("\(io): ticks", within: 3 * EventLoop.tickMillis + 500) { probe.state.withLock { $0.ticks } >= 2 }
            onLoop(loop) { loop.unregister(fd: ours) }
        }
    }

    /// Linking TransportURing registers the backend before main (its C constructor): what the
    /// loop uses is then exactly what the kernel probe says, not "built without io_uring".
    func testLinkingTransportURingRegistersTheBackend() {
        XCTAssertEqual(IOBackend.uringOutcome, URingProbe.check())
        if IOBackend.uringOutcome == .available {
            XCTAssertEqual(try EventLoop(index: 0, readBufferSize: 64, io: .uring).io, .uring)
        }
    }

    func testResolveFallsBackToEpollWithAReason() {
        XCTAssertEqual(IOBackend.resolve(.epoll, probe: { XCTFail("epoll needs no probe"); return .available }).backend, .epoll)
        let ok = IOBackend.resolve(.uring, probe: { .available })
        XCTAssertEqual(ok.backend, .uring)
        XCTAssertNil(ok.fallback)
        let no = IOBackend.resolve(.uring, probe: { .unavailable("io_uring_setup failed: Operation not permitted") })
        XCTAssertEqual(no.backend, .epoll)
        XCTAssertEqual(no.fallback, "io_uring unavailable (io_uring_setup failed: Operation not permitted); using epoll")
    }
}
