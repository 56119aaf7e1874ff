import Logging
import Transport
import WebSocket

/// What the connection does with received bytes: the HTTP request head before the upgrade,
/// frames after it.
extension WebSocketConnection {
    // MARK: - HTTP

    func receivedHTTP(_ bytes: UnsafeMutableRawBufferPointer) {
        // After an error answer: nothing more is read as HTTP. (The upgrade and the fallback
        // hand-over leave the handshake phase, so they do not come here.)
        guard afterFlush == .nothing else { return }
        // A head that arrives whole (nearly always) is parsed by a parser on the stack; only a
        // head split across reads keeps one, boxed, with its bytes so far.
        var parser: HTTPHeadParser
        if let box = httpParser {
            parser = box.parser
            extras?.httpParser = nil  // the box's copy is not shared while the buffer grows
        } else {
            parser = HTTPHeadParser(limits: core.configuration.headLimits)
        }
        let result: HTTPHeadParser.Result
        do {
            result = try parser.feed(UnsafeRawBufferPointer(bytes))
        } catch {
            log.info("bad request head: \(error) -> \(error.status)", metadata: meta)
            core.metrics.handshakeFailed(error.status == 431 ? "head_too_large" : "bad_request")
            let mark = proto.outboundCount
            respondError(status: error.status, reason: "\(error)")
            logRequest(nil, bytesIn: bytes.count, mark: mark)
            return
        }
        switch result {
        case .needMore:
            httpParser = HTTPParserBox(parser)
        case .complete(let head, let consumed):
            let rest = UnsafeMutableRawBufferPointer(rebasing: bytes[consumed...])
            if FallbackRouter.claims(head, core: core) { return handOverToFallback(head, rest: UnsafeRawBufferPointer(rest)) }
            let mark = proto.outboundCount
            HTTPResponder.respond(to: head, on: self)
            logRequest(head, bytesIn: consumed, mark: mark)
            if policy.phase == .open { flushUpgrade() }
            if rest.count > 0 { received(rest) }
        }
    }

    /// Queues a complete HTTP response.
    func writeHTTP(_ text: String, body: [UInt8] = []) {
        proto.outbound.append(text)
        proto.outbound.append(body)
        scheduleFlush()
    }

    /// Queues a complete HTTP response; the connection ends after it (FIN, then linger).
    func writeFinalHTTP(_ text: String, body: [UInt8] = []) {
        writeHTTP(text, body: body)
        afterFlush = .linger
    }

    /// An error answer: then we send FIN and drain what the client still sends.
    func respondError(status: Int, reason: String, extraHeaders: [(String, String)] = []) {
        core.metrics.httpErrors.add(1)
        writeHTTP(HTTPResponder.errorResponse(status: status, reason: reason, extraHeaders: extraHeaders).head,
                  body: Array((reason + "\n").utf8))
        afterFlush = .linger
        httpParser = nil
    }

    /// Switches to WebSocket: the 101 is queued, the handler takes over.
    func upgrade(route: Route, accepted: ServerHandshake.Accepted, userData: AnyObject?, query: String? = nil) {
        let subprotocol = accepted.subprotocol
        accepted.write(to: proto.outbound)
        if core.configuration.closeOnBackpressureLimit { extrasBox.headRemaining = proto.outboundCount }
        scheduleFlush()
        self.route = route
        if let subprotocol { extrasBox.subprotocol = subprotocol }
        if let query { extrasBox.query = query }
        self.userData = userData
        proto.deflate = accepted.deflate
        let handler = route.handler
        proto.streamsMessages = handler.receivesFragments
        httpParser = nil
        policy.opened(now: loop.now)
        // io_uring: the loop receives for a plain-TCP WebSocket from now on (no-op on epoll, TLS).
        driver.stageReceive(on: loop)
        core.metrics.upgrades.add(1)
        log.debug("upgraded on \(path)", metadata: meta)
        handler.onOpen(self)
    }

    /// The 101 (and whatever `onOpen` queued) goes out now, after the access log read its
    /// status back, and the output buffer it needed goes back to the allocator, block and
    /// object: an idle WebSocket holds no output memory (it kept a 256-byte block for life
    /// before, then a 64-byte buffer object). Over TLS the two cipher contexts the request and
    /// the 101 needed (~920 bytes each in OpenSSL 3.0's AES-GCM) go back too, unless bytes
    /// wait: freed a second later by the tick, as before, each connection set up in that second
    /// left them as holes between live objects (1.5 KB of RSS per idle wss connection at
    /// 10,000); freed now, the next handshake's contexts take the same chunks. A connection
    /// that goes on talking makes them again on its next record (one key setup).
    func flushUpgrade() {
        flush()
        releaseOutboundIfIdle()
        if !sendQueued { driver.releaseIdleState() }
    }

