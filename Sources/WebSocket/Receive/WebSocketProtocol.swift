/// The sans-IO WebSocket protocol for one connection (RFC 6455 §5–§7).
///
/// Contract (as python-websockets' `Protocol`): feed received bytes to `next(_:cursor:)`
/// repeatedly, handling each event it returns until it returns nil; then send whatever is in
/// `outbound` and look at `state`. Sending (`send`, `ping`, `close`) appends frames to
/// `outbound`. Nothing here does I/O, reads a clock, or knows about TLS.
///
/// Payload pointers in events point either into the caller's input (unmasked in place; a
/// whole message in one read is delivered without a copy) or into an internal buffer. They
/// are valid until the next call to `next`.
public struct WebSocketProtocol {
    /// Which end we are: servers expect masked frames and send unmasked ones, clients the reverse.
    public enum Role: Sendable { case server, client }

    /// The closing handshake's progress (RFC 6455 §7).
    public enum State: Sendable, Equatable {
        /// Messages flow both ways.
        case open
        /// We sent a close frame and wait for the peer's (still parsing, data is dropped).
        case closeSent
        /// Close frames went both ways: flush `outbound`, then close the TCP connection.
        case closed
        /// The peer broke the protocol: our close frame is in `outbound`; flush it, stop
        /// reading frames and close the TCP connection (the stream can no longer be parsed).
        case failed
    }

    /// What `next(_:cursor:)` found in the input.
    public enum Event {
        case text(UnsafeRawBufferPointer)
        case binary(UnsafeRawBufferPointer)
        /// A ping; the pong is already in `outbound`.
        case ping(UnsafeRawBufferPointer)
        case pong(UnsafeRawBufferPointer)
        /// The peer's close frame. If we had not closed yet, the echo is already in `outbound`.
        case close(code: CloseCode?, reason: UnsafeRawBufferPointer)
        /// The peer broke the protocol; a close frame with `error.closeCode` is in `outbound`.
        case failed(ProtocolError)
        /// With `streamsMessages`: a piece of an uncompressed message as it arrives (a frame, or
        /// the part of one that is in this read). Text pieces are valid UTF-8 so far, but may
        /// end inside a character; the whole message is valid when `last` arrives.
        case fragment(Opcode, UnsafeRawBufferPointer, first: Bool, last: Bool)
    }

    // Layout follows declaration order: the limits (14 bytes) first with two one-byte fields
    // in their tail padding, the words, and the other one-byte fields last, in this struct's
    // tail, where the owner's next fields can pack (a connection object is 232 bytes, a
    // 240-byte malloc chunk).
    public var limits: Limits
    public let role: Role
    public internal(set) var state: State = .open
    /// permessage-deflate, once negotiated (RFC 7692). nil: RSV1 is a protocol error.
    public var deflate: PerMessageDeflate?
    /// Frames waiting to be written to the peer (`outbound`); nil while none has been needed
    /// since `releaseOutboundIfIdle` gave it back, so an idle connection holds no buffer object.
    @usableFromInline var outboundBox: ByteBuffer?

    /// Where the receiver is in the current frame.
    @usableFromInline var receive = ReceiveState.idle
    /// The data message being received, if one has started (see `MessageAssembly`).
    @usableFromInline var message: MessageAssembly?
    /// Keeps the buffer of the payload just delivered alive until the next call to `next`.
    @usableFromInline var delivered: ByteBuffer?
    /// The payload so far of a control frame split across reads; non-nil only in `.control`.
    private var controlBuffer: ByteBuffer?

    /// Mask keys for a client's frames (nil for a server, which does not mask).
    let maskKeys: MaskKeySource?

    /// Deliver uncompressed messages piece by piece (`.fragment`) instead of reassembled, so
    /// a large message needs no buffer (the size limit still applies to the whole message).
    /// Compressed messages are still delivered whole.
    public var streamsMessages = false
    /// Pongs written to `outbound` since the owner last called `outboundDrained()`.
    @usableFromInline var queuedPongs: UInt8 = 0

    /// Frames waiting to be written to the peer. Made on first use after it was released
    /// (`releaseOutboundIfIdle`); readers that must not allocate use `outboundCount` or
    /// `outboundIfAllocated`.
    @inlinable public var outbound: ByteBuffer {
        @inline(__always) mutating get {
            if let box = outboundBox { return box }
            return makeOutbound()
        }
    }

    @usableFromInline mutating func makeOutbound() -> ByteBuffer {
        let box = ByteBuffer()
        outboundBox = box
        return box
    }

