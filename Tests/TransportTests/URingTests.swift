import Dispatch
import Foundation
import Glibc
import Transport
import TransportURing
import XCTest
import TestSupport

/// The io_uring wrapper on real rings and real loopback sockets: multishot accept, multishot
/// recv with a provided-buffer ring, batched sends in one submit, zero-copy send, cancel, close.
final class URingTests: XCTestCase {
    var uring: URing!
    var listener: Listener!
    var open: [Int32] = []

    override func setUpWithError() throws {
        if case .unavailable(let why) = URingProbe.check() {
            // The probe's answer is what the server acts on (fallback to epoll); here it means
            // the kernel or a sandbox forbids io_uring, so nothing below can run.
            throw XCTSkip("io_uring unavailable: \(why)")
        }
        uring = try URing(entries: 64)
        listener = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
    }

    override func tearDown() {
        for fd in open { close(fd) }
        listener?.close()
        uring = nil
    }

    // MARK: - Helpers

    func connectClient() throws -> Int32 {
        let (fd, rc) = connectLoopback(port: listener.port)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(rc, 0, "connect: \(errno)")
        open.append(fd)
        return fd
    }

    /// Waits (≤ 2 s) until `count` completions arrived; returns them in order.
    func completions(_ count: Int, file: StaticString = #filePath, line: UInt = #line) -> [URing.Completion] {
        var got: [URing.Completion] = []
        let deadline = monotonicMillis() + 2000
        while got.count < count && monotonicMillis() < deadline {
            uring.submitAndWait(timeoutMillis: 50)
            uring.drainCompletions { got.append($0) }
        }
        XCTAssertEqual(got.count, count, "completions", file: file, line: line)
        return got
    }

    /// A server-side socket: multishot accept of one client.
    func acceptedPair() throws -> (client: Int32, server: Int32) {
        uring.prepareMultishotAccept(listener: listener.fd, userData: 1)
        let client = try connectClient()
        let c = completions(1)
        let server = try XCTUnwrap(c.first).result
        XCTAssertGreaterThanOrEqual(server, 0)
        open.append(server)
        return (client, server)
    }

