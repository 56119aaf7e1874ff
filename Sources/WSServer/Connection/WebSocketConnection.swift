#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Logging
import Transport
import WebSocket

/// One accepted socket, from TLS handshake through HTTP to WebSocket and close. Confined to
/// its event loop: no locks, all callbacks on that loop's thread.
public final class WebSocketConnection: EventHandler {
    enum Phase: UInt8 { case tlsHandshake, http, websocket, lingering, closed }
    enum AfterFlush: UInt8 { case nothing, close, linger }

    public let id: UInt64
    let loop: EventLoop
    /// The socket; TLS connections also have `tls` (plain TCP needs no stream object).
    let fd: Int32
    let tls: TLSStream?
    /// Strong on purpose: `unowned` costs an atomic check on every access, on the message path.
    let core: ServerCore
    @exclusivity(unchecked) var phase: Phase
    @exclusivity(unchecked) var proto: WebSocketProtocol
    /// Boxed: exists only until the upgrade, so an idle WebSocket pays 8 bytes for it.
    @exclusivity(unchecked) var httpParser: HTTPParserBox?
    /// The endpoint this connection upgraded on (nil before the upgrade and after close).
    @exclusivity(unchecked) var route: Route?
    var handler: WebSocketHandler? { route?.handler }
    /// Deadline of the current phase (handshake, close, linger), loop milliseconds; 0 = none.
    @exclusivity(unchecked) var deadline: UInt64
    @exclusivity(unchecked) var lastReceive: UInt64
    @exclusivity(unchecked) var pingOutstanding = false
    @exclusivity(unchecked) var interest: UInt32 = EPOLLIN.rawValue
    @exclusivity(unchecked) var flushQueued = false
    /// Output is above the high-water mark: we stopped reading from the peer.
    @exclusivity(unchecked) var readPaused = false
    /// The socket said "would block" on the last write: wait for EPOLLOUT.
    @exclusivity(unchecked) var writeBlocked = false
    /// Input read from the socket but not yet processed because output went above the
    /// high-water mark mid-read (a compressed message can inflate 1000×). Processed first when
    /// reading resumes.
    var pendingInput: ByteBuffer?
    /// Read at the end of this loop iteration (see `resumeReading`).
    @exclusivity(unchecked) var readSoon = false
    @exclusivity(unchecked) var afterFlush: AfterFlush = .nothing
    @exclusivity(unchecked) var closeNotified = false
    /// Path of the WebSocket endpoint this connection upgraded on.
    public var path: String { route?.path ?? "" }
    /// The subprotocol chosen in the upgrade hook, if any (boxed: most connections have none).
    public var subprotocol: String? { chosenSubprotocol?.value }
    var chosenSubprotocol: StringBox?
    /// Topics this connection is subscribed to.
    var subscriptions: [String] = []
    /// Application data (e.g. the authenticated user), set in `onOpen` or later. Released when
    /// the connection is closed, after `onClose`.
    public var userData: AnyObject?

    init(id: UInt64, loop: EventLoop, fd: Int32, tls: TLSStream?, core: ServerCore) {
        self.id = id
        self.loop = loop
        self.fd = fd
        self.tls = tls
        self.core = core
        self.phase = tls == nil ? .http : .tlsHandshake
        self.proto = WebSocketProtocol(role: .server, limits: core.configuration.limits)
        self.httpParser = HTTPParserBox(core.configuration.headLimits)
        self.lastReceive = loop.now
        self.deadline = loop.now + core.handshakeTimeoutMillis
    }

    /// The server's pub/sub topics (publish from here to any topic, on every loop).
    public var topics: Topics { core.topics }
    /// The peer's address, "ip:port".
    public var remoteAddress: String { peerAddress(fd: fd) }
    /// Bytes waiting to be written to the peer.
    public var bufferedAmount: Int { proto.outbound.readableCount }
    public var isOpen: Bool { phase == .websocket && proto.state == .open }

    var log: Logger { core.logger }
    var meta: Logger.Metadata { ["conn": "\(id)"] }