    /// The output buffer if one exists (nil: nothing is queued and none is held).
    @inlinable public var outboundIfAllocated: ByteBuffer? { outboundBox }
    /// Whether an output buffer object is held (no reference taken).
    @inlinable public var hasOutbound: Bool { outboundBox != nil }
    /// Bytes waiting in `outbound` (0 without allocating one).
    @inlinable public var outboundCount: Int { outboundBox?.readableCount ?? 0 }

    /// Gives the output buffer object back if it is empty and nobody else holds it (a send in
    /// flight, a caller's local reference): the next frame makes a new one. Returns whether
    /// none is held now.
    @discardableResult
    public mutating func releaseOutboundIfIdle() -> Bool {
        // No local binding of the box: it would be a second reference of its own.
        if outboundBox == nil { return true }
        guard outboundBox!.isEmpty else { return false }
        outboundBox!.releaseIfEmpty()
        guard isKnownUniquelyReferenced(&outboundBox) else { return false }
        outboundBox = nil
        return true
    }

    public init(role: Role, limits: Limits = Limits(), outbound: ByteBuffer = ByteBuffer()) {
        self.init(role: role, limits: limits, outbound: outbound,
                  maskKeys: role == .client ? MaskKeySource() : nil)
    }

    init(role: Role, limits: Limits, outbound: ByteBuffer, maskKeys: MaskKeySource?) {
        self.role = role
        self.limits = limits
        self.outboundBox = outbound
        self.maskKeys = maskKeys
    }

    /// True while a fragmented message or a frame is partially received.
    public var isMidMessage: Bool { message != nil || receive.isInsideFrame }

    /// Bytes of heap held by the receive path (not counting `outbound`).
    package var bufferedBytes: Int {
        var control = 0
        control = controlBuffer?.allocatedBytes ?? 0
        return (message?.buffer?.allocatedBytes ?? 0) + control
            + (deflate?.allocatedBytes ?? 0) + (deflate?.sendScratch?.allocatedBytes ?? 0)
    }

    // MARK: - Receiving

    /// Consumes bytes from `input[cursor...]`, unmasking in place, and returns the next event,
    /// or nil when the input is used up. Advances `cursor` past what it used.
    ///
    /// Each turn of the loop handles one state: a header (which checks the frame and may
    /// deliver a frame that is whole in this read without copying it), or the next piece of a
    /// data or control payload. Every path that returns nil has used all of the input.
    @inlinable @inline(__always)
    public mutating func next(_ input: UnsafeMutableRawBufferPointer, cursor: inout Int) -> Event? {
        if delivered != nil { delivered = nil }
        if state == .open, role == .server, message == nil, !streamsMessages, receive.isIdle,
           let event = wholeMessage(input, &cursor) {
            return event
        }
        if cursor == input.count && receive.isIdle { return nil }  // the end of a read, between frames
        return nextInGeneral(input, cursor: &cursor)
    }

    /// Every other frame, and frames split across reads: one state per turn of the loop.
    /// Out of line so that the fast path above pays no stack frame for it.
    @inline(never) @usableFromInline
    mutating func nextInGeneral(_ input: UnsafeMutableRawBufferPointer, cursor: inout Int) -> Event? {
        while true {
            if state == .closed || state == .failed {
                cursor = input.count  // the stream is over (or cannot be parsed): discard
                return nil
            }
            switch receive {
            case .header(var partial):
                let header: FrameHeader
                do {
                    let split = partial.count > 0
                    guard let h = try partial.complete(input, cursor: &cursor) else {
                        receive = .header(partial)
                        return nil
                    }
                    if split { receive = .idle }
                    try check(h)
                    header = h
                } catch {
                    return fail(error)
                }
                if let event = begin(header, input, &cursor) { return event }
            case .data(var frame):
                if cursor == input.count && !frame.isComplete { return nil }
                let chunk = frame.take(input, cursor: &cursor)
                receive = frame.isComplete ? .idle : .data(frame)
                if let event = dataPiece(UnsafeRawBufferPointer(chunk), of: frame) { return event }
                if !frame.isComplete { return nil }
            case .control(var frame):
                if cursor == input.count && !frame.isComplete { return nil }
                let chunk = UnsafeRawBufferPointer(frame.take(input, cursor: &cursor))
                let buffer = controlBuffer ?? ByteBuffer(capacity: 128)
                buffer.append(chunk)
                guard frame.isComplete else {
                    receive = .control(frame)
                    controlBuffer = buffer
                    return nil
                }
                receive = .idle
                controlBuffer = nil
                delivered = buffer  // the event's payload points into it
                if let event = control(frame.header.opcode, buffer.readableBytes) { return event }
            }
        }
    }

