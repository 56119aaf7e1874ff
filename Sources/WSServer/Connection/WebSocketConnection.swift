import Logging
import Transport
import WebSocket

/// One accepted socket, from TLS handshake through HTTP to WebSocket and close. It owns a
/// `StreamDriver` (socket + TLS), a `ConnectionPolicy` (deadlines, ping, backpressure), the
/// sans-IO `WebSocketProtocol` and, after the upgrade, the route's handler; it carries out
/// what they decide and does no I/O or timing logic of its own. Confined to its event loop:
/// no locks, all callbacks on that loop's thread.
///
/// The same object is what handlers get for SSE and long-polling sessions: then the bytes go
/// through a `FallbackTransport` instead of the driver (see WebSocketConnection+API.swift).
public final class WebSocketConnection: EventHandler {
    /// After the output is written: nothing, or our end of the stream (FIN, then linger).
    enum AfterFlush: UInt8 { case nothing, linger }

    // Stored properties follow declaration order, and the small ones fill the tail padding
    // of the struct before them (the driver's 12 bytes, the policy's 19, the protocol
    // state's 122): the object is 232 bytes, a 240-byte malloc chunk, which with its 16-byte
    // handler-table slot is an idle connection's 256 bytes (MemoryBudgetTests).
    public let id: UInt64
    let loop: EventLoop
    /// Immutable (12 bytes): its calls may re-enter this connection freely.
    let driver: StreamDriver
    /// The endpoint this connection upgraded on, as its number in `core.routeTable` (0: none,
    /// before the upgrade and after close). Routes live as long as the server core this
    /// connection holds, and the message path reaches the handler at +0 (`withHandler`):
    /// loading a strong reference cost a retain/release pair per message (~2 % of server CPU).
    @exclusivity(unchecked) var routeNumber: UInt16 = 0
    @exclusivity(unchecked) var interest: Interest = .read
    @exclusivity(unchecked) var flushQueued = false
    /// Strong on purpose: `unowned` costs an atomic check on every access, on the message path.
    let core: ServerCore
    /// This loop's message counters (a `let`: read without a retain on the message path).
    let counters: LoopCounters
    /// What only some connections need (subprotocol, fallback transport, drop log, a request
    /// head in pieces, input held back by backpressure, subscriptions), boxed, so the object
    /// stays in its malloc size class.
    @exclusivity(unchecked) var extras: ConnectionExtras?
    /// Application data (e.g. the authenticated user), set in `onOpen` or later. Released when
    /// the connection is closed, after `onClose`.
    public var userData: AnyObject?
    @exclusivity(unchecked) var policy: ConnectionPolicy
    /// The socket said "would block" on the last write: wait for `.write`.
    @exclusivity(unchecked) var writeBlocked = false
    /// Read at the end of this loop iteration (see `resumeReading`).
    @exclusivity(unchecked) var readSoon = false
    /// Inside our own read (`readAvailable`): `scheduleFlush` only notes that output is owed
    /// (`corkOwed`), and the read writes it once when it ends.
    @exclusivity(unchecked) var corked = false
    @exclusivity(unchecked) var corkOwed = false
    @exclusivity(unchecked) var afterFlush: AfterFlush = .nothing
    @exclusivity(unchecked) var proto: WebSocketProtocol
    @exclusivity(unchecked) var closeNotified = false
    /// TLS port: the first byte was looked at (plain HTTP and garbage are answered at once).
    @exclusivity(unchecked) var openingChecked = false
    /// The loop sends the output with its next wait (`StreamDriver.queueSend`), or is sending
    /// it: the bytes stay queued until it says how many went.
    @exclusivity(unchecked) var sendQueued = false

