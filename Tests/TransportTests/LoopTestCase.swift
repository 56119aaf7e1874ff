import Glibc
import Transport
import XCTest

/// Running loops on each backend available here, with real socket pairs; everything is
/// stopped and closed after each test.
class LoopTestCase: XCTestCase {
    var loops: [EventLoop] = []
    var fds: [Int32] = []

    override func tearDown() {
        for l in loops { l.stop(); l.join() }
        loops = []
        for fd in fds { close(fd) }
        fds = []
    }

    /// The backends to run a test on: io_uring only where the probe allows it here.
    var backends: [IOBackend] {
        if case .unavailable = IOBackend.uringOutcome { return [.epoll] }
        return [.epoll, .uring]
    }

    func startLoop(_ io: IOBackend) throws -> EventLoop {
        let loop = try EventLoop(index: 0, readBufferSize: 4096, io: io)
        XCTAssertEqual(loop.io, io)
        loop.start(name: "test")
        loops.append(loop)
        return loop
    }

    /// A connected non-blocking stream pair (ours, peer); `high` moves our end to an fd ≥ 300
    /// (past the loop tables' first capacity).
    func pair(high: Bool = false) -> (Int32, Int32) {
        var sv: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &sv), 0)
        if high {
            let moved = fcntl(sv[0], F_DUPFD, 300)
            XCTAssertGreaterThanOrEqual(moved, 300)
            close(sv[0])
            sv[0] = moved
        }
        fds += sv
        return (sv[0], sv[1])
    }

    /// Runs `body` on the loop's thread and waits for it.
    func onLoop(_ loop: EventLoop, _ body: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        loop.execute { body(); done.signal() }
        XCTAssertEqual(done.wait(timeout: .now() + 2), .success, "loop task did not run")
    }

    func eventually(_ what: String, within ms: UInt64 = 2000, _ condition: () -> Bool) {
        let deadline = monotonicMillis() + ms
        while !condition() && monotonicMillis() < deadline { usleep(2000) }
        XCTAssertTrue(condition(), what)
    }
}
