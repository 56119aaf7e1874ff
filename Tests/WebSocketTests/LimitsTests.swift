import XCTest
@testable import WebSocket

final class LimitsTests: XCTestCase {
    typealias Limits = WebSocketProtocol.Limits

    func testDefaults() {
        let l = Limits()
        XCTAssertEqual(l.maxMessageSize, 16 << 20)
        XCTAssertEqual(l.maxFrameSize, 16 << 20)
        XCTAssertFalse(l.hasExplicitFrameLimit)
        XCTAssertEqual(l.maxFragments, 1 << 20)
        XCTAssertEqual(l.maxQueuedPongs, 32)
        XCTAssertEqual(try Limits(), l)
    }

    // The trap in the issue: raising the message limit after construction left frames at 16 MiB.
    func testFrameLimitFollowsTheMessageLimitUnlessSet() throws {
        var l = Limits()
        l.maxMessageSize = 64 << 20
        XCTAssertEqual(l.maxFrameSize, 64 << 20)
        l.maxMessageSize = 1000
        XCTAssertEqual(l.maxFrameSize, 1000)
        l.maxFrameSize = 300
        l.maxMessageSize = 5000
        XCTAssertEqual(l.maxFrameSize, 300)
        XCTAssertTrue(l.hasExplicitFrameLimit)
        var m = try Limits(maxMessageSize: 10)
        m.maxMessageSize = 20
        XCTAssertEqual(m.maxFrameSize, 20)
        XCTAssertEqual(try Limits(maxMessageSize: 10, maxFrameSize: 5).maxFrameSize, 5)
    }

    func testRaisedMessageLimitAppliesToFramesOnTheWire() {
        // Only the header of a 20 MiB binary frame (over the old 16 MiB frame default).
        let header: [UInt8] = [0x82, 0xFF, 0, 0, 0, 0, 0x01, 0x40, 0, 0, 1, 2, 3, 4]
        var l = Limits()
        var p = WebSocketProtocol(role: .server, limits: l)
        XCTAssertEqual(feed(&p, header), [.failed(.frameTooLarge(limit: 16 << 20))])
        l.maxMessageSize = 32 << 20
        p = WebSocketProtocol(role: .server, limits: l)
        XCTAssertEqual(feed(&p, header), [])
        XCTAssertEqual(p.state, .open)
        guard case .data(let frame) = p.receive else { return XCTFail("\(p.receive)") }
        XCTAssertEqual(frame.remaining, 20 << 20)
    }

    func testOutOfRangeValuesAreRejectedNotClamped() {
        func error(_ make: () throws -> Limits) -> ConfigurationError? {
            do { _ = try make(); return nil } catch { return error as? ConfigurationError }
        }
        let big = Int(Int32.max) + 1  // 2 GiB
        XCTAssertEqual(error { try Limits(maxMessageSize: big) }?.setting, "maxMessageSize")
        XCTAssertEqual(error { try Limits(maxMessageSize: -1) }?.value, -1)
        XCTAssertEqual(error { try Limits(maxMessageSize: 0) }?.allowed, 1...Int(Int32.max))
        XCTAssertEqual(error { try Limits(maxFrameSize: big) }?.setting, "maxFrameSize")
        XCTAssertEqual(error { try Limits(maxFrameSize: 0) }?.setting, "maxFrameSize")
        XCTAssertEqual(error { try Limits(maxFragments: 0) }?.setting, "maxFragments")
        XCTAssertEqual(error { try Limits(maxQueuedPongs: 0) }?.setting, "maxQueuedPongs")
        XCTAssertEqual(error { try Limits(maxQueuedPongs: 256) }?.allowed, 1...255)
        XCTAssertEqual(error { try Limits(maxMessageSize: big) }?.description,
                       "maxMessageSize must be 1–2147483647 (2 GiB − 1 at most), got 2147483648")
        // The largest allowed values are kept exactly.
        XCTAssertEqual(try Limits(maxMessageSize: Int(Int32.max)).maxMessageSize, Int(Int32.max))
        XCTAssertEqual(try Limits(maxQueuedPongs: 255).maxQueuedPongs, 255)
    }
}