    // MARK: - Events

    public func handleEvent(_ events: UInt32) {
        if phase == .tlsHandshake {
            advanceTLSHandshake()
            return
        }
        if events & EPOLLOUT.rawValue != 0 { flush() }
        if phase == .closed { return }
        if events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 { readAvailable() }
    }

    func advanceTLSHandshake() {
        switch tls!.handshake() {
        case .done:
            phase = .http
            core.metrics.tlsHandshake(seconds: Double(monotonicMicros() &- tls!.startedMicros) / 1e6)
            setInterest(EPOLLIN.rawValue)
            readAvailable()
        case .wantRead: setInterest(EPOLLIN.rawValue)
        case .wantWrite: setInterest(EPOLLIN.rawValue | EPOLLOUT.rawValue)
        case .eof:
            log.debug("peer closed during TLS handshake", metadata: meta)
            finish()
        case .error(let why):
            // Plain HTTP or garbage on the TLS port lands here: one connection, a debug line.
            log.debug("TLS handshake failed: \(why)", metadata: meta)
            core.stats.tlsHandshakeFailures.add(1)
            core.metrics.handshakeFailed("tls")
            finish()
        }
    }

    func readAvailable() {
        if pendingInput != nil {
            processPendingInput()
            if readPaused || phase == .closed {
                flush()
                return
            }
        }
        let buffer = loop.readBuffer
        while phase != .closed {
            if phase == .lingering {
                lingerRead()
                return
            }
            switch tls?.read(into: buffer) ?? TCPStream.read(fd: fd, into: buffer) {
            case .done(let n):
                lastReceive = loop.now
                pingOutstanding = false
                received(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
                if readPaused || (proto.outbound.readableCount > core.highWaterMark && phase == .websocket) {
                    // Backpressure: the peer is not reading what we send. Stop reading its
                    // input until our output drains, so memory stays bounded.
                    readPaused = true
                    log.debug("output above \(core.highWaterMark) bytes: pausing reads", metadata: meta)
                    flush()
                    updateInterest()
                    return
                }
                if n < buffer.count && tls?.hasPendingBytes != true { flush(); return }  // the socket is drained
            case .wantRead:
                flush()
                return
            case .wantWrite:
                writeBlocked = true
                updateInterest()
                return
            case .eof:
                peerClosed()
                return
            case .error(let why):
                log.debug("read failed: \(why)", metadata: meta)
                finish()
                return
            }
        }
    }

    /// Discards input after we sent our last bytes and a FIN, until the peer closes too.
    func lingerRead() {
        let buffer = loop.readBuffer
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return }
            finish()
            return
        }
    }

    func peerClosed() {
        if phase == .websocket && proto.state != .closed {
            log.debug("peer closed TCP without a close handshake", metadata: meta)
        }
        finish()
    }

    func received(_ bytes: UnsafeMutableRawBufferPointer) {
        switch phase {
        case .http: receivedHTTP(bytes)
        case .websocket: receivedFramesKeepingRest(bytes)
        default: break
        }
    }

    /// Runs frames through the protocol; whatever backpressure left unprocessed is kept.
    func receivedFramesKeepingRest(_ bytes: UnsafeMutableRawBufferPointer) {
        let used = receivedFrames(bytes, from: 0)
        if used < bytes.count && phase == .websocket {
            let rest = pendingInput ?? ByteBuffer(capacity: bytes.count - used)
            rest.append(UnsafeRawBufferPointer(rebasing: bytes[used...]))
            pendingInput = rest
        }
    }

    func processPendingInput() {
        guard let pending = pendingInput else { return }
        let used = receivedFrames(pending.mutableReadableBytes, from: 0)
        pending.consume(used)
        if pending.isEmpty || phase != .websocket { pendingInput = nil }
    }

    // MARK: - HTTP

    func receivedHTTP(_ bytes: UnsafeMutableRawBufferPointer) {
        guard let box = httpParser, afterFlush == .nothing else { return }
        let result: HTTPHeadParser.Result
        do {
            result = try box.parser.feed(UnsafeRawBufferPointer(bytes))
        } catch {
            httpParser = nil
            log.info("bad request head: \(error) -> \(error.status)", metadata: meta)
            core.metrics.handshakeFailed(error.status == 431 ? "head_too_large" : "bad_request")
            respondError(status: error.status, reason: "\(error)")
            return
        }
        switch result {
        case .needMore:
            break
        case .complete(let head, let consumed):
            box.parser = HTTPHeadParser(limits: core.configuration.headLimits)
            HTTPResponder.respond(to: head, on: self)
            let rest = UnsafeMutableRawBufferPointer(rebasing: bytes[consumed...])
            if rest.count > 0 {
                if phase == .websocket { receivedFramesKeepingRest(rest) }
                else if phase == .http { receivedHTTP(rest) }
            }
        }
    }

    /// Queues a complete HTTP response.
    func writeHTTP(_ text: String, body: [UInt8] = []) {
        proto.outbound.append(text)
        proto.outbound.append(body)
        scheduleFlush()
    }

    /// An error answer: then we send FIN and drain what the client still sends.
    func respondError(status: Int, reason: String, extraHeaders: [(String, String)] = []) {
        core.stats.httpErrors.add(1)
        writeHTTP(HTTPResponder.errorResponse(status: status, reason: reason, extraHeaders: extraHeaders).head,
                  body: Array((reason + "\n").utf8))
        afterFlush = .linger
        httpParser = nil
    }

    /// Switches to WebSocket: the 101 is queued, the handler takes over.
    func upgrade(route: Route, response: String, subprotocol: String? = nil) {
        proto.outbound.append(response)
        scheduleFlush()
        self.route = route
        self.chosenSubprotocol = subprotocol.map(StringBox.init)
        let handler = route.handler
        proto.streamsMessages = handler.receivesFragments
        httpParser = nil
        phase = .websocket
        deadline = 0
        lastReceive = loop.now
        core.stats.upgrades.add(1)
        log.debug("upgraded on \(path)", metadata: meta)
        handler.onOpen(self)
    }

    // MARK: - WebSocket

    /// Returns how many bytes were used: all of them, unless output passed the high-water mark
    /// (then reading pauses and the caller keeps the rest).
    @discardableResult
    func receivedFrames(_ bytes: UnsafeMutableRawBufferPointer, from start: Int) -> Int {
        var cursor = start
        let counters = core.metrics.loops[loop.index]
        while let event = proto.next(bytes, cursor: &cursor) {
            switch event {
            case .text(let p):
                counters.messagesIn &+= 1
                counters.bytesIn &+= p.count
                deliver(Message(kind: .text, bytes: p))
            case .binary(let p):
                counters.messagesIn &+= 1
                counters.bytesIn &+= p.count
                deliver(Message(kind: .binary, bytes: p))
            case .fragment(let op, let p, let first, let last):
                counters.bytesIn &+= p.count
                if last { counters.messagesIn &+= 1 }
                handler?.onFragment(self, Fragment(kind: op == .text ? .text : .binary, bytes: p,
                                                   isFirst: first, isLast: last))
            case .ping(let p): handler?.onPing(self, p)
            case .pong(let p): handler?.onPong(self, p)
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
            if cursor < bytes.count && proto.state == .open && proto.outbound.readableCount > core.highWaterMark {
                // Backpressure, decided per message: stop here, keep the rest of the input.
                if !readPaused {
                    readPaused = true
                    log.debug("output above \(core.highWaterMark) bytes: pausing reads", metadata: meta)
                }
                break
            }
        }
        afterProtocolStep()
        return cursor
    }

    /// A whole message: to `onMessage`, or as one fragment to a streaming handler (compressed
    /// messages arrive whole).
    @inline(__always) func deliver(_ m: Message) {
        if proto.streamsMessages {
            handler?.onFragment(self, Fragment(kind: m.kind, bytes: m.bytes, isFirst: true, isLast: true))
        } else {
            handler?.onMessage(self, m)
        }
    }

    func afterProtocolStep() {
        if !proto.outbound.isEmpty { scheduleFlush() }
        switch proto.state {
        case .open: break
        case .closeSent:
            if deadline == 0 { deadline = loop.now + core.closeTimeoutMillis }
        case .closed:
            // RFC 6455 §7.1.1: the server closes the TCP connection first.
            afterFlush = .close
            scheduleFlush()
        case .failed:
            afterFlush = .linger
            scheduleFlush()
        }
    }

    func notifyClose(_ code: CloseCode, _ reason: String) {
        guard !closeNotified, let handler else { return }
        closeNotified = true
        for t in subscriptions { core.topics.unsubscribe(self, from: t) }
        subscriptions = []
        handler.onClose(self, code: code, reason: reason)
    }

    // MARK: - Sending (public API)

    /// Sends a text message. The string is sent as its UTF-8 bytes.
    ///
    /// `compress` (every send): with permessage-deflate negotiated, true compresses this
    /// message, false sends it plain, nil (default) compresses at or above the configured
    /// minimum size. Without deflate it is ignored.
    @discardableResult
    public func send(text: String, compress: Bool? = nil) -> SendStatus {
        var s = text
        return s.withUTF8 { sendFrame(.text, UnsafeRawBufferPointer($0), compress: compress) }
    }

    /// Sends bytes that are already valid UTF-8 as a text message.
    @discardableResult
    public func send(utf8Text bytes: UnsafeRawBufferPointer, compress: Bool? = nil) -> SendStatus {
        sendFrame(.text, bytes, compress: compress)
    }

    @discardableResult
    public func send(binary bytes: UnsafeRawBufferPointer, compress: Bool? = nil) -> SendStatus {
        sendFrame(.binary, bytes, compress: compress)
    }

    @discardableResult
    public func send(binary bytes: [UInt8], compress: Bool? = nil) -> SendStatus {
        bytes.withUnsafeBytes { sendFrame(.binary, $0, compress: compress) }
    }

    /// Sends a received message back unchanged (same kind, same bytes).
    @discardableResult
    public func send(_ message: Message, compress: Bool? = nil) -> SendStatus {
        sendFrame(message.isText ? .text : .binary, message.bytes, compress: compress)
    }

    /// Messages at least this large go straight from the application's buffer to the socket
    /// when nothing is queued before them (no copy into the output buffer).
    static let directSendThreshold = 64 << 10

    func sendFrame(_ opcode: Opcode, _ bytes: UnsafeRawBufferPointer, compress: Bool? = nil) -> SendStatus {
        guard phase == .websocket, !overBackpressureLimit(adding: bytes.count) else { return .dropped }
        if bytes.count < Self.directSendThreshold || writeBlocked || !sendDirect(opcode, bytes, compress: compress) {
            guard proto.send(opcode, bytes, compress: compress) == .queued else { return .dropped }
        }
        let counters = core.metrics.loops[loop.index]
        counters.messagesOut &+= 1
        counters.bytesOut &+= bytes.count
        scheduleFlush()
        return status
    }

    /// Writes a large message without copying it: header and payload with one writev (plain
    /// TCP) or sealed into TLS records straight from `bytes`; only what the socket does not
    /// take is copied into the output buffer. False: not possible now, queue it normally.
    func sendDirect(_ opcode: Opcode, _ bytes: UnsafeRawBufferPointer, compress: Bool?) -> Bool {
        var header: (UInt64, UInt64) = (0, 0)
        return withUnsafeMutableBytes(of: &header) { h -> Bool in
            guard let hlen = proto.directFrameHeader(opcode, count: bytes.count, compress: compress,
                                                     into: h.baseAddress!) else { return false }
            let head = UnsafeRawBufferPointer(rebasing: h[0..<hlen])
            var written = 0  // of header + payload
            if let tls {
                // Header and payload as records, straight from the caller's buffer.
                for part in [head, bytes] {
                    var off = 0
                    while off < part.count, case .done(let n) = tls.write(UnsafeRawBufferPointer(rebasing: part[off...])) {
                        off += n
                        if tls.hasPendingOutput { break }
                    }
                    written += off
                    if off < part.count { break }
                }
            } else {
                var iov = [iovec(iov_base: UnsafeMutableRawPointer(mutating: head.baseAddress), iov_len: hlen),
                           iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)]
                let n = writev(fd, &iov, 2)
                if n > 0 { written = n }
            }
            let out = proto.outbound
            if written < hlen { out.append(UnsafeRawBufferPointer(rebasing: head[written...])) }
            let payloadDone = max(0, written - hlen)
            if payloadDone < bytes.count { out.append(UnsafeRawBufferPointer(rebasing: bytes[payloadDone...])) }
            if !out.isEmpty || tls?.hasPendingOutput == true { scheduleFlush() }
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
        proto.outbound.readableCount > core.highWaterMark ? .buffered : .written
    }

    public func ping(_ payload: [UInt8] = []) {
        guard phase == .websocket, proto.ping(payload) == .queued else { return }
        scheduleFlush()
    }

    /// Starts the closing handshake; the connection ends when the peer answers or after the
    /// close timeout.
    public func close(code: CloseCode = .normal, reason: String = "") {
        guard phase == .websocket, proto.state == .open else { return }
        proto.close(code: code, reason: reason)
        core.metrics.closeSent(code)
        notifyClose(code, reason)
        afterProtocolStep()
    }

    /// Graceful shutdown of this connection: close 1001 for WebSockets, drop half-done handshakes.
    func shutdown() {
        switch phase {
        case .websocket:
            if proto.state == .open {
                close(code: .goingAway, reason: "server shutting down")
            }
        case .tlsHandshake, .http:
            if afterFlush == .nothing { finish() }
        case .lingering, .closed:
            break
        }
    }

    /// Subscribes to a pub/sub topic (see `Server.publish`).
    public func subscribe(_ topic: String) {
        guard !subscriptions.contains(topic) else { return }
        subscriptions.append(topic)
        core.topics.subscribe(self, to: topic)
    }

    public func unsubscribe(_ topic: String) {
        guard let i = subscriptions.firstIndex(of: topic) else { return }
        subscriptions.remove(at: i)
        core.topics.unsubscribe(self, from: topic)
    }

    /// Publishes to every subscriber of `topic` on every loop (this connection included if
    /// subscribed).
    public func publish(_ topic: String, _ message: Message) {
        core.topics.publish(topic, kind: message.kind, bytes: message.bytes)
    }

    // MARK: - Output

    func scheduleFlush() {
        if !flushQueued && phase != .closed {
            flushQueued = true
            loop.scheduleFlush(self)
        }
    }

    public func flushScheduled() {
        flushQueued = false
        if phase != .closed && phase != .tlsHandshake { flush() }
        if readSoon {
            readSoon = false
            if phase == .websocket && !readPaused { readAvailable() }
        }
    }

    func flush() {
        let out = proto.outbound
        while !out.isEmpty || tls?.hasPendingOutput == true {
            switch tls?.write(out.readableBytes) ?? TCPStream.write(fd: fd, out.readableBytes) {
            case .done(let n):
                out.consume(n)
                if readPaused && out.readableCount <= core.highWaterMark / 2 && out.readableCount > 0 {
                    // Below the low-water mark: take input again (the rest keeps flushing).
                    resumeReading()
                }
            case .wantWrite:
                writeBlocked = true
                updateInterest()
                return
            case .wantRead:
                return
            case .eof:
                finish()
                return
            case .error(let why):
                log.debug("write failed: \(why)", metadata: meta)
                finish()
                return
            }
        }
        writeBlocked = false
        proto.outboundDrained()
        if readPaused { resumeReading() }
        updateInterest()
        // Large output blocks go back to the allocator once written.
        out.releaseIfEmpty(threshold: 64 << 10)
        switch afterFlush {
        case .nothing: break
        case .close: finish()
        case .linger: startLinger()
        }
    }

    /// Output fell below the low-water mark: read again. Bytes waiting in the kernel are
    /// signalled by epoll (level-triggered); bytes already decrypted inside OpenSSL are not,
    /// so those are read at the end of this loop iteration.
    func resumeReading() {
        readPaused = false
        log.debug("output below \(core.highWaterMark / 2) bytes: resuming reads", metadata: meta)
        updateInterest()
        if pendingInput != nil || tls?.hasPendingBytes == true {
            readSoon = true
            scheduleFlush()
        }
        if phase == .websocket { handler?.onDrain(self) }
    }

    /// epoll interest from state: read unless paused, write while blocked.
    func updateInterest() {
        var events: UInt32 = readPaused ? 0 : EPOLLIN.rawValue
        if writeBlocked { events |= EPOLLOUT.rawValue }
        setInterest(events)
    }

    func startLinger() {
        guard phase != .lingering && phase != .closed else { return }
        afterFlush = .nothing
        if let tls { tls.shutdownWrite() } else { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
        phase = .lingering
        deadline = loop.now + core.lingerMillis
        readPaused = false
        writeBlocked = false
        updateInterest()
    }

    func setInterest(_ events: UInt32) {
        if events != interest && phase != .closed {
            interest = events
            loop.modify(fd: fd, events: events)
        }
    }

    /// Unregisters and closes the socket; tells the handler if it had not heard yet.
    func finish() {
        guard phase != .closed else { return }
        let wasWebSocket = phase == .websocket || handler != nil
        phase = .closed
        pendingInput = nil
        loop.unregisterClosing(fd: fd)
        if let tls { tls.close() } else { Glibc.close(fd) }  // TLS: close_notify, drain, close
        core.stats.openConnections.subtract(1)
        if wasWebSocket { notifyClose(.abnormal, "") }
        route = nil
        // After onClose: a cycle through userData (an object that holds this connection, as
        // AsyncHandler's) would otherwise keep both alive forever.
        userData = nil
    }

    public func loopStopped() { finish() }

    // MARK: - Timers

    public func tick(now: UInt64) {
        switch phase {
        case .tlsHandshake, .http:
            if now >= deadline {
                log.debug("handshake timeout (\(core.configuration.handshakeTimeout) s)", metadata: meta)
                core.stats.handshakeTimeouts.add(1)
                core.metrics.handshakeFailed("timeout")
                finish()
            }
        case .websocket:
            // An idle connection keeps no output storage (per-connection memory budget), and
            // no zlib streams where no_context_takeover makes them disposable.
            if !flushQueued { proto.outbound.releaseIfEmpty() }
            if now >= lastReceive + 1000 {
                if !proto.isMidMessage { proto.deflate?.releaseIdleMemory() }
                // TLS: an idle connection keeps its keys, not its two cipher contexts (~2.3 KB).
                if !flushQueued { tls?.releaseIdleState() }
            }
            if proto.state != .open {
                if deadline != 0 && now >= deadline {
                    log.debug("close timeout: peer did not answer our close frame", metadata: meta)
                    finish()
                }
                return
            }
            let idle = core.idleTimeoutMillis
            guard idle > 0, now >= lastReceive + idle else { break }
            if !pingOutstanding {
                pingOutstanding = true
                ping()
            } else if now >= lastReceive + 2 * idle {
                log.info("idle timeout: no answer to ping", metadata: meta)
                close(code: .goingAway, reason: "idle timeout")
            }
        case .lingering:
            if now >= deadline { finish() }
        case .closed:
            break
        }
    }
}

/// The request-head parser of a connection still speaking HTTP.
final class HTTPParserBox {
    var parser: HTTPHeadParser
    init(_ limits: HTTPHeadParser.Limits) { parser = HTTPHeadParser(limits: limits) }
}

/// A string that only some connections need, kept out of line.
final class StringBox {
    let value: String
    init(_ value: String) { self.value = value }
}
