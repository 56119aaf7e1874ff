import Glibc
import Transport
import TransportURing
import XCTest
import TestSupport

/// Completion-mode receive (`StreamDriver.stageReceive`, io_uring's multishot recv into the
/// loop's provided buffers) keeps the driver's receive contract: bytes in order, nothing lost
/// or duplicated, EOF and errors after the bytes before them, a paused owner stops receiving
/// and resumes, a closed connection's FIN reaches the peer. Each test runs on every backend
/// (the loop-aware driver calls read the socket on epoll) over real TCP; on io_uring it also
/// checks that the bytes came from the ring's buffers, not from a recv into the loop's buffer.
final class StagedReceiveTests: LoopTestCase {
    /// A plain-TCP owner reading through the loop-aware driver calls.
    final class Owner: EventHandler, @unchecked Sendable {
        let driver: StreamDriver
        unowned let loop: EventLoop
        struct State {
            var bytes: [UInt8] = []
            /// "eof" or "error: …", with the byte count at that moment.
            var ends: [(String, Int)] = []
            /// Chunks handed over in place from outside the loop's read buffer (the ring's).
            var fromRing = 0
            var events = 0
            var closed = false
            /// The largest single `read(into:on:)`.
            var largestRead = 0
        }
        let state = Locked(State())
        /// Loop thread only: stop reading once this many bytes arrived (nil: never).
        var pauseAt: Int?
        /// Loop thread only: read with `read(into:on:)` in pieces of this size (nil: `receive`).
        var piece: Int?
        var interest: Interest = .read

        init(fd: Int32, loop: EventLoop) {
            driver = StreamDriver(fd: fd, tls: nil)
            self.loop = loop
        }

        func handleEvent(_ events: IOEvents) {
            state.withLock { $0.events += 1 }
            if let piece { return readPieces(piece) }
            let rb = loop.readBuffer
            let end = driver.receive(on: loop) { chunk in
                let inRing = chunk.baseAddress! < rb.baseAddress! || chunk.baseAddress! >= rb.baseAddress! + rb.count
                let total = state.withLock { s in
                    s.bytes += chunk
                    if inRing { s.fromRing += 1 }
                    return s.bytes.count
                }
                if let p = pauseAt, total >= p { return false }
                return true
            }
            switch end {
            case .drained, .writeBlocked: break
            case .stopped: driver.update(&interest, to: [], on: loop)
            case .eof: ended("eof")
            case .error(let why): ended("error: \(why)")
            }
        }

        func readPieces(_ size: Int) {
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
            defer { buf.deallocate() }
            while true {
                switch driver.read(into: buf, on: loop) {
                case .done(let n): state.withLock { s in
                    s.bytes += buf[0..<n]
                    s.largestRead = max(s.largestRead, n)
                }
                case .wantRead, .wantWrite: return
                case .eof: return ended("eof")
                case .error(let why): return ended("error: \(why)")
                }
            }
        }

        func ended(_ how: String) {
            state.withLock { s in
                s.ends.append((how, s.bytes.count))
                s.closed = true
            }
            driver.close(on: loop)
        }

        func resume() {
            pauseAt = nil
            driver.update(&interest, to: .read, on: loop)
        }

        func tick(now: UInt64) {}
        func flushScheduled() {}
        func loopStopped() { if !state.withLock({ $0.closed }) { driver.close(on: loop) } }
    }

    /// A connected TCP pair over loopback: (ours, non-blocking; peer, blocking).
    func tcpPair() throws -> (Int32, Int32) {
        let listener = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
        defer { listener.close() }
        let (peer, rc) = connectLoopback(port: listener.port)
        XCTAssertEqual(rc, 0)
        var ours: Int32 = -1
        for _ in 0..<200 where ours < 0 {
            ours = accept(listener.fd, nil, nil)
            if ours < 0 { usleep(1000) }
        }
        XCTAssertGreaterThanOrEqual(ours, 0)
        _ = fcntl(ours, F_SETFL, fcntl(ours, F_GETFL) | O_NONBLOCK)
        fds += [ours, peer]
        return (ours, peer)
    }

