import XCTest
@testable import WebSocket

/// RFC 6455 §5.3 / §10.3: client mask keys come from the CSPRNG, in batches.
final class MaskKeySourceTests: XCTestCase {
    /// A fill that writes a known pattern and counts its calls.
    final class CountingFill {
        var calls = 0
        func fill(_ b: UnsafeMutableRawBufferPointer) -> Bool {
            calls += 1
            for i in 0..<b.count { b[i] = UInt8(truncatingIfNeeded: i &+ calls &* 7) }
            return true
        }
    }

    func testKeysAreTheSourcesBytesAndTheBatchRefills() {
        let counter = CountingFill()
        let source = MaskKeySource(fill: counter.fill)
        XCTAssertEqual(counter.calls, 0, "filled on first use, not at creation")
        var keys: [UInt32] = []
        for _ in 0..<(MaskKeySource.batchSize * 2 + 1) { keys.append(source.nextKey()) }
        XCTAssertEqual(counter.calls, 3)
        XCTAssertEqual(source.refills, 3)
        // Key 0 is bytes 0-3 of the first fill, key 64 bytes 0-3 of the second.
        XCTAssertEqual(keys[0], UInt32(7) | UInt32(8) << 8 | UInt32(9) << 16 | UInt32(10) << 24)
        XCTAssertEqual(keys[MaskKeySource.batchSize], UInt32(14) | UInt32(15) << 8 | UInt32(16) << 16 | UInt32(17) << 24)
    }

    /// The client protocol masks every frame with the next key of its source.
    func testClientFramesCarryTheSourcesKeys() {
        let counter = CountingFill()
        let reference = MaskKeySource(fill: CountingFill().fill)
        var p = WebSocketProtocol(role: .client, limits: .init(), outbound: ByteBuffer(),
                                  maskKeys: MaskKeySource(fill: counter.fill))
        for i in 0..<(MaskKeySource.batchSize + 3) {
            p.send(text: "m\(i)")
            let bytes = p.outbound.bytes
            XCTAssertEqual(bytes[1] & 0x80, 0x80, "masked")
            let key = UInt32(bytes[2]) | UInt32(bytes[3]) << 8 | UInt32(bytes[4]) << 16 | UInt32(bytes[5]) << 24
            XCTAssertEqual(key, reference.nextKey(), "frame \(i)")
            p.outbound.clear()
        }
        XCTAssertEqual(counter.calls, 2)
        // A server never masks and draws no keys.
        XCTAssertNil(WebSocketProtocol(role: .server).maskKeys)
    }

    /// The default source is the CSPRNG: a stub (zeros, a counter, a fixed or short-period
    /// generator, one seed shared by instances) fails one of these.
    func testSystemSourceLooksRandom() throws {
        let a = MaskKeySource(), b = MaskKeySource()
        let n = 16_384  // 64 KiB of keys, 256 refills
        var bytes: [UInt8] = []
        bytes.reserveCapacity(n * 4)
        var fromA = Set<UInt32>(), fromB = Set<UInt32>()
        for _ in 0..<n {
            let k = a.nextKey()
            fromA.insert(k)
            withUnsafeBytes(of: k) { bytes += $0 }
            fromB.insert(b.nextKey())
        }
        XCTAssertEqual(a.refills, n / MaskKeySource.batchSize)
        // Distinct 32-bit keys: a birthday collision among 16 Ki keys has probability ~3%,
        // so allow a few; a short period or a constant gives thousands.
        XCTAssertGreaterThan(fromA.count, n - 4)
        XCTAssertLessThan(fromA.intersection(fromB).count, 4, "two instances share keys")
        // Each bit set in about half of the keys (±5σ of a fair coin).
        for bit in 0..<32 {
            var ones = 0
            for i in stride(from: 0, to: bytes.count, by: 4) {
                let k = UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
                if k >> UInt32(bit) & 1 == 1 { ones += 1 }
            }
            XCTAssertEqual(Double(ones), Double(n) / 2, accuracy: 5 * 64, "bit \(bit)")  // σ = √n/2 = 64
        }
        // Random bytes do not compress.
        let deflate = PerMessageDeflate(role: .server, parameters: DeflateParameters())
        XCTAssertGreaterThan(deflate.compress(bytes).count, bytes.count * 99 / 100)
    }

    /// A default client protocol draws its keys from a batch source of its own.
    func testDefaultClientUsesItsOwnBatchSource() {
        var p = WebSocketProtocol(role: .client)
        var q = WebSocketProtocol(role: .client)
        XCTAssertFalse(p.maskKeys === q.maskKeys)
        XCTAssertEqual(p.maskKeys?.refills, 0)
        for _ in 0..<(MaskKeySource.batchSize + 1) { p.send(text: "x") }
        XCTAssertEqual(p.maskKeys?.refills, 2)
        q.send(text: "x")
        let a = p.outbound.bytes, b = q.outbound.bytes
        XCTAssertNotEqual(Array(a[2..<6]), Array(b[2..<6]), "two clients start with different keys")
    }

    func testSystemRandomFillsTheBuffer() {
        var buffer = [UInt8](repeating: 0, count: 32)
        XCTAssertTrue(buffer.withUnsafeMutableBytes { MaskKeySource.systemRandom($0) })
        XCTAssertNotEqual(buffer, [UInt8](repeating: 0, count: 32))
    }
}