    /// The common case in one step: a whole unfragmented, uncompressed, masked text or binary
    /// frame with a 7- or 16-bit length at `cursor`, while open, between frames and messages.
    /// The rules `FrameHeader.parse` and `check` apply to other frames hold for it by
    /// construction (FIN, RSV 0, a data opcode, masked, no message in progress; §5.2, §5.4);
    /// the size limits are checked here. Nil: not such a frame (nothing consumed), take the
    /// general path. Callgrind, 64-byte text: ~340 instructions for parse, check, begin and
    /// unmask plus 85 for UTF-8 before; see README "Performance".
    @inlinable @inline(__always)
    mutating func wholeMessage(_ input: UnsafeMutableRawBufferPointer, _ cursor: inout Int) -> Event? {
        let available = input.count &- cursor
        guard available >= 6, let start = input.baseAddress else { return nil }
        let p = start + cursor
        let b0 = p.load(as: UInt8.self), b1 = p.load(fromByteOffset: 1, as: UInt8.self)
        // FIN, RSV1–3 clear, opcode 1 (text) or 2 (binary); MASK set.
        guard b0 &- 0x81 < 2, b1 & 0x80 != 0 else { return nil }
        var length = Int(b1 & 0x7F), headerLength = 6
        if length == 126 {
            guard available >= 8 else { return nil }
            length = Int(UInt16(p.load(fromByteOffset: 2, as: UInt8.self)) << 8
                | UInt16(p.load(fromByteOffset: 3, as: UInt8.self)))
            headerLength = 8
        } else if length == 127 {
            return nil
        }
        guard available &- headerLength >= length, length <= limits.maxFrameSize,
              length <= limits.maxMessageSize else { return nil }
        let key = p.loadUnaligned(fromByteOffset: headerLength &- 4, as: UInt32.self)
        let payload = UnsafeMutableRawBufferPointer(start: p + headerLength, count: length)
        cursor &+= headerLength &+ length
        if b0 == 0x82 {
            Masking.apply(key: key, phase: 0, to: payload)
            return .binary(UnsafeRawBufferPointer(payload))
        }
        if Masking.unmaskIsASCII(key: key, payload) || UTF8Validator.isValid(UnsafeRawBufferPointer(payload)) {
            return .text(UnsafeRawBufferPointer(payload))
        }
        return fail(.invalidUTF8)
    }

    /// A checked header: starts the frame (and, for a first data frame, the message). A frame
    /// whose payload is all in this read and needs no assembly is delivered from the input
    /// without a copy. Returns the event to deliver, or nil to go on with the new state.
    private mutating func begin(_ header: FrameHeader, _ input: UnsafeMutableRawBufferPointer,
                                _ cursor: inout Int) -> Event? {
        let whole = UInt64(input.count - cursor) >= header.payloadLength
        if header.opcode.isControl {
            guard whole else {
                receive = .control(FramePayload(header))
                return nil
            }
            let payload = unmaskWhole(header, input, &cursor)
            return control(header.opcode, UnsafeRawBufferPointer(payload))
        }
        if header.opcode != .continuation {  // (`check`: no message was in progress)
            let compressed = header.rsv & 4 != 0
            // Zero-copy fast path: a whole unfragmented, uncompressed message in this read.
            if whole, header.fin, !compressed, !streamsMessages {
                let payload = UnsafeRawBufferPointer(unmaskWhole(header, input, &cursor))
                if state == .closeSent { return nil }  // closing: data is dropped
                if header.opcode == .text {
                    return UTF8Validator.isValid(payload) ? .text(payload) : fail(.invalidUTF8)
                }
                return .binary(payload)
            }
            message = MessageAssembly(opcode: header.opcode, compressed: compressed)
        }
        message!.size += Int(header.payloadLength)
        message!.fragments += 1
        receive = .data(FramePayload(header))
        return nil
    }

    private func unmaskWhole(_ header: FrameHeader, _ input: UnsafeMutableRawBufferPointer,
                             _ cursor: inout Int) -> UnsafeMutableRawBufferPointer {
        let n = Int(header.payloadLength)
        let payload = UnsafeMutableRawBufferPointer(rebasing: input[cursor..<(cursor + n)])
        cursor += n
        if header.masked { Masking.apply(key: header.maskKey, phase: 0, to: payload) }
        return payload
    }

    // MARK: - Receiving large frames in place