    /// Gives the output buffer (block and object) back if it is empty and no loop send is
    /// owed; a flush still queued finds no buffer and makes none (`flush`). Called only from
    /// the tick and after the upgrade's flush, never inside a flush: `flush` holds it at +0.
    /// Given back at once after the upgrade, the chunk serves the next connection's buffer;
    /// given back later, every connection would leave a 64-byte hole between live objects.
    func releaseOutboundIfIdle() {
        if !sendQueued { proto.releaseOutboundIfIdle() }
    }

    // MARK: - WebSocket frames

    /// Runs frames through the protocol; whatever backpressure left unprocessed is kept.
    @inline(__always)
    func receivedFramesKeepingRest(_ bytes: UnsafeMutableRawBufferPointer) {
        let used = receivedFrames(bytes, from: 0)
        if used < bytes.count && policy.phase == .open {
            let rest = pendingInput ?? ByteBuffer(capacity: bytes.count - used)
            rest.append(UnsafeRawBufferPointer(rebasing: bytes[used...]))
            pendingInput = rest
        }
    }

    func processPendingInput() {
        guard let pending = pendingInput else { return }
        let used = receivedFrames(pending.mutableReadableBytes, from: 0)
        pending.consume(used)
        if pending.isEmpty || policy.phase != .open { pendingInput = nil }
    }

    /// Returns how many bytes were used: all of them, unless output passed the high-water mark
    /// (then reading pauses and the caller keeps the rest).
    @discardableResult
    func receivedFrames(_ bytes: UnsafeMutableRawBufferPointer, from start: Int) -> Int {
        var cursor = start
        while let event = proto.next(bytes, cursor: &cursor) {
            dispatch(event)
            if cursor < bytes.count && proto.state == .open
                && proto.outboundCount > core.policySettings.highWaterMark {
                // Backpressure, decided per message: stop here, keep the rest of the input.
                if case .pauseReading = policy.outputChanged(bytes: proto.outboundCount, settings: core.policySettings) {
                    logPause()
                }
                break
            }
        }
        afterProtocolStep()
        return cursor
    }

    /// Large frames skip the loop's read buffer: while the protocol is inside a frame with at
    /// least this many payload bytes still to come (of a message it reassembles), they are
    /// read straight into the message buffer.
    static let inPlaceReceiveMinimum = 64 << 10
    /// At most this much of the message buffer is reserved ahead of the bytes received
    /// (as `WebSocketProtocol` caps its first reservation), however large the frame declares itself.
    static let inPlaceReceiveLimit = 1 << 20

    /// Reads (TLS: decrypts) the payload of a large frame straight into the message buffer
    /// (`WebSocketProtocol.directReceiveBuffer`), saving a copy of every byte from the read
    /// buffer (perf, 1 MiB wss echo: the reassembly memmove was ~7 % of the server's time).
    /// Nil: no such frame, or no longer (the normal path reads on); otherwise how reading ended,
    /// as `StreamDriver.receive` says it.
    func receiveLargeFrameInPlace() -> StreamDriver.ReceiveEnd? {
        guard pendingInput == nil, policy.phase == .open else { return nil }
        while let target = proto.directReceiveBuffer(minimum: Self.inPlaceReceiveMinimum, limit: Self.inPlaceReceiveLimit) {
            let n: Int
            switch driver.read(into: target, on: loop) {
            case .done(let count): n = count
            case .wantRead: return .drained
            case .wantWrite: return .writeBlocked
            case .eof: return .eof
            case .error(let why): return .error(why)
            }
            policy.received(now: loop.now)
            if let event = proto.receivedInPlace(n) { dispatch(event) }
            afterProtocolStep()
            // As after every chunk on the normal path: output above the high-water mark pauses.
            if proto.outboundCount > core.policySettings.highWaterMark, policy.phase == .open,
               case .pauseReading = policy.outputChanged(bytes: proto.outboundCount, settings: core.policySettings) {
                logPause()
            }
            if policy.readPaused || policy.phase.rawValue > ConnectionPolicy.Phase.open.rawValue { return .stopped }
            // A short read: the socket is empty, unless TLS kept an error or bytes for the next read.
            if n < target.count && !driver.hasBufferedInput(on: loop) { return .drained }
        }
        return nil
    }

    /// One protocol event to its place: a whole message counted and delivered here (inlined
    /// into both read paths), everything else out of line.
    @inline(__always)
    func dispatch(_ event: WebSocketProtocol.Event) {
        switch event {
        case .text(let p):
            counters.messagesIn &+= 1
            counters.bytesIn &+= p.count
            deliver(Message(kind: .text, bytes: p))
        case .binary(let p):
            counters.messagesIn &+= 1
            counters.bytesIn &+= p.count
            deliver(Message(kind: .binary, bytes: p))
        default:
            other(event)
        }
    }