    /// Exists only while a request head is arriving in pieces (kept in `extras`, so an idle
    /// WebSocket pays nothing for it and a head that arrives whole no allocation).
    var httpParser: HTTPParserBox? {
        get { extras?.httpParser }
        set { setCold(\.httpParser, newValue) }
    }
    var route: Route? {
        get { routeNumber == 0 ? nil : core.routeTable[Int(routeNumber) &- 1].takeUnretainedValue() }
        set { routeNumber = newValue?.number ?? 0 }
    }
    var handler: WebSocketHandler? { route?.handler }
    /// Calls `body` with the handler (if upgraded) without touching reference counts.
    @inline(__always) func withHandler(_ body: (WebSocketHandler) -> Void) {
        guard routeNumber != 0 else { return }
        core.routeTable[Int(routeNumber) &- 1]._withUnsafeGuaranteedRef { body($0.handler) }
    }
    /// Input read but not processed because output went above the high-water mark mid-read
    /// (a compressed message can inflate 1000×). Processed first when reading resumes. Kept
    /// in `extras`: only a connection that hit backpressure mid-read has any.
    var pendingInput: ByteBuffer? {
        get { extras?.pendingInput }
        set { setCold(\.pendingInput, newValue) }
    }
    /// Topics this connection is subscribed to (kept in `extras`: most connections have none).
    var subscriptions: [String] {
        get { extras?.subscriptions ?? [] }
        set {
            if newValue.isEmpty && extras == nil { return }
            extrasBox.subscriptions = newValue
        }
    }

    init(id: UInt64, loop: EventLoop, fd: Int32, tls: TLSStream?, core: ServerCore) {
        self.id = id
        self.loop = loop
        self.driver = StreamDriver(fd: fd, tls: tls)
        self.core = core
        self.counters = core.metrics.loops[loop.index]
        self.policy = ConnectionPolicy(now: loop.now, settings: core.policySettings)
        self.proto = WebSocketProtocol(role: .server, limits: core.configuration.limits)
    }

    var log: Logger { core.logger }
    var meta: Logger.Metadata { ["conn": "\(id)"] }

    // MARK: - Events

    @_spi(EventLoop) public func handleEvent(_ events: IOEvents) {
        if policy.phase == .handshake && driver.needsHandshake {
            if !openingChecked && !checkTLSOpening() { return }
            advanceTLSHandshake()
            return
        }
        if events.contains(.writable) { flush() }
        if policy.phase == .closed { return }
        if events.wantsRead { readAvailable() }
    }

    func readAvailable() {
        if pendingInput != nil {
            processPendingInput()
            if policy.readPaused || policy.phase == .closed {
                flush()
                return
            }
        }
        if policy.phase == .lingering { return linger() }
        // Corked: what the handlers send while this read runs is written when it ends, in one
        // write, before the loop reads the next connection (not after the whole batch).
        // `flushQueued` set meanwhile: `sendFrame`'s one compare skips `scheduleFlush`.
        let wasQueued = flushQueued
        flushQueued = true
        corked = true
        let end = receiveLargeFrameInPlace() ?? driver.receive(on: loop) { bytes in
            policy.received(now: loop.now)
            received(bytes)
            // Only output above the high-water mark can pause (the policy call is not
            // inlinable across modules: test first).
            if proto.outboundCount > core.policySettings.highWaterMark, policy.phase == .open,
               case .pauseReading = policy.outputChanged(bytes: proto.outboundCount, settings: core.policySettings) {
                logPause()
            }
            return !policy.readPaused && policy.phase.rawValue <= ConnectionPolicy.Phase.open.rawValue
        }
        corked = false
        flushQueued = wasQueued
        let owed = corkOwed
        corkOwed = false
        if case .drained = end {
            // Everything this read produced, now. A flush queued before it (another
            // connection's publish) then finds nothing left to write.
            if readSoon { scheduleFlush() }
        } else if owed || proto.outboundCount != 0 || driver.hasPendingOutput {
            // Any other end (backpressure, TLS wanting to write, close, lingering): the end of
            // the iteration writes it, as before.
            scheduleFlush()
        }
        switch end {
        case .drained:
            if policy.phase != .closed { flushEndOfRead() }
        case .stopped:
            if policy.phase == .lingering { return linger() }
            guard policy.phase != .closed else { return }
            // Backpressure: the peer is not reading what we send. Stop reading its input
            // until our output drains, so memory stays bounded.
            flush()
            updateInterest()
        case .writeBlocked:
            writeBlocked = true
            updateInterest()
        case .eof: peerClosed()
        case .error(let why):
            log.debug("read failed: \(why)", metadata: meta)
            flush()  // answers to what came before a bad TLS record go out before its alert
            finish()
        }
    }

