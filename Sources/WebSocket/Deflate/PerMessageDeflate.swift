import CZlib

/// permessage-deflate for one connection (RFC 7692 §6–§7), sans-IO.
///
/// Sending: `compress(_:into:final:)` turns a message (or its fragments in order) into the
/// payload of frames whose first one carries RSV1. Receiving: for a message whose first
/// frame had RSV1, feed every payload piece (frames, or parts of frames as they arrive) to
/// `decompress(_:into:limit:)`, then call `finishMessage(into:limit:)` after the FIN frame.
/// zlib streams are created on first use and freed on deinit or by `releaseIdleMemory()`.
public final class PerMessageDeflate {
    public let role: WebSocketProtocol.Role
    public let parameters: DeflateParameters
    public let options: DeflateOptions
    // Derived from `parameters` for our role (see `DeflateParameters` for the names).
    /// Our side's window (8 means we never compress).
    package let compressWindowBits: Int
    /// The peer's window, raised to 9 for inflating (see `DeflateNegotiation`).
    let decompressWindowBits: Int
    /// Our side's no_context_takeover: reset the compressor after each message.
    package let compressNoContextTakeover: Bool
    /// The peer's no_context_takeover: reset the inflater after each message.
    let decompressNoContextTakeover: Bool

    private var deflater: ZStream?
    private var inflater: ZStream?

    // The message being decompressed.
    private var inputCount = 0
    private var outputCount = 0
    private var streamEnded = false

    /// The 4 octets that RFC 7692 §7.2.1 strips from, and §7.2.2 appends to, a message.
    static let tail: [UInt8] = [0x00, 0x00, 0xFF, 0xFF]

    /// Our side's window may be 8 (a client limited us to it): zlib cannot compress raw deflate
    /// with 8 bits, so then `canCompress` is false and every message must be sent uncompressed.
    public init(role: WebSocketProtocol.Role, parameters: DeflateParameters, options: DeflateOptions = DeflateOptions()) {
        self.role = role
        self.parameters = parameters
        self.options = options
        compressWindowBits = parameters.maxWindowBits(of: role)
        decompressWindowBits = max(parameters.maxWindowBits(of: role.peer), 9)
        compressNoContextTakeover = parameters.noContextTakeover(of: role)
        decompressNoContextTakeover = parameters.noContextTakeover(of: role.peer)
    }

    /// False when our window was limited to 8 bits: send everything uncompressed.
    package var canCompress: Bool { compressWindowBits >= 9 }

    /// Reused output buffer for compressing outgoing messages (kept here, not in every
    /// connection's protocol state, so connections without deflate do not pay for it).
    package var sendScratch: ByteBuffer?

    // MARK: - Memory

    /// Heap bytes held by zlib for this connection right now (exact, from zlib's allocator).
    public var allocatedBytes: Int { (deflater?.allocatedBytes ?? 0) + (inflater?.allocatedBytes ?? 0) }

    /// Frees the streams whose state is not needed between messages: the compressor if our
    /// side has no_context_takeover, the inflater if the peer's has, and both only between
    /// messages. With context takeover the window IS the state and must be kept.
    public func releaseIdleMemory() {
        if compressNoContextTakeover { deflater = nil }
        if decompressNoContextTakeover, inputCount == 0 { inflater = nil }
    }

    /// Bytes one raw deflate stream holds: zlib's documented
    /// `(1 << (windowBits+2)) + (1 << (memLevel+9))`, plus its 5,952-byte state struct and the
    /// 112-byte z_stream (exact for zlib 1.2.13 on 64-bit Linux, checked by a test; zlib ≥ 1.3.1
    /// built with LIT_MEM adds `1 << (memLevel+6)`).
    public static func deflateMemory(windowBits: Int, memLevel: Int) -> Int {
        (1 << (windowBits + 2)) + (1 << (memLevel + 9)) + 5_952 + MemoryLayout<z_stream>.size
    }

    /// Bytes one raw inflate stream holds: the window `1 << windowBits` (allocated on the first
    /// output), plus its 7,160-byte state struct and the z_stream (zlib 1.2.13, 64-bit).
    /// The inflater uses at least 9 bits (see `DeflateNegotiation`).
    public static func inflateMemory(windowBits: Int) -> Int {
        (1 << max(windowBits, 9)) + 7_160 + MemoryLayout<z_stream>.size
    }

    // MARK: - Compressing

    /// Whether a message of `size` bytes should be compressed (`options.minSizeToCompress`).
    /// Sending a message uncompressed (RSV1 clear) is always allowed.
    /// Always false if `canCompress` is false.
    package func shouldCompress(size: Int) -> Bool { canCompress && size >= options.minSizeToCompress }

