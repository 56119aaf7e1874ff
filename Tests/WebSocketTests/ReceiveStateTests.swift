import XCTest
@testable import WebSocket

/// The receiver's one-enum state (`ReceiveState`) and its invariants, driven through every
/// split of the input.
final class ReceiveStateTests: XCTestCase {
    /// A fragmented text message with a ping and a pong between its fragments, then a binary
    /// message, fed split at every offset (two reads) and one byte at a time: the events never
    /// depend on the split.
    func testEverySplitGivesTheSameEvents() {
        let stream = text("Hel", fin: false) + frame(0x9, Array("p".utf8)) + frame(0x0, Array("lo ".utf8), fin: false)
            + frame(0xA, Array(repeating: 7, count: 125)) + frame(0x0, Array("wörld".utf8)) + frame(0x2, [1, 2, 3])
        let expected: [Ev] = [.ping(Array("p".utf8)), .pong(Array(repeating: 7, count: 125)), .text("Hello wörld"), .binary([1, 2, 3])]
        var whole = WebSocketProtocol(role: .server)
        XCTAssertEqual(feed(&whole, stream), expected)
        var bytewise = WebSocketProtocol(role: .server)
        XCTAssertEqual(feed(&bytewise, stream, chunk: 1), expected)
        for split in 1..<stream.count {
            var p = WebSocketProtocol(role: .server)
            let events = feed(&p, Array(stream[..<split])) + feed(&p, Array(stream[split...]))
            XCTAssertEqual(events, expected, "split at \(split)")
            XCTAssertFalse(p.isMidMessage, "split at \(split)")
        }
    }

    func testStatesAlongAFragmentedMessage() {
        var p = WebSocketProtocol(role: .server)
        guard case .header(let h) = p.receive else { return XCTFail() }
        XCTAssertEqual(h.count, 0)
        XCTAssertFalse(p.isMidMessage)

        let first = text("ab", fin: false)
        _ = feed(&p, Array(first[..<3]))  // 3 of the 6 header bytes
        guard case .header(let partial) = p.receive else { return XCTFail("\(p.receive)") }
        XCTAssertEqual(partial.count, 3)
        XCTAssertTrue(p.isMidMessage)
        XCTAssertNil(p.message)

        _ = feed(&p, Array(first[3..<7]))  // header done, 1 of 2 payload bytes
        guard case .data(let payload) = p.receive else { return XCTFail("\(p.receive)") }
        XCTAssertEqual(payload.remaining, 1)
        XCTAssertEqual(payload.maskPhase, 1)
        XCTAssertEqual(p.message?.opcode, .text)

        _ = feed(&p, Array(first[7...]))  // frame done, message not: back to a header
        guard case .header = p.receive else { return XCTFail("\(p.receive)") }
        XCTAssertEqual(p.message?.fragments, 1)
        XCTAssertEqual(p.message?.size, 2)
        XCTAssertTrue(p.isMidMessage)

        let ping = frame(0x9, Array("xyz".utf8))
        _ = feed(&p, Array(ping[..<7]))  // a split control frame inside the message
        guard case .control(let c) = p.receive else { return XCTFail("\(p.receive)") }
        XCTAssertEqual(c.remaining, 2)
        XCTAssertGreaterThan(p.bufferedBytes, 0)  // the control bytes so far
        XCTAssertEqual(feed(&p, Array(ping[7...])), [.ping(Array("xyz".utf8))])
        XCTAssertEqual(p.message?.opcode, .text, "the message survives the control frame")

        XCTAssertEqual(feed(&p, frame(0x0, Array("c".utf8))), [.text("abc")])
        XCTAssertNil(p.message)
        XCTAssertFalse(p.isMidMessage)
        XCTAssertEqual(feed(&p, frame(0x0, Array("d".utf8))), [.failed(.unexpectedContinuation)])
    }

    func testFailureResetsEveryState() {
        var p = WebSocketProtocol(role: .server)
        let ping = frame(0x9, Array("xyz".utf8))
        _ = feed(&p, text("ab", fin: false) + Array(ping[..<7]))
        XCTAssertTrue(p.isMidMessage)
        // An unmasked frame in the middle of the split ping's payload is just more payload;
        // after the ping, a reserved opcode fails the connection.
        XCTAssertEqual(feed(&p, Array(ping[7...]) + [0x83, 0x80, 0, 0, 0, 0]),
                       [.ping(Array("xyz".utf8)), .failed(.reservedOpcode(3))])
        XCTAssertEqual(p.state, .failed)
        XCTAssertFalse(p.isMidMessage)
        XCTAssertNil(p.message)
        XCTAssertEqual(p.bufferedBytes, 0)
        XCTAssertEqual(feed(&p, text("more")), [], "nothing is parsed after a failure")
    }

    // A whole unfragmented message in one read is delivered from the input (no copy).
    func testWholeMessagePointsIntoTheInput() {
        var p = WebSocketProtocol(role: .server)
        var bytes = text("hello")
        bytes.withUnsafeMutableBytes { input in
            var cursor = 0
            guard case .text(let payload) = p.next(input, cursor: &cursor) else { return XCTFail() }
            XCTAssertEqual(payload.baseAddress, UnsafeRawPointer(input.baseAddress! + 6))
            XCTAssertEqual(cursor, input.count)
        }
        XCTAssertEqual(p.bufferedBytes, 0)
    }
}
