import Glibc
import Transport
import TransportURing
import XCTest
import TestSupport

/// Batched sends (`StreamDriver.queueSend(on:)`): a staged plain-TCP owner hands its output to
/// the loop, which sends it in the iteration's one io_uring_enter and says how much went. The
/// bytes stay the owner's until then: none lost, repeated or reordered, a short send or a full
/// socket falls back to write interest, and what must follow the bytes (a FIN, close) goes
/// after them. Every test runs on both backends over real TCP (epoll: `queueSend` says no and
/// the owner writes itself).
extension StagedReceiveTests {
    /// An output queue whose bytes move when it grows (as the connection's `ByteBuffer` may).
    final class Output {
        private(set) var storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        private var start = 0
        private var end = 0
        deinit { storage.deallocate() }
        var count: Int { end - start }
        var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: storage[start..<end]) }
        func append(_ chunk: UnsafeRawBufferPointer) {
            if end + chunk.count > storage.count {
                // Always a new block: a send that kept the old address would read freed memory.
                let bigger = UnsafeMutableRawBufferPointer.allocate(byteCount: max(64, 2 * (count + chunk.count)), alignment: 1)
                bigger.copyMemory(from: bytes)
                storage.initializeMemory(as: UInt8.self, repeating: 0xEE)
                storage.deallocate()
                storage = bigger
                end = count
                start = 0
            }
            UnsafeMutableRawBufferPointer(rebasing: storage[end...]).copyMemory(from: chunk)
            end += chunk.count
        }
        func consume(_ n: Int) {
            start += n
            if start == end { start = 0; end = 0 }
        }
    }

    /// Echoes what it reads, handing the echo to the loop when it can.
    final class QueuingEcho: EventHandler, @unchecked Sendable {
        let driver: StreamDriver
        unowned let loop: EventLoop
        var interest: Interest = .read
        let out = Output()
        var queued = false
        var highWater = 256 << 10
        /// Loop thread only: after queueing an echo, append these bytes (they go with it).
        var trailer: [UInt8] = []
        /// Loop thread only: close right after queueing the first echo (FIN after the bytes).
        var closeAfterEcho = false
        /// Loop thread only: write the echo itself right after queueing it (take it back).
        var withdrawAfterQueueing = false
        struct Counts { var accepted = 0, selfWritten = 0, blocked = 0, paused = 0, ended: String? = nil }
        let counts = Locked(Counts())
        private var closed = false

        init(fd: Int32, loop: EventLoop) { driver = StreamDriver(fd: fd, tls: nil); self.loop = loop }

        func handleEvent(_ events: IOEvents) {
            if events.contains(.writable) { writeNow() }
            guard !closed, interest.contains(.read), events.wantsRead else { return }
            let end = driver.receive(on: loop) { chunk in
                out.append(UnsafeRawBufferPointer(chunk))
                return out.count < highWater
            }
            switch end {
            case .eof: return ended("eof")
            case .error(let why): return ended("error: \(why)")
            default: break
            }
            if !queued, out.count > 0, !interest.contains(.write), driver.queueSend(on: loop) {
                queued = true
                counts.withLock { $0.accepted += 1 }
                if !trailer.isEmpty { trailer.withUnsafeBytes { out.append($0) }; trailer = [] }
                if withdrawAfterQueueing {
                    XCTAssertTrue(driver.withdrawSend(on: loop), "not submitted yet: taken back")
                    queued = false
                    return writeNow()
                }
                updateInterest()
            } else {
                writeNow()
            }
            if closeAfterEcho { closeGracefully() }
        }

        func queuedOutput() -> UnsafeRawBufferPointer { out.bytes }

        func queuedSendCompleted(_ result: QueuedSendResult) {
            XCTAssertTrue(queued, "a completion only for a send we queued")
            queued = false
            switch driver.completeQueuedSend(result, consumed: { out.consume($0) }) {
            case .drained: if out.count > 0 { writeNow() } else { updateInterest() }
            case .writeBlocked:
                counts.withLock { $0.blocked += 1 }
                updateInterest(blocked: true)
            case .eof: ended("eof")
            case .error(let why): ended("error: \(why)")
            case .readBlocked: XCTFail("plain TCP")
            }
        }

        /// Writes the queue itself, after taking back a send not yet gone.
        func writeNow() {
            if queued {
                guard driver.withdrawSend(on: loop) else { return }
                queued = false
            }
            var blocked = false
            while out.count > 0 {
                guard case .done(let n) = driver.write(out.bytes) else { blocked = true; break }
                counts.withLock { $0.selfWritten += 1 }
                out.consume(n)
            }
            updateInterest(blocked: blocked)
        }

        func updateInterest(blocked: Bool = false) {
            guard !closed else { return }
            var wanted: Interest = out.count < highWater ? .read : []
            if blocked { wanted.insert(.write) }
            if !wanted.contains(.read) && interest.contains(.read) { counts.withLock { $0.paused += 1 } }
            driver.update(&interest, to: wanted, on: loop)
        }

        func closeGracefully() {
            writeNow()
            driver.shutdownWrite()
            ended("closed")
        }

        func ended(_ how: String) {
            guard !closed else { return }
            closed = true
            counts.withLock { $0.ended = how }
            driver.close(on: loop)
        }

        func tick(now: UInt64) {}
        func flushScheduled() {}
        func loopStopped() { if !closed { closed = true; driver.close(on: loop) } }
    }

    func startEcho(_ io: IOBackend, configure: @escaping @Sendable (QueuingEcho) -> Void = { _ in }) throws -> (QueuingEcho, Int32, Int32) {
        let loop = try startLoop(io)
        let (ours, peer) = try tcpPair()
        fds.removeAll { $0 == ours }
        let echo = QueuingEcho(fd: ours, loop: loop)
        onLoop(loop) {
            configure(echo)
            try! echo.driver.register(on: loop, handler: echo, interest: .read)
            echo.driver.stageReceive(on: loop)
        }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return (echo, ours, peer)
    }

    /// Reads `count` bytes (or until EOF / the 5 s timeout).
    func readBack(_ fd: Int32, _ count: Int) -> [UInt8] {
        var back: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while back.count < count {
            let n = recv(fd, &buf, min(buf.count, count - back.count), 0)
            guard n > 0 else { break }
            back += buf[0..<n]
        }
        return back
    }

    func testEchoesOfManyRoundTripsArriveInOrderThroughTheRing() throws {
        for io in backends {
            let (echo, _, peer) = try startEcho(io)
            var expected: [UInt8] = []
            for i in 0..<400 {
                let part = pattern(1 + (i * 53) % 3000, seed: i)
                write(peer, part)
                expected += part
                // Depth 1 most of the time, every tenth pipelined behind the next.
                if i % 10 != 0 {
                    XCTAssertTrue(readBack(peer, expected.count) == expected, "\(io): echo \(i) in order")
                    expected = []
                }
            }
            let c = echo.counts.withLock { $0 }
            if io == .uring {
                XCTAssertGreaterThan(c.accepted, 300, "uring: the loop sent the echoes")
                XCTAssertLessThan(c.selfWritten, 40, "uring: the owner wrote almost nothing itself")
            } else {
                XCTAssertEqual(c.accepted, 0, "epoll: the owner writes")
            }
        }
    }

    func testBytesAddedAfterQueueingGoWithTheSendEvenWhenTheQueueMoved() throws {
        for io in backends {
            let trailer = pattern(5000, seed: 9)
            let (echo, _, peer) = try startEcho(io) { $0.trailer = trailer }
            let first = pattern(40, seed: 1)
            write(peer, first)
            XCTAssertEqual(readBack(peer, first.count + (io == .uring ? trailer.count : 0)),
                           first + (io == .uring ? trailer : []), "\(io): the echo, then what was added")
            XCTAssertNil(echo.counts.withLock { $0.ended })
        }
    }

    /// Output well above what the socket takes: short sends and full sockets end queued sends,
    /// the owner pauses reading and waits for writability, and every byte arrives in order.
    func testALargeBurstFallsBackToWriteInterestAndLosesNothing() throws {
        for io in backends {
            let (echo, ours, peer) = try startEcho(io)
            var small: Int32 = 16 << 10
            setsockopt(ours, SOL_SOCKET, SO_SNDBUF, &small, 4)
            // The peer's receive buffer small too (loopback autotuning would take megabytes).
            setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, 4)
            let sent = pattern(4 << 20)
            let writer = Thread { Self.write(peer, sent) }
            writer.start()
            usleep(100_000)  // let the server's socket fill before reading
            let back = readBack(peer, sent.count)
            XCTAssertEqual(back.count, sent.count, "\(io): every byte echoed")
            XCTAssertTrue(back == sent, "\(io): in order")
            let c = echo.counts.withLock { $0 }
            XCTAssertGreaterThanOrEqual(c.paused, 1, "\(io): backpressure paused reading")
            if io == .uring { XCTAssertGreaterThan(c.blocked, 0, "uring: a short send or EAGAIN from the ring") }
        }
    }

    /// A close right after queueing: the queued send is taken back and written before the FIN
    /// (the peer gets every byte once, then end of stream).
    func testCloseRightAfterQueueingSendsTheBytesOnceThenFIN() throws {
        for io in backends {
            let (echo, _, peer) = try startEcho(io) { $0.closeAfterEcho = true }
            let part = pattern(3000, seed: 5)
            write(peer, part)
            XCTAssertEqual(readBack(peer, part.count), part, "\(io): the echo")
            var byte: UInt8 = 0
            XCTAssertEqual(recv(peer, &byte, 1, 0), 0, "\(io): then our FIN, nothing more")
            XCTAssertEqual(echo.counts.withLock { $0.ended }, "closed")
            if io == .uring { XCTAssertEqual(echo.counts.withLock { $0.accepted }, 1) }
        }
    }

    /// A queued send taken back before the wait is not sent: the owner's own write is the only
    /// copy, and no completion comes for it.
    func testAWithdrawnSendIsNotSent() throws {
        for io in backends {
            let (echo, _, peer) = try startEcho(io) { $0.withdrawAfterQueueing = true }
            for i in 0..<20 {
                let part = pattern(500, seed: i)
                write(peer, part)
                XCTAssertEqual(readBack(peer, part.count), part, "\(io): echo \(i) once")
            }
            var byte: UInt8 = 0
            XCTAssertEqual(recv(peer, &byte, 1, Int32(MSG_DONTWAIT)), -1, "\(io): nothing more")
            if io == .uring { XCTAssertEqual(echo.counts.withLock { $0.accepted }, 20) }
        }
    }

    /// The peer resets while its echo is queued: the owner hears end of stream (from the recv
    /// or the send) and closes; the loop goes on serving others.
    func testPeerResetWhileASendIsQueuedEndsThatConnectionOnly() throws {
        for io in backends {
            let (echo, _, peer) = try startEcho(io)
            let (other, otherOurs, otherPeer) = try startEcho(io)
            _ = otherOurs
            fds.removeAll { $0 == peer }
            var lin = linger(l_onoff: 1, l_linger: 0)
            setsockopt(peer, SOL_SOCKET, SO_LINGER, &lin, socklen_t(MemoryLayout<linger>.size))
            write(peer, pattern(200_000))
            close(peer)  // RST: we never read the echo
            eventually("\(io): the reset connection ended") { echo.counts.withLock { $0.ended } != nil }
            let part = pattern(100, seed: 2)
            write(otherPeer, part)
            XCTAssertEqual(readBack(otherPeer, part.count), part, "\(io): another connection still echoes")
            XCTAssertNil(other.counts.withLock { $0.ended })
        }
    }
}