    /// Compresses `data` and appends the result to `output`; returns the bytes appended.
    ///
    /// For a whole message call once with `final: true`. For a fragmented message, call for
    /// each fragment in order with `final: false` and then `final: true` for the last one
    /// (a non-final call may append nothing: send an empty continuation frame then).
    /// The final call flushes (Z_SYNC_FLUSH), strips the trailing 00 00 FF FF (§7.2.1) and,
    /// with our no_context_takeover, resets the compressor.
    /// - Precondition: `canCompress`.
    @discardableResult
    package func compress(_ data: UnsafeRawBufferPointer, into output: ByteBuffer, final: Bool = true) -> Int {
        precondition(canCompress, "window limited to 8 bits: messages must be sent uncompressed")
        let z: ZStream
        if let d = deflater { z = d } else {
            z = ZStream.deflater(level: options.compressionLevel, windowBits: compressWindowBits,
                                 memLevel: options.memLevel)
            deflater = z
        }
        let s = z.strm
        let start = output.readableCount
        var remaining = data.count
        var next = data.baseAddress
        let flush = final ? Z_SYNC_FLUSH : Z_NO_FLUSH
        repeat {
            // avail_in is 32-bit: feed at most 1 GiB per round.
            let piece = min(remaining, 1 << 30)
            s.pointee.next_in = next.map { UnsafeMutablePointer(mutating: $0.assumingMemoryBound(to: Bytef.self)) }
            s.pointee.avail_in = uInt(piece)
            let isLast = piece == remaining
            while true {
                let room = min(max(piece / 2 + 64, 1024), 256 << 10)
                let dst = output.reserveWritable(room)
                s.pointee.next_out = dst.assumingMemoryBound(to: Bytef.self)
                s.pointee.avail_out = uInt(room)
                let rc = deflate(s, isLast ? flush : Z_NO_FLUSH)
                output.commitWrite(room - Int(s.pointee.avail_out))
                // Z_BUF_ERROR: nothing left to do (not fatal). Anything else is a bug.
                precondition(rc == Z_OK || rc == Z_BUF_ERROR, "deflate failed: \(rc)")
                if s.pointee.avail_out != 0 || rc == Z_BUF_ERROR { break }
            }
            remaining -= piece
            next = next.map { $0 + piece }
        } while remaining > 0
        if final {
            let produced = output.readableCount - start
            let bytes = output.readableBytes
            let n = bytes.count
            // (Compared byte by byte: no allocation on the send path.)
            if produced >= 4, bytes[n - 4] == 0x00, bytes[n - 3] == 0x00, bytes[n - 2] == 0xFF, bytes[n - 1] == 0xFF {
                output.writeIndex -= 4
            }
            if compressNoContextTakeover { deflateReset(s) }
        }
        s.pointee.next_in = nil
        s.pointee.next_out = nil
        return output.readableCount - start
    }

    /// Compresses a whole message.
    package func compress(_ message: [UInt8]) -> [UInt8] {
        let out = ByteBuffer(capacity: message.count / 2 + 64)
        message.withUnsafeBytes { _ = compress($0, into: out, final: true) }
        return out.bytes
    }

    // MARK: - Decompressing

    /// Decompressed bytes of the current message so far.
    package var messageDecompressedCount: Int { outputCount }

    /// Compressed bytes zlib consumed in the current message (for tests of early stopping).
    var inflaterTotalIn: Int { inflater.map { Int($0.strm.pointee.total_in) } ?? 0 }

    /// Inflates the next piece of a compressed message and appends the output to `output`.
    ///
    /// `limit` bounds the message's decompressed size: as soon as the output would exceed it,
    /// this throws `.messageTooLarge(limit:)` having produced at most `limit + 1` bytes.
    package func decompress(_ chunk: UnsafeRawBufferPointer, into output: ByteBuffer, limit: Int) throws(DeflateError) {
        guard chunk.count > 0 else { return }
        inputCount += chunk.count
        streamEnded = try inflate(chunk, into: output, limit: limit, isTail: false)
    }

    /// Ends the message after its FIN frame: inflates the 00 00 FF FF tail (§7.2.2), checks
    /// that the data ended on a block boundary, and prepares for the next message (resetting
    /// the inflater if the peer has no_context_takeover).
    package func finishMessage(into output: ByteBuffer, limit: Int) throws(DeflateError) {
        defer {
            inputCount = 0
            outputCount = 0
            streamEnded = false
        }
        // An empty payload is an empty message; appending the tail to nothing would leave the
        // inflater mid-block, so the stream is not touched.
        guard inputCount > 0 else { return }
        // If the payload ended exactly with a final (BFINAL) block, the stream was already
        // restarted and the tail must not be fed to it.
        if !streamEnded {
            // (withUnsafeBytes rethrows untyped errors, hence the detour.)
            var failure: DeflateError?
            var ended = false
            Self.tail.withUnsafeBytes { t in
                do throws(DeflateError) { ended = try inflate(t, into: output, limit: limit, isTail: true) }
                catch { failure = error }
            }
            if let failure { throw failure }
            // After the tail (an empty stored block) inflate waits for the next block header,
            // and data_type has bit 128 set exactly then. Otherwise the message stopped mid-block.
            if !ended, let z = inflater, z.strm.pointee.data_type & 128 == 0 { throw .invalidCompressedData }
        }
        if decompressNoContextTakeover, let z = inflater { inflateReset(z.strm) }
    }

