import Transport
import WebSocket

/// An SSE or long-polling session: what stands behind the `WebSocketConnection` a handler gets
/// when its client fell back (engine's `FallbackTransport` seam). It keeps the output not yet
/// delivered, already in the transport's format (SSE events or batch records), and the one
/// request it delivers through: an open event stream or a held poll. Confined to its loop.
final class FallbackSession: FallbackTransport {
    enum State { case open, closing, ended }

    let id: SessionID
    let kind: ConnectionTransport
    /// The Origin it was created with (nil: the creating request had none, as a same-origin
    /// EventSource GET does not).
    let origin: String?
    let remoteAddress: String
    unowned let home: FallbackLoop
    let core: ServerCore
    /// The handler's view of this session (nil once ended).
    var connection: WebSocketConnection?
    /// Encoded output not yet handed to a request.
    private(set) var pending: [UInt8] = []
    /// The request output goes through: an SSE stream or a held poll (nil between polls).
    private(set) var attached: FallbackHTTPConnection?
    private(set) var state = State.open

    init(id: SessionID, kind: ConnectionTransport, origin: String?, remoteAddress: String,
         home: FallbackLoop, core: ServerCore) {
        self.id = id
        self.kind = kind
        self.origin = origin
        self.remoteAddress = remoteAddress
        self.home = home
        self.core = core
    }

    /// Origin binding: a request that carries an Origin must carry the session's, or, for a
    /// session created without one, an origin the server admits (same origin or
    /// `--allowed-origin`). Browsers send Origin on every cross-site request and every POST,
    /// so a page of another site cannot use a leaked id; a request without Origin is not a
    /// browser's cross-site one.
    func admits(origin requestOrigin: String?, host: String?) -> Bool {
        guard let requestOrigin, !requestOrigin.isEmpty else { return true }
        if let origin { return requestOrigin == origin }
        return core.handshake.origins.allows(origin: requestOrigin, host: host, secure: core.isTLS)
    }

    // MARK: - FallbackTransport (what the handler's calls become)

    var isOpen: Bool { state == .open }
    var bufferedAmount: Int { pending.count + (attached?.queuedOutput ?? 0) }

    func send(_ kind: Message.Kind, _ payload: UnsafeRawBufferPointer) -> SendStatus {
        guard state == .open else { return .dropped }
        // The same limit and answer as a WebSocket's output (WebSocketConnection+Send).
        guard bufferedAmount + payload.count <= core.maxBackpressure else {
            core.metrics.backpressureDrops.add(1)
            if core.configuration.closeOnBackpressureLimit { close(code: .policyViolation, reason: "backpressure limit") }
            return .dropped
        }
        if self.kind == .sse {
            if kind == .text { SSEEncoder.appendText(payload, to: &pending) } else { SSEEncoder.appendBinary(payload, to: &pending) }
        } else {
            LongPollBatch.append(kind: kind == .text ? 0x74 : 0x62, payload, to: &pending)
        }
        attached?.sessionHasOutput()
        return bufferedAmount > core.configuration.highWaterMark ? .buffered : .written
    }

    /// SSE: a heartbeat comment now. Long polling has no pong to wait for: nothing.
    func ping(_ payload: [UInt8]) {
        guard state == .open, kind == .sse else { return }
        SSEEncoder.appendHeartbeat(to: &pending)
        attached?.sessionHasOutput()
    }

    /// The handler closes: the client gets a close record; the handler's onClose runs now, as
    /// for a WebSocket close; the session ends once the record is delivered (or times out).
    func close(code: CloseCode, reason: String) {
        guard state == .open else { return }
        state = .closing
        appendClose(code: code.rawValue, reason: reason)
        connection?.fallbackEnded(code: code, reason: reason)
        connection = nil
        attached?.sessionHasOutput()
    }

    private func appendClose(code: UInt16, reason: String) {
        if kind == .sse {
            SSEEncoder.appendClose(code: code, reason: reason, to: &pending)
        } else {
            LongPollBatch.append(.close(code: code, reason: reason), to: &pending)
        }
    }

    // MARK: - Requests

    /// Everything pending, for the request being answered; then call `delivered()`.
    func takePending() -> [UInt8] {
        let out = pending
        pending = []
        return out
    }

    /// The output taken was written into a response: if it carried the close, the session
    /// ends (later requests for it get 404).
    func delivered() {
        if state == .closing { end(code: .normal, reason: "", notify: false) }
    }

    var hasPending: Bool { !pending.isEmpty }

    /// A request now carries this session's output (an SSE stream, a held poll). A request
    /// already attached is answered first: a held poll gets its empty answer at once, an older
    /// stream ends. The session does not expire while attached.
    func attach(_ request: FallbackHTTPConnection) {
        if let old = attached, old !== request {
            attached = nil
            old.sessionReplaced(self)
        }
        attached = request
        home.table.pin(id)
    }

    /// The attached request ended (answered, or its connection closed): the timeout restarts.
    func detach(_ request: FallbackHTTPConnection) {
        guard attached === request else { return }
        attached = nil
        if state != .ended { home.table.touch(id, now: home.loop.now) }
    }

    /// A request for the session arrived (a POST): the timeout restarts.
    func touched() { home.table.touch(id, now: home.loop.now) }

    /// What the client sent, in order. A close record ends the session: the handler hears the
    /// client's code and reason, the attached request carries the echo (as a close frame is
    /// answered, RFC 6455 §5.5.1).
    func received(_ records: [BatchRecord]) {
        for record in records {
            guard state == .open, let connection else { return }
            switch record {
            case .text(let bytes):
                bytes.withUnsafeBytes { connection.fallbackReceived(Message(kind: .text, bytes: $0)) }
            case .binary(let bytes):
                bytes.withUnsafeBytes { connection.fallbackReceived(Message(kind: .binary, bytes: $0)) }
            case .close(let code, let reason):
                state = .closing
                appendClose(code: code, reason: reason)
                self.connection = nil
                connection.fallbackEnded(code: CloseCode(code), reason: reason)
                attached?.sessionHasOutput()  // or the next poll carries the echo
            case .session:
                break  // never decoded from a client
            }
        }
    }

    /// No request for `--session-timeout`: the handler sees 1001.
    func expired() {
        core.logger.debug("fallback session \(id.loop)/… timed out")
        end(code: .goingAway, reason: "session timeout", notify: true)
    }

    /// Removes the session; `notify`: the handler's onClose with this code.
    func end(code: CloseCode, reason: String, notify: Bool) {
        guard state != .ended else { return }
        state = .ended
        pending = []
        home.table.remove(id)
        core.fallback.releaseSession()
        if notify, let connection { connection.fallbackEnded(code: code, reason: reason) }
        connection = nil
        if let request = attached {
            attached = nil
            request.sessionReplaced(self)
        }
    }
}
