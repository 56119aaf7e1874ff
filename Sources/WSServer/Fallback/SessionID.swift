#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// A fallback session's id: 128 bits from the kernel's CSPRNG (getrandom(2)), plus one byte
/// naming the event loop that owns the session, so a request that lands on another loop is
/// routed by the id alone (no shared table, no lock). Written as 24 base64url characters
/// (RFC 4648 §5): loop ‖ 16 random bytes ‖ one zero byte = 18 bytes = 24 characters, the
/// last always "A" (the zero byte doubles as a format version).
///
/// The loop byte is not secret; the 16 random bytes are the capability. Comparison is in
/// constant time over the random part so a forged id learns nothing from timing.
public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    /// Random bytes (128 bits).
    public let high: UInt64
    public let low: UInt64
    /// Index of the loop that owns the session.
    public let loop: UInt8

    /// Length of the printed form.
    public static let textLength = 24
    static let version = UInt8(ascii: "A")
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    public init(high: UInt64, low: UInt64, loop: UInt8) {
        self.high = high
        self.low = low
        self.loop = loop
    }

    /// A fresh id for a session on `loop`. Throws only if the kernel refuses randomness
    /// (getrandom blocks until the pool is initialised; EINTR is retried).
    public static func random(loop: UInt8) throws(SessionIDError) -> SessionID {
        var words: (UInt64, UInt64) = (0, 0)
        let ok = withUnsafeMutableBytes(of: &words) { buf -> Bool in
            var filled = 0
            while filled < buf.count {
                let n = getrandom(buf.baseAddress! + filled, buf.count - filled, 0)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                filled += n
            }
            return true
        }
        guard ok else { throw SessionIDError(errno: errno) }
        return SessionID(high: words.0, low: words.1, loop: loop)
    }

    /// The 24-character form: a version character, then base64url of loop ‖ high ‖ low.
    public var description: String {
        var bytes = [UInt8](repeating: 0, count: 18)
        bytes[0] = loop
        for i in 0..<8 {
            bytes[1 + i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i)))
            bytes[9 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i)))
        }
        // 18 bytes → exactly 24 characters; byte 17 stays zero, so the last character is "A".
        var out = [UInt8]()
        out.reserveCapacity(Self.textLength)
        var i = 0
        while i < 18 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for shift in [18, 12, 6, 0] { out.append(Self.alphabet[Int(n >> UInt32(shift) & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses the printed form strictly (length, alphabet, version); nil for anything else.
    public init?(_ text: Substring) {
        let chars = Array(text.utf8)
        guard chars.count == Self.textLength, chars[Self.textLength - 1] == Self.version else { return nil }
        var values = [UInt8](repeating: 0, count: Self.textLength)
        for (i, c) in chars.enumerated() {
            guard let v = Self.value(of: c) else { return nil }
            values[i] = v
        }
        values[Self.textLength - 1] = 0
        var bytes = [UInt8]()
        bytes.reserveCapacity(18)
        var i = 0
        while i < Self.textLength {
            let n = UInt32(values[i]) << 18 | UInt32(values[i + 1]) << 12 | UInt32(values[i + 2]) << 6 | UInt32(values[i + 3])
            bytes.append(UInt8(truncatingIfNeeded: n >> 16))
            bytes.append(UInt8(truncatingIfNeeded: n >> 8))
            bytes.append(UInt8(truncatingIfNeeded: n))
            i += 4
        }
        // Byte 17 is padding we always write as zero: anything else is not our id.
        guard bytes[17] == 0 else { return nil }
        var high: UInt64 = 0, low: UInt64 = 0
        for k in 0..<8 {
            high = high << 8 | UInt64(bytes[1 + k])
            low = low << 8 | UInt64(bytes[9 + k])
        }
        self.init(high: high, low: low, loop: bytes[0])
    }

    public init?(_ text: String) { self.init(Substring(text)) }

    static func value(of c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): return 62
        case UInt8(ascii: "_"): return 63
        default: return nil
        }
    }

    /// Constant-time equality over all 136 bits (a table lookup compares with this).
    public static func == (a: SessionID, b: SessionID) -> Bool {
        ((a.high ^ b.high) | (a.low ^ b.low) | UInt64(a.loop ^ b.loop)) == 0
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(high)
        hasher.combine(low)
        hasher.combine(loop)
    }
}

/// The kernel refused randomness (getrandom failed with something other than EINTR).
public struct SessionIDError: Error, Sendable, Equatable {
    public let errno: Int32
}
