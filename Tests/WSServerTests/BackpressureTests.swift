import Transport
import WebSocket
@testable import WSServer
import XCTest

/// Backpressure bookkeeping of a connection without sockets: where the frame being written
/// ends (so close-on-backpressure can discard the backlog behind it), and the count of
/// dropped messages a handler can read.
final class BackpressureTests: XCTestCase {
    func frame(_ payload: Int) -> [UInt8] {
        var p = WebSocketProtocol(role: .server)
        let bytes = [UInt8](repeating: 7, count: payload)
        bytes.withUnsafeBytes { p.send(.binary, $0) }
        return p.outbound.bytes
    }

    func testFrameLengthReadsEveryLengthForm() {
        for n in [0, 125, 126, 65535, 65536, 300_000] {
            let f = frame(n)
            f.withUnsafeBytes { XCTAssertEqual(WebSocketConnection.frameLength($0, at: 0), f.count, "payload \(n)") }
        }
    }

    func makeConnection(closeOnBackpressure: Bool) throws -> WebSocketConnection {
        var config = ServerConfiguration()
        config.threads = 1
        config.closeOnBackpressureLimit = closeOnBackpressure
        config.maxBackpressure = 1 << 20
        config.highWaterMark = 1 << 19
        let loop = try EventLoop(index: 0, readBufferSize: 4096)
        let core = ServerCore(configuration: config, logger: .init(label: "t"), tls: nil, loops: [loop])
        return WebSocketConnection(id: 1, loop: loop, fd: -1, tls: nil, core: core)
    }

    /// Writes of odd sizes across frames of three length forms: the tracked boundary is
    /// always where the frame under the read position ends.
    func testFrameBoundaryIsTrackedAcrossPartialWrites() throws {
        let c = try makeConnection(closeOnBackpressure: true)
        let http = Array("HTTP/1.1 101 Switching Protocols\r\n\r\n".utf8)
        let frames = [frame(10), frame(200), frame(70_000), frame(3)]
        let stream = http + frames.joined()
        var ends: [Int] = [http.count]
        for f in frames { ends.append(ends.last! + f.count) }
        c.extrasBox.headRemaining = http.count  // as the upgrade sets it
        var position = 0
        for step in [1, 5, 40, 100, 1000, 65_000, 4000, 250, 2, 7, stream.count] {
            let n = min(step, stream.count - position)
            if n == 0 { break }
            stream.withUnsafeBytes { c.trackFrameBoundary(UnsafeRawBufferPointer(rebasing: $0[position...]), written: n) }
            position += n
            let end = ends.first { $0 >= position } ?? position
            let expected = end == position ? 0 : end - position
            XCTAssertEqual(c.extras?.headRemaining, expected, "after \(position) bytes")
        }
    }

    func testDiscardBacklogKeepsTheFrameBeingWritten() throws {
        let c = try makeConnection(closeOnBackpressure: true)
        let out = c.proto.outbound
        let partial = frame(1000)
        out.append(partial.withUnsafeBytes { UnsafeRawBufferPointer(rebasing: $0[300...]) })
        out.append(frame(50_000))
        out.append(frame(50_000))
        c.extrasBox.headRemaining = partial.count - 300
        c.discardBacklog()
        XCTAssertEqual(out.bytes, Array(partial[300...]))
    }

    func testDroppedMessagesAreCountedForTheHandler() throws {
        let c = try makeConnection(closeOnBackpressure: false)
        c.policy.opened(now: 0)
        let big = [UInt8](repeating: 1, count: 200_000)
        var dropped = 0
        for _ in 0..<10 where c.send(binary: big) == .dropped { dropped += 1 }
        XCTAssertEqual(dropped, 5, "1 MiB limit: five 200 KB messages fit")
        XCTAssertEqual(c.droppedMessages, 5)
        XCTAssertTrue(c.isOpen, "the default policy drops and keeps the connection")
    }

    func testCloseOnBackpressureQueuesTheCloseRightAfterTheFrameInProgress() throws {
        let c = try makeConnection(closeOnBackpressure: true)
        c.policy.opened(now: 0)
        c.extrasBox.headRemaining = 0  // as the upgrade leaves it once the 101 is written
        let big = [UInt8](repeating: 1, count: 200_000)
        // Nothing is written (no socket): the head is at a frame boundary.
        var results: [SendStatus] = []
        for _ in 0..<6 { results.append(c.send(binary: big)) }
        XCTAssertEqual(results.last, .dropped)
        XCTAssertFalse(c.isOpen)
        // The backlog is gone; only the close frame (1008) is queued.
        let queued = c.proto.outbound.bytes
        XCTAssertEqual(queued.first, 0x88)
        XCTAssertEqual(Array(queued[2..<4]), [0x03, 0xF0])
    }
}