    func write(_ fd: Int32, _ bytes: [UInt8]) { Self.write(fd, bytes) }

    static func write(_ fd: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return XCTFail("send failed: \(errno)") }
            off += n
        }
    }

    func pattern(_ count: Int, seed: Int = 0) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: ($0 &* 31) ^ ($0 >> 8) &+ seed) } }

    /// Registers `owner`'s fd and stages its input; true if the backend stages it.
    func stage(_ owner: Owner, on loop: EventLoop) -> Bool {
        let staged = Locked(false)
        onLoop(loop) {
            try! owner.driver.register(on: loop, handler: owner, interest: .read)
            staged.withLock { $0 = owner.driver.stageReceive(on: loop) }
        }
        let s = staged.withLock { $0 }
        XCTAssertEqual(s, loop.io == .uring, "\(loop.io): staged")
        return s
    }

    func testBytesArriveInOrderAcrossManyCompletions() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = try tcpPair()
            let owner = Owner(fd: ours, loop: loop)
            let staged = stage(owner, on: loop)
            var sent: [UInt8] = []
            for i in 0..<300 {
                let part = pattern(1 + (i * 37) % 1500, seed: i)
                write(peer, part)
                sent += part
                if i % 25 == 0 { usleep(2000) }  // separate completions
            }
            eventually("\(io): every byte") { owner.state.withLock { $0.bytes.count } >= sent.count }
            XCTAssertTrue(owner.state.withLock { $0.bytes == sent }, "\(io): bytes in order, none lost or repeated")
            if staged { XCTAssertGreaterThan(owner.state.withLock { $0.fromRing }, 1, "uring: bytes from the ring's buffers") }
        }
    }

    func testOwnerReadingInPiecesTakesStagedBuffersInPieces() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = try tcpPair()
            let owner = Owner(fd: ours, loop: loop)
            owner.piece = 7
            _ = stage(owner, on: loop)
            let sent = pattern(20_000)
            write(peer, sent)
            eventually("\(io): every byte") { owner.state.withLock { $0.bytes.count } >= sent.count }
            XCTAssertTrue(owner.state.withLock { $0.bytes == sent }, "\(io): pieces in order")
        }
    }

    /// An owner reading a large frame's payload into its own buffer (reads of ≥ 64 KiB) gets
    /// the bytes straight from the socket, not 16 KiB at a time through the ring and a copy;
    /// the ring receives again once it reads with `receive`.
    func testLargeReadsGoStraightToTheOwnersBuffer() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = try tcpPair()
            let owner = Owner(fd: ours, loop: loop)
            owner.piece = 256 << 10
            let staged = stage(owner, on: loop)
            let sent = pattern(4 << 20)
            let writer = Thread { Self.write(peer, sent) }
            writer.start()
            eventually("\(io): every byte", within: 5000) { owner.state.withLock { $0.bytes.count } >= sent.count }
            XCTAssertTrue(owner.state.withLock { $0.bytes == sent }, "\(io): in order")
            if staged {
                XCTAssertGreaterThan(owner.state.withLock { $0.largestRead }, URingLoopBackend.defaultBufferSize,
                                     "uring: large reads bypass the provided buffers")
                // Back to `receive`: the ring receives again.
                onLoop(loop) { owner.piece = nil }
                let more = pattern(100_000, seed: 3)
                write(peer, more)
                eventually("uring: bytes after the large reads") { owner.state.withLock { $0.bytes.count } >= sent.count + more.count }
                XCTAssertTrue(owner.state.withLock { $0.bytes == sent + more }, "uring: in order after switching back")
                let before = owner.state.withLock { $0.fromRing }
                write(peer, pattern(1000, seed: 4))
                eventually("uring: from the ring again") { owner.state.withLock { $0.fromRing } > before }
            }
        }
    }

    func testPausedOwnerStopsReceivingThenResumesLosingNothing() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = try tcpPair()
            let owner = Owner(fd: ours, loop: loop)
            onLoop(loop) { owner.pauseAt = 3000 }
            _ = stage(owner, on: loop)
            var sent: [UInt8] = []
            for i in 0..<40 {
                let part = pattern(1000, seed: i)
                write(peer, part)
                sent += part
                usleep(1000)
            }
            eventually("\(io): paused after 3000 bytes") { owner.state.withLock { $0.bytes.count } >= 3000 }
            usleep(150_000)
            let whilePaused = owner.state.withLock { ($0.bytes.count, $0.events) }
            usleep(150_000)
            XCTAssertLessThan(whilePaused.0, sent.count, "\(io): kept reading while paused")
            XCTAssertEqual(owner.state.withLock { ($0.bytes.count, $0.events) }.0, whilePaused.0, "\(io): bytes delivered while paused")
            // 1 MiB more while paused stays in the socket, not in the ring's buffers: the recv
            // was cancelled (the writer blocks once the socket buffers are full).
            let more = pattern(1 << 20, seed: 7)
            sent += more
            let writer = Thread { Self.write(peer, more) }
            writer.start()
            usleep(200_000)
            if loop.staged != nil {
                let held = Locked(0)
                onLoop(loop) { held.withLock { $0 = loop.staged!.held } }
                XCTAssertLessThanOrEqual(held.withLock { $0 }, 8, "uring: buffers filled while paused")
            }
            onLoop(loop) { owner.resume() }
            eventually("\(io): every byte after resuming") { owner.state.withLock { $0.bytes.count } >= sent.count }
            XCTAssertTrue(owner.state.withLock { $0.bytes == sent }, "\(io): nothing lost or duplicated across the pause")
        }
    }

    func testEndOfStreamComesAfterTheBytes() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = try tcpPair()
            let owner = Owner(fd: ours, loop: loop)
            _ = stage(owner, on: loop)
            let sent = pattern(50_000)
            write(peer, sent)
            shutdown(peer, Int32(SHUT_WR))
            eventually("\(io): EOF") { owner.state.withLock { !$0.ends.isEmpty } }
            owner.state.withLock { s in
                XCTAssertEqual(s.bytes, sent, "\(io): bytes before EOF")
                XCTAssertEqual(s.ends.map(\.0), ["eof"], "\(io): one EOF")
                XCTAssertEqual(s.ends.first?.1, sent.count, "\(io): EOF after every byte")
            }
        }
    }

    func testResetIsEndOfStream() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = try tcpPair()
            let owner = Owner(fd: ours, loop: loop)
            _ = stage(owner, on: loop)
            let sent = pattern(1000)
            write(peer, sent)
            eventually("\(io): bytes") { owner.state.withLock { $0.bytes.count } == sent.count }
            var lin = linger(l_onoff: 1, l_linger: 0)
            setsockopt(peer, SOL_SOCKET, SO_LINGER, &lin, socklen_t(MemoryLayout<linger>.size))
            close(peer)
            fds.removeAll { $0 == peer }
            eventually("\(io): reset seen") { owner.state.withLock { !$0.ends.isEmpty } }
            XCTAssertEqual(owner.state.withLock { $0.ends.map(\.0) }, ["eof"], "\(io): a reset is EOF")
        }
    }

    /// Two 64-byte buffers: the multishot recv runs out (ENOBUFS) at once; the bytes stay in
    /// the socket, the owner reads them directly, and receiving resumes.
    func testTinyBufferRingRunsOutAndRecovers() throws {
        guard backends.contains(.uring) else { throw XCTSkip("io_uring unavailable here") }
        nonisolated(unsafe) let backend = try URingLoopBackend(bufferCount: 2, bufferSize: 64)
        let loop = EventLoop(index: 0, readBufferSize: 4096, backend: backend)
        loop.start(name: "test")
        loops.append(loop)
        let (ours, peer) = try tcpPair()
        let owner = Owner(fd: ours, loop: loop)
        _ = stage(owner, on: loop)
        var sent: [UInt8] = []
        for i in 0..<20 {
            let part = pattern(3000, seed: i)
            write(peer, part)
            sent += part
            usleep(2000)
        }
        eventually("every byte") { owner.state.withLock { $0.bytes.count } >= sent.count }
        XCTAssertTrue(owner.state.withLock { $0.bytes == sent }, "bytes in order through ENOBUFS")
        let starved = Locked(0)
        onLoop(loop) { starved.withLock { $0 = backend.starvedRecvs } }
        XCTAssertGreaterThan(starved.withLock { $0 }, 0, "the ring ran out")
        XCTAssertGreaterThan(owner.state.withLock { $0.fromRing }, 0, "and was used")
    }

    /// The armed recv holds the socket's file: closing must cancel it, or no FIN goes out.
    func testClosingWithARecvInFlightSendsFIN() throws {
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = try tcpPair()
            fds.removeAll { $0 == ours }
            let owner = Owner(fd: ours, loop: loop)
            _ = stage(owner, on: loop)
            write(peer, pattern(100))
            eventually("\(io): bytes") { owner.state.withLock { $0.bytes.count } == 100 }
            onLoop(loop) {
                owner.state.withLock { $0.closed = true }
                owner.driver.close(on: loop)
            }
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var byte: UInt8 = 0
            XCTAssertEqual(recv(peer, &byte, 1, 0), 0, "\(io): the peer sees our FIN")
            // Bytes sent after the close must not reach a freed buffer or a new owner.
            write(peer, pattern(100))
            usleep(50_000)
            XCTAssertEqual(owner.state.withLock { $0.bytes.count }, 100, "\(io): nothing after close")
        }
    }

    /// An owner whose output is stuck (the peer does not read) stops reading with write
    /// interest only, and once the peer reads, writes the rest and reads again: every byte the
    /// peer sent meanwhile arrives, in order.
    func testBackpressurePausesAndResumes() throws {
        final class Echo: EventHandler, @unchecked Sendable {
            let driver: StreamDriver
            unowned let loop: EventLoop
            var interest: Interest = .read
            var out: [UInt8] = []
            let received = Locked(0)
            let paused = Locked(0)
            let highWater = 256 << 10
            init(fd: Int32, loop: EventLoop) { driver = StreamDriver(fd: fd, tls: nil); self.loop = loop }
            func handleEvent(_ events: IOEvents) {
                if events.contains(.writable) { flush() }
                guard interest.contains(.read), events.wantsRead else { return }
                let end = driver.receive(on: loop) { chunk in
                    out += chunk
                    received.withLock { $0 += chunk.count }
                    return out.count < highWater
                }
                if case .eof = end { return }
                flush()
            }
            func flush() {
                while !out.isEmpty {
                    guard case .done(let n) = out.withUnsafeBytes({ driver.write($0) }) else { break }
                    out.removeFirst(n)
                }
                let wanted: Interest = out.isEmpty ? .read : (out.count >= highWater ? .write : [.read, .write])
                if wanted == .write && interest != .write { paused.withLock { $0 += 1 } }
                driver.update(&interest, to: wanted, on: loop)
            }
            func tick(now: UInt64) {}
            func flushScheduled() {}
            func loopStopped() { driver.close(on: loop) }
        }
        for io in backends {
            let loop = try startLoop(io)
            let (ours, peer) = try tcpPair()
            fds.removeAll { $0 == ours }
            var small: Int32 = 16 << 10
            setsockopt(ours, SOL_SOCKET, SO_SNDBUF, &small, 4)
            let echo = Echo(fd: ours, loop: loop)
            onLoop(loop) {
                try! echo.driver.register(on: loop, handler: echo, interest: .read)
                echo.driver.stageReceive(on: loop)
            }
            let sent = pattern(2 << 20)
            let writer = Thread { Self.write(peer, sent) }
            writer.start()
            eventually("\(io): paused for backpressure", within: 5000) { echo.paused.withLock { $0 } >= 1 }
            var back: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 65536)
            var tv = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(peer, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            while back.count < sent.count {
                let n = recv(peer, &buf, buf.count, 0)
                if n < 0 && errno == EINTR { continue } // SO_RCVTIMEO: not restarted (see readBack)
                guard n > 0 else { break }
                back += buf[0..<n]
            }
            XCTAssertEqual(back.count, sent.count, "\(io): every byte echoed")
            XCTAssertTrue(back == sent, "\(io): in order")
            onLoop(loop) { loop.unregisterClosing(fd: ours); close(ours) }
        }
    }
}
