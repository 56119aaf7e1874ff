import Transport
import WebSocket

/// Everything a server needs to know before it starts. Every limit has a default chosen for a
/// public-facing chat/API server; each can be changed from the CLI.
public struct ServerConfiguration: Sendable {
    /// Address to bind: "::" (all interfaces, IPv6 and IPv4), "0.0.0.0", "127.0.0.1", "::1", a name.
    public var host: String = "::"
    /// 0 picks a free port.
    public var port: Int = 8080
    /// TLS certificate chain (PEM, leaf first). nil serves plain ws:// and http://.
    public var certificateFile: String?
    /// Private key (PEM). nil: the certificate file if it holds a key, else key.pem beside it.
    public var keyFile: String?
    /// TLS 1.3 records after the handshake are protected by our own record layer, and the
    /// `SSL` object is freed (≈2 KB per idle wss connection instead of ≈15 KB; faster small
    /// messages). False keeps OpenSSL's record layer for every connection and sends one
    /// session ticket (resumption); TLS 1.2 connections always use OpenSSL's.
    public var tlsNativeRecords = true
    /// Secret of the TLS session-ticket keys: the first 32 bytes of this file, which group and
    /// others must not be able to read (see `TLSTicketKeys(secretFile:)`). Servers sharing the
    /// file resume each other's sessions. nil: a random secret per process.
    public var ticketKeyFile: String?
    /// Event loops, one thread each. Default: one per core.
    public var threads: Int = ServerConfiguration.coreCount
    /// What the loops wait on: epoll or io_uring. Default: `WSS_IO` from the environment if it
    /// names one, else epoll (README, "Event loop backends"). io_uring where the kernel or a
    /// sandbox forbids it runs on epoll, with one warning.
    public var io: IOBackend = {
        if case .success(let io)? = IOBackend.environment { return io }
        return IOBackend.standard
    }()
    /// Message limits (RFC 6455 frames and reassembled messages).
    public var limits = WebSocketProtocol.Limits()
    /// HTTP request head limits (431 when exceeded).
    public var headLimits = HTTPHeadParser.Limits()
    /// Seconds from accept to a completed upgrade (TLS handshake included). Cuts slowloris
    /// clients and silent TLS clients; 10 s is generous for any real client.
    public var handshakeTimeout: Double = 10
    /// Seconds without any frame from the peer before we ping it; after as long again with no
    /// answer the connection is closed with 1001. 0 disables. 120 s suits NATs and proxies that
    /// drop idle flows after 2–5 minutes.
    public var idleTimeout: Double = 120
    /// Seconds to wait for the peer's close frame after sending ours, then drop TCP.
    public var closeTimeout: Double = 5
    /// Most simultaneous connections (all loops). Excess ones are accepted and closed at once
    /// (plain HTTP gets a 503). The default stays below a typical 65,536 fd limit.
    public var maxConnections: Int = 60_000
    /// Output bytes queued for one connection above which the server stops reading from it
    /// (so a peer that never reads cannot make us buffer its echoes) and `send` answers
    /// `.buffered`. Reading resumes below half of it.
    public var highWaterMark: Int = 1 << 20
    /// Output bytes queued for one connection beyond which further sends are dropped (or the
    /// connection is closed with 1008 if `closeOnBackpressureLimit`).
    public var maxBackpressure: Int = 16 << 20
    public var closeOnBackpressureLimit: Bool = false
    /// Origins allowed to open WebSockets (exact "scheme://host[:port]" strings, or "*").
    /// nil: the page's own origin and clients that send no Origin (non-browsers).
    public var allowedOrigins: [String]?
    /// permessage-deflate (RFC 7692): on by default; see README for the memory each setting costs.
    /// Default: 12-bit window and memLevel 5 for our compressor, as python-websockets chooses:
    /// about 39 KiB per connection instead of 268 KiB for 15/8, for a few percent of ratio.
    public var deflate = try! DeflateOptions(serverMaxWindowBits: 12, memLevel: 5)  // constants in range
    /// Access log: a line per HTTP request and per WebSocket session (nil: none).
    public var accessLog: AccessLog?
    /// Serve `GET /metrics` (Prometheus text format).
    public var metricsEnabled = true
    /// Clients that may read /metrics on the service port; others get 404 (default: loopback).
    public var metricsAllow: [IPAddressRange] = [try! IPAddressRange("127.0.0.1/32"), try! IPAddressRange("::1/128")]
    /// Also serve /metrics on a listener of its own, "ADDR:PORT" (any client that reaches it).
    public var metricsListen: String?
    /// PROXY protocol (v1 or v2, HAProxy's) required on every connection, accepted only from
    /// these balancer addresses; anything else is closed at once. nil: off.
    public var proxyProtocol: [IPAddressRange]?
    /// Balancers whose `X-Forwarded-For` names the client (when they terminate TLS and no
    /// PROXY header is used). Empty: the header is ignored.
    public var trustedProxies: [IPAddressRange] = []
    /// Seconds a graceful shutdown waits for peers to answer our 1001 close.
    public var shutdownTimeout: Double = 5
    /// Seconds `Server.start` waits for the backplane (`Backplane.waitUntilReady`) before it
    /// binds; after that it starts anyway and logs a warning. 5 s: RedisBackplane's first
    /// attempt ends within about 2.25 s even for an unreachable host (2 s connect timeout,
    /// 250 ms tick) and at once when refused, so this bound only ends a wait for a Redis
    /// that accepts but does not answer its login; twice the worst first attempt, and well
    /// inside the startup probes of orchestrators. 0: do not wait.
    public var backplaneReadyTimeout: Double = 5
    /// SSE and long-polling fallbacks (sessions, timeouts, limits).
    public var fallback = FallbackConfiguration()

