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
    /// Fixed before the loops start (`addRoute`); read-only afterwards.
    private(set) var routes: [String: Route] = [:]
    /// Every route ever added, by `Route.number - 1`, never removed (a path registered again
    /// gets a new route; connections on the old one keep it): a connection holds its route as
    /// this 2-byte number (`WebSocketConnection.routeNumber`) and reaches the handler through
    /// this table without touching reference counts. `routeObjects` owns them.
    @exclusivity(unchecked) private(set) var routeTable: UnsafeMutablePointer<Unmanaged<Route>>
    private var routeObjects: [Route] = []
    /// Tables outgrown by `addRoute` (freed with the core, in case a misuse reads one late).
    private var retiredTables: [UnsafeMutablePointer<Unmanaged<Route>>] = []
    private var routeCapacity = 8
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
        self.routeTable = .allocate(capacity: routeCapacity)
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

    deinit {
        routeTable.deallocate()
        for table in retiredTables { table.deallocate() }
    }

    /// Registers `handler` on `path` (before the loops start), replacing an earlier route of
    /// that path for new connections.
    @discardableResult
    func addRoute(_ path: String, _ handler: WebSocketHandler) -> Route {
        precondition(routeObjects.count < Int(UInt16.max), "more than 65,535 WebSocket routes")
        if routeObjects.count == routeCapacity {
            let grown = UnsafeMutablePointer<Unmanaged<Route>>.allocate(capacity: routeCapacity * 2)
            grown.initialize(from: routeTable, count: routeCapacity)
            retiredTables.append(routeTable)
            routeTable = grown
            routeCapacity *= 2
        }
        let route = Route(path: path, handler: handler, number: UInt16(routeObjects.count + 1))
        (routeTable + routeObjects.count).initialize(to: .passUnretained(route))
        routeObjects.append(route)
        routes[path] = route
        return route
    }
}

/// A WebSocket endpoint: its path and handler. A connection holds its route's number (2
/// bytes instead of a path string and a handler existential, 24, or a reference, 8).
final class Route: Sendable {
    let path: String
    let handler: WebSocketHandler
    /// 1-based index in `ServerCore.routeTable` (0 in a connection: no route).
    let number: UInt16
    init(path: String, handler: WebSocketHandler, number: UInt16) {
        self.path = path
        self.handler = handler
        self.number = number
    }
}