    /// Inside the payload of a large data frame of a message being reassembled (open,
    /// uncompressed, not streamed, at least `minimum` payload bytes still to come): room at the
    /// end of the message buffer for the frame's next bytes, at most `limit` and never more
    /// than the frame still has, so whatever is read into it is payload of this frame. The
    /// owner reads straight into it (plain TCP: recv; TLS: records decrypted into it) and then
    /// calls `receivedInPlace(_:)` with how many bytes it wrote, before any other call: the
    /// bytes are not copied from a read buffer into the message. Nil: read into your own
    /// buffer and use `next(_:cursor:)`.
    public mutating func directReceiveBuffer(minimum: Int, limit: Int) -> UnsafeMutableRawBufferPointer? {
        guard state == .open, !streamsMessages, case .data(let frame) = receive, frame.remaining >= UInt64(max(minimum, 1)),
              let m = message, !m.compressed, limit > 0 else { return nil }
        delivered = nil  // the previous event's payload is done with
        let n = Int(min(frame.remaining, UInt64(limit)))
        let buffer: ByteBuffer
        if let b = m.buffer { buffer = b } else {
            // Sized as in `dataPiece`: from the declared length, at most 1 MiB up front.
            buffer = ByteBuffer(capacity: min(max(m.size, n), 1 << 20))
            message!.buffer = buffer
        }
        return UnsafeMutableRawBufferPointer(start: buffer.reserveWritable(n), count: n)
    }

    /// `count` bytes were written at the start of the last `directReceiveBuffer`: unmasks and
    /// checks them as `next` would have (UTF-8 for text) and returns the event they complete
    /// (the whole message, or the failure), or nil to keep reading.
    public mutating func receivedInPlace(_ count: Int) -> Event? {
        guard count > 0, case .data(var frame) = receive, let buffer = message?.buffer,
              let storage = buffer.storage else { return nil }
        precondition(UInt64(count) <= frame.remaining && buffer.writeIndex + count <= buffer.capacity,
                     "receivedInPlace: more bytes than directReceiveBuffer offered")
        let chunk = UnsafeMutableRawBufferPointer(start: storage + buffer.writeIndex, count: count)
        frame.took(chunk)
        receive = frame.isComplete ? .idle : .data(frame)
        return dataPiece(UnsafeRawBufferPointer(chunk), of: frame, inPlace: true)
    }

    /// The next piece of a data frame's payload (`frame` already advanced past it). Returns the
    /// event to deliver, or nil to keep reading. `inPlace`: the piece is already at the end of
    /// the message buffer (`receivedInPlace`), uncommitted.
    private mutating func dataPiece(_ chunk: UnsafeRawBufferPointer, of frame: FramePayload,
                                    inPlace: Bool = false) -> Event? {
        if state == .closeSent {  // closing: data is parsed and dropped
            if frame.endsMessage { message = nil }
            return nil
        }
        if message!.compressed { return inflate(chunk, frame) }
        if message!.isText, !message!.utf8.validate(chunk) {
            return fail(.invalidUTF8)  // fail fast, mid-frame (§8.1)
        }
        let last = frame.endsMessage
        if last, message!.isText, !message!.utf8.isComplete { return fail(.invalidUTF8) }
        if streamsMessages {
            let opcode = message!.opcode, first = !message!.streamed
            if chunk.isEmpty && !first && !last { return nil }
            if last { message = nil } else { message!.streamed = true }
            return .fragment(opcode, chunk, first: first, last: last)
        }
        if inPlace {
            message!.buffer!.commitWrite(chunk.count)
        } else if !chunk.isEmpty {
            // Sized from the declared length (already checked against the limit) so a
            // large message is copied once, not regrown; capped at 1 MiB so a peer that
            // declares a big frame and sends slowly cannot make us reserve much.
            if message!.buffer == nil { message!.buffer = ByteBuffer(capacity: min(message!.size, 1 << 20)) }
            message!.buffer!.append(chunk)
        }
        guard last else { return nil }
        let isText = message!.isText
        delivered = message!.buffer
        message = nil
        let bytes = delivered?.readableBytes ?? UnsafeRawBufferPointer(start: nil, count: 0)
        return isText ? .text(bytes) : .binary(bytes)
    }

