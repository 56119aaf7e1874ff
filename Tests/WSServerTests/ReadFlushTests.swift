#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Transport
@testable import WSServer
import XCTest

/// When answers to a read are written: at the end of that read (one write for everything the
/// read produced), before the loop reads the next ready connection — not at the end of the
/// loop iteration, after every other connection of the batch was read. On io_uring a plain-TCP
/// WebSocket's answers instead go with the iteration's one io_uring_enter (no send syscall).
extension LibraryAPITests {
    /// Echoes; on the message "probe" it first records whether the echo of an earlier
    /// connection already reached that connection's client socket.
    final class ProbingEcho: WebSocketHandler, @unchecked Sendable {
        let watchedClientFD = Atomic<Int32>(-1)
        let earlierEchoWasOut = Locked<[Bool]>([])
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {
            if String(decoding: message.bytes, as: UTF8.self) == "probe" {
                var byte: UInt8 = 0
                let n = recv(watchedClientFD.load(ordering: .relaxed), &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
                earlierEchoWasOut.withLock { $0.append(n == 1) }
            }
            connection.send(message)
        }
    }

    func testAReadsAnswersAreWrittenBeforeTheNextConnectionIsRead() throws {
        let handler = ProbingEcho()
        let server = try makeServer(routes: [("/", handler)])
        defer { server.stop(); server.wait() }
        let first = try RawClient(port: server.port)
        let second = try RawClient(port: server.port)
        _ = try first.upgrade()
        _ = try second.upgrade()
        handler.watchedClientFD.store(first.fd, ordering: .relaxed)

        // Hold the loop inside a task while both messages arrive, so that one wait reports both
        // connections (ready in this order).
        let held = Atomic<Bool>(false)
        let release = Atomic<Bool>(false)
        server.loops[0].execute {
            held.store(true, ordering: .releasing)
            while !release.load(ordering: .acquiring) { sched_yield() }
        }
        while !held.load(ordering: .acquiring) { sched_yield() }
        try first.sendAll(maskedFrame(0x1, Array("hello".utf8)))
        try second.sendAll(maskedFrame(0x1, Array("probe".utf8)))
        release.store(true, ordering: .releasing)

        // The second echo first: nobody reads the first client's socket before the probe looked.
        try second.readExactly(7)
        XCTAssertEqual(Array(second.readBuffer[0..<7]), [0x81, 5] + Array("probe".utf8))
        try first.readExactly(7)
        XCTAssertEqual(Array(first.readBuffer[0..<7]), [0x81, 5] + Array("hello".utf8))
        // io_uring (plain TCP): the answers of every read of the batch go to the kernel together,
        // in the iteration's one io_uring_enter (batched sends), not one send per read.
        let batched = server.loops[0].io == .uring
        XCTAssertEqual(handler.earlierEchoWasOut.withLock { $0 }, [!batched],
                       batched ? "io_uring: the first echo was sent on its own, not with the batch"
                               : "the first connection's echo waited for the end of the loop iteration")
    }
}
