/// Where the frame receiver stands in the byte stream (RFC 6455 §5.2), as one value, in the
/// manner of swift-nio's `WebSocketFrameDecoder`: each case carries exactly the data that is
/// meaningful in it, so the receive loop cannot see, say, a mask phase without a frame.
///
/// The message being assembled (`MessageAssembly`) is kept beside it rather than inside it:
/// a message spans frames, and control frames may come between its fragments (§5.4), so it
/// outlives every case here. Invariants the receive loop relies on:
/// - `.data` only while a message is being assembled (its header passed `check`);
/// - a frame whose payload was whole in one read never enters `.data` or `.control`;
/// - every step that leaves the state unfinished has used all of the input.
@usableFromInline enum ReceiveState {
    /// Between frames. 0–13 bytes of the next header may have arrived in earlier reads.
    case header(PartialHeader)
    /// Inside the payload of a data frame (text, binary or continuation) of the current message.
    case data(FramePayload)
    /// Inside the payload of a control frame that did not arrive whole in one read (a control
    /// frame that did is handled at its header). Its bytes so far are in the protocol's
    /// `controlBuffer`, which exists only in this state: the buffer is kept outside the enum
    /// so that the enum holds no reference and assigning it costs a few stores (callgrind:
    /// ~20 instructions per payload piece less than with the buffer inside).
    case control(FramePayload)

    /// Between frames with no header bytes pending.
    static var idle: ReceiveState { .header(PartialHeader()) }

    /// Between frames with no header bytes pending (the receive fast path's precondition).
    @inlinable var isIdle: Bool {
        if case .header(let partial) = self { return partial.count == 0 }
        return false
    }

    /// False only between frames with no partial header.
    var isInsideFrame: Bool {
        if case .header(let partial) = self { return partial.count > 0 }
        return true
    }
}

/// The payload of one frame being read, piece by piece.
@usableFromInline struct FramePayload {
    let header: FrameHeader
    /// Payload bytes not yet read.
    var remaining: UInt64
    /// Position in the 4-byte mask key of the next payload byte (§5.3).
    var maskPhase: UInt8 = 0

    @inline(__always) init(_ header: FrameHeader) {
        self.header = header
        remaining = header.payloadLength
    }

    /// Takes the next piece of payload from `input[cursor...]` (as much as is there, up to
    /// the frame's end), unmasks it in place and advances `cursor`.
    @inline(__always) mutating func take(_ input: UnsafeMutableRawBufferPointer, cursor: inout Int) -> UnsafeMutableRawBufferPointer {
        let n = Int(min(UInt64(input.count - cursor), remaining))
        let chunk = UnsafeMutableRawBufferPointer(rebasing: input[cursor..<(cursor + n)])
        cursor += n
        remaining -= UInt64(n)
        if header.masked {
            maskPhase = UInt8(Masking.apply(key: header.maskKey, phase: Int(maskPhase), to: chunk))
        }
        return chunk
    }

    /// The next `chunk.count` payload bytes, already written at `chunk` by the owner (they
    /// were read straight into the message buffer): unmasks them there and advances.
    @inline(__always) mutating func took(_ chunk: UnsafeMutableRawBufferPointer) {
        remaining -= UInt64(chunk.count)
        if header.masked {
            maskPhase = UInt8(Masking.apply(key: header.maskKey, phase: Int(maskPhase), to: chunk))
        }
    }

    var isComplete: Bool { remaining == 0 }
    /// This piece ends the frame, and the frame ends its message.
    var endsMessage: Bool { remaining == 0 && header.fin }
}

/// The first bytes of a frame header that was split across reads (at most 13 of the 14).
@usableFromInline struct PartialHeader {
    private var bytes = (UInt64(0), UInt64(0))
    @usableFromInline var stored: UInt8 = 0

    @inlinable var count: Int { Int(stored) }

    /// Parses the header from `input[cursor...]`, after the stored bytes if there are any.
    /// Returns the header and advances `cursor` past its rest, or stores what there is and
    /// returns nil (having used all of the input).
    @inline(__always)
    mutating func complete(_ input: UnsafeMutableRawBufferPointer, cursor: inout Int) throws(ProtocolError) -> FrameHeader? {
        if stored == 0, let h = try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: input[cursor...])) {
            cursor += h.headerLength  // the common case: the whole header is in this read
            return h
        }
        return try completeSplit(input, cursor: &cursor)
    }

    private mutating func completeSplit(_ input: UnsafeMutableRawBufferPointer, cursor: inout Int) throws(ProtocolError) -> FrameHeader? {
        let available = input.count - cursor
        if available == 0 { return nil }
        let before = count
        if before == 0 {
            // Fewer than 14 bytes, all of the input: keep them for the next read.
            withUnsafeMutableBytes(of: &bytes) { s in
                s.baseAddress!.copyMemory(from: input.baseAddress! + cursor, byteCount: available)
            }
            stored = UInt8(available)
            cursor = input.count
            return nil
        }
        let take = min(14 - before, available)
        let parsed = try withUnsafeMutableBytes(of: &bytes) { (s) throws(ProtocolError) -> FrameHeader? in
            (s.baseAddress! + before).copyMemory(from: input.baseAddress! + cursor, byteCount: take)
            return try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: s[0..<(before + take)]))
        }
        if let h = parsed {
            cursor += h.headerLength - before
            stored = 0
            return h
        }
        stored += UInt8(take)
        cursor += take
        return nil
    }
}

/// The data message being received, from its first frame to its FIN frame (§5.4).
///
/// Its existence is the receiver's "inside a fragmented message" state: a continuation frame
/// is expected exactly when there is one, a new text or binary frame exactly when there is none.
@usableFromInline struct MessageAssembly {
    // Widest first, sizes in 32 bits (every limit is < 2 GiB and `check` keeps the sums
    // under it): 24 bytes in every connection instead of 40.
    /// Reassembled (or inflated) bytes; nil until the first byte needs keeping.
    var buffer: ByteBuffer?
    private var storedSize: Int32 = 0
    private var storedFragments: Int32 = 0
    /// `.text` or `.binary`, from the first frame.
    let opcode: Opcode
    /// RSV1 was set on the first frame: permessage-deflate (RFC 7692 §6.1).
    let compressed: Bool
    /// With `streamsMessages`: a `.fragment` of it was delivered.
    var streamed = false
    var utf8 = UTF8Validator()

    /// Payload bytes declared by the frames so far (compressed size for a compressed message).
    var size: Int {
        get { Int(storedSize) }
        set { storedSize = Int32(newValue) }
    }
    var fragments: Int {
        get { Int(storedFragments) }
        set { storedFragments = Int32(newValue) }
    }

    init(opcode: Opcode, compressed: Bool) {
        self.opcode = opcode
        self.compressed = compressed
    }

    @inline(__always) var isText: Bool { opcode == .text }
}
