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
        guard policy.phase == .open else {
            guard let fallback = extras?.fallback else { return .dropped }
            return fallback.send(opcode == .text ? .text : .binary, bytes)
        }
        guard !overBackpressureLimit(adding: bytes.count) else { return .dropped }
        if bytes.count < Self.directSendThreshold || writeBlocked || !sendDirect(opcode, bytes, compress: compress) {
            guard proto.send(opcode, bytes, compress: compress) == .queued else { return .dropped }
        }
        let counters = core.metrics.loops[loop.index]
        counters.messagesOut &+= 1
        counters.bytesOut &+= bytes.count
        scheduleFlush()
        return status
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
            if !out.isEmpty || driver.hasPendingOutput { scheduleFlush() }
            return true
        }
    }

    /// Whether queuing `count` more bytes would pass `maxBackpressure`; applies the policy
    /// (drop, or close with 1008).
    func overBackpressureLimit(adding count: Int) -> Bool {
        guard proto.outbound.readableCount + count > core.maxBackpressure else { return false }
        core.stats.backpressureDrops.add(1)
        if core.configuration.closeOnBackpressureLimit && proto.state == .open {
            log.info("backpressure limit \(core.maxBackpressure) bytes: closing 1008", metadata: meta)
            close(code: .policyViolation, reason: "backpressure limit")
        }
        return true
    }

    /// Queues bytes that are already a complete frame (a prepared pub/sub message).
    func sendPrepared(_ frame: UnsafeRawBufferPointer, payloadCount: Int) -> SendStatus {
        guard isOpen, !overBackpressureLimit(adding: frame.count) else { return .dropped }
        proto.outbound.append(frame)
        let counters = core.metrics.loops[loop.index]
        counters.messagesOut &+= 1
        counters.bytesOut &+= payloadCount
        scheduleFlush()
        return status
    }

    var status: SendStatus {
        proto.outbound.readableCount > core.policySettings.highWaterMark ? .buffered : .written
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
