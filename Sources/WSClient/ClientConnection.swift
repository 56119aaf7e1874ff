import Transport
import WebSocket

/// A WebSocket client connection on an event loop: TCP connect, TLS, the opening handshake,
/// then the same sans-IO protocol core the server uses, in the client role (masking). Socket
/// and TLS go through the same `StreamDriver` as the server's connections, deadlines through
/// the same `ConnectionPolicy`.
public final class ClientConnection: EventHandler {
    /// Where the connection is in its life: TCP connect, TLS, HTTP upgrade, open, closing, closed.
    public enum Phase: UInt8 { case connecting, tlsHandshake, upgrading, open, closing, closed }

    public let loop: EventLoop
    public let options: ClientOptions
    /// Held strongly until the connection closes (then released), so a delegate needs no
    /// other owner and the message path pays for no weak-reference load.
    public var delegate: ClientDelegate?
    @exclusivity(unchecked) public internal(set) var phase: Phase = .connecting
    /// The subprotocol the server chose.
    public internal(set) var subprotocol: String?
    /// Application data.
    public var userData: AnyObject?
    @exclusivity(unchecked) public var proto: WebSocketProtocol
    @exclusivity(unchecked) var driver: StreamDriver
    /// Addresses not dialled yet: the next is tried when a connect is refused.
    private var candidates: ArraySlice<SocketAddress>
    @exclusivity(unchecked) var policy: ConnectionPolicy
    /// Connect timeout, and the close wait of the close in progress.
    private var settings: ConnectionPolicy.Settings
    var handshake: ClientHandshake
    var responseParser = HTTPHeadParser()
    @exclusivity(unchecked) private var flushQueued = false
    @exclusivity(unchecked) private var writeBlocked = false
    @exclusivity(unchecked) var interest: Interest = .write
    private var closeNotified = false
    private var lastCloseCode: CloseCode = .abnormal
    private var lastCloseReason = ""

    /// Starts connecting; must be called on `loop`'s thread.
    public init(loop: EventLoop, options: ClientOptions, delegate: ClientDelegate?) throws {
        self.loop = loop
        self.options = options
        self.delegate = delegate
        self.proto = WebSocketProtocol(role: .client, limits: options.limits)
        self.handshake = ClientHandshake(host: options.hostHeader, path: options.path,
                                         subprotocols: options.subprotocols, origin: options.origin,
                                         offerDeflate: options.offerDeflate,
                                         extraHeaders: options.headers.map { ($0.name, $0.value) })
        settings = ConnectionPolicy.Settings(handshakeMillis: options.connectTimeoutMillis, idleMillis: 0,
                                             closeMillis: 3000, lingerMillis: 0, highWaterMark: .max)
        policy = ConnectionPolicy(now: loop.now, settings: settings)
        var candidates = try options.addresses.map { ArraySlice($0) } ?? ArraySlice(Self.lookUp(options.host, port: options.port))
        driver = try Self.dial(&candidates, options: options, loop: loop)
        self.candidates = candidates
        try driver.register(on: loop, handler: self, interest: .write)
    }

    /// `host` parsed, or looked up here (blocking: `ClientOptions.addresses` avoids it).
    private static func lookUp(_ host: String, port: Int) throws(TransportError) -> [SocketAddress] {
        if let address = HostResolver.numeric(host, port: port) { return [address] }
        switch HostResolver.system(host, port) {
        case .success(let all): return all
        case .failure(let error): throw error
        }
    }

    /// A driver on the first of `candidates` whose connect does not fail at once (removed
    /// from them with the ones before it); the last error if none.
    private static func dial(_ candidates: inout ArraySlice<SocketAddress>, options: ClientOptions,
                             loop: EventLoop) throws -> StreamDriver {
        var failure: Error = TransportError.lookup(host: options.host, "no address")
        while let address = candidates.popFirst() {
            let fd: Int32
            do { fd = try connectTCP(to: address) } catch { failure = error; continue }
            guard let context = options.tls else { return StreamDriver(fd: fd, tls: nil) }
            guard let tls = context.makeStream(fd: fd, serverName: options.serverName ?? options.host, scratch: loop.scratchBuffer) else {
                StreamDriver(fd: fd, tls: nil).close(on: loop)
                throw TLSError.drain("SSL_new")
            }
            return StreamDriver(fd: fd, tls: tls)
        }
        throw failure
    }

    /// The connect in progress failed with `why`: the next address, if there is one
    /// (`localhost` is often `::1` first, where a server bound to 127.0.0.1 refuses). nil when
    /// one is being dialled, else why the connection fails. The connect timeout covers all.
    private func dialNextAddress(after why: String) -> String? {
        guard !candidates.isEmpty else { return why }
        let next: StreamDriver
        do { next = try Self.dial(&candidates, options: options, loop: loop) } catch { return "\(error)" }
        driver.close(on: loop)
        driver = next
        interest = .write
        do { try driver.register(on: loop, handler: self, interest: .write) } catch { return "\(error)" }
        return nil
    }

    public var isOpen: Bool { phase == .open && proto.state == .open }
    /// True when permessage-deflate was negotiated.
    public var isCompressing: Bool { proto.deflate != nil }
    public var bufferedAmount: Int { proto.outboundCount }

    // MARK: - Sending

    @discardableResult
    public func send(text: String) -> Bool {
        loop.assertInLoop()
        guard isOpen else { return false }
        proto.send(text: text)
        scheduleFlush()
        return true
    }

