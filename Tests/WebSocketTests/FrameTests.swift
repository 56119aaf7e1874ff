import XCTest
@testable import WebSocket

/// RFC 6455 §5.7 examples, both ways.
final class FrameTests: XCTestCase {
    let helloUnmasked: [UInt8] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    let helloMasked: [UInt8] = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    let fragmented: [UInt8] = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
    let pingUnmasked: [UInt8] = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    let pongMasked: [UInt8] = [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]

    func testDecodeExamplesAsClient() {
        for chunk in [0, 1, 2, 3] {
            var p = WebSocketProtocol(role: .client)
            XCTAssertEqual(feed(&p, helloUnmasked + fragmented + pingUnmasked, chunk: chunk),
                           [.text("Hello"), .text("Hello"), .ping(Array("Hello".utf8))], "chunk \(chunk)")
        }
    }

    func testDecodeExamplesAsServer() {
        for chunk in [0, 1, 5] {
            var p = WebSocketProtocol(role: .server)
            XCTAssertEqual(feed(&p, helloMasked + pongMasked, chunk: chunk),
                           [.text("Hello"), .pong(Array("Hello".utf8))], "chunk \(chunk)")
        }
    }

    func testEncodeExamples() {
        var p = WebSocketProtocol(role: .server)
        p.send(text: "Hello")
        XCTAssertEqual(p.outbound.bytes, helloUnmasked)

        // Masked encoding with the RFC's key.
        var buf = [UInt8](repeating: 0, count: 11)
        let h = FrameHeader(fin: true, opcode: .text, masked: true,
                            maskKey: UInt32(littleEndian: 0x3d21fa37), payloadLength: 5)
        buf.withUnsafeMutableBytes { b in
            let n = h.write(to: b.baseAddress!)
            XCTAssertEqual(n, 6)
            var payload = Array("Hello".utf8)
            payload.withUnsafeMutableBytes { _ = Masking.apply(key: h.maskKey, phase: 0, to: $0) }
            for (i, x) in payload.enumerated() { b[6 + i] = x }
        }
        XCTAssertEqual(buf, helloMasked)
    }

    func testLengthForms() {
        // 256 bytes: 16-bit length; 65536 bytes: 64-bit length (§5.7).
        var p = WebSocketProtocol(role: .server)
        p.send(binary: [UInt8](repeating: 7, count: 256))
        XCTAssertEqual(Array(p.outbound.bytes.prefix(4)), [0x82, 0x7E, 0x01, 0x00])
        var q = WebSocketProtocol(role: .server)
        q.send(binary: [UInt8](repeating: 7, count: 65536))
        XCTAssertEqual(Array(q.outbound.bytes.prefix(10)), [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])

        for n in [0, 125, 126, 65535, 65536, 70000] {
            var s = WebSocketProtocol(role: .server)
            let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0) }
            XCTAssertEqual(feed(&s, frame(0x2, payload), chunk: 0), [.binary(payload)], "n=\(n)")
            var t = WebSocketProtocol(role: .server)
            XCTAssertEqual(feed(&t, frame(0x2, payload), chunk: 7), [.binary(payload)], "n=\(n) chunked")
        }
        // Non-minimal length encodings are accepted on input.
        var s = WebSocketProtocol(role: .server)
        XCTAssertEqual(feed(&s, frame(0x1, Array("hi".utf8), forceLength64: true)), [.text("hi")])
    }

    func testMaskingPhases() {
        let key: UInt32 = 0x04030201
        let original = (0..<100).map { UInt8($0) }
        var whole = original
        whole.withUnsafeMutableBytes { _ = Masking.apply(key: key, phase: 0, to: $0) }
        for split in [1, 3, 7, 9, 33] {
            var pieces = original
            pieces.withUnsafeMutableBytes { b in
                let phase = Masking.apply(key: key, phase: 0, to: UnsafeMutableRawBufferPointer(rebasing: b[0..<split]))
                Masking.apply(key: key, phase: phase, to: UnsafeMutableRawBufferPointer(rebasing: b[split...]))
            }
            XCTAssertEqual(pieces, whole, "split \(split)")
        }
        let expected: [UInt8] = [0x01, 0x03, 0x01, 0x07, 0x05]  // 0^1, 1^2, 2^3, 3^4, 4^1
        XCTAssertEqual(Array(whole.prefix(5)), expected)
    }
}

final class MaskingCopyTests: XCTestCase {
    func testCopyMaskedEqualsCopyThenMask() {
        let key: UInt32 = 0xA1B2C3D4
        for n in [0, 1, 7, 8, 9, 31, 64, 1000] {
            let src = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
            var expected = src
            expected.withUnsafeMutableBytes { _ = Masking.apply(key: key, phase: 0, to: $0) }
            var out = [UInt8](repeating: 0, count: n)
            src.withUnsafeBytes { s in out.withUnsafeMutableBytes { d in
                if let base = d.baseAddress { Masking.copyMasked(s, to: base, key: key) } } }
            XCTAssertEqual(out, expected, "n=\(n)")
        }
    }
}
