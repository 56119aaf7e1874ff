import Glibc
import Transport
import TransportURing
import XCTest
import TestSupport

/// What the loop's batched sends rely on, checked on this kernel rather than assumed: a
/// MSG_DONTWAIT send on a socket is issued inline while the ring submits and completes there
/// (the count taken, maybe short, or -EAGAIN; no internal poll armed), so once the submitting
/// io_uring_enter returned its completion is in the ring and the sender's bytes are free again.
extension URingTests {
    /// Fills `fd`'s send buffer (kept small) until the socket refuses more.
    func fill(_ fd: Int32) -> Int {
        var size: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        let chunk = [UInt8](repeating: 7, count: 16 << 10)
        var total = 0
        while true {
            let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            if n <= 0 { break }
            total += n
        }
        XCTAssertEqual(errno, EAGAIN)
        return total
    }

    func testNoWaitSendOnAFullSocketCompletesWithEAGAINDuringTheSubmit() throws {
        let (client, server) = try acceptedPair()
        _ = fill(server)
        let bytes = [UInt8](repeating: 1, count: 1000)
        bytes.withUnsafeBytes { XCTAssertTrue(uring.prepareSendNoWait(fd: server, $0, userData: 9)) }
        uring.submit()
        // No wait: the completion was posted while submitting.
        XCTAssertEqual(uring.ready, 1, "completed inline")
        var got: [URing.Completion] = []
        uring.drainCompletions { got.append($0) }
        XCTAssertEqual(got.first?.userData, 9)
        XCTAssertEqual(got.first?.result, -EAGAIN, "a full socket: -EAGAIN, not a poll that waits")
        _ = client
    }

    func testNoWaitSendTakesWhatFitsAndSaysHowMuch() throws {
        let (client, server) = try acceptedPair()
        let filled = fill(server)
        // Make room for some, not all (once the reads are acknowledged).
        _ = Self.receive(client, filled)
        usleep(50_000)
        let big = [UInt8](repeating: 2, count: 4 << 20)
        big.withUnsafeBytes { XCTAssertTrue(uring.prepareSendNoWait(fd: server, $0, userData: 5)) }
        uring.submit()
        XCTAssertEqual(uring.ready, 1, "completed inline")
        var got: [URing.Completion] = []
        uring.drainCompletions { got.append($0) }
        let n = try XCTUnwrap(got.first).result
        XCTAssertGreaterThan(n, 0, "some bytes fit")
        XCTAssertLessThan(n, Int32(big.count), "a short count, not a wait for the rest")
    }

    func testNoWaitSendHasCopiedTheBytesWhenTheSubmitReturns() throws {
        let (client, server) = try acceptedPair()
        var bytes = Array("first".utf8)
        bytes.withUnsafeBytes { XCTAssertTrue(uring.prepareSendNoWait(fd: server, $0, userData: 3)) }
        uring.submit()
        // The sender reuses its buffer at once (the loop's owners may append and move theirs).
        bytes.withUnsafeMutableBytes { $0.copyBytes(from: Array("XXXXX".utf8)) }
        XCTAssertEqual(String(decoding: Self.receive(client, 5), as: UTF8.self), "first")
        var got: [URing.Completion] = []
        uring.drainCompletions { got.append($0) }
        XCTAssertEqual(got.first?.result, 5)
    }
}
