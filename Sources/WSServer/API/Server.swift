#if canImport(Glibc)
import Glibc
#endif
import Logging
import Transport
import WebSocket

/// A WebSocket server: N event loops, each on its own thread with its own listening socket on
/// the same port. Register routes and pages, then `start()`.
public final class Server: @unchecked Sendable {
    public let configuration: ServerConfiguration
    let logger: Logger
    let loops: [EventLoop]
    let core: ServerCore
    /// Session-ticket keys of every TLS context this server makes (a reload keeps them).
    let ticketKeys: TLSTicketKeys
    private var acceptors: [Acceptor] = []
    /// The separate /metrics listener (`configuration.metricsListen`), see Server+Metrics.swift.
    var metricsListener: MetricsListener?
    /// The bound port (after `start()`; useful with port 0).
    public private(set) var port: Int = 0

    /// Loads TLS material (if configured) and prepares the loops; binds nothing yet.
    /// Throws `ConfigurationError` for a value out of range, `TLSError` for a missing,
    /// unreadable or mismatched certificate or key.
    /// `backplane` carries pub/sub beyond this process (default: in-process only).
    public init(configuration: ServerConfiguration, logger: Logger = Logger(label: "wss-server"),
                backplane: Backplane = InProcessBackplane()) throws {
        try configuration.validate()
        self.configuration = configuration
        self.logger = logger
        var tls: TLSContext?
        ticketKeys = try configuration.ticketKeyFile.map { path throws(TLSError) in try TLSTicketKeys(secretFile: path) }
            ?? .processWide
        if let cert = configuration.certificateFile {
            tls = try TLSContext(certificateFile: cert, keyFile: configuration.keyFile,
                                 nativeRecords: configuration.tlsNativeRecords,
                                 ticketKeys: ticketKeys)
        }
        if case .failure(let bad)? = IOBackend.environment { throw bad }  // not a silent epoll
        let (io, fallback) = IOBackend.resolve(configuration.io)
        if let fallback { logger.warning("\(fallback)") }
        loops = try (0..<configuration.threads).map { try EventLoop(index: $0, io: io) }
        if let why = loops.lazy.compactMap(\.uringSetupFailure).first {
            logger.warning("io_uring ring setup failed (\(why)); \(loops.filter { $0.io == .epoll }.count) of \(loops.count) loop(s) use epoll")
        }
        core = ServerCore(configuration: configuration, logger: logger, tls: tls, loops: loops, backplane: backplane)
    }

    /// Serves WebSocket connections on `path` with `handler`. Call before `start()`.
    public func route(_ path: String, _ handler: WebSocketHandler) {
        core.addRoute(path, handler)
    }

    /// Serves a static page on GET `path`. Call before `start()`.
    public func page(_ path: String, _ page: Page) {
        core.pages[path] = page
    }

    /// Pub/sub across all loops.
    public var topics: Topics { core.topics }
    /// True once `shutdown` began (e.g. for a health check that should fail while draining).
    public var isShuttingDown: Bool { core.shuttingDown.load(ordering: .relaxed) }
    /// Connections accepted and not yet closed, on every loop.
    public var openConnections: Int { core.metrics.openConnections.load(ordering: .relaxed) }
    /// The TLS key file in use (nil for plain ws).
    public var keyFile: String? { core.tls?.keyFile }

    /// "ws://host:port" or "wss://host:port".
    public var url: String {
        "\(configuration.isTLS ? "wss" : "ws")://\(formatHostPort(configuration.host, port))"
    }

