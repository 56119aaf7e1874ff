import XCTest
@testable import WebSocket

/// The receive and send fast paths against slow, obvious references: the UTF-8 ASCII word
/// skip against a byte-wise decoder, the 16-byte unmasking against byte-wise XOR, at every
/// alignment and every length 0–80, and the one-step frame receiver against the general path.
final class FastPathTests: XCTestCase {
    /// RFC 3629 §4, one code point at a time: the oracle for the validator.
    static func referenceValid(_ b: [UInt8]) -> Bool {
        var i = 0
        while i < b.count {
            let c = b[i]
            let (n, lo, hi): (Int, UInt8, UInt8)
            switch c {
            case 0x00...0x7F: i += 1; continue
            case 0xC2...0xDF: (n, lo, hi) = (1, 0x80, 0xBF)
            case 0xE0: (n, lo, hi) = (2, 0xA0, 0xBF)
            case 0xED: (n, lo, hi) = (2, 0x80, 0x9F)
            case 0xE1...0xEF: (n, lo, hi) = (2, 0x80, 0xBF)
            case 0xF0: (n, lo, hi) = (3, 0x90, 0xBF)
            case 0xF4: (n, lo, hi) = (3, 0x80, 0x8F)
            case 0xF1...0xF3: (n, lo, hi) = (3, 0x80, 0xBF)
            default: return false
            }
            guard i + n < b.count, b[i + 1] >= lo, b[i + 1] <= hi else { return false }
            for k in 2...max(2, n) where k <= n {
                guard b[i + k] >= 0x80, b[i + k] <= 0xBF else { return false }
            }
            i += n + 1
        }
        return true
    }