    func sendAll(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        XCTAssertEqual(bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }, bytes.count)
    }

    /// Reads exactly `count` bytes (blocking socket, ≤ 2 s).
    static func receive(_ fd: Int32, _ count: Int) -> [UInt8] {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = out.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            // With SO_RCVTIMEO a signal is not restarted, and io_uring's task-work notifications
            // to this (submitting) thread are one.
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            got += n
        }
        return Array(out[0..<got])
    }

    // MARK: - Tests

    func testMultishotAcceptCompletesOncePerConnectionAndStaysArmed() throws {
        uring.prepareMultishotAccept(listener: listener.fd, userData: 7)
        XCTAssertEqual(uring.pending, 1, "prepared, not yet submitted")
        XCTAssertEqual(uring.submit(), 1)
        XCTAssertEqual(uring.pending, 0)
        for _ in 0..<3 { _ = try connectClient() }
        let c = completions(3)
        for done in c {
            XCTAssertEqual(done.userData, 7)
            XCTAssertGreaterThanOrEqual(done.result, 0, "an accepted descriptor")
            XCTAssertTrue(done.hasMore, "one submission accepts every connection")
            open.append(done.result)
            XCTAssertNotEqual(fcntl(done.result, F_GETFL) & O_NONBLOCK, 0, "accepted non-blocking")
        }
        XCTAssertEqual(Set(c.map(\.result)).count, 3)
    }

    func testMultishotRecvFillsProvidedBuffersAndEndsAtEOF() throws {
        let (client, server) = try acceptedPair()
        let buffers = try URingBufferRing(uring: uring, group: 3, count: 4, size: 256)
        uring.prepareMultishotRecv(fd: server, group: 3, userData: 9)
        var received: [UInt8] = []
        for text in ["hello", " io_uring", " world"] {
            sendAll(client, text)
            let c = try XCTUnwrap(completions(1).first)
            XCTAssertEqual(c.userData, 9)
            XCTAssertTrue(c.hasMore, "multishot recv stays armed")
            let id = try XCTUnwrap(c.bufferID, "data lands in a provided buffer")
            received += Array(buffers.buffer(id, length: Int(c.result)))
            buffers.recycle(id)
            buffers.publish()
        }
        XCTAssertEqual(String(decoding: received, as: UTF8.self), "hello io_uring world")
        shutdown(client, Int32(SHUT_WR))
        let eof = try XCTUnwrap(completions(1).first)
        XCTAssertEqual(eof.result, 0, "EOF")
        XCTAssertFalse(eof.hasMore, "EOF ends the multishot recv")
    }

    func testRecvWithoutFreeBuffersEndsWithENOBUFS() throws {
        // Idle connections hold no buffer, so the group can run dry under load: the recv then
        // ends (no F_MORE) with -ENOBUFS, and the data waits in the socket until it is re-armed.
        let (client, server) = try acceptedPair()
        let buffers = try URingBufferRing(uring: uring, group: 4, count: 1, size: 64)
        uring.prepareMultishotRecv(fd: server, group: 4, userData: 11)
        sendAll(client, "first")
        let first = try XCTUnwrap(completions(1).first)
        let id = try XCTUnwrap(first.bufferID)
        sendAll(client, "second")
        let dry = try XCTUnwrap(completions(1).first)
        XCTAssertEqual(dry.result, -ENOBUFS)
        XCTAssertFalse(dry.hasMore)
        buffers.recycle(id)
        buffers.publish()
        uring.prepareMultishotRecv(fd: server, group: 4, userData: 12)
        let again = try XCTUnwrap(completions(1).first)
        XCTAssertEqual(again.userData, 12)
        let id2 = try XCTUnwrap(again.bufferID)
        XCTAssertEqual(String(decoding: buffers.buffer(id2, length: Int(again.result)), as: UTF8.self), "second")
    }

    func testSendsOfManyConnectionsGoInOneSubmit() throws {
        uring.prepareMultishotAccept(listener: listener.fd, userData: 1)
        let clients = try (0..<8).map { _ in try connectClient() }
        let servers = completions(8).map(\.result)
        open += servers
        let messages = (0..<8).map { Array("message for connection \($0)".utf8) }
        for (i, fd) in servers.enumerated() {
            messages[i].withUnsafeBytes { uring.prepareSend(fd: fd, $0, userData: 100 + UInt64(i)) }
        }
        XCTAssertEqual(uring.pending, 8)
        XCTAssertEqual(uring.submit(), 8, "every connection's send in one io_uring_enter")
        let done = completions(8)
        for c in done {
            let i = Int(c.userData - 100)
            XCTAssertEqual(Int(c.result), messages[i].count)
        }
        // Which client got which bytes depends on accept order; every message arrived whole.
        let got = Set(clients.map { fd in Self.receive(fd, messages[0].count) })
        XCTAssertEqual(got, Set(messages.map { Array($0.prefix(messages[0].count)) }))
    }

    func testZeroCopySendCompletesThenNotifies() throws {
        guard URingProbe.hasSendZeroCopy() else { throw XCTSkip("no IORING_OP_SEND_ZC (Linux < 6.0)") }
        let (client, server) = try acceptedPair()
        let payload = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let got = Locked<[UInt8]>([])
        let finished = DispatchSemaphore(value: 0)
        let count = payload.count
        Thread {
            let bytes = URingTests.receive(client, count)
            got.withLock { $0 = bytes }
            finished.signal()
        }.start()
        var sent = 0
        var notified = false
        payload.withUnsafeBytes { p in
            uring.prepareSendZeroCopy(fd: server, p, userData: 5)
            let deadline = monotonicMillis() + 3000
            while (sent == 0 || !notified) && monotonicMillis() < deadline {
                uring.submitAndWait(timeoutMillis: 50)
                uring.drainCompletions { c in
                    XCTAssertEqual(c.userData, 5)
                    if c.isNotification { notified = true } else { sent = Int(c.result); XCTAssertTrue(c.hasMore) }
                }
            }
        }
        XCTAssertGreaterThan(sent, 0, "a short send is allowed, a failed one is not")
        XCTAssertTrue(notified, "the buffer is released by a notification completion")
        shutdown(server, Int32(SHUT_WR))  // the reader stops at EOF
        XCTAssertEqual(finished.wait(timeout: .now() + 5), .success)
        XCTAssertEqual(got.withLock { $0 }, Array(payload.prefix(sent)), "what was sent in place arrived unchanged")
    }

    func testCancelEndsAMultishotAcceptAndCloseClosesTheSocket() throws {
        uring.prepareMultishotAccept(listener: listener.fd, userData: 21)
        uring.submit()
        uring.prepareCancel(userData: 21, userData: 22)
        let c = completions(2).sorted { $0.userData < $1.userData }
        XCTAssertEqual(c[0].result, -ECANCELED)
        XCTAssertFalse(c[0].hasMore)
        XCTAssertEqual(c[1].result, 1, "one request cancelled")

        let (client, server) = try acceptedPair()
        open.removeAll { $0 == server }
        uring.prepareClose(fd: server, userData: 23)
        XCTAssertEqual(try XCTUnwrap(completions(1).first).result, 0)
        XCTAssertEqual(Self.receive(client, 1), [], "the peer sees EOF")
    }

    func testWaitTimesOutWithNothingToDo() throws {
        let t0 = monotonicMillis()
        XCTAssertEqual(uring.submitAndWait(timeoutMillis: 30), -ETIME)
        XCTAssertGreaterThanOrEqual(monotonicMillis() - t0, 25)
        XCTAssertEqual(uring.drainCompletions { _ in XCTFail("no completion expected") }, 0)
    }

    func testProbeAndSetup() throws {
        XCTAssertEqual(URingProbe.check(), .available)
        XCTAssertGreaterThanOrEqual(uring.fd, 0)
        XCTAssertThrowsError(try URing(entries: 1 << 20), "more entries than the kernel allows")
    }
}
