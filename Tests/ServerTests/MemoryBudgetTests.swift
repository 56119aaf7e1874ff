#if canImport(Glibc)
import Glibc
#endif
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
        XCTAssertLessThanOrEqual(size, 200)
        XCTAssertLessThanOrEqual(MemoryLayout<FrameHeader>.size, 32)
        XCTAssertLessThanOrEqual(MemoryLayout<UTF8Validator>.size, 3)
    }
}