    /// ASCII inputs of `n` bytes with one adversarial change at `position`: a lone high byte,
    /// a valid 2-, 3- or 4-byte character, a truncated one, a surrogate, an overlong.
    static func adversarial(_ n: Int, _ rng: inout SystemRandomNumberGenerator) -> [[UInt8]] {
        let ascii = (0..<n).map { _ in UInt8.random(in: 0x20...0x7E, using: &rng) }
        var cases = [ascii]
        let inserts: [[UInt8]] = [[0x80], [0xFF], [0xC3, 0xA9], [0xE2, 0x82, 0xAC], [0xF0, 0x9F, 0x9A, 0x80],
                                  [0xE2, 0x82], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0x7F]]
        for position in 0..<n {
            for insert in inserts where position + insert.count <= n {
                var c = ascii
                c.replaceSubrange(position..<(position + insert.count), with: insert)
                cases.append(c)
            }
        }
        cases.append((0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) })
        return cases
    }

    /// Runs `body` on `bytes` copied to each offset 0–15 of a 16-aligned buffer.
    static func atEveryAlignment(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer, Int) -> Void) {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: bytes.count + 32, alignment: 16)
        defer { storage.deallocate() }
        for offset in 0..<16 {
            let view = UnsafeMutableRawBufferPointer(start: storage + offset, count: bytes.count)
            bytes.withUnsafeBytes { if let s = $0.baseAddress { view.baseAddress!.copyMemory(from: s, byteCount: $0.count) } }
            body(view, offset)
        }
    }

    func testUTF8ValidatorMatchesReferenceAtEveryAlignmentAndLength() {
        var rng = SystemRandomNumberGenerator()
        var checked = 0, invalid = 0
        for n in 0...64 {
            for input in Self.adversarial(n, &rng) {
                let expected = Self.referenceValid(input)
                if !expected { invalid += 1 }
                Self.atEveryAlignment(input) { view, offset in
                    XCTAssertEqual(UTF8Validator.isValid(UnsafeRawBufferPointer(view)), expected,
                                   "n=\(n) offset=\(offset) \(input)")
                    // Incrementally, split anywhere, the answer is the same.
                    let split = n == 0 ? 0 : (offset * 7) % (n + 1)
                    var v = UTF8Validator()
                    let ok = v.validate(UnsafeRawBufferPointer(rebasing: view[..<split]))
                        && v.validate(UnsafeRawBufferPointer(rebasing: view[split...])) && v.isComplete
                    XCTAssertEqual(ok, expected, "n=\(n) offset=\(offset) split=\(split)")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(invalid, 1000)  // the cases include many invalid inputs
        XCTAssertGreaterThan(checked, 100_000)
    }

    func testUnmaskMatchesBytewiseXorAtEveryAlignmentLengthAndPhase() {
        let key: UInt32 = 0x9C_5A_E1_37  // wire bytes 37 E1 5A 9C
        let keyBytes = withUnsafeBytes(of: key.littleEndian) { Array($0) }
        for n in 0...80 {
            let input = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 29 &+ 11) }
            for phase in 0..<4 {
                let expected = input.enumerated().map { $0.element ^ keyBytes[($0.offset + phase) % 4] }
                Self.atEveryAlignment(input) { view, offset in
                    let before = view.baseAddress! - offset, guardBytes = Array(UnsafeRawBufferPointer(start: before, count: offset))
                    let after = Array(UnsafeRawBufferPointer(start: view.baseAddress! + n, count: 16))
                    let next = Masking.apply(key: key, phase: phase, to: view)
                    XCTAssertEqual(Array(view), expected, "n=\(n) phase=\(phase) offset=\(offset)")
                    XCTAssertEqual(next, n == 0 ? phase : (phase + n) % 4)
                    XCTAssertEqual(Array(UnsafeRawBufferPointer(start: before, count: offset)), guardBytes, "wrote before")
                    XCTAssertEqual(Array(UnsafeRawBufferPointer(start: view.baseAddress! + n, count: 16)), after, "wrote after")
                }
            }
        }
    }

    func testUnmaskIsASCIIFindsAHighBitAnywhere() {
        let key: UInt32 = 0x0F_70_3C_C1
        let keyBytes = withUnsafeBytes(of: key.littleEndian) { Array($0) }
        for n in 0...80 {
            let plain = (0..<n).map { UInt8(truncatingIfNeeded: 0x20 + ($0 % 90)) }
            var variants = [plain]
            for p in 0..<n { var v = plain; v[p] |= 0x80; variants.append(v) }
            for v in variants {
                let masked = v.enumerated().map { $0.element ^ keyBytes[$0.offset % 4] }
                Self.atEveryAlignment(masked) { view, offset in
                    let ascii = Masking.unmaskIsASCII(key: key, view)
                    XCTAssertEqual(Array(view), v, "n=\(n) offset=\(offset)")
                    XCTAssertEqual(ascii, v.allSatisfy { $0 < 0x80 }, "n=\(n) offset=\(offset)")
                }
            }
        }
    }

    /// Every frame the fast path takes gives the events and output of the general path (fed
    /// one byte at a time, which never takes it); the ones it must leave alone still fail.
    func testWholeFrameFastPathMatchesGeneralPath() {
        let euro = Array("€".utf8)
        for n in [0, 1, 7, 8, 63, 64, 65, 125, 126, 127, 300, 65535, 65536] {
            let body = (0..<n).map { UInt8(0x41 + $0 % 26) }
            var textBody = body
            if n >= 3 { textBody.replaceSubrange(0..<3, with: euro) }
            var badText = body
            if n >= 1 { badText[n - 1] = 0xC3 }  // truncated character at the end
            let input = frame(0x1, textBody) + frame(0x2, body) + (n >= 1 ? frame(0x1, badText) : [])
            var whole = WebSocketProtocol(role: .server)
            var bytewise = WebSocketProtocol(role: .server)
            let a = feed(&whole, input), b = feed(&bytewise, input, chunk: 1)
            XCTAssertEqual(a, b, "n=\(n)")
            XCTAssertEqual(a.first, .text(String(decoding: textBody, as: UTF8.self)), "n=\(n)")
            XCTAssertEqual(whole.outbound.bytes, bytewise.outbound.bytes, "n=\(n)")
            if n >= 1 { XCTAssertEqual(a.last, .failed(.invalidUTF8)); XCTAssertEqual(sentCloseCode(whole.outbound), 1007) }
        }
    }

    func testFastPathStillAppliesEveryRule() {
        func events(_ bytes: [UInt8], _ limits: WebSocketProtocol.Limits = .init()) -> [Ev] {
            var p = WebSocketProtocol(role: .server, limits: limits)
            return feed(&p, bytes)
        }
        let small = try! WebSocketProtocol.Limits(maxMessageSize: 10)
        XCTAssertEqual(events(frame(0x2, [UInt8](repeating: 1, count: 11)), small), [.failed(.frameTooLarge(limit: 10))])
        XCTAssertEqual(events(frame(0x2, [UInt8](repeating: 1, count: 10)), small), [.binary([UInt8](repeating: 1, count: 10))])
        XCTAssertEqual(events(frame(0x1, Array("hi".utf8), rsv: 4)), [.failed(.reservedBitsSet)])
        XCTAssertEqual(events(frame(0x1, Array("hi".utf8), mask: nil)), [.failed(.unmaskedClientFrame)])
        XCTAssertEqual(events(text("a", fin: false) + text("b")), [.failed(.expectedContinuation)])
        var client = WebSocketProtocol(role: .client)
        XCTAssertEqual(feed(&client, text("x")), [.failed(.maskedServerFrame)])
        // Closing: data frames are parsed and dropped, the peer's close still completes.
        var closing = WebSocketProtocol(role: .server)
        closing.close()
        XCTAssertEqual(feed(&closing, text("late") + closeFrame(1000)), [.close(1000, "")])
    }

    func testServerFrameEncodingAtEveryLengthForm() {
        for n in [0, 1, 125, 126, 127, 65535, 65536, 70000] {
            var p = WebSocketProtocol(role: .server)
            let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0) }
            payload.withUnsafeBytes { _ = p.send(.binary, $0) }
            payload.withUnsafeBytes { _ = p.send(.text, $0, fin: false) }
            var expected = [UInt8](repeating: 0, count: 14)
            let h = FrameHeader(fin: true, opcode: .binary, masked: false, payloadLength: UInt64(n))
            let hl = expected.withUnsafeMutableBytes { h.write(to: $0.baseAddress!) }
            let out = p.outbound.bytes
            XCTAssertEqual(Array(out.prefix(hl)), Array(expected.prefix(hl)), "n=\(n)")
            XCTAssertEqual(Array(out[hl..<(hl + n)]), payload, "n=\(n)")
            XCTAssertEqual(out[hl + n], 0x01, "second frame: text, no FIN")
            XCTAssertEqual(out.count, 2 * (hl + n))
        }
    }
}
