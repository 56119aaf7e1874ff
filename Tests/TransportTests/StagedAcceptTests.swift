import Glibc
import Transport
import TransportURing
import XCTest
import TestSupport

/// Multishot accept (`EventLoop.stageAccept`): on io_uring one request accepts every
/// connection of a listener and the owner takes the new sockets through `EventLoop.accept(fd:)`;
/// on epoll the same calls poll and accept4. Every connection is accepted once, none lost past
/// the queue's limit, and sockets not taken when the listener goes are closed, not leaked.
final class StagedAcceptTests: LoopTestCase {
    final class Acceptor: EventHandler, @unchecked Sendable {
        let listener: Listener
        unowned let loop: EventLoop
        let accepted = Locked<[Int32]>([])
        /// Loop thread only: take nothing (sockets stay queued in the backend).
        var holding = false

        init(listener: Listener, loop: EventLoop) { self.listener = listener; self.loop = loop }

        func handleEvent(_ events: IOEvents) {
            guard !holding else { return }
            for _ in 0..<16 {  // a small batch: the rest must be told again next iteration
                guard let fd = loop.accept(fd: listener.fd) else { return }
                accepted.withLock { $0.append(fd) }
            }
        }
        func tick(now: UInt64) {}
        func flushScheduled() {}
        func loopStopped() {}
    }

    /// The io_uring backend of the last `start(.uring)` (tests read its counters on the loop).
    nonisolated(unsafe) var uring: URingLoopBackend?

    func start(_ io: IOBackend, holding: Bool = false) throws -> (EventLoop, Acceptor, Bool) {
        let loop: EventLoop
        if io == .uring {
            let backend = try URingLoopBackend()
            uring = backend
            loop = EventLoop(index: 0, readBufferSize: 4096, backend: backend)
            loop.start(name: "test")
            loops.append(loop)
        } else {
            loop = try startLoop(io)
        }
        nonisolated(unsafe) let listener = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
        let acceptor = Acceptor(listener: listener, loop: loop)
        let staged = Locked(false)
        onLoop(loop) {
            acceptor.holding = holding
            try! loop.register(fd: listener.fd, handler: acceptor, interest: .read)
            staged.withLock { $0 = loop.stageAccept(fd: listener.fd) }
        }
        XCTAssertEqual(staged.withLock { $0 }, io == .uring, "\(io): accept staged")
        return (loop, acceptor, staged.withLock { $0 })
    }

    func testEveryConnectionIsAcceptedOnceBeyondTheQueueLimit() throws {
        for io in backends {
            let (loop, acceptor, staged) = try start(io)
            let n = URingLoopBackend.acceptQueueLimit * 2 + 7
            var clients: [Int32] = []
            for _ in 0..<n {
                let (c, rc) = connectLoopback(port: acceptor.listener.port)
                XCTAssertEqual(rc, 0)
                clients.append(c)
            }
            fds += clients
            eventually("\(io): all \(n) accepted", within: 5000) { acceptor.accepted.withLock { $0.count } >= n }
            let accepted = acceptor.accepted.withLock { $0 }
            XCTAssertEqual(accepted.count, n, "\(io): each once")
            XCTAssertEqual(Set(accepted).count, n, "\(io): distinct sockets")
            for fd in accepted {
                XCTAssertNotEqual(fcntl(fd, F_GETFL) & O_NONBLOCK, 0, "\(io): non-blocking")
                XCTAssertNotEqual(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0, "\(io): close-on-exec")
            }
            fds += accepted
            if staged, let uring {
                nonisolated(unsafe) let backend = uring
                let counts = Locked((0, 0))
                onLoop(loop) { counts.withLock { $0 = (backend.acceptsArmed, backend.socketsAccepted) } }
                let (armed, taken) = counts.withLock { $0 }
                XCTAssertEqual(taken, n, "uring: accepted by the ring, not by accept4")
                XCTAssertLessThan(armed, n / 20, "uring: a few multishot requests (paused at the limit), not one per connection")
            }
            onLoop(loop) { loop.unregister(fd: acceptor.listener.fd); acceptor.listener.close() }
        }
    }

    func testSocketsNotTakenAreClosedWhenTheListenerGoes() throws {
        for io in backends where io == .uring {
            let (loop, acceptor, _) = try start(io, holding: true)
            let (client, rc) = connectLoopback(port: acceptor.listener.port)
            XCTAssertEqual(rc, 0)
            fds.append(client)
            usleep(100_000)  // accepted into the backend's queue, never taken
            onLoop(loop) { loop.unregister(fd: acceptor.listener.fd); acceptor.listener.close() }
            var tv = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var byte: UInt8 = 0
            var n = -1
            repeat { n = recv(client, &byte, 1, 0) } while n < 0 && errno == EINTR
            XCTAssertEqual(n, 0, "the queued socket was closed: the client sees the end (errno \(errno))")
        }
    }
}
