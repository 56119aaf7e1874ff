/// Base64 (RFC 4648 §4, with padding), enough for the opening handshake. No Foundation.
package enum Base64 {
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static let decodeTable: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        return table
    }()

    package static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        let input = Array(bytes)
        let length = (input.count + 2) / 3 * 4
        let out = [UInt8](unsafeUninitializedCapacity: length) { buf, count in
            input.withUnsafeBytes { encode($0, to: UnsafeMutableRawPointer(buf.baseAddress!)) }
            count = length
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Strict decoding: length a multiple of 4, padding only at the end, no whitespace,
    /// unused bits zero. Returns nil for anything else.
    package static func decode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        let chars = Array(text)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 4 * 3)
        var i = 0
        while i < chars.count {
            let isLast = i + 4 == chars.count
            var values: [UInt32] = [0, 0, 0, 0]
            var padding = 0
            for j in 0..<4 {
                let c = chars[i + j]
                if c == UInt8(ascii: "=") {
                    guard isLast, j >= 2 else { return nil }
                    padding += 1
                    continue
                }
                guard padding == 0 else { return nil }  // data after '='
                let v = decodeTable[Int(c)]
                guard v != 0xFF else { return nil }
                values[j] = UInt32(v)
            }
            let n = values[0] << 18 | values[1] << 12 | values[2] << 6 | values[3]
            out.append(UInt8(n >> 16 & 0xFF))
            if padding < 2 { out.append(UInt8(n >> 8 & 0xFF)) } else if n & 0xFFFF != 0 { return nil }
            if padding < 1 { out.append(UInt8(n & 0xFF)) } else if n & 0xFF != 0 { return nil }
            i += 4
        }
        return out
    }

    /// Writes the base64 of `bytes` (4 per 3, padded) at `out`, allocating nothing.
    package static func encode(_ bytes: UnsafeRawBufferPointer, to out: UnsafeMutableRawPointer) {
        alphabet.withUnsafeBufferPointer { a in
            var i = 0, o = 0
            while i < bytes.count {
                let b1 = i + 1 < bytes.count ? bytes[i + 1] : nil, b2 = i + 2 < bytes.count ? bytes[i + 2] : nil
                let n = UInt32(bytes[i]) << 16 | UInt32(b1 ?? 0) << 8 | UInt32(b2 ?? 0)
                out.storeBytes(of: a[Int(n >> 18 & 63)], toByteOffset: o, as: UInt8.self)
                out.storeBytes(of: a[Int(n >> 12 & 63)], toByteOffset: o + 1, as: UInt8.self)
                out.storeBytes(of: b1 == nil ? UInt8(ascii: "=") : a[Int(n >> 6 & 63)], toByteOffset: o + 2, as: UInt8.self)
                out.storeBytes(of: b2 == nil ? UInt8(ascii: "=") : a[Int(n & 63)], toByteOffset: o + 3, as: UInt8.self)
                i += 3
                o += 4
            }
        }
    }

    /// Whether `text` is what `decode` accepts as 16 bytes (a `Sec-WebSocket-Key`, RFC 6455
    /// §4.2.1): 22 alphabet characters, the last with its 4 unused bits zero, then "==".
    /// Checked in place, allocating nothing.
    package static func isNonce(_ text: UnsafeRawBufferPointer) -> Bool {
        guard text.count == 24, text[22] == UInt8(ascii: "="), text[23] == UInt8(ascii: "=") else { return false }
        return decodeTable.withUnsafeBufferPointer { t in
            for i in 0..<22 where t[Int(text[i])] == 0xFF { return false }
            return t[Int(text[21])] & 0x0F == 0
        }
    }
}