    /// Waits for the backplane (up to `configuration.backplaneReadyTimeout`), then binds one
    /// listener per loop and starts the loop threads. Throws `TransportError` if the
    /// address is unusable or the port is taken.
    public func start() throws {
        // Wait for the backplane before binding: a balancer's health check and reconnecting
        // clients must not reach an instance whose recoveries would report a loss that Redis
        // could fill. A backplane still connecting behaves as in an outage.
        let bound = configuration.backplaneReadyTimeout
        // 0: no wait, so nothing to warn about (the backplane connects while the server runs).
        if bound > 0 && !core.topics.backplane.waitUntilReady(timeout: bound) {
            logger.warning("backplane not connected after \(bound) s; starting anyway: until it connects, publishes reach only this instance's subscribers (forwarded later) and recoveries report incomplete (recovered: false)")
        }
        // Make sure nobody else holds the port before joining it with SO_REUSEPORT.
        let port = try Listener.probe(host: configuration.host, port: configuration.port)
        var listeners: [Listener] = []
        do {
            for _ in loops {
                listeners.append(try Listener(host: configuration.host, port: port, reusePort: true))
            }
        } catch {
            listeners.forEach { $0.close() }
            throw error
        }
        do { try startMetricsListener() } catch { listeners.forEach { $0.close() }; throw error }
        self.port = port
        for (loop, listener) in zip(loops, listeners) {
            let acceptor = Acceptor(loop: loop, listener: listener, core: core)
            acceptors.append(acceptor)
            loop.execute { [acceptor] in acceptor.register() }
            loop.start(name: "wss-loop-\(loop.index)")
        }
    }

    /// Stops every loop at once (connections are dropped; see `shutdown` for the graceful way).
    public func stop() {
        metricsListener?.stop()
        loops.forEach { $0.stop() }
    }

    /// Graceful shutdown: stop accepting, send close 1001 to every connection on every loop,
    /// wait for the peers' close frames up to `timeout` seconds, then stop the loops.
    /// Returns how many connections were still open when the wait ended.
    @discardableResult
    public func shutdown(timeout: Double? = nil) -> Int {
        core.shuttingDown.store(true, ordering: .relaxed)
        // Listeners stay open during the drain: new requests (a balancer's health check on
        // /healthz, a client reconnecting) get a 503 instead of a refused connection.
        for loop in loops {
            loop.execute {
                loop.forEachHandler { ($0 as? WebSocketConnection)?.shutdown(); ($0 as? FallbackShutdown)?.shutdown() }
            }
        }
        let limit = monotonicMillis() + UInt64(max(0, timeout ?? configuration.shutdownTimeout) * 1000)
        while core.metrics.openConnections.load(ordering: .relaxed) > 0 && monotonicMillis() < limit {
            usleep(20_000)
        }
        for (loop, acceptor) in zip(loops, acceptors) { loop.execute { [acceptor] in acceptor.close() } }
        let left = core.metrics.openConnections.load(ordering: .relaxed)
        core.topics.backplane.shutdown()
        stop()
        wait()
        return left
    }

    /// Loads the certificate and key again (same paths). On success new connections use the
    /// new ones and open connections are untouched; on failure the old ones stay in use.
    /// Returns the new leaf serial number (hex).
    @discardableResult
    public func reloadCertificate() throws -> String {
        guard let cert = configuration.certificateFile else {
            throw TLSError("no certificate configured: the server runs plain ws://")
        }
        let fresh = try TLSContext(certificateFile: cert, keyFile: configuration.keyFile,
                                 nativeRecords: configuration.tlsNativeRecords,
                                 ticketKeys: ticketKeys)
        core.tlsContext.withLock { $0 = fresh }
        return fresh.leafSerialHex
    }

    /// Serial number (hex) of the certificate new connections get.
    public var certificateSerial: String? { core.tls?.leafSerialHex }

    /// Blocks until every loop has stopped.
    public func wait() {
        loops.forEach { $0.join() }
    }
}

/// Accepts connections on one loop's listener.
final class Acceptor: EventHandler, @unchecked Sendable {
    let loop: EventLoop
    let listener: Listener
    unowned let core: ServerCore
    private var pausedUntil: UInt64 = 0
    private var closed = false
    private var lastRejectLog: UInt64 = 0
    private var rejectedSinceLog = 0
    /// How long a connection accepted during a graceful shutdown has for its request.
    static let drainHandshakeMillis: UInt64 = 1000

    init(loop: EventLoop, listener: Listener, core: ServerCore) {
        self.loop = loop
        self.listener = listener
        self.core = core
    }

