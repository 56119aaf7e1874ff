#if canImport(Glibc)
import Glibc
#endif
import CMallocCounter
import XCTest
import WebSocket
@testable import WSServer

/// The per-connection byte budget, written down and checked: an idle WebSocket connection is
/// one `WebSocketConnection` object (which holds the protocol state inline) and its 16-byte
/// slot in the loop's handler table; the output `ByteBuffer` (object and storage) is given
/// back while idle.
final class MemoryBudgetTests: XCTestCase {
    func testProtocolStateSize() {
        let size = MemoryLayout<WebSocketProtocol>.size
        print("WebSocketProtocol: \(size) bytes")
        // 160 before the fields were ordered widest first, 128 before the one-byte fields
        // moved to the end (the owner packs its own small fields into the last 6 bytes).
        XCTAssertLessThanOrEqual(size, 122)
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
    /// sizes): the connection (protocol state inline) and nothing else, the output buffer
    /// object given back once it is empty.
    func testIdleConnectionObjects() throws {
        let c = try makeConnection()
        c.httpParser = nil  // as after the upgrade
        func heap(_ o: AnyObject) -> Int { Int(wss_heap_size(Unmanaged.passUnretained(o).toOpaque())) }
        XCTAssertNotNil(c.proto.outboundIfAllocated, "a new connection has its buffer for the 101")
        c.releaseOutboundIfIdle()  // as after the upgrade's flush, and at each tick
        XCTAssertNil(c.proto.outboundIfAllocated, "an idle connection holds no output buffer object")
        print("idle connection objects: connection \(heap(c)) bytes")
        // 232 usable bytes is a 240-byte malloc chunk: with the 16-byte handler-table slot,
        // 256 bytes per idle connection (248, a 256-byte chunk, before the route became a
        // number and the small fields moved into tail padding).
        XCTAssertLessThanOrEqual(heap(c), 232)
        XCTAssertNil(c.extras, "an idle connection holds no extras box")
    }

    /// The buffer is not given back while bytes wait in it or the loop sends from it, and a
    /// frame after it was given back goes into a new one.
    func testOutputBufferIsKeptWhileInUse() throws {
        let c = try makeConnection()
        c.httpParser = nil
        _ = c.proto.send(text: "hi")
        c.releaseOutboundIfIdle()
        XCTAssertEqual(c.proto.outboundCount, 4, "queued bytes keep their buffer")
        c.proto.outbound.consume(4)
        c.sendQueued = true
        c.releaseOutboundIfIdle()
        XCTAssertNotNil(c.proto.outboundIfAllocated, "the loop is sending from it")
        c.sendQueued = false
        c.releaseOutboundIfIdle()
        XCTAssertNil(c.proto.outboundIfAllocated)
        c.flush()  // a flush owed for nothing (no socket here: it must not write)
        XCTAssertNil(c.proto.outboundIfAllocated, "an empty flush makes no buffer")
        _ = c.proto.send(binary: [1, 2, 3])
        XCTAssertEqual(Array(c.proto.outbound.readableBytes), [0x82, 3, 1, 2, 3])
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
