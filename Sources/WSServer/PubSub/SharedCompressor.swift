import Synchronization
import Transport
import WebSocket

/// One permessage-deflate compressor for published messages (what uWebSockets calls its shared
/// compressor): a published message is compressed once, and the same frame goes to every
/// subscriber whose connection negotiated `server_no_context_takeover` (RFC 7692 §7.1.1.1).
///
/// Why only those: a compressed message must not refer to anything the peer's inflater does
/// not hold. Without context, every message is compressed from an empty window, so it refers
/// only to itself, and it is valid on any such connection. A connection WITH context takeover
/// compresses each message against its own previous ones (§7.2.1): a message from elsewhere
/// slipped in between would leave the peer's window out of step with our compressor, so those
/// connections get the plain frame (sending uncompressed is always allowed, §6).
///
/// Safe from any thread: publishes from several threads take turns on one zlib stream.
final class SharedCompressor: Sendable {
    let options: DeflateOptions
    /// The LZ77 window the frames are compressed with (the server's `serverMaxWindowBits`).
    let windowBits: Int
    private let deflate: Locked<PerMessageDeflate>
    /// Messages compressed so far (one per published message that any recipient took compressed).
    let compressions = Atomic<Int>(0)

    /// nil when compression is off or the window is too small for zlib (8 bits).
    init?(options: DeflateOptions) {
        guard options.enabled, (9...15).contains(options.serverMaxWindowBits) else { return nil }
        self.options = options
        windowBits = options.serverMaxWindowBits
        let params = DeflateParameters(serverNoContextTakeover: true, serverMaxWindowBits: windowBits)
        deflate = Locked(PerMessageDeflate(role: .server, parameters: params, options: options))
    }

    /// Whether a message of `count` bytes is worth compressing (`minSizeToCompress`, as for
    /// a connection's own sends).
    func wants(_ count: Int) -> Bool { count >= options.minSizeToCompress }

    /// A complete server frame: FIN, RSV1, `opcode`, the payload deflated without context and
    /// without the trailing 00 00 FF FF (§7.2.1).
    func frame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) -> [UInt8] {
        compressions.add(1, ordering: .relaxed)
        return deflate.withLock { d -> [UInt8] in
            let body = d.sendScratch ?? ByteBuffer(capacity: 1 << 12)
            d.sendScratch = body
            d.compress(payload, into: body, final: true)
            defer {
                body.clear()
                body.releaseIfEmpty(threshold: 1 << 16)
            }
            let header = FrameHeader(fin: true, rsv: 4, opcode: opcode, masked: false,
                                     payloadLength: UInt64(body.readableCount))
            var out = [UInt8](repeating: 0, count: header.headerLength + body.readableCount)
            out.withUnsafeMutableBytes { dst in
                let h = header.write(to: dst.baseAddress!)
                if let src = body.readableBytes.baseAddress, body.readableCount > 0 {
                    dst.baseAddress!.advanced(by: h).copyMemory(from: src, byteCount: body.readableCount)
                }
            }
            return out
        }
    }
}