    func logPause() {
        log.debug("output above \(core.policySettings.highWaterMark) bytes: pausing reads", metadata: meta)
    }

    /// Discards input after we sent our last bytes and a FIN, until the peer closes too.
    func linger() {
        if driver.discardInput(on: loop) { finish() }
    }

    func peerClosed() {
        if policy.phase == .open && proto.state != .closed {
            log.debug("peer closed TCP without a close handshake", metadata: meta)
        }
        // RFC 8446 §6.1: a close_notify is answered with ours before the socket closes.
        if driver.peerSentCloseNotify { driver.shutdownWrite() }
        finish()
    }

    func received(_ bytes: UnsafeMutableRawBufferPointer) {
        switch policy.phase {
        case .handshake: receivedHTTP(bytes)
        case .open: receivedFramesKeepingRest(bytes)
        case .lingering, .closed, .external: break
        }
    }

    // MARK: - Output

    func scheduleFlush() {
        if corked {
            corkOwed = true
            return
        }
        if !flushQueued && policy.phase != .closed {
            flushQueued = true
            loop.scheduleFlush(self)
        }
    }

    @_spi(EventLoop) public func flushScheduled() {
        flushQueued = false
        if policy.phase != .closed && !driver.needsHandshake { flush() }
        if readSoon {
            readSoon = false
            if policy.phase == .open && !policy.readPaused { readAvailable() }
        }
    }

    /// The corked read's one write. A staged plain-TCP WebSocket hands it to the loop, which
    /// sends it with the wait that ends this iteration (io_uring: no send syscall; epoll and
    /// TLS: `queueSend` says no at once). A send already queued takes the new bytes too.
    func flushEndOfRead() {
        if sendQueued { return }
        // `loop.staged` first: one load and a compare on epoll.
        if loop.staged != nil, policy.phase == .open, afterFlush == .nothing, !writeBlocked,
           proto.outboundCount != 0, driver.queueSend(on: loop) {
            sendQueued = true
            return
        }
        flush()
    }

    /// What the loop sends for us (see `flushEndOfRead`): the queue as it is when the loop
    /// enters the kernel; the bytes stay in it until `queuedSendCompleted`.
    @_spi(EventLoop) public func queuedOutput() -> UnsafeRawBufferPointer { proto.outbound.readableBytes }

    /// The loop's send ended: consume what went; the rest as after a flush (write interest on a
    /// short send, close on a failed one).
    @_spi(EventLoop) public func queuedSendCompleted(_ result: QueuedSendResult) {
        guard sendQueued else { return }
        sendQueued = false
        guard policy.phase != .closed else { return }
        Unmanaged.passUnretained(proto.outbound)._withUnsafeGuaranteedRef { out in
            let tracking = core.configuration.closeOnBackpressureLimit
            let end = driver.completeQueuedSend(result, consumed: { wrote($0, out, tracking) })
            // Bytes queued while the send was in flight: written as usual.
            if case .drained = end, !out.isEmpty || driver.hasPendingOutput { return flush(out) }
            flushEnded(end, out)
        }
    }

    func flush() {
        // No buffer held (an idle connection, a flush owed for nothing): what an empty flush
        // ends with, without making a buffer for it.
        if !proto.hasOutbound, !sendQueued, !driver.hasPendingOutput { return flushEnded(.drained, nil) }
        // At +0: `proto` holds the buffer for the whole call (it is released only by
        // `releaseOutboundIfIdle`, from the tick or after the upgrade's flush, never inside
        // one; a strong local cost a retain/release pair per flush, `unowned(unsafe)` three).
        Unmanaged.passUnretained(proto.outbound)._withUnsafeGuaranteedRef { flush($0) }
    }