    /// A piece of a compressed message: inflate it (bounded by the message limit, which applies
    /// to the decompressed size), validate the new text bytes, and finish at FIN. Returns the
    /// event to deliver, or nil to keep reading.
    private mutating func inflate(_ chunk: UnsafeRawBufferPointer, _ frame: FramePayload) -> Event? {
        if message!.buffer == nil { message!.buffer = ByteBuffer(capacity: 1 << 12) }
        let buffer = message!.buffer!
        let isText = message!.isText
        var checked = buffer.readableCount
        do throws(DeflateError) {
            try deflate!.decompress(chunk, into: buffer, limit: limits.maxMessageSize)
            if isText {
                if !message!.utf8.validate(UnsafeRawBufferPointer(rebasing: buffer.readableBytes[checked...])) {
                    return fail(.invalidUTF8)
                }
                checked = buffer.readableCount
            }
            guard frame.endsMessage else { return nil }
            try deflate!.finishMessage(into: buffer, limit: limits.maxMessageSize)
        } catch {
            // Whatever inflated before the failure is checked first, so the answer does not
            // depend on how the bytes were split across reads (found by fuzzing).
            if isText, !message!.utf8.validate(UnsafeRawBufferPointer(rebasing: buffer.readableBytes[checked...])) {
                return fail(.invalidUTF8)
            }
            return fail(error.protocolError)
        }
        if isText {
            let fresh = UnsafeRawBufferPointer(rebasing: buffer.readableBytes[checked...])
            if !message!.utf8.validate(fresh) || !message!.utf8.isComplete { return fail(.invalidUTF8) }
        }
        message = nil
        delivered = buffer
        return isText ? .text(buffer.readableBytes) : .binary(buffer.readableBytes)
    }

    /// State-dependent header rules.
    private func check(_ h: FrameHeader) throws(ProtocolError) {
        // §5.2: RSV bits must be 0 unless an extension defines them. permessage-deflate
        // defines RSV1 on the first frame of a data message (RFC 7692 §6).
        let allowed: UInt8 = deflate != nil && (h.opcode == .text || h.opcode == .binary) ? 4 : 0
        if h.rsv & ~allowed != 0 { throw .reservedBitsSet }
        // §5.1: clients mask, servers don't.
        switch role {
        case .server: if !h.masked { throw .unmaskedClientFrame }
        case .client: if h.masked { throw .maskedServerFrame }
        }
        if h.opcode.isControl { return }
        if h.opcode == .continuation {
            if message == nil { throw .unexpectedContinuation }
        } else if message != nil {
            throw .expectedContinuation
        }
        // Decided at the header, before any payload is buffered.
        let size = h.opcode == .continuation ? message!.size : 0
        let fragments = h.opcode == .continuation ? message!.fragments : 0
        if h.payloadLength > UInt64(limits.maxFrameSize) { throw .frameTooLarge(limit: limits.maxFrameSize) }
        if UInt64(size) + h.payloadLength > UInt64(limits.maxMessageSize) {
            throw .messageTooLarge(limit: limits.maxMessageSize)
        }
        if fragments + 1 > limits.maxFragments { throw .tooManyFragments(limit: limits.maxFragments) }
    }

    private mutating func control(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer) -> Event? {
        switch opcode {
        case .ping:
            // §5.5.3 lets an endpoint answer only some pings when earlier pongs are still
            // unsent: past `maxQueuedPongs` (a ping flood from a peer that does not read),
            // further pings get no pong until the output drains.
            if state == .open && Int(queuedPongs) < limits.maxQueuedPongs {
                writeFrame(.pong, payload)
                queuedPongs += 1
            }
            return .ping(payload)
        case .pong:
            return .pong(payload)
        case .close:
            // §5.5.1: empty, or a 2-byte code followed by a UTF-8 reason.
            if payload.count == 1 { return fail(.closePayloadOneByte) }
            var code: CloseCode?
            var reason = UnsafeRawBufferPointer(start: nil, count: 0)
            if payload.count >= 2 {
                let c = CloseCode(UInt16(payload[0]) << 8 | UInt16(payload[1]))
                if !c.isValidOnWire { return fail(.invalidCloseCode(c.rawValue)) }
                reason = UnsafeRawBufferPointer(rebasing: payload[2...])
                if !UTF8Validator.isValid(reason) { return fail(.invalidCloseReason) }
                code = c
            }
            if state == .open {
                // §5.5.1: echo the status code.
                writeClose(code: code, reason: [])
            }
            state = .closed
            return .close(code: code, reason: reason)
        default:
            return nil
        }
    }

    @usableFromInline
    mutating func fail(_ error: ProtocolError) -> Event {
        if state == .open {
            writeClose(code: error.closeCode, reason: Array(error.reason.utf8))
        }
        state = .failed
        receive = .idle
        message = nil
        controlBuffer = nil
        return .failed(error)
    }
}
