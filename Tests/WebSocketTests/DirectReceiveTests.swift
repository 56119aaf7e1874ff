import XCTest
@testable import WebSocket

/// Large frames read straight into the message buffer (`directReceiveBuffer` +
/// `receivedInPlace`) give exactly the events `next` gives for the same bytes.
final class DirectReceiveTests: XCTestCase {
    /// Feeds `bytes` as a server would with direct receive: whenever the protocol offers a
    /// buffer, up to `chunk` bytes go into it; otherwise up to `chunk` bytes go through `next`.
    func feedDirect(_ proto: inout WebSocketProtocol, _ bytes: [UInt8], chunk: Int,
                    minimum: Int = 1024, direct: inout Int) -> [Ev] {
        var events: [Ev] = []
        var start = 0
        func record(_ e: WebSocketProtocol.Event) {
            switch e {
            case .text(let p): events.append(.text(String(decoding: p, as: UTF8.self)))
            case .binary(let p): events.append(.binary(Array(p)))
            case .ping(let p): events.append(.ping(Array(p)))
            case .pong(let p): events.append(.pong(Array(p)))
            case .close(let c, let r): events.append(.close(c?.rawValue, String(decoding: r, as: UTF8.self)))
            case .failed(let err): events.append(.failed(err))
            case .fragment(let op, let p, let first, let last): events.append(.fragment(op.rawValue, Array(p), first, last))
            }
        }
        while start < bytes.count {
            if let target = proto.directReceiveBuffer(minimum: minimum, limit: chunk) {
                XCTAssertLessThanOrEqual(target.count, chunk)
                let n = min(target.count, bytes.count - start)
                bytes.withUnsafeBytes { target.baseAddress!.copyMemory(from: $0.baseAddress! + start, byteCount: n) }
                start += n
                direct += n
                if let e = proto.receivedInPlace(n) { record(e) }
                continue
            }
            let end = min(bytes.count, start + chunk)
            var piece = Array(bytes[start..<end])
            piece.withUnsafeMutableBytes { p in
                var cursor = 0
                while let e = proto.next(p, cursor: &cursor) { record(e) }
            }
            start = end
        }
        return events
    }

    func check(_ bytes: [UInt8], chunks: [Int] = [1000, 4096, 65536, 70001], streams: Bool = false,
               expectDirect: Bool = true, file: StaticString = #filePath, line: UInt = #line) {
        for chunk in chunks {
            var plain = WebSocketProtocol(role: .server)
            plain.streamsMessages = streams
            let expected = feed(&plain, bytes, chunk: chunk)
            var p = WebSocketProtocol(role: .server)
            p.streamsMessages = streams
            var direct = 0
            let got = feedDirect(&p, bytes, chunk: chunk, direct: &direct)
            XCTAssertEqual(got, expected, "chunk \(chunk)", file: file, line: line)
            XCTAssertEqual(p.outbound.bytes, plain.outbound.bytes, "chunk \(chunk): output", file: file, line: line)
            XCTAssertEqual(direct > 0, expectDirect, "chunk \(chunk): \(direct) bytes in place", file: file, line: line)
        }
    }

    let big = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }

    func testALargeBinaryMessageArrivesWhole() {
        check(frame(0x2, big) + frame(0x2, [1, 2, 3]) + text("after"))
    }

    func testFragmentsWithAPingBetween() {
        let a = Array(big[0..<150_001]), b = Array(big[150_001...])
        check(frame(0x2, a, fin: false) + frame(0x9, [9]) + frame(0x0, b) + text("next"))
    }

    func testTextIsValidatedAcrossPieces() {
        let s = String(repeating: "añ€😀x", count: 30_000)
        check(text(s) + text("ok"))
    }

    func testInvalidUTF8InsideALargeTextFailsAsWithNext() {
        var bad = Array(String(repeating: "é", count: 100_000).utf8)
        bad[123_457] = 0xFF
        check(frame(0x1, bad) + text("never"))
        // Truncated at the end of the message: incomplete character.
        var cut = Array(String(repeating: "€", count: 50_000).utf8)
        cut.removeLast()
        check(frame(0x1, cut) + text("never"))
    }

    func testCloseAfterALargeMessage() {
        check(frame(0x2, big) + closeFrame(1000, "bye") + text("dropped"))
    }

    func testNotOfferedWhenStreamingOrForSmallFrames() {
        check(frame(0x2, big), streams: true, expectDirect: false)
        check(frame(0x2, Array(big[0..<900])) + frame(0x2, Array(big[0..<1023])), chunks: [100], expectDirect: false)
    }

    func testNotOfferedWhileClosing() {
        var p = WebSocketProtocol(role: .server)
        p.close(code: .normal)
        var bytes = frame(0x2, big)
        let head = 14
        bytes.withUnsafeMutableBytes { all in
            var cursor = 0
            let piece = UnsafeMutableRawBufferPointer(rebasing: all[0..<(head + 100)])
            while p.next(piece, cursor: &cursor) != nil {}
        }
        XCTAssertNil(p.directReceiveBuffer(minimum: 1, limit: 1 << 20))
    }

    func testTheOfferNeverPassesTheFrame() {
        var p = WebSocketProtocol(role: .server)
        var bytes = frame(0x2, Array(big[0..<5000]), fin: false)
        bytes.withUnsafeMutableBytes { all in
            var cursor = 0
            let piece = UnsafeMutableRawBufferPointer(rebasing: all[0..<1000])
            while p.next(piece, cursor: &cursor) != nil {}
        }
        // An 8-byte header (16-bit length, mask): 992 payload bytes are in.
        let target = p.directReceiveBuffer(minimum: 1, limit: 1 << 20)
        XCTAssertEqual(target?.count, 5000 - 992)
        XCTAssertEqual(p.directReceiveBuffer(minimum: 1, limit: 100)?.count, 100)
        XCTAssertNil(p.directReceiveBuffer(minimum: 5000, limit: 1 << 20))
    }
}
