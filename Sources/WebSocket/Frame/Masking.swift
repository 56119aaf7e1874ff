/// RFC 6455 §5.3 masking. The same operation masks and unmasks.
///
/// The key is applied 16 bytes at a time (64 per loop turn) (one SSE2 register on x86-64, one NEON register on
/// arm64; unaligned loads and stores cost the same as aligned ones on both), then 8, then
/// byte by byte for the last 0–7 bytes. Callgrind, 64-byte payload: 99 instructions per
/// frame with 8-byte words and a separate UTF-8 pass, ~20 with this and `unmaskIsASCII`.
@usableFromInline package enum Masking {
    /// Copies `source` to `destination` masked with `key` (phase 0), in one pass.
    @inlinable
    package static func copyMasked(_ source: UnsafeRawBufferPointer, to destination: UnsafeMutableRawPointer, key: UInt32) {
        guard let src = source.baseAddress else { return }
        let count = source.count
        let k64 = UInt64(key) | UInt64(key) << 32
        var i = 0
        while i + 8 <= count {
            (destination + i).storeBytes(of: (src + i).loadUnaligned(as: UInt64.self) ^ k64, as: UInt64.self)
            i += 8
        }
        var k = key
        while i < count {
            (destination + i).storeBytes(of: src.load(fromByteOffset: i, as: UInt8.self) ^ UInt8(truncatingIfNeeded: k),
                                         as: UInt8.self)
            k = (k >> 8) | (k << 24)
            i += 1
        }
    }

    /// XORs `bytes` in place with `key`, starting at byte `phase` (0–3) of the key.
    /// Returns the phase for the next chunk of the same frame.
    @inlinable @discardableResult
    package static func apply(key: UInt32, phase: Int, to bytes: UnsafeMutableRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return phase }
        // Rotate the key so that byte 0 of the rotated key applies to bytes[0].
        let shift = UInt32(phase & 3) * 8
        let k32 = shift == 0 ? key : (key >> shift) | (key << (32 - shift))
        _ = xor(base, count: bytes.count, with: k32)
        return (phase + bytes.count) & 3
    }

    /// Unmasks a whole payload (phase 0) in place and tells whether every unmasked byte is
    /// ASCII (< 0x80), in the same pass: then a text payload is valid UTF-8 without a second
    /// look at its bytes (RFC 3629: ASCII bytes are exactly the one-byte sequences).
    @inlinable
    package static func unmaskIsASCII(key: UInt32, _ bytes: UnsafeMutableRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        return xor(base, count: bytes.count, with: key) & 0x8080_8080_8080_8080 == 0
    }

    /// XORs `count` bytes at `p` with `k32` (byte 0 of the key at `p[0]`) and returns the OR
    /// of every result byte, spread over a word (test it with `& 0x8080…`). When the caller
    /// ignores the result, the OR is optimized away.
    @inlinable @inline(__always)
    static func xor(_ p: UnsafeMutableRawPointer, count: Int, with k32: UInt32) -> UInt64 {
        let k64 = UInt64(k32) | UInt64(k32) << 32
        let kv = SIMD2<UInt64>(repeating: k64)
        var acc = SIMD2<UInt64>(repeating: 0)
        var i = 0
        while i &+ 64 <= count {
            let q = p + i
            let a = q.loadUnaligned(as: SIMD2<UInt64>.self) ^ kv
            let b = q.loadUnaligned(fromByteOffset: 16, as: SIMD2<UInt64>.self) ^ kv
            let c = q.loadUnaligned(fromByteOffset: 32, as: SIMD2<UInt64>.self) ^ kv
            let d = q.loadUnaligned(fromByteOffset: 48, as: SIMD2<UInt64>.self) ^ kv
            q.storeBytes(of: a, as: SIMD2<UInt64>.self)
            q.storeBytes(of: b, toByteOffset: 16, as: SIMD2<UInt64>.self)
            q.storeBytes(of: c, toByteOffset: 32, as: SIMD2<UInt64>.self)
            q.storeBytes(of: d, toByteOffset: 48, as: SIMD2<UInt64>.self)
            acc |= (a | b) | (c | d)
            i &+= 64
        }
        if i &+ 32 <= count {
            let q = p + i
            let a = q.loadUnaligned(as: SIMD2<UInt64>.self) ^ kv
            let b = q.loadUnaligned(fromByteOffset: 16, as: SIMD2<UInt64>.self) ^ kv
            q.storeBytes(of: a, as: SIMD2<UInt64>.self)
            q.storeBytes(of: b, toByteOffset: 16, as: SIMD2<UInt64>.self)
            acc |= a | b
            i &+= 32
        }
        if i &+ 16 <= count {
            let a = (p + i).loadUnaligned(as: SIMD2<UInt64>.self) ^ kv
            (p + i).storeBytes(of: a, as: SIMD2<UInt64>.self)
            acc |= a
            i &+= 16
        }
        var bits = acc[0] | acc[1]
        if i &+ 8 <= count {
            let w = (p + i).loadUnaligned(as: UInt64.self) ^ k64
            (p + i).storeBytes(of: w, as: UInt64.self)
            bits |= w
            i &+= 8
        }
        var k = k32  // the phase at `i` is 0 again: i is a multiple of 8
        while i < count {
            let b = (p + i).load(as: UInt8.self) ^ UInt8(truncatingIfNeeded: k)
            (p + i).storeBytes(of: b, as: UInt8.self)
            bits |= UInt64(b)
            k = (k >> 8) | (k << 24)
            i &+= 1
        }
        return bits
    }
}
