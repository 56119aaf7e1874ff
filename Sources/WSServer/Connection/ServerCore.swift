import Logging
import Synchronization
import Transport
import WebSocket

extension Atomic where Value == Int {
    func add(_ n: Int) { _ = wrappingAdd(n, ordering: .relaxed) }
    func subtract(_ n: Int) { _ = wrappingSubtract(n, ordering: .relaxed) }
}

/// What every connection of a server shares: configuration, routes, pages, topics, TLS.
final class ServerCore: @unchecked Sendable {
    let configuration: ServerConfiguration
    let logger: Logger
    /// Fixed before the loops start; read-only afterwards, never removed: connections hold
    /// their route unretained (`WebSocketConnection.routeRef`).
    var routes: [String: Route] = [:]
    var pages: [String: Page] = [:]
    let metrics: ServerMetrics
    let topics: Topics
    /// Swapped on certificate reload; read once per accepted connection.
    let tlsContext: Locked<TLSContext?>
    var tls: TLSContext? { tlsContext.withLock { $0 } }
    let isTLS: Bool
    /// Validation, origin policy (RFC 6455 §10.2), subprotocol and deflate negotiation.
    let handshake: ServerHandshake
    let nextID = Atomic<UInt64>(1)
    /// Deadlines and water marks of every connection's `ConnectionPolicy`.
    let policySettings: ConnectionPolicy.Settings
    let maxBackpressure: Int
    /// Rate limit for log lines about one client (plain HTTP on the TLS port, dropped messages).
    let noticeLimiter = LogLimiter()
    /// True once a graceful shutdown began: loops refuse new work.
    let shuttingDown = Atomic<Bool>(false)
    /// SSE and long-polling sessions, one table per loop (Fallback/).
    let fallback: FallbackCore

    init(configuration: ServerConfiguration, logger: Logger, tls: TLSContext?, loops: [EventLoop],
         backplane: Backplane = InProcessBackplane()) {
        self.configuration = configuration
        self.logger = logger
        self.tlsContext = Locked(tls)
        self.isTLS = tls != nil
        self.handshake = ServerHandshake(origins: OriginPolicy(allowed: configuration.allowedOrigins),
                                         deflate: configuration.deflate, secure: tls != nil)
        self.maxBackpressure = configuration.maxBackpressure
        self.topics = Topics(loops: loops, backplane: backplane,
                             compressor: SharedCompressor(options: configuration.deflate))
        self.fallback = FallbackCore(configuration: configuration.fallback, loops: loops)
        self.metrics = ServerMetrics(loopCount: loops.count, backplane: backplane)
        func ms(_ s: Double) -> UInt64 { s <= 0 ? 0 : UInt64(s * 1000) }
        // After our last bytes and FIN, 2 s of reading and discarding before the close.
        policySettings = ConnectionPolicy.Settings(
            handshakeMillis: ms(configuration.handshakeTimeout), idleMillis: ms(configuration.idleTimeout),
            closeMillis: max(1, ms(configuration.closeTimeout)), lingerMillis: 2000,
            highWaterMark: configuration.highWaterMark)
    }
}

/// A WebSocket endpoint: its path and handler. A connection points at its route (one
/// reference instead of a path string and a handler existential: 24 bytes per connection).
final class Route: Sendable {
    let path: String
    let handler: WebSocketHandler
    init(path: String, handler: WebSocketHandler) {
        self.path = path
        self.handler = handler
    }
}
