extension WebSocketProtocol {
    /// Tells the protocol that everything in `outbound` reached the peer's socket (resets the
    /// count of queued pongs).
    @inlinable public mutating func outboundDrained() { queuedPongs = 0 }

    /// Whether a send was queued.
    public enum SendResult: Sendable, Equatable {
        case queued
        /// The connection is closing or closed; nothing was queued.
        case closed
    }

    @discardableResult
    public mutating func send(text: UnsafeRawBufferPointer) -> SendResult { send(.text, text) }

    @discardableResult
    public mutating func send(binary: UnsafeRawBufferPointer) -> SendResult { send(.binary, binary) }

    @discardableResult
    public mutating func send(text: String) -> SendResult {
        var s = text
        return s.withUTF8 { send(.text, UnsafeRawBufferPointer($0)) }
    }

    @discardableResult
    public mutating func send(binary: [UInt8]) -> SendResult {
        binary.withUnsafeBytes { send(.binary, $0) }
    }

    /// Sends one frame. `fin: false` starts or continues a fragmented message (pass
    /// `.continuation` for the frames after the first). With permessage-deflate negotiated, a
    /// whole (unfragmented) message is compressed when `compress` says so, or by default when
    /// it is at least the configured minimum size; fragmented messages go uncompressed.
    @inlinable @inline(__always) @discardableResult
    public mutating func send(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true,
                              compress: Bool? = nil) -> SendResult {
        guard state == .open else { return .closed }
        if deflate == nil, role == .server {  // the common case, without the compression checks
            writeServerFrame(opcode, payload, fin: fin, rsv: 0)
            return .queued
        }
        return sendInGeneral(opcode, payload, fin: fin, compress: compress)
    }

    /// Compression, or masking for a client.
    @usableFromInline
    mutating func sendInGeneral(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool,
                                compress: Bool?) -> SendResult {
        if let d = deflate, fin, opcode == .text || opcode == .binary, d.canCompress,
           compress ?? d.shouldCompress(size: payload.count) {
            let scratch = d.sendScratch ?? ByteBuffer(capacity: 1 << 12)
            d.sendScratch = scratch
            d.compress(payload, into: scratch, final: true)
            writeFrame(opcode, scratch.readableBytes, fin: true, rsv: 4)
            scratch.clear()
            scratch.releaseIfEmpty(threshold: 1 << 16)
            return .queued
        }
        writeFrame(opcode, payload, fin: fin)
        return .queued
    }

    /// For a server that writes a large message straight from the application's buffer
    /// (writev, or TLS records sealed from it) instead of copying it into `outbound`: writes
    /// the frame header to `header` (room for 14 bytes) and returns its length, when the
    /// message may go out that way now — open, server role (no masking), nothing queued
    /// before it, no compression wanted. Nil: use `send`. Whatever the caller cannot write
    /// at once it must append to `outbound` (header rest first), so frames stay in order.
    package mutating func directFrameHeader(_ opcode: Opcode, count: Int, compress: Bool? = nil,
                                           into header: UnsafeMutableRawPointer) -> Int? {
        guard state == .open, role == .server, outboundCount == 0, opcode == .text || opcode == .binary else { return nil }
        if let d = deflate, d.canCompress, compress ?? d.shouldCompress(size: count) { return nil }
        let h = FrameHeader(fin: true, rsv: 0, opcode: opcode, masked: false, maskKey: 0, payloadLength: UInt64(count))
        return h.write(to: header)
    }

    /// Queues a ping (payload ≤ 125 bytes, truncated otherwise).
    @discardableResult
    public mutating func ping(_ payload: [UInt8] = []) -> SendResult {
        guard state == .open else { return .closed }
        payload.prefix(125).withUnsafeBytes { writeFrame(.ping, $0) }
        return .queued
    }

    /// Starts the closing handshake (§7.1.2). The reason is truncated to fit 123 bytes on a
    /// character boundary.
    public mutating func close(code: CloseCode = .normal, reason: String = "") {
        guard state == .open else { return }
        writeClose(code: code, reason: Self.truncatedReason(reason))
        state = .closeSent
    }

    static func truncatedReason(_ reason: String) -> [UInt8] {
        var out: [UInt8] = []
        for ch in reason.unicodeScalars {
            let bytes = Array(String(ch).utf8)
            if out.count + bytes.count > 123 { break }
            out += bytes
        }
        return out
    }

    mutating func writeClose(code: CloseCode?, reason: [UInt8]) {
        var payload: [UInt8] = []
        if let code, code != .noStatus {
            payload = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)] + reason.prefix(123)
        }
        payload.withUnsafeBytes { writeFrame(.close, $0) }
    }

    mutating func writeFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true,
                             rsv: UInt8 = 0) {
        if role == .server { return writeServerFrame(opcode, payload, fin: fin, rsv: rsv) }
        let masked = role == .client
        let key = masked ? maskKeys!.nextKey() : 0  // §5.3: a fresh key from the CSPRNG per frame
        let header = FrameHeader(fin: fin, rsv: rsv, opcode: opcode, masked: masked, maskKey: key,
                                 payloadLength: UInt64(payload.count))
        let out = outbound
        let dst = out.reserveWritable(header.headerLength + payload.count)
        let h = header.write(to: dst)
        if payload.count > 0 {
            if masked {
                Masking.copyMasked(payload, to: dst + h, key: key)  // one pass, not copy then mask
            } else {
                (dst + h).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
            }
        }
        out.commitWrite(h + payload.count)
    }

    /// A server's frame (unmasked, §5.1) straight into `outbound`: the header's 2, 4 or 10
    /// bytes (minimal length form, §5.2) and one copy of the payload.
    @inlinable @inline(__always)
    mutating func writeServerFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool, rsv: UInt8) {
        let n = payload.count
        let headerLength = n < 126 ? 2 : n <= 0xFFFF ? 4 : 10
        let out = outbound
        let dst = out.reserveWritable(headerLength &+ n)
        dst.storeBytes(of: (fin ? 0x80 : 0) | (rsv & 7) << 4 | opcode.rawValue, as: UInt8.self)
        if n < 126 {
            dst.storeBytes(of: UInt8(truncatingIfNeeded: n), toByteOffset: 1, as: UInt8.self)
        } else if n <= 0xFFFF {
            dst.storeBytes(of: 126, toByteOffset: 1, as: UInt8.self)
            dst.storeBytes(of: UInt16(truncatingIfNeeded: n).bigEndian, toByteOffset: 2, as: UInt16.self)
        } else {
            dst.storeBytes(of: 127, toByteOffset: 1, as: UInt8.self)
            dst.storeBytes(of: UInt64(n).bigEndian, toByteOffset: 2, as: UInt64.self)
        }
        if n > 0 { (dst + headerLength).copyMemory(from: payload.baseAddress!, byteCount: n) }
        out.commitWrite(headerLength &+ n)
    }
}