    @discardableResult
    public func send(_ opcode: Opcode, _ bytes: UnsafeRawBufferPointer) -> Bool {
        loop.assertInLoop()
        guard isOpen else { return false }
        proto.send(opcode, bytes)
        scheduleFlush()
        return true
    }

    public func ping(_ payload: [UInt8] = []) {
        guard isOpen else { return }
        proto.ping(payload)
        scheduleFlush()
    }

    /// Starts the closing handshake; the TCP connection ends when the server closes it or
    /// after `timeoutMillis`.
    public func close(code: CloseCode = .normal, reason: String = "", timeoutMillis: UInt64 = 3000) {
        guard phase == .open else {
            if phase != .closed && phase != .closing { finish(code: .abnormal, reason: "", error: "closed before open") }
            return
        }
        proto.close(code: code, reason: reason)
        closing(waitMillis: timeoutMillis)
        scheduleFlush()
    }

    /// Drops the connection without a close handshake.
    public func abort() { finish(code: .abnormal, reason: "", error: "aborted") }

    private func closing(waitMillis: UInt64) {
        phase = .closing
        settings.closeMillis = waitMillis
        policy.closeSent(now: loop.now, settings: settings)
    }

    // MARK: - Event loop

    @_spi(EventLoop) public func handleEvent(_ events: IOEvents) {
        switch phase {
        case .connecting:
            let err = connectResult(fd: driver.fd)
            if err != 0 {
                guard let why = dialNextAddress(after: "connect: \(errnoDescription(err))") else { return }
                return finish(code: .abnormal, reason: "", error: why)
            }
            if driver.needsHandshake {
                phase = .tlsHandshake
                advanceTLS()
            } else {
                startUpgrade()
            }
        case .tlsHandshake:
            advanceTLS()
        default:
            if events.contains(.writable) { flush() }
            if phase != .closed && events.wantsRead { readAvailable() }
        }
    }

    private func readAvailable() {
        let end = driver.receive(into: loop.readBuffer) { bytes in
            received(bytes)
            return phase != .closed
        }
        switch end {
        case .drained: flush()
        case .stopped: break
        case .writeBlocked:
            writeBlocked = true
            updateInterest()
        case .eof:
            let clean = proto.state == .closed
            finish(code: clean ? lastCloseCode : .abnormal, reason: lastCloseReason,
                   error: clean ? nil : "server closed TCP without a close handshake")
        case .error(let why): finish(code: .abnormal, reason: "", error: why)
        }
    }

    private func received(_ bytes: UnsafeMutableRawBufferPointer) {
        var start = 0
        if phase == .upgrading {
            guard let consumed = receivedResponse(bytes) else { return }
            start = consumed
        }
        var cursor = start
        while let event = proto.next(bytes, cursor: &cursor) {
            switch event {
            case .text(let p): delegate?.client(self, didReceive: Message(kind: .text, bytes: p))
            case .binary(let p): delegate?.client(self, didReceive: Message(kind: .binary, bytes: p))
            case .ping: break
            case .pong(let p): delegate?.client(self, didReceivePong: p)
            case .close(let code, let reason):
                lastCloseCode = code ?? .noStatus
                lastCloseReason = String(decoding: reason, as: UTF8.self)
                closing(waitMillis: 3000)
            case .fragment:
                break  // the client does not enable streamsMessages
            case .failed(let err):
                lastCloseCode = err.closeCode
                lastCloseReason = err.reason
                closing(waitMillis: 1000)
            }
        }
        if proto.outboundCount != 0 { scheduleFlush() }
    }

    // MARK: - Output

    private func scheduleFlush() {
        if !flushQueued && phase != .closed {
            flushQueued = true
            loop.scheduleFlush(self)
        }
    }

    @_spi(EventLoop) public func flushScheduled() {
        flushQueued = false
        if phase == .upgrading || phase == .open || phase == .closing { flush() }
    }

    func flush() {
        let out = proto.outbound
        switch driver.flush(pending: { out.readableBytes }, consumed: { out.consume($0) }) {
        case .drained:
            writeBlocked = false
            proto.outboundDrained()
            updateInterest()
            out.releaseIfEmpty(threshold: 64 << 10)
        case .writeBlocked:
            writeBlocked = true
            updateInterest()
        case .readBlocked: break
        case .eof: finish(code: .abnormal, reason: "", error: "server closed while we were writing")
        case .error(let why): finish(code: .abnormal, reason: "", error: why)
        }
    }

    private func updateInterest() {
        guard phase != .closed else { return }
        driver.update(&interest, to: writeBlocked ? [.read, .write] : .read, on: loop)
    }

    func finish(code: CloseCode, reason: String, error: String?) {
        guard phase != .closed else { return }
        phase = .closed
        policy.closed()
        driver.close(on: loop)
        if !closeNotified {
            closeNotified = true
            delegate?.clientDidClose(self, code: code, reason: reason, error: error)
        }
        delegate = nil
    }

    @_spi(EventLoop) public func loopStopped() {
        finish(code: .abnormal, reason: "", error: "event loop stopped")
        userData = nil
    }

    @_spi(EventLoop) public func tick(now: UInt64) {
        let protocolOpen = phase != .closing && proto.state == .open
        switch policy.tick(now: now, protocolOpen: protocolOpen, settings: settings) {
        case .drop(.handshakeTimeout):
            finish(code: .abnormal, reason: "", error: "timed out in \(phase) after \(options.connectTimeoutMillis) ms")
        case .drop:
            finish(code: lastCloseCode, reason: lastCloseReason, error: proto.state == .closed ? nil : "close timeout")
        default: break
        }
    }
}