    public init() {}

    /// The defaults, for a CLI or a config file to show and start from (one place holds each).
    public static let defaults = ServerConfiguration()

    /// Throws for a value outside its range (never clamped). `Server.init` calls it.
    public func validate() throws(ConfigurationError) {
        func check(_ name: String, _ v: Int, _ range: ClosedRange<Int>, _ note: String? = nil) throws(ConfigurationError) {
            guard range.contains(v) else { throw ConfigurationError(setting: name, value: v, allowed: range, note: note) }
        }
        try check("port", port, 0...65535)
        try check("threads", threads, 1...1024)
        try check("maxConnections", maxConnections, 1...(1 << 24))
        // Per-connection output sizes: beyond 2 GiB a single slow peer could take the machine.
        try check("highWaterMark", highWaterMark, 1024...Int(Int32.max))
        try check("maxBackpressure", maxBackpressure, highWaterMark...Int(Int32.max), "at least highWaterMark")
        let year = 31_536_000
        for (name, seconds) in [("handshakeTimeout", handshakeTimeout), ("idleTimeout", idleTimeout),
                                ("closeTimeout", closeTimeout), ("shutdownTimeout", shutdownTimeout)] {
            let whole = seconds.isFinite && seconds >= 0 && seconds <= Double(year) ? Int(seconds) : -1
            try check(name, whole, 0...year, "seconds, finite")
        }
        // Beyond 5 minutes a start is stuck, not waiting (and an orchestrator gave up long before).
        let ready = backplaneReadyTimeout.isFinite && backplaneReadyTimeout >= 0 && backplaneReadyTimeout <= 300
            ? Int(backplaneReadyTimeout.rounded(.up)) : -1
        try check("backplaneReadyTimeout", ready, 0...300, "seconds, finite")
    }

    public var isTLS: Bool { certificateFile != nil }

    public static var coreCount: Int {
        #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        #else
        return 1
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// The event loops' backend (`ServerConfiguration.io`): epoll or io_uring.
public typealias IOBackend = Transport.IOBackend