    /// Decompresses a whole message (all its payload pieces concatenated).
    package func decompress(_ payload: [UInt8], limit: Int) throws(DeflateError) -> [UInt8] {
        let out = ByteBuffer(capacity: min(max(payload.count * 4, 64), max(limit, 64)))
        var failure: DeflateError?
        payload.withUnsafeBytes { p in
            do throws(DeflateError) { try decompress(p, into: out, limit: limit) } catch { failure = error }
        }
        if let failure { throw failure }
        try finishMessage(into: out, limit: limit)
        return out.bytes
    }

    /// Feeds `input` to the inflater. Returns true if the input ended exactly at the end of a
    /// final (BFINAL) block.
    ///
    /// A final block ends the DEFLATE stream, but RFC 7692 §7.2.3.4 lets a sender use one to
    /// flush and go on (its example is a BFINAL block followed by a 0x00 octet, which with the
    /// appended tail forms an empty stored block). So at a stream end the inflater restarts
    /// keeping its window (a sender with context takeover may refer back past the final block)
    /// and decodes whatever follows as a new stream. Leftover tail bytes are ignored.
    private func inflate(_ input: UnsafeRawBufferPointer, into output: ByteBuffer, limit: Int,
                         isTail: Bool) throws(DeflateError) -> Bool {
        let z: ZStream
        if let i = inflater { z = i } else {
            guard let i = ZStream.inflater(windowBits: decompressWindowBits) else { throw .internalError }
            inflater = i
            z = i
        }
        let s = z.strm
        defer { s.pointee.next_in = nil; s.pointee.next_out = nil }
        var remaining = input.count
        var next = input.baseAddress!
        var endedAtStreamEnd = false
        while remaining > 0 {
            let piece = min(remaining, 1 << 30)
            s.pointee.next_in = UnsafeMutablePointer(mutating: next.assumingMemoryBound(to: Bytef.self))
            s.pointee.avail_in = uInt(piece)
            inflating: while true {
                // Never let zlib write more than one byte past the limit: a zip bomb stops here.
                let allowed = min(max(limit - outputCount, 0), 1 << 30) + 1
                let spare = output.capacity - output.writeIndex
                let room = min(allowed, max(spare, min(max(piece * 4, 4096), 256 << 10)))
                let dst = output.reserveWritable(room)
                s.pointee.next_out = dst.assumingMemoryBound(to: Bytef.self)
                s.pointee.avail_out = uInt(room)
                let rc = CZlib.inflate(s, Z_SYNC_FLUSH)
                let produced = room - Int(s.pointee.avail_out)
                output.commitWrite(produced)
                outputCount += produced
                if outputCount > limit { throw .messageTooLarge(limit: limit) }
                switch rc {
                case Z_OK:
                    endedAtStreamEnd = false
                    // Output space left means all input was consumed; none means maybe more output.
                    if s.pointee.avail_out == 0 { continue inflating }
                    break inflating
                case Z_BUF_ERROR:
                    break inflating  // no progress possible: input used up
                case Z_STREAM_END:
                    try restartKeepingWindow(s)
                    if isTail { return true }
                    endedAtStreamEnd = true
                    if s.pointee.avail_in == 0 { break inflating }
                    continue inflating
                case Z_MEM_ERROR:
                    throw .internalError
                default:  // Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR
                    throw .invalidCompressedData
                }
            }
            if s.pointee.avail_in != 0 { throw .invalidCompressedData }  // cannot happen with output room
            remaining -= piece
            next += piece
        }
        return endedAtStreamEnd
    }

    /// Resets the inflater after a final block, with the last window as its dictionary.
    private func restartKeepingWindow(_ s: UnsafeMutablePointer<z_stream>) throws(DeflateError) {
        let dictionary = UnsafeMutablePointer<Bytef>.allocate(capacity: 1 << 15)
        defer { dictionary.deallocate() }
        var length: uInt = 0
        guard inflateGetDictionary(s, dictionary, &length) == Z_OK, inflateReset(s) == Z_OK,
              length == 0 || inflateSetDictionary(s, dictionary, length) == Z_OK
        else { throw .internalError }
    }
}
