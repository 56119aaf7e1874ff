import XCTest
@testable import WebSocket

final class PerMessageDeflateTests: XCTestCase {
    let hello = Array("Hello".utf8)

    func server(_ p: DeflateParameters = DeflateParameters(), _ o: DeflateOptions = DeflateOptions()) -> PerMessageDeflate {
        PerMessageDeflate(role: .server, parameters: p, options: o)
    }
    func client(_ p: DeflateParameters = DeflateParameters(), _ o: DeflateOptions = DeflateOptions()) -> PerMessageDeflate {
        PerMessageDeflate(role: .client, parameters: p, options: o)
    }

    /// Deterministic pseudo-random bytes (xorshift).
    func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var x = seed | 1
        return (0..<n).map { _ in x ^= x << 13; x ^= x >> 7; x ^= x << 17; return UInt8(truncatingIfNeeded: x) }
    }
    func repetitive(_ n: Int) -> [UInt8] {
        let pattern = Array(#"{"type":"update","id":12345,"value":"abcabcabc"},"#.utf8)
        return (0..<n).map { pattern[$0 % pattern.count] }
    }

    // MARK: RFC 7692 §7.2.3 examples

    func testRFCHelloCompressed() {
        // §7.2.3.1: c1 07 f2 48 cd c9 c9 07 00 — the payload is f2 48 cd c9 c9 07 00.
        XCTAssertEqual(server().compress(hello), [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
    }

    func testRFCContextTakeover() {
        // §7.2.3.2: the second "Hello" refers back to the first.
        let s = server()
        XCTAssertEqual(s.compress(hello), [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        XCTAssertEqual(s.compress(hello), [0xf2, 0x00, 0x11, 0x00, 0x00])
    }

    func testNoContextTakeoverCompressesIndependently() {
        let s = server(DeflateParameters(serverNoContextTakeover: true))
        XCTAssertEqual(s.compress(hello), [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        XCTAssertEqual(s.compress(hello), [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        // The client side does not reset: it has context takeover.
        let c = client(DeflateParameters(serverNoContextTakeover: true))
        XCTAssertEqual(c.compress(hello), [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        XCTAssertEqual(c.compress(hello), [0xf2, 0x00, 0x11, 0x00, 0x00])
    }

    func testRFCDecompressExamples() throws {
        let s = server()
        // §7.2.3.1 unfragmented, then §7.2.3.2 with context takeover.
        XCTAssertEqual(try s.decompress([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], limit: 100), hello)
        XCTAssertEqual(try s.decompress([0xf2, 0x00, 0x11, 0x00, 0x00], limit: 100), hello)
        // §7.2.3.1 fragmented: f2 48 cd | c9 c9 07 00.
        let f = server()
        let out = ByteBuffer()
        try ([0xf2, 0x48, 0xcd] as [UInt8]).withUnsafeBytes { try f.decompress($0, into: out, limit: 100) }
        try ([0xc9, 0xc9, 0x07, 0x00] as [UInt8]).withUnsafeBytes { try f.decompress($0, into: out, limit: 100) }
        try f.finishMessage(into: out, limit: 100)
        XCTAssertEqual(out.bytes, hello)
        // §7.2.3.3: a stored block.
        XCTAssertEqual(try server().decompress([0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00],
                                               limit: 100), hello)
        // §7.2.3.5: two blocks in one message.
        XCTAssertEqual(try server().decompress([0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00],
                                               limit: 100), hello)
    }

    func testRFCBFinalBlockThenContextTakeover() throws {
        // §7.2.3.4: a BFINAL block followed by 0x00. The next message may still refer back.
        let s = server()
        XCTAssertEqual(try s.decompress([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], limit: 100), hello)
        XCTAssertEqual(try s.decompress([0xf2, 0x00, 0x11, 0x00, 0x00], limit: 100), hello)
        XCTAssertEqual(try s.decompress([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], limit: 100), hello)
        // A BFINAL block with nothing after it (zlib's Z_FINISH output): the tail is not needed.
        let t = server()
        XCTAssertEqual(try t.decompress([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], limit: 100), hello)
        XCTAssertEqual(try t.decompress([0xf2, 0x00, 0x11, 0x00, 0x00], limit: 100), hello)
        // BFINAL in the first fragment, a stored block in the second.
        let u = server()
        let out = ByteBuffer()
        try ([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00] as [UInt8]).withUnsafeBytes { try u.decompress($0, into: out, limit: 100) }
        try ([0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00] as [UInt8]).withUnsafeBytes {
            try u.decompress($0, into: out, limit: 100)
        }
        try u.finishMessage(into: out, limit: 100)
        XCTAssertEqual(out.bytes, hello + hello)
    }

    func testEmptyMessage() throws {
        let c = client()
        let s = server()
        for _ in 0..<3 {
            let payload = c.compress([])
            XCTAssertEqual(try s.decompress(payload, limit: 10), [])
        }
        // An empty payload (no deflate data at all) is an empty message and leaves the stream alone.
        XCTAssertEqual(try s.decompress([], limit: 10), [])
        XCTAssertEqual(try s.decompress(c.compress(hello), limit: 10), hello)
    }

    // MARK: Round trips

    func roundTrip(_ params: DeflateParameters, _ options: DeflateOptions = DeflateOptions(),
                   messages: [[UInt8]], file: StaticString = #filePath, line: UInt = #line) throws {
        let c = client(params, options)
        let s = server(params, options)
        for m in messages {
            // client → server
            let up = c.compress(m)
            XCTAssertEqual(try s.decompress(up, limit: m.count), m, "c→s \(m.count) bytes", file: file, line: line)
            // server → client
            let down = s.compress(m)
            XCTAssertEqual(try c.decompress(down, limit: m.count), m, "s→c \(m.count) bytes", file: file, line: line)
        }
    }

    let sizes = [0, 1, 2, 3, 4, 5, 63, 64, 100, 255, 256, 1000, 4095, 4096, 65535, 65536, 70_000, (1 << 20) + 3]

    func testRoundTripsRandomAndRepetitive() throws {
        var messages: [[UInt8]] = []
        for (i, n) in sizes.enumerated() {
            messages.append(randomBytes(n, seed: UInt64(i + 1)))
            messages.append(repetitive(n))
            messages.append(repetitive(n))  // the same again: context takeover pays off
        }
        try roundTrip(DeflateParameters(), messages: messages)
        try roundTrip(DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true),
                      messages: messages)
    }

    func testRoundTripsAllWindowSizesAndLevels() throws {
        let messages = [repetitive(5000), randomBytes(3000, seed: 7), repetitive(70_000),
                        randomBytes(1000, seed: 9) + repetitive(20_000)]
        for bits in 9...15 {
            try roundTrip(DeflateParameters(serverMaxWindowBits: bits, clientMaxWindowBits: bits), messages: messages)
        }
        for level in [0, 1, 9] {
            for memLevel in [1, 5, 9] {
                try roundTrip(DeflateParameters(serverMaxWindowBits: 10, clientMaxWindowBits: 12),
                              try! DeflateOptions(memLevel: memLevel, compressionLevel: level), messages: messages)
            }
        }
    }

    func testClientWindowBits8IsInflatedWith9() throws {
        // The server accepts client_max_window_bits=8 and inflates with 9 bits.
        let s = server(DeflateParameters(clientMaxWindowBits: 8))
        XCTAssertEqual(s.decompressWindowBits, 9)
        let c = client(DeflateParameters(clientMaxWindowBits: 9))  // what an old zlib does for "8"
        let m = repetitive(10_000) + randomBytes(600, seed: 3) + repetitive(10_000)
        XCTAssertEqual(try s.decompress(c.compress(m), limit: m.count), m)
    }

    func testCompressionActuallyCompresses() {
        let s = server()
        let m = repetitive(100_000)
        let first = s.compress(m)
        XCTAssertLessThan(first.count, 2_000)
        XCTAssertLessThan(s.compress(m).count, first.count)  // context takeover
    }

    func testFragmentedDecompressAnySplit() throws {
        let c = client()
        let m = randomBytes(2000, seed: 11) + repetitive(50_000)
        let payload = c.compress(m)
        let again = c.compress(m)
        let s = server()
        for (p, step) in [(payload, 1), (again, 7)] {
            let out = ByteBuffer()
            var i = 0
            while i < p.count {
                let j = min(p.count, i + step)
                try Array(p[i..<j]).withUnsafeBytes { try s.decompress($0, into: out, limit: m.count) }
                i = j
            }
            try s.finishMessage(into: out, limit: m.count)
            XCTAssertEqual(out.bytes, m)
        }
    }

    func testStreamingCompressFragments() throws {
        let c = client()
        let s = server()
        let m = repetitive(30_000) + randomBytes(5_000, seed: 5)
        for _ in 0..<2 {
            let wire = ByteBuffer()
            var frames: [[UInt8]] = []
            var i = 0
            while i < m.count {
                let j = min(m.count, i + 4096)
                let frame = ByteBuffer()
                Array(m[i..<j]).withUnsafeBytes { _ = c.compress($0, into: frame, final: j == m.count) }
                frames.append(frame.bytes)
                i = j
            }
            for f in frames { wire.append(f) }
            let out = ByteBuffer()
            for f in frames { try f.withUnsafeBytes { try s.decompress($0, into: out, limit: m.count) } }
            try s.finishMessage(into: out, limit: m.count)
            XCTAssertEqual(out.bytes, m)
            XCTAssertLessThan(wire.readableCount, m.count)
        }
    }

    // MARK: Limits and bad input

    func testZipBombStopsAtLimit() {
        let bomb = client().compress([UInt8](repeating: 0, count: 10_000_000))
        XCTAssertLessThan(bomb.count, 20_000)
        let s = server()
        let limit = 1 << 20
        let out = ByteBuffer()
        XCTAssertThrowsError(try bomb.withUnsafeBytes { try s.decompress($0, into: out, limit: limit) }) {
            XCTAssertEqual($0 as? DeflateError, .messageTooLarge(limit: limit))
        }
        // Stopped early: at most one byte past the limit was produced, and zlib read only about
        // a tenth of the compressed input (10 MB → 1 MB).
        XCTAssertLessThanOrEqual(out.readableCount, limit + 1)
        XCTAssertLessThan(out.allocatedBytes, 4 * limit)
        XCTAssertLessThan(s.inflaterTotalIn, bomb.count / 5)
        XCTAssertEqual(DeflateError.messageTooLarge(limit: limit).protocolError.closeCode, .messageTooBig)
    }

    func testLimitIsOnDecompressedSizeAcrossFragments() throws {
        let c = client()
        let m = repetitive(10_000)
        let p = c.compress(m)
        XCTAssertEqual(try server().decompress(p, limit: m.count), m)  // exactly the limit: fine
        let s = server()
        XCTAssertThrowsError(try s.decompress(p, limit: m.count - 1)) {
            XCTAssertEqual($0 as? DeflateError, .messageTooLarge(limit: m.count - 1))
        }
        // The limit counts the whole message, not one piece.
        let t = server()
        let out = ByteBuffer()
        let half = p.count / 2
        XCTAssertThrowsError(try {
            try Array(p[..<half]).withUnsafeBytes { try t.decompress($0, into: out, limit: 6_000) }
            try Array(p[half...]).withUnsafeBytes { try t.decompress($0, into: out, limit: 6_000) }
            try t.finishMessage(into: out, limit: 6_000)
        }()) { XCTAssertEqual($0 as? DeflateError, .messageTooLarge(limit: 6_000)) }
        XCTAssertLessThanOrEqual(out.readableCount, 6_001)
    }

    func testCorruptInput() {
        // BTYPE 11 is reserved.
        XCTAssertThrowsError(try server().decompress([0xff, 0xff, 0xff], limit: 100)) {
            XCTAssertEqual($0 as? DeflateError, .invalidCompressedData)
            XCTAssertEqual(($0 as? DeflateError)?.protocolError.closeCode, .invalidPayload)
        }
        // A stored block whose NLEN is not the complement of LEN.
        XCTAssertThrowsError(try server().decompress([0x00, 0x05, 0x00, 0x00, 0x00, 0x48], limit: 100)) {
            XCTAssertEqual($0 as? DeflateError, .invalidCompressedData)
        }
        // A back-reference before the start of the stream.
        XCTAssertThrowsError(try server().decompress([0xf2, 0x00, 0x11, 0x00, 0x00], limit: 100)) {
            XCTAssertEqual($0 as? DeflateError, .invalidCompressedData)
        }
        // Truncated mid-block: the tail does not end it on a block boundary.
        let p = client().compress(randomBytes(1000, seed: 1) + repetitive(1000))
        XCTAssertThrowsError(try server().decompress(Array(p.dropLast(20)), limit: 10_000)) {
            XCTAssertEqual($0 as? DeflateError, .invalidCompressedData)
        }
        // Garbage after a final block.
        XCTAssertThrowsError(try server().decompress([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff, 0xff], limit: 100)) {
            XCTAssertEqual($0 as? DeflateError, .invalidCompressedData)
        }
        // Random bytes, many seeds: an error or some output, never a crash or a hang.
        for seed in 1...200 {
            _ = try? server().decompress(randomBytes(300, seed: UInt64(seed)), limit: 1 << 16)
        }
    }

    // MARK: Memory

    func testMemoryIsLazyCountedAndReleasable() throws {
        let p = DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true)
        let s = server(p)
        XCTAssertEqual(s.allocatedBytes, 0)
        _ = s.compress(repetitive(1000))
        let afterDeflate = s.allocatedBytes
        XCTAssertGreaterThanOrEqual(afterDeflate, (1 << 17) + (1 << 17))  // 15 bits, memLevel 8
        XCTAssertLessThan(afterDeflate, PerMessageDeflate.deflateMemory(windowBits: 15, memLevel: 8) + 1024)
        _ = try s.decompress(client(p).compress(repetitive(1000)), limit: 1000)
        XCTAssertGreaterThan(s.allocatedBytes, afterDeflate + (1 << 15))
        s.releaseIdleMemory()
        XCTAssertEqual(s.allocatedBytes, 0)
        // Context takeover: the window is state, nothing is released.
        let t = server()
        _ = t.compress(repetitive(1000))
        t.releaseIdleMemory()
        XCTAssertGreaterThan(t.allocatedBytes, 0)
    }

    func testMemoryTable() {
        // Measured vs. the static estimate, per setting (printed for the README).
        for (bits, mem) in [(15, 8), (15, 9), (12, 5), (10, 4), (9, 1)] {
            let s = server(DeflateParameters(serverMaxWindowBits: bits, clientMaxWindowBits: bits),
                           try! DeflateOptions(memLevel: mem))
            _ = s.compress(repetitive(100))
            let deflate = s.allocatedBytes
            _ = try? s.decompress(client(DeflateParameters(serverMaxWindowBits: bits, clientMaxWindowBits: bits)).compress(repetitive(100)), limit: 100)
            let inflate = s.allocatedBytes - deflate
            let estD = PerMessageDeflate.deflateMemory(windowBits: bits, memLevel: mem)
            let estI = PerMessageDeflate.inflateMemory(windowBits: bits)
            print("wbits \(bits) memLevel \(mem): deflate \(deflate) (est \(estD)), inflate \(inflate) (est \(estI))")
            XCTAssertEqual(Double(deflate), Double(estD), accuracy: 0)
            XCTAssertEqual(Double(inflate), Double(estI), accuracy: 0)
        }
    }
}
