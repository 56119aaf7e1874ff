/// SHA-1 (FIPS 180-4 §6.1), our own. Used only for `Sec-WebSocket-Accept` (RFC 6455 §4.2.2),
/// where SHA-1 is a fixed part of the protocol, not a security choice, and for Redis script
/// names. OpenSSL's `SHA1()` went through `EVP_Q_digest`, whose algorithm fetch alone cost
/// ~4k instructions per upgrade (callgrind); this is ~1.5k for the 60 bytes of a key + GUID,
/// and allocates nothing.
package enum SHA1 {
    package static func digest<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        let input = Array(bytes)
        var out = [UInt8](repeating: 0, count: 20)
        input.withUnsafeBytes { inp in
            out.withUnsafeMutableBytes { o in hash(inp, into: o.baseAddress!) }
        }
        return out
    }

    /// Writes the 20-byte digest of `message` at `out`.
    package static func hash(_ message: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32) = (0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0)
        let whole = message.count / 64 * 64
        var offset = 0
        while offset < whole {
            compress(&h, message.baseAddress! + offset)
            offset += 64
        }
        // The tail, 0x80, zeros, and the message length in bits (big-endian): one or two blocks.
        withUnsafeTemporaryAllocation(byteCount: 128, alignment: 8) { tail in
            let rest = message.count - whole
            tail.initializeMemory(as: UInt8.self, repeating: 0)
            if rest > 0 { tail.baseAddress!.copyMemory(from: message.baseAddress! + whole, byteCount: rest) }
            tail[rest] = 0x80
            let blocks = rest + 9 <= 64 ? 1 : 2
            let bits = UInt64(message.count) &* 8
            for i in 0..<8 { tail[blocks * 64 - 1 - i] = UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i))) }
            for b in 0..<blocks { compress(&h, UnsafeRawPointer(tail.baseAddress! + b * 64)) }
        }
        out.storeBytes(of: h.0.bigEndian, toByteOffset: 0, as: UInt32.self)
        out.storeBytes(of: h.1.bigEndian, toByteOffset: 4, as: UInt32.self)
        out.storeBytes(of: h.2.bigEndian, toByteOffset: 8, as: UInt32.self)
        out.storeBytes(of: h.3.bigEndian, toByteOffset: 12, as: UInt32.self)
        out.storeBytes(of: h.4.bigEndian, toByteOffset: 16, as: UInt32.self)
    }

    @inline(__always) static func rotl(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }

    // One round, in place: `e` becomes the new `a` and `b` the new `c`; the next round takes
    // the five words in rotated roles (e, a, b, c, d), so no word is moved (§6.1.2 step 3).
    @inline(__always) static func ch(_ a: UInt32, _ b: inout UInt32, _ c: UInt32, _ d: UInt32, _ e: inout UInt32, _ w: UInt32) {
        e = e &+ rotl(a, 5) &+ ((b & c) | (~b & d)) &+ 0x5A82_7999 &+ w
        b = rotl(b, 30)
    }
    @inline(__always) static func parity(_ a: UInt32, _ b: inout UInt32, _ c: UInt32, _ d: UInt32, _ e: inout UInt32, _ w: UInt32, _ k: UInt32) {
        e = e &+ rotl(a, 5) &+ (b ^ c ^ d) &+ k &+ w
        b = rotl(b, 30)
    }
    @inline(__always) static func maj(_ a: UInt32, _ b: inout UInt32, _ c: UInt32, _ d: UInt32, _ e: inout UInt32, _ w: UInt32) {
        e = e &+ rotl(a, 5) &+ ((b & c) | (b & d) | (c & d)) &+ 0x8F1B_BCDC &+ w
        b = rotl(b, 30)
    }

    /// One 64-byte block into the state (§6.1.2): the whole schedule first, then the four
    /// groups of 20 rounds, five at a time.
    static func compress(_ h: inout (UInt32, UInt32, UInt32, UInt32, UInt32), _ block: UnsafeRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 80) { buffer in
            let w = buffer.baseAddress!
            for t in 0..<16 { w[t] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * t, as: UInt32.self)) }
            for t in 16..<80 { w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1) }
            var a = h.0, b = h.1, c = h.2, d = h.3, e = h.4
            var t = 0
            while t < 20 {
                ch(a, &b, c, d, &e, w[t]); ch(e, &a, b, c, &d, w[t + 1]); ch(d, &e, a, b, &c, w[t + 2])
                ch(c, &d, e, a, &b, w[t + 3]); ch(b, &c, d, e, &a, w[t + 4])
                t += 5
            }
            while t < 40 {
                let k: UInt32 = 0x6ED9_EBA1
                parity(a, &b, c, d, &e, w[t], k); parity(e, &a, b, c, &d, w[t + 1], k); parity(d, &e, a, b, &c, w[t + 2], k)
                parity(c, &d, e, a, &b, w[t + 3], k); parity(b, &c, d, e, &a, w[t + 4], k)
                t += 5
            }
            while t < 60 {
                maj(a, &b, c, d, &e, w[t]); maj(e, &a, b, c, &d, w[t + 1]); maj(d, &e, a, b, &c, w[t + 2])
                maj(c, &d, e, a, &b, w[t + 3]); maj(b, &c, d, e, &a, w[t + 4])
                t += 5
            }
            while t < 80 {
                let k: UInt32 = 0xCA62_C1D6
                parity(a, &b, c, d, &e, w[t], k); parity(e, &a, b, c, &d, w[t + 1], k); parity(d, &e, a, b, &c, w[t + 2], k)
                parity(c, &d, e, a, &b, w[t + 3], k); parity(b, &c, d, e, &a, w[t + 4], k)
                t += 5
            }
            h.0 &+= a; h.1 &+= b; h.2 &+= c; h.3 &+= d; h.4 &+= e
        }
    }
}