    private func flush(_ out: ByteBuffer) {
        // Everything written must follow a send the loop was asked for: take it back if it
        // has not gone yet, else its completion comes first and writes the rest.
        if sendQueued {
            guard driver.withdrawSend(on: loop) else { return }
            sendQueued = false
        }
        let tracking = core.configuration.closeOnBackpressureLimit
        let end = driver.flush(pending: { out.readableBytes }, consumed: { wrote($0, out, tracking) })
        flushEnded(end, out)
    }

    @inline(__always) private func wrote(_ n: Int, _ out: ByteBuffer, _ tracking: Bool) {
        if tracking { trackFrameBoundary(out.readableBytes, written: n) }
        out.consume(n)
        if policy.readPaused,
           policy.outputChanged(bytes: out.readableCount, settings: core.policySettings) == .resumeReading {
            resumeReading()
        }
    }

    @inline(__always) private func flushEnded(_ end: StreamDriver.FlushEnd, _ out: ByteBuffer?) {
        switch end {
        case .drained:
            proto.outboundDrained()
            // Interest changes only with `writeBlocked` here (a resume of reading in
            // `consumed` updated it already).
            if writeBlocked {
                writeBlocked = false
                updateInterest()
            }
            // Large output blocks go back to the allocator once written.
            if let out, out.allocatedBytes >= 64 << 10 { out.releaseIfEmpty(threshold: 64 << 10) }
            if afterFlush == .linger { startLinger() }
        case .writeBlocked:
            writeBlocked = true
            updateInterest()
        case .readBlocked: break
        case .eof: finish()
        case .error(let why):
            log.debug("write failed: \(why)", metadata: meta)
            finish()
        }
    }

    /// Output fell below the low-water mark: read again. Bytes waiting in the kernel are
    /// signalled by the loop (level-triggered); bytes already decrypted inside OpenSSL are
    /// not, so those are read at the end of this loop iteration.
    func resumeReading() {
        log.debug("output below \(core.policySettings.lowWaterMark) bytes: resuming reads", metadata: meta)
        updateInterest()
        if pendingInput != nil || driver.hasBufferedInput {
            readSoon = true
            scheduleFlush()
        }
        if policy.phase == .open { handler?.onDrain(self) }
    }

    /// Interest from state: read unless paused, write while blocked.
    func updateInterest() {
        guard policy.phase != .closed else { return }
        var wanted: Interest = policy.readPaused ? [] : .read
        if writeBlocked { wanted.insert(.write) }
        driver.update(&interest, to: wanted, on: loop)
    }

    func startLinger() {
        afterFlush = .nothing
        guard policy.startLinger(now: loop.now, settings: core.policySettings) == .shutdownWrite else { return }
        driver.shutdownWrite()
        writeBlocked = false
        updateInterest()
    }

    /// Unregisters and closes the socket; tells the handler if it had not heard yet.
    func finish() {
        guard policy.phase != .closed && policy.phase != .external else { return }
        let wasWebSocket = policy.phase == .open || handler != nil
        if sendQueued {
            // What the loop was to send goes now, before the close (best effort, as any
            // output at close).
            sendQueued = false
            if driver.withdrawSend(on: loop) {
                let out = proto.outbound
                _ = driver.flush(pending: { out.readableBytes }, consumed: { out.consume($0) })
            }
        }
        policy.closed()
        pendingInput = nil
        logConnectionEnd()  // access log: the socket's byte counts, before it closes
        driver.close(on: loop)
        core.metrics.openConnections.subtract(1)
        if wasWebSocket { notifyClose(.abnormal, "") }
        route = nil
        // After onClose: a cycle through userData (an object that holds this connection, as
        // AsyncHandler's) would otherwise keep both alive forever.
        userData = nil
    }

    @_spi(EventLoop) public func loopStopped() { finish() }
}
