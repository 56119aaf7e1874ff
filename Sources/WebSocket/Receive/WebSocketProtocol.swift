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

    /// Size limits enforced while receiving, decided at each frame header.
    public struct Limits: Sendable {
        /// Largest message payload, after reassembly. 16 MiB covers Autobahn section 9 and most
        /// real payloads while bounding memory per connection. At most 2 GiB − 1.
        public var maxMessageSize: Int {
            get { Int(message) }
            set { message = Int32(clamping: newValue) }
        }
        /// Largest single frame payload; defaults to the message limit.
        public var maxFrameSize: Int {
            get { Int(frame) }
            set { frame = Int32(clamping: newValue) }
        }
        /// Most frames in one message; bounds per-fragment overhead from a peer that sends
        /// millions of empty continuation frames.
        public var maxFragments: Int {
            get { Int(fragments) }
            set { fragments = Int32(clamping: newValue) }
        }
        /// Most pongs waiting unsent in `outbound`; pings beyond get no pong until it drains
        /// (1–255). 32 answers any sane keepalive and bounds a ping flood to ~4 KiB of pongs.
        public var maxQueuedPongs: UInt8
        // 32-bit storage: these live in every connection (12 bytes instead of 24).
        private var message: Int32
        private var frame: Int32
        private var fragments: Int32
        public init(maxMessageSize: Int = 16 << 20, maxFrameSize: Int? = nil, maxFragments: Int = 1 << 20,
                    maxQueuedPongs: Int = 32) {
            message = Int32(clamping: maxMessageSize)
            frame = Int32(clamping: maxFrameSize ?? maxMessageSize)
            fragments = Int32(clamping: maxFragments)
            self.maxQueuedPongs = UInt8(clamping: max(1, maxQueuedPongs))
        }
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

    /// Deliver uncompressed messages piece by piece (`.fragment`) instead of reassembled, so
    /// a large message needs no buffer (the size limit still applies to the whole message).
    /// Compressed messages are still delivered whole.
    public var streamsMessages = false

    public let role: Role
    public var limits: Limits
    /// permessage-deflate, once negotiated (RFC 7692). nil: RSV1 is a protocol error.
    public var deflate: PerMessageDeflate?
    public private(set) var state: State = .open
    /// Frames waiting to be written to the peer.
    public let outbound: ByteBuffer

    // Header bytes split across reads (at most 14).
    private var scratch = (UInt64(0), UInt64(0))
    private var scratchCount: Int { get { Int(scratchCount8) } set { scratchCount8 = UInt8(newValue) } }
    private var scratchCount8: UInt8 = 0
    // The frame whose payload is being read.
    private var frame: FrameHeader?
    private var frameRemaining: UInt64 = 0
    private var maskPhase: Int { get { Int(maskPhase8) } set { maskPhase8 = UInt8(newValue) } }
    private var maskPhase8: UInt8 = 0
    // The message being assembled.
    private var messageOpcode: Opcode?
    private var messageSize = 0
    private var fragments = 0
    private var utf8 = UTF8Validator()
    private var messageBuffer: ByteBuffer?
    private var controlBuffer: ByteBuffer?
    private var resetMessageOnNext = false
    /// Pongs written to `outbound` since the owner last called `outboundDrained()`.
    private var queuedPongs: UInt8 = 0
    /// RSV1 was set on the first frame of the message being received.
    private var messageCompressed = false
    /// A `.fragment` of the current message was delivered.
    private var fragmentStarted = false

    private var rng: UInt64

    public init(role: Role, limits: Limits = Limits(), outbound: ByteBuffer = ByteBuffer()) {
        self.role = role
        self.limits = limits
        self.outbound = outbound
        var seed: UInt64 = 0
        if role == .client { seed = UInt64.random(in: 1...UInt64.max) }
        self.rng = seed
    }

    /// True while a fragmented message or a frame is partially received.
    public var isMidMessage: Bool { frame != nil || messageOpcode != nil || scratchCount > 0 }

    /// Bytes of heap held by the receive path (not counting `outbound`).
    public var bufferedBytes: Int {
        (messageBuffer?.allocatedBytes ?? 0) + (controlBuffer?.allocatedBytes ?? 0)
            + (deflate?.allocatedBytes ?? 0) + (deflate?.sendScratch?.allocatedBytes ?? 0)
    }

    // MARK: - Receiving

    /// Consumes bytes from `input[cursor...]`, unmasking in place, and returns the next event,
    /// or nil when the input is used up. Advances `cursor` past what it used.
    public mutating func next(_ input: UnsafeMutableRawBufferPointer, cursor: inout Int) -> Event? {
        pendingControl = nil
        if resetMessageOnNext {
            resetMessageOnNext = false
            endMessage()
        }
        while true {
            if state == .closed || state == .failed {
                cursor = input.count
                return nil
            }
            if frame == nil {
                let header: FrameHeader
                do {
                    guard let h = try readHeader(input, cursor: &cursor) else { return nil }
                    header = h
                    try check(header)
                } catch {
                    return fail(error)
                }
                frame = header
                frameRemaining = header.payloadLength
                maskPhase = 0
                if !header.opcode.isControl {
                    if header.opcode != .continuation {
                        messageOpcode = header.opcode
                        messageCompressed = header.rsv & 4 != 0
                        utf8.reset()
                    }
                    messageSize += Int(header.payloadLength)
                    fragments += 1
                    // Zero-copy fast path: a whole unfragmented message in this read.
                    if header.fin, header.opcode != .continuation, messageBuffer == nil, !messageCompressed,
                       !streamsMessages,
                       UInt64(input.count - cursor) >= header.payloadLength {
                        let n = Int(header.payloadLength)
                        let payload = UnsafeMutableRawBufferPointer(rebasing: input[cursor..<(cursor + n)])
                        cursor += n
                        frame = nil
                        if header.masked { Masking.apply(key: header.maskKey, phase: 0, to: payload) }
                        if state == .closeSent { endMessage(); continue }
                        if header.opcode == .text, !UTF8Validator.isValid(UnsafeRawBufferPointer(payload)) {
                            return fail(.invalidUTF8)
                        }
                        resetMessageOnNext = true
                        return header.opcode == .text ? .text(UnsafeRawBufferPointer(payload))
                                                      : .binary(UnsafeRawBufferPointer(payload))
                    }
                }
            }
            // Payload of the current frame.
            let header = frame!
            let available = input.count - cursor
            if available == 0 && frameRemaining > 0 { return nil }
            let take = Int(min(UInt64(available), frameRemaining))
            let chunk = UnsafeMutableRawBufferPointer(rebasing: input[cursor..<(cursor + take)])
            cursor += take
            frameRemaining -= UInt64(take)
            if header.masked { maskPhase = Masking.apply(key: header.maskKey, phase: maskPhase, to: chunk) }

            if header.opcode.isControl {
                if take > 0 || header.payloadLength == 0 {
                    // A control payload that is complete in this read needs no copy.
                    if frameRemaining == 0 && controlBuffer == nil {
                        frame = nil
                        if let event = control(header.opcode, UnsafeRawBufferPointer(chunk)) { return event }
                        continue
                    }
                    let buffer = controlBuffer ?? ByteBuffer(capacity: 128)
                    controlBuffer = buffer
                    buffer.append(UnsafeRawBufferPointer(chunk))
                }
                if frameRemaining == 0 {
                    frame = nil
                    let buffer = controlBuffer!
                    controlBuffer = nil
                    // `buffer` stays alive until this function returns; the event is consumed
                    // before the next call, and the pointer is documented as short-lived.
                    let event = control(header.opcode, buffer.readableBytes)
                    pendingControl = buffer
                    if let event { return event }
                }
                continue
            }

            // Data frame payload, piecewise.
            if state == .closeSent {
                if frameRemaining == 0 { frame = nil; if header.fin { endMessage() } }
                continue
            }
            if messageCompressed {
                if let event = inflate(chunk, header) { return event }
                continue
            }
            if streamsMessages {
                if messageOpcode == .text, !utf8.validate(UnsafeRawBufferPointer(chunk)) { return fail(.invalidUTF8) }
                let first = !fragmentStarted
                let last = header.fin && frameRemaining == 0
                if frameRemaining == 0 { frame = nil }
                if last {
                    if messageOpcode == .text, !utf8.isComplete { return fail(.invalidUTF8) }
                    resetMessageOnNext = true
                }
                if take == 0 && !first && !last { continue }
                fragmentStarted = true
                return .fragment(messageOpcode!, UnsafeRawBufferPointer(chunk), first: first, last: last)
            }
            if messageOpcode == .text, !utf8.validate(UnsafeRawBufferPointer(chunk)) {
                return fail(.invalidUTF8)  // fail fast, mid-frame (§8.1)
            }
            if take > 0 {
                // Sized from the declared length (already checked against the limit) so a
                // large message is copied once, not regrown; capped at 1 MiB so a peer that
                // declares a big frame and sends slowly cannot make us reserve much.
                let buffer = messageBuffer ?? ByteBuffer(capacity: min(messageSize, 1 << 20))
                messageBuffer = buffer
                buffer.append(UnsafeRawBufferPointer(chunk))
            }
            guard frameRemaining == 0 else { return nil }
            frame = nil
            guard header.fin else { continue }
            if messageOpcode == .text, !utf8.isComplete { return fail(.invalidUTF8) }
            let bytes = messageBuffer?.readableBytes ?? UnsafeRawBufferPointer(start: nil, count: 0)
            let opcode = messageOpcode
            resetMessageOnNext = true
            return opcode == .text ? .text(bytes) : .binary(bytes)
        }
    }

    /// A piece of a compressed message: inflate it (bounded by the message limit, which applies
    /// to the decompressed size), validate the new text bytes, and finish at FIN. Returns the
    /// event to deliver, or nil to keep reading.
    private mutating func inflate(_ chunk: UnsafeMutableRawBufferPointer, _ header: FrameHeader) -> Event? {
        let buffer = messageBuffer ?? ByteBuffer(capacity: 1 << 12)
        messageBuffer = buffer
        var checked = buffer.readableCount
        do throws(DeflateError) {
            try deflate!.decompress(UnsafeRawBufferPointer(chunk), into: buffer, limit: limits.maxMessageSize)
            if messageOpcode == .text {
                let fresh = UnsafeRawBufferPointer(rebasing: buffer.readableBytes[checked...])
                if !utf8.validate(fresh) { return fail(.invalidUTF8) }
                checked = buffer.readableCount
            }
            guard frameRemaining == 0 else { return nil }
            frame = nil
            guard header.fin else { return nil }
            try deflate!.finishMessage(into: buffer, limit: limits.maxMessageSize)
        } catch {
            // Whatever inflated before the failure is checked first, so the answer does not
            // depend on how the bytes were split across reads (found by fuzzing).
            if messageOpcode == .text,
               !utf8.validate(UnsafeRawBufferPointer(rebasing: buffer.readableBytes[checked...])) {
                return fail(.invalidUTF8)
            }
            return fail(error.protocolError)
        }
        if messageOpcode == .text {
            let fresh = UnsafeRawBufferPointer(rebasing: buffer.readableBytes[checked...])
            if !utf8.validate(fresh) || !utf8.isComplete { return fail(.invalidUTF8) }
        }
        resetMessageOnNext = true
        return messageOpcode == .text ? .text(buffer.readableBytes) : .binary(buffer.readableBytes)
    }

    /// Keeps a finished control payload alive until the next call.
    private var pendingControl: ByteBuffer?

    private mutating func endMessage() {
        messageOpcode = nil
        messageCompressed = false
        fragmentStarted = false
        messageSize = 0
        fragments = 0
        messageBuffer = nil
    }

    private mutating func readHeader(_ input: UnsafeMutableRawBufferPointer,
                                     cursor: inout Int) throws(ProtocolError) -> FrameHeader? {
        let available = input.count - cursor
        if available == 0 { return nil }
        if scratchCount == 0 {
            if let h = try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: input[cursor...])) {
                cursor += h.headerLength
                return h
            }
            // Keep the partial header (< 14 bytes) for the next read.
            withUnsafeMutableBytes(of: &scratch) { s in
                s.baseAddress!.copyMemory(from: input.baseAddress! + cursor, byteCount: available)
            }
            scratchCount = available
            cursor = input.count
            return nil
        }
        let take = min(14 - scratchCount, available)
        let before = scratchCount
        let parsed: FrameHeader? = try withUnsafeMutableBytes(of: &scratch) { (s) throws(ProtocolError) -> FrameHeader? in
            if take > 0 { (s.baseAddress! + before).copyMemory(from: input.baseAddress! + cursor, byteCount: take) }
            return try FrameHeader.parse(UnsafeRawBufferPointer(rebasing: s[0..<(before + take)]))
        }
        if let h = parsed {
            cursor += h.headerLength - before
            scratchCount = 0
            return h
        }
        scratchCount += take
        cursor += take
        return nil
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
            if messageOpcode == nil { throw .unexpectedContinuation }
        } else if messageOpcode != nil {
            throw .expectedContinuation
        }
        // Decided at the header, before any payload is buffered.
        if h.payloadLength > UInt64(limits.maxFrameSize) { throw .frameTooLarge(limit: limits.maxFrameSize) }
        if UInt64(messageSize) + h.payloadLength > UInt64(limits.maxMessageSize) {
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
            if state == .open && queuedPongs < limits.maxQueuedPongs {
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

    private mutating func fail(_ error: ProtocolError) -> Event {
        if state == .open {
            writeClose(code: error.closeCode, reason: Array(error.reason.utf8))
        }
        state = .failed
        frame = nil
        endMessage()
        return .failed(error)
    }

    // MARK: - Sending

    /// Tells the protocol that everything in `outbound` reached the peer's socket (resets the
    /// count of queued pongs).
    public mutating func outboundDrained() { queuedPongs = 0 }

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
    @discardableResult
    public mutating func send(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true,
                              compress: Bool? = nil) -> SendResult {
        guard state == .open else { return .closed }
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
    public mutating func directFrameHeader(_ opcode: Opcode, count: Int, compress: Bool? = nil,
                                           into header: UnsafeMutableRawPointer) -> Int? {
        guard state == .open, role == .server, outbound.isEmpty, opcode == .text || opcode == .binary else { return nil }
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

    private mutating func writeClose(code: CloseCode?, reason: [UInt8]) {
        var payload: [UInt8] = []
        if let code, code != .noStatus {
            payload = [UInt8(code.rawValue >> 8), UInt8(code.rawValue & 0xFF)] + reason.prefix(123)
        }
        payload.withUnsafeBytes { writeFrame(.close, $0) }
    }

    private mutating func writeFrame(_ opcode: Opcode, _ payload: UnsafeRawBufferPointer, fin: Bool = true,
                                     rsv: UInt8 = 0) {
        let masked = role == .client
        var key: UInt32 = 0
        if masked {
            // xorshift64*: masks need to be unpredictable to intermediaries, not secret (§10.3).
            rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27
            key = UInt32(truncatingIfNeeded: (rng &* 2685821657736338717) >> 32)
        }
        let header = FrameHeader(fin: fin, rsv: rsv, opcode: opcode, masked: masked, maskKey: key,
                                 payloadLength: UInt64(payload.count))
        let dst = outbound.reserveWritable(header.headerLength + payload.count)
        let h = header.write(to: dst)
        if payload.count > 0 {
            if masked {
                Masking.copyMasked(payload, to: dst + h, key: key)  // one pass, not copy then mask
            } else {
                (dst + h).copyMemory(from: payload.baseAddress!, byteCount: payload.count)
            }
        }
        outbound.commitWrite(h + payload.count)
    }
}
