import WebSocket

/// A copyable summary of a protocol event, for assertions.
enum Ev: Equatable {
    case text(String)
    case binary([UInt8])
    case ping([UInt8])
    case pong([UInt8])
    case close(UInt16?, String)
    case failed(ProtocolError)
    case fragment(UInt8, [UInt8], Bool, Bool)
}

/// Builds a client frame (masked unless `mask` is nil).
func frame(_ opcode: UInt8, _ payload: [UInt8], fin: Bool = true, rsv: UInt8 = 0,
           mask: [UInt8]? = [0x37, 0xFA, 0x21, 0x3D], forceLength64: Bool = false) -> [UInt8] {
    var out: [UInt8] = [(fin ? 0x80 : 0) | (rsv << 4) | opcode]
    let maskBit: UInt8 = mask == nil ? 0 : 0x80
    let n = payload.count
    if forceLength64 {
        out.append(maskBit | 127)
        for i in (0..<8).reversed() { out.append(UInt8((UInt64(n) >> (UInt64(i) * 8)) & 0xFF)) }
    } else if n < 126 {
        out.append(maskBit | UInt8(n))
    } else if n <= 0xFFFF {
        out += [maskBit | 126, UInt8(n >> 8), UInt8(n & 0xFF)]
    } else {
        out.append(maskBit | 127)
        for i in (0..<8).reversed() { out.append(UInt8((UInt64(n) >> (UInt64(i) * 8)) & 0xFF)) }
    }
    if let mask {
        out += mask
        out += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    } else {
        out += payload
    }
    return out
}

func text(_ s: String, fin: Bool = true) -> [UInt8] { frame(0x1, Array(s.utf8), fin: fin) }
func closeFrame(_ code: UInt16?, _ reason: String = "") -> [UInt8] {
    var p: [UInt8] = []
    if let code { p = [UInt8(code >> 8), UInt8(code & 0xFF)] + Array(reason.utf8) }
    return frame(0x8, p)
}

/// Feeds `bytes` to `proto` in chunks of `chunk` bytes (0 = all at once) and collects events.
func feed(_ proto: inout WebSocketProtocol, _ bytes: [UInt8], chunk: Int = 0) -> [Ev] {
    var events: [Ev] = []
    var data = bytes
    let step = chunk == 0 ? max(1, data.count) : chunk
    var start = 0
    while start < data.count {
        let end = min(data.count, start + step)
        data.withUnsafeMutableBytes { all in
            let piece = UnsafeMutableRawBufferPointer(rebasing: all[start..<end])
            var cursor = 0
            while let e = proto.next(piece, cursor: &cursor) {
                switch e {
                case .text(let p): events.append(.text(String(decoding: p, as: UTF8.self)))
                case .binary(let p): events.append(.binary(Array(p)))
                case .ping(let p): events.append(.ping(Array(p)))
                case .pong(let p): events.append(.pong(Array(p)))
                case .close(let c, let r): events.append(.close(c?.rawValue, String(decoding: r, as: UTF8.self)))
                case .failed(let err): events.append(.failed(err))
                case .fragment(let op, let p, let first, let last):
                    events.append(.fragment(op.rawValue, Array(p), first, last))
                }
            }
        }
        start = end
    }
    return events
}

/// Decodes the server's (unmasked) output frames.
func serverFrames(_ out: ByteBuffer) -> [(opcode: UInt8, payload: [UInt8])] {
    var result: [(UInt8, [UInt8])] = []
    let bytes = out.bytes
    var i = 0
    while i + 2 <= bytes.count {
        let op = bytes[i] & 0x0F
        var len = Int(bytes[i + 1] & 0x7F)
        var off = i + 2
        if len == 126 { len = Int(bytes[off]) << 8 | Int(bytes[off + 1]); off += 2 }
        else if len == 127 { len = 0; for k in 0..<8 { len = len << 8 | Int(bytes[off + k]) }; off += 8 }
        result.append((op, Array(bytes[off..<(off + len)])))
        i = off + len
    }
    return result
}

/// The close code in the server's last output frame, if it is a close frame.
func sentCloseCode(_ out: ByteBuffer) -> UInt16? {
    guard let last = serverFrames(out).last, last.opcode == 0x8 else { return nil }
    if last.payload.count < 2 { return 1005 }
    return UInt16(last.payload[0]) << 8 | UInt16(last.payload[1])
}
