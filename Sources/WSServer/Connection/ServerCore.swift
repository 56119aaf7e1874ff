import Logging
import Synchronization
import Transport
import WebSocket

/// Counters shared by all loops (relaxed atomics: read for metrics and tests, never for logic).
public final class ServerStats: Sendable {
    public let openConnections = Atomic<Int>(0)
    public let acceptedConnections = Atomic<Int>(0)
    public let upgrades = Atomic<Int>(0)
    public let handshakeFailures = Atomic<Int>(0)
    public let handshakeTimeouts = Atomic<Int>(0)
    public let tlsHandshakeFailures = Atomic<Int>(0)
    public let httpErrors = Atomic<Int>(0)
    public let rejectedConnections = Atomic<Int>(0)
    public let backpressureDrops = Atomic<Int>(0)
    init() {}
}

func asciiEqualsIgnoringCase(_ a: String, _ b: String) -> Bool {
    a.utf8.count == b.utf8.count && a.lowercased() == b.lowercased()
}

extension Atomic where Value == Int {
    func add(_ n: Int) { _ = wrappingAdd(n, ordering: .relaxed) }
    func subtract(_ n: Int) { _ = wrappingSubtract(n, ordering: .relaxed) }
}

/// What every connection of a server shares: configuration, routes, pages, topics, TLS.
final class ServerCore: @unchecked Sendable {
    let configuration: ServerConfiguration
    let logger: Logger
    /// Fixed before the loops start; read-only afterwards.
    var routes: [String: Route] = [:]
    var pages: [String: Page] = [:]
    let stats = ServerStats()
    let metrics: ServerMetrics
    let topics: Topics
    /// Swapped on certificate reload; read once per accepted connection.
    let tlsContext: Locked<TLSContext?>
    var tls: TLSContext? { tlsContext.withLock { $0 } }
    let isTLS: Bool
    let nextID = Atomic<UInt64>(1)
    /// Deadlines and water marks of every connection's `ConnectionPolicy`.
    let policySettings: ConnectionPolicy.Settings
    let maxBackpressure: Int
    /// True once a graceful shutdown began: loops refuse new work.
    let shuttingDown = Atomic<Bool>(false)

    /// RFC 6455 §10.2: browsers send Origin; a server should refuse origins it does not expect.
    /// nil allow-list: same origin (Origin's host equals Host) or no Origin header at all.
    func originAllowed(_ origin: String?, host: String?) -> Bool {
        guard let origin, origin != "" else { return true }
        if let list = configuration.allowedOrigins {
            return list.contains("*") || list.contains { asciiEqualsIgnoringCase($0, origin) }
        }
        guard let host else { return false }
        // Origin is "scheme://host[:port]"; same origin means same scheme family and authority.
        let scheme = isTLS ? "https://" : "http://"
        return asciiEqualsIgnoringCase(origin, scheme + host)
    }

    init(configuration: ServerConfiguration, logger: Logger, tls: TLSContext?, loops: [EventLoop],
         backplane: Backplane = InProcessBackplane()) {
        self.configuration = configuration
        self.logger = logger
        self.tlsContext = Locked(tls)
        self.isTLS = tls != nil
        self.maxBackpressure = configuration.maxBackpressure
        self.topics = Topics(loops: loops, backplane: backplane)
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
