#if canImport(Glibc)
import Glibc
#endif
import CMallocCounter
import XCTest
import WebSocket
@testable import WSServer

/// The per-connection byte budget, written down and checked: an idle WebSocket connection is
/// one `WebSocketConnection` object (which holds the protocol state inline), one output
/// `ByteBuffer` object (storage released while idle) and one stream object.
final class MemoryBudgetTests: XCTestCase {
    func testProtocolStateSize() {
        let size = MemoryLayout<WebSocketProtocol>.size
        print("WebSocketProtocol: \(size) bytes")
        XCTAssertLessThanOrEqual(size, 128)  // 160 before the fields were ordered widest first
        XCTAssertLessThanOrEqual(MemoryLayout<FrameHeader>.size, 32)
        XCTAssertLessThanOrEqual(MemoryLayout<UTF8Validator>.size, 3)
    }
}

import Transport

extension MemoryBudgetTests {
    /// A connection as the server makes one (no socket: nothing here does I/O).
    func makeConnection() throws -> WebSocketConnection {
        var config = ServerConfiguration()
        config.threads = 1
        let loop = try EventLoop(index: 0, readBufferSize: 4096)
        let core = ServerCore(configuration: config, logger: .init(label: "t"), tls: nil, loops: [loop])
        return WebSocketConnection(id: 1, loop: loop, fd: -1, tls: nil, core: core)
    }

    /// Heap bytes of one idle plain-TCP WebSocket connection's own objects (malloc's usable
    /// sizes): the connection (protocol state inline) and its output buffer object.
    func testIdleConnectionObjects() throws {
        let c = try makeConnection()
        c.httpParser = nil  // as after the upgrade
        func heap(_ o: AnyObject) -> Int { Int(wss_heap_size(Unmanaged.passUnretained(o).toOpaque())) }
        let total = heap(c) + heap(c.proto.outbound)
        print("idle connection objects: connection \(heap(c)) + output buffer \(heap(c.proto.outbound)) = \(total) bytes")
        // 248 usable bytes is a 256-byte malloc chunk (264, a 272-byte chunk, with the head
        // parser and the held-back input inline).
        XCTAssertLessThanOrEqual(heap(c), 248)
        XCTAssertNil(c.extras, "an idle connection holds no extras box")
        XCTAssertLessThanOrEqual(total, 304)  // 320 before, 368 before the protocol state shrank to 128 bytes and the subscriptions moved to extras
    }

    /// A head in pieces and input held back by backpressure live in the extras box, which goes
    /// once they are over (an idle connection whose head came in pieces holds none).
    func testColdStateLeavesNoExtrasBehind() throws {
        let c = try makeConnection()
        c.pendingInput = ByteBuffer(capacity: 16)
        XCTAssertNotNil(c.extras)
        c.pendingInput = nil
        XCTAssertNil(c.extras)
        c.httpParser = HTTPParserBox(HTTPHeadParser(limits: c.core.configuration.headLimits))
        c.extras?.subprotocol = "chat"
        c.httpParser = nil
        XCTAssertEqual(c.subprotocol, "chat", "a box still in use stays")
        c.extras?.subprotocol = nil
        c.httpParser = nil
        XCTAssertNil(c.extras)
    }
}
