import Transport
import WebSocket

/// A server frame built once and shared by every recipient: the plain frame always, and with a
/// `SharedCompressor` the permessage-deflate frame too, compressed at most once (on the first
/// recipient that can take it, from whichever loop gets there first).
final class PreparedFrame: Sendable {
    let bytes: [UInt8]
    let payloadCount: Int
    let opcode: Opcode
    /// The message's place in its topic's stream (nil without history).
    let position: StreamPosition?
    private let compressor: SharedCompressor?
    /// The compressed frame once built; nil inside until the first recipient asks for it.
    private let deflated = Locked<[UInt8]?>(nil)

    init(opcode: Opcode, payload: UnsafeRawBufferPointer, compressor: SharedCompressor? = nil, position: StreamPosition? = nil) {
        self.opcode = opcode
        self.position = position
        payloadCount = payload.count
        var proto = WebSocketProtocol(role: .server)
        proto.send(opcode, payload)
        bytes = proto.outbound.bytes
        self.compressor = compressor.flatMap { $0.wants(payload.count) ? $0 : nil }
    }

    /// Whether a connection whose permessage-deflate state is `deflate` may be sent the shared
    /// compressed frame: it negotiated compression, our side without context takeover, and the
    /// frame's back-references (at most the window, and never past the message's own start)
    /// fit the window it allowed us.
    func acceptsCompressed(_ deflate: PerMessageDeflate?) -> Bool {
        guard let compressor, let d = deflate, d.compressNoContextTakeover, d.canCompress else { return false }
        return d.compressWindowBits >= compressor.windowBits || payloadCount <= 1 << d.compressWindowBits
    }

    /// The permessage-deflate frame (RSV1 set), built on the first call. nil without a compressor.
    var compressed: [UInt8]? {
        guard let compressor else { return nil }
        return deflated.withLock { cached -> [UInt8] in
            if let c = cached { return c }
            let header = bytes.count - payloadCount
            let c = bytes.withUnsafeBytes { compressor.frame(opcode, UnsafeRawBufferPointer(rebasing: $0[header...])) }
            cached = c
            return c
        }
    }

    /// The bytes for one recipient: the compressed frame if it can take it, else the plain one.
    func bytes(for deflate: PerMessageDeflate?) -> [UInt8] {
        acceptsCompressed(deflate) ? compressed ?? bytes : bytes
    }
}