    func register() {
        do {
            try loop.register(fd: listener.fd, handler: self, interest: .read)
            // io_uring: one multishot accept takes every connection (no poll, no accept4 each).
            loop.stageAccept(fd: listener.fd)
        } catch {
            core.logger.critical("cannot watch listener: \(error)")
        }
    }

    /// Stops accepting on this loop (graceful shutdown).
    func close() {
        guard !closed else { return }
        closed = true
        loop.unregister(fd: listener.fd)
        listener.close()
    }

    /// Over the connection limit: accept and close at once, with a 503 for plain HTTP.
    func reject(_ fd: Int32) {
        core.metrics.rejectedConnections.add(1)
        Listener.refuse(fd, answer: core.isTLS ? nil
            : "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n")
        rejectedSinceLog += 1
        if loop.now >= lastRejectLog + 1000 {
            core.logger.warning("connection limit \(core.configuration.maxConnections) reached: rejected \(rejectedSinceLog) connection(s)")
            lastRejectLog = loop.now
            rejectedSinceLog = 0
        }
    }

    func handleEvent(_ events: IOEvents) {
        // Bounded batch so one loop's accept storm cannot starve its open connections.
        for _ in 0..<64 {
            // During a graceful shutdown new connections are still accepted: their requests
            // (a balancer's /healthz check, a client reconnecting) get a 503 from the router,
            // so the balancer takes this instance out while the drain runs.
            if closed { return }
            guard let fd = loop.accept(fd: listener.fd) else {
                if errno == EMFILE || errno == ENFILE {
                    core.logger.warning("accept: out of file descriptors; pausing accepts for 1 s")
                    loop.modify(fd: listener.fd, interest: [])
                    pausedUntil = loop.now + 1000
                }
                return
            }
            core.metrics.acceptedConnections.add(1)
            // Take a slot first, then check: loops accept concurrently, and a check before the
            // increment let a burst overshoot the limit by a few.
            if core.metrics.openConnections.wrappingAdd(1, ordering: .relaxed).newValue > core.configuration.maxConnections {
                core.metrics.openConnections.subtract(1)
                reject(fd)
                continue
            }
            if let trusted = core.configuration.proxyProtocol {
                ProxyHeaderReader.begin(fd: fd, loop: loop, core: core, trusted: trusted) { [unowned self] in self.open($0) }
                continue
            }
            open(fd)
        }
    }

    /// Starts serving an accepted socket (after its PROXY header, if one is required).
    func open(_ fd: Int32) {
        var tlsStream: TLSStream?
        if core.isTLS, let tls = core.tls {  // (the context's lock only on a TLS listener)
            guard let s = tls.makeStream(fd: fd, scratch: loop.scratchBuffer) else {
                core.logger.error("SSL_new failed; dropping connection")
                core.metrics.openConnections.subtract(1)
                Listener.refuse(fd)
                return
            }
            s.startedMicros = monotonicMicros()
            tlsStream = s
        }
        let id = core.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let connection = WebSocketConnection(id: id, loop: loop, fd: fd, tls: tlsStream, core: core)
        if core.shuttingDown.load(ordering: .relaxed) {
            // Accepted during the drain, after its pass dropped the half-done handshakes (the
            // listener stays open so a request gets a 503): a second to send it, or the
            // drain would wait for this connection until its handshake timeout.
            connection.policy.limitHandshake(now: loop.now, millis: Self.drainHandshakeMillis)
        }
        do {
            try connection.driver.register(on: loop, handler: connection, interest: .read)
        } catch {
            core.logger.error("cannot register connection: \(error)")
            core.metrics.openConnections.subtract(1)
            connection.driver.close(on: loop)
        }
    }

    func tick(now: UInt64) {
        let own = (closed ? 0 : 1) + core.fallback.loops[loop.index].registeredDescriptors  // listener, session tick
        core.metrics.loops[loop.index].publish(connections: loop.registeredCount - own)
        if pausedUntil != 0 && now >= pausedUntil && !closed {
            pausedUntil = 0
            loop.modify(fd: listener.fd, interest: .read)
        }
    }

    func flushScheduled() {}

    func loopStopped() { close() }
}
