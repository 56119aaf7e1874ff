import Logging
import Transport
import WebSocket

/// The send path: frames queued in the protocol's output buffer (flushed once per loop
/// iteration), large ones straight to the socket, and the backpressure limit.
extension WebSocketConnection {
    /// Messages at least this large go straight from the application's buffer to the socket
    /// when nothing is queued before them (no copy into the output buffer).
    static let directSendThreshold = 64 << 10

    func sendFrame(_ opcode: Opcode, _ bytes: UnsafeRawBufferPointer, compress: Bool? = nil) -> SendStatus {
        loop.assertInLoop()  // debug builds: a send from another thread is a bug (use AsyncWebSocket)
        guard policy.phase == .open else { return sendToFallback(opcode, bytes) }
        let n = bytes.count
        // The limit's slow path (metrics, logging, close) out of line: one compare here.
        if proto.outboundCount &+ n > core.maxBackpressure, overBackpressureLimit(adding: n) { return .dropped }
        if n < Self.directSendThreshold || writeBlocked || !sendDirect(opcode, bytes, compress: compress) {
            guard proto.send(opcode, bytes, compress: compress) == .queued else { return .dropped }
        }
        counters.messagesOut &+= 1
        counters.bytesOut &+= n
        if !flushQueued { scheduleFlush() }
        return status
    }

    /// Not a WebSocket (yet, or any more): an SSE or long-polling session takes the message.
    @inline(never)
    func sendToFallback(_ opcode: Opcode, _ bytes: UnsafeRawBufferPointer) -> SendStatus {
        guard let fallback = extras?.fallback else { return .dropped }
        return fallback.send(opcode == .text ? .text : .binary, bytes)
    }

    /// Writes a large message without copying it (see `StreamDriver.writeDirect`); only what
    /// the socket does not take is copied into the output buffer. False: not possible now,
    /// queue it normally.
    func sendDirect(_ opcode: Opcode, _ bytes: UnsafeRawBufferPointer, compress: Bool?) -> Bool {
        var header: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &header) { h -> Bool in
            guard let hlen = proto.directFrameHeader(opcode, count: bytes.count, compress: compress,
                                                     into: h.baseAddress!) else { return false }
            let head = UnsafeRawBufferPointer(rebasing: h[0..<hlen])
            let written = driver.writeDirect(head: head, payload: bytes)
            let out = proto.outbound
            if written < hlen { out.append(UnsafeRawBufferPointer(rebasing: head[written...])) }
            let payloadDone = max(0, written - hlen)
            if payloadDone < bytes.count { out.append(UnsafeRawBufferPointer(rebasing: bytes[payloadDone...])) }
            if core.configuration.closeOnBackpressureLimit {
                // The frame under way is the queue's head, unless none of it went out yet.
                extrasBox.headRemaining = written > 0 ? out.readableCount : 0
            }
            if !out.isEmpty || driver.hasPendingOutput { scheduleFlush() }
            return true
        }
    }

    /// Whether queuing `count` more bytes would pass `maxBackpressure`; applies the policy
    /// (drop, or close with 1008).
    @inline(never)
    func overBackpressureLimit(adding count: Int) -> Bool {
        guard proto.outboundCount + count > core.maxBackpressure else { return false }
        core.metrics.backpressureDrops.add(1)
        guard proto.state == .open else { return true }
        if core.configuration.closeOnBackpressureLimit {
            log.info("backpressure limit \(core.maxBackpressure) bytes: discarding the backlog, closing 1008",
                     metadata: meta)
            // The close must reach a peer that reads slowly: behind 16 MiB it never would.
            discardBacklog()
            close(code: .policyViolation, reason: "backpressure limit")
        } else {
            let extras = extrasBox
            extras.droppedMessages += 1
            if extras.droppedMessages == 1 && core.noticeLimiter.allows("drop " + hostPart(remoteAddress), now: loop.now) {
                log.info("backpressure limit \(core.maxBackpressure) bytes: dropping messages to \(remoteAddress) (counted in droppedMessages; logged once per connection)",
                         metadata: meta)
            }
        }
        return true
    }

    /// Drops the queued output except the rest of the frame being written (cutting it would
    /// corrupt the stream).
    func discardBacklog() {
        let out = proto.outbound
        let keep = min(extras?.headRemaining ?? out.readableCount, out.readableCount)
        guard keep < out.readableCount else { return }
        let head = Array(out.readableBytes.prefix(keep))
        out.clear()
        out.append(head)
    }

    /// After `written` bytes of `bytes` (the output from its read position) went out: where
    /// the frame being written now ends. Walks the unmasked server frame headers we wrote;
    /// runs only with close-on-backpressure (once per write, a few instructions per frame).
    func trackFrameBoundary(_ bytes: UnsafeRawBufferPointer, written: Int) {
        let extras = extrasBox
        var remaining = extras.headRemaining
        var offset = 0
        while written - offset > remaining {
            offset += remaining
            remaining = Self.frameLength(bytes, at: offset)
        }
        extras.headRemaining = remaining - (written - offset)
    }

    /// Header plus payload length of the server frame starting at `offset` (RFC 6455 §5.2);
    /// the rest of the buffer if the header is incomplete (it never is: frames are queued whole).
    static func frameLength(_ b: UnsafeRawBufferPointer, at offset: Int) -> Int {
        guard b.count - offset >= 2 else { return b.count - offset }
        let len7 = Int(b[offset + 1] & 0x7F)
        if len7 < 126 { return 2 + len7 }
        let size = len7 == 126 ? 2 : 8
        guard b.count - offset >= 2 + size else { return b.count - offset }
        var n = 0
        for i in 0..<size { n = n << 8 | Int(b[offset + 2 + i]) }
        return 2 + size + n
    }

    /// Queues bytes that are already a complete frame (a prepared pub/sub message).
    func sendPrepared(_ frame: UnsafeRawBufferPointer, payloadCount: Int) -> SendStatus {
        loop.assertInLoop()
        guard isOpen, !overBackpressureLimit(adding: frame.count) else { return .dropped }
        proto.outbound.append(frame)
        counters.messagesOut &+= 1
        counters.bytesOut &+= payloadCount
        scheduleFlush()
        return status
    }

    var status: SendStatus {
        proto.outboundCount > core.policySettings.highWaterMark ? .buffered : .written
    }

    /// Graceful shutdown of this connection: close 1001 for WebSockets, drop half-done handshakes.
    func shutdown() {
        switch policy.phase {
        case .open:
            if proto.state == .open { close(code: .goingAway, reason: "server shutting down") }
        case .handshake:
            if afterFlush == .nothing { finish() }
        case .external:
            close(code: .goingAway, reason: "server shutting down")
        case .lingering, .closed:
            break
        }
    }
}