    /// Every event but a whole message, out of line: the message loop above stays small
    /// (its logging set-up alone cost ~60 instructions per read when inlined there).
    @inline(never)
    func other(_ event: WebSocketProtocol.Event) {
        switch event {
        case .text, .binary: break  // handled in receivedFrames
        case .fragment(let op, let p, let first, let last):
            counters.bytesIn &+= p.count
            if last { counters.messagesIn &+= 1 }
            withHandler {
                $0.onFragment(self, Fragment(kind: op == .text ? .text : .binary, bytes: p, isFirst: first, isLast: last))
            }
        case .ping(let p): withHandler { $0.onPing(self, p) }
        case .pong(let p): withHandler { $0.onPong(self, p) }
        case .close(let code, let reason):
            log.debug("peer closed with \(code.map(\.description) ?? "no code")", metadata: meta)
            core.metrics.closeReceived(code ?? .noStatus)
            if !closeNotified { core.metrics.closeSent(code ?? .noStatus) }  // our echo
            notifyClose(code ?? .noStatus, String(decoding: reason, as: UTF8.self))
        case .failed(let error):
            log.info("protocol error: \(error.reason) -> close \(error.closeCode)", metadata: meta)
            core.metrics.closeSent(error.closeCode)
            notifyClose(error.closeCode, error.reason)
        }
    }

    /// A whole message: to `onMessage`, or as one fragment to a streaming handler (compressed
    /// messages arrive whole).
    @inline(__always) func deliver(_ m: Message) {
        withHandler { handler in
            if proto.streamsMessages {
                handler.onFragment(self, Fragment(kind: m.kind, bytes: m.bytes, isFirst: true, isLast: true))
            } else {
                handler.onMessage(self, m)
            }
        }
    }

    func afterProtocolStep() {
        if proto.outboundCount != 0 { scheduleFlush() }
        switch proto.state {
        case .open: break
        case .closeSent:
            policy.closeSent(now: loop.now, settings: core.policySettings)
        case .closed, .failed:
            // RFC 6455 §7.1.1: the server closes the TCP connection first. Our FIN goes out
            // after the last frame (TLS: after close_notify, RFC 8446 §6.1), then we read and
            // drop until the client closes too: closing with unread input would send an RST
            // that can destroy our close frame or alert before the client reads it.
            policy.closeSent(now: loop.now, settings: core.policySettings)
            afterFlush = .linger
            scheduleFlush()
        }
    }

    func notifyClose(_ code: CloseCode, _ reason: String) {
        guard !closeNotified, let handler else { return }
        closeNotified = true
        logClose(code)
        for t in subscriptions { core.topics.unsubscribe(self, from: t) }
        subscriptions = []
        handler.onClose(self, code: code, reason: reason)
    }
}

/// The request-head parser of a connection whose request head came in pieces (a head that
/// arrives in one read needs none).
final class HTTPParserBox {
    var parser: HTTPHeadParser
    init(_ parser: HTTPHeadParser) { self.parser = parser }
}

/// What only some connections need, out of line (8 bytes in every connection instead of
/// each field's size).
final class ConnectionExtras {
    /// The subprotocol chosen in the upgrade hook.
    var subprotocol: String?
    /// The query of the request that opened the connection (after "?"), if it had one.
    var query: String?
    /// The SSE or long-polling session behind a connection that is not a WebSocket.
    var fallback: FallbackTransport?
    /// Topics subscribed with `subscribe(_:since:)` (recovery and positions; PubSub).
    var streams: [String: StreamSubscription] = [:]
    /// Messages not sent because the output was over `maxBackpressure`.
    var droppedMessages = 0
    /// With close-on-backpressure: bytes from the output's read position to the end of the
    /// frame (or HTTP answer) being written, so the backlog behind it can be discarded
    /// without cutting a frame.
    var headRemaining = 0
    /// Topics the connection is subscribed to.
    var subscriptions: [String] = []
    /// The request head so far, while it arrives in pieces (`WebSocketConnection.httpParser`).
    @exclusivity(unchecked) var httpParser: HTTPParserBox?
    /// Input held back by backpressure (`WebSocketConnection.pendingInput`).
    @exclusivity(unchecked) var pendingInput: ByteBuffer?

    /// Nothing set: the box can go (what is left for a connection whose head came in pieces
    /// or that was paused mid-read, once that is over).
    var isUnused: Bool {
        subprotocol == nil && query == nil && fallback == nil && streams.isEmpty && droppedMessages == 0
            && headRemaining == 0 && subscriptions.isEmpty && httpParser == nil && pendingInput == nil
    }
}

extension WebSocketConnection {
    /// Sets one of the rarely used fields kept in `extras`: the box is made for a value and
    /// dropped when clearing leaves nothing in it.
    func setCold<T: AnyObject>(_ field: ReferenceWritableKeyPath<ConnectionExtras, T?>, _ value: T?) {
        if let value {
            extrasBox[keyPath: field] = value
        } else if let e = extras {
            e[keyPath: field] = nil
            releaseExtrasIfUnused()
        }
    }

    /// Drops the extras box once nothing in it is set, so an idle connection holds none.
    func releaseExtrasIfUnused() {
        // With close-on-backpressure a zero `headRemaining` is a position, not "unset".
        if let e = extras, e.isUnused, !core.configuration.closeOnBackpressureLimit { extras = nil }
    }
}
