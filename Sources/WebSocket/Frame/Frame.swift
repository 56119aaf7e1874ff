/// RFC 6455 §5.2 opcodes. Reserved values (3–7, 11–15) are not representable: the decoder
/// rejects them with 1002.
public enum Opcode: UInt8, Sendable {
    case continuation = 0x0
    case text = 0x1
    case binary = 0x2
    case close = 0x8
    case ping = 0x9
    case pong = 0xA

    @inlinable public var isControl: Bool { rawValue & 0x8 != 0 }

    /// Compares the raw bytes (the synthesized `==` went through the Equatable witness table
    /// on the receive path: measured with callgrind).
    @inlinable public static func == (a: Opcode, b: Opcode) -> Bool { a.rawValue == b.rawValue }
}

/// A decoded frame header (RFC 6455 §5.2). 24 bytes.
package struct FrameHeader: Sendable, Equatable {
    package var fin: Bool
    /// RSV1–RSV3 as the low three bits (RSV1 = 4).
    package var rsv: UInt8
    package var opcode: Opcode
    package var masked: Bool
    package var maskKey: UInt32  // in wire order when loaded as little-endian bytes
    package var payloadLength: UInt64
    /// Bytes of header on the wire (2–14).
    package var headerLength: Int {
        get { Int(storedHeaderLength) }
        set { storedHeaderLength = UInt8(newValue) }
    }
    @usableFromInline var storedHeaderLength: UInt8

    package init(fin: Bool, rsv: UInt8 = 0, opcode: Opcode, masked: Bool, maskKey: UInt32 = 0,
                payloadLength: UInt64, headerLength: Int = 0) {
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.maskKey = maskKey
        self.payloadLength = payloadLength
        self.storedHeaderLength = UInt8(headerLength == 0
            ? FrameHeader.encodedLength(payloadLength: payloadLength, masked: masked) : headerLength)
    }

    /// Header size when encoded with the minimal length form.
    @inlinable package static func encodedLength(payloadLength: UInt64, masked: Bool) -> Int {
        (payloadLength < 126 ? 2 : payloadLength <= 0xFFFF ? 4 : 10) + (masked ? 4 : 0)
    }

    /// Parses a header from the start of `bytes`; nil if more bytes are needed.
    /// Checks only what is decidable from the header alone and independent of connection
    /// state: reserved opcodes, the 64-bit length MSB, control frame rules.
    @inlinable
    package static func parse(_ bytes: UnsafeRawBufferPointer) throws(ProtocolError) -> FrameHeader? {
        guard bytes.count >= 2 else { return nil }
        let b0 = bytes[0], b1 = bytes[1]
        guard let opcode = Opcode(rawValue: b0 & 0x0F) else { throw .reservedOpcode(b0 & 0x0F) }
        let fin = b0 & 0x80 != 0
        let masked = b1 & 0x80 != 0
        var length = UInt64(b1 & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = UInt64(bytes[2]) << 8 | UInt64(bytes[3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = 0
            for i in 2..<10 { length = length << 8 | UInt64(bytes[i]) }
            // §5.2: the most significant bit MUST be 0.
            if length & (1 << 63) != 0 { throw .lengthMSBSet }
            offset = 10
        }
        if opcode.isControl {
            // §5.5: control frames have ≤ 125 bytes of payload and are never fragmented.
            if length > 125 { throw .controlFrameTooLong }
            if !fin { throw .fragmentedControlFrame }
        }
        var key: UInt32 = 0
        if masked {
            guard bytes.count >= offset + 4 else { return nil }
            key = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            offset += 4
        }
        return FrameHeader(fin: fin, rsv: (b0 >> 4) & 0x7, opcode: opcode, masked: masked,
                           maskKey: key, payloadLength: length, headerLength: offset)
    }

    /// Writes the header at `dst` (which must have room for `headerLength` bytes);
    /// returns the bytes written. Always uses the minimal length form.
    @inlinable
    package func write(to dst: UnsafeMutableRawPointer) -> Int {
        dst.storeBytes(of: (fin ? 0x80 : 0) | (rsv & 7) << 4 | opcode.rawValue, as: UInt8.self)
        let maskBit: UInt8 = masked ? 0x80 : 0
        var offset: Int
        if payloadLength < 126 {
            dst.storeBytes(of: maskBit | UInt8(payloadLength), toByteOffset: 1, as: UInt8.self)
            offset = 2
        } else if payloadLength <= 0xFFFF {
            dst.storeBytes(of: maskBit | 126, toByteOffset: 1, as: UInt8.self)
            dst.storeBytes(of: UInt16(payloadLength).bigEndian, toByteOffset: 2, as: UInt16.self)
            offset = 4
        } else {
            dst.storeBytes(of: maskBit | 127, toByteOffset: 1, as: UInt8.self)
            dst.storeBytes(of: payloadLength.bigEndian, toByteOffset: 2, as: UInt64.self)
            offset = 10
        }
        if masked {
            dst.storeBytes(of: maskKey, toByteOffset: offset, as: UInt32.self)
            offset += 4
        }
        return offset
    }
}
