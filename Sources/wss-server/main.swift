#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import ToolSupport
import WSSBuildInfo
import WSServer
import WebSocket

extension IOBackend: ExpressibleByArgument {}

enum AppName: String, ExpressibleByArgument, CaseIterable {
    case reply, echo, chat
}

struct WSSServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wss-server",
        abstract: "A secure WebSocket server: wss:// and https:// on one port (or ws:// and http:// without --cert).",
        version: BuildInfo.versionLine("wss-server"))

    @Option(help: "Address to listen on (IPv4, IPv6 or a name). '::' serves IPv6 and IPv4.")
    var host: String = ServerConfiguration.defaults.host

    @Option(help: "Port (default 8443 with --cert, 8080 without; 0 picks a free port).")
    var port: Int?

    @Option(help: "Certificate chain, PEM (leaf first, then intermediates). Enables TLS.")
    var cert: String?

    @Option(help: "Private key, PEM. Default: the --cert file if it holds a key, else key.pem beside it.")
    var key: String?

    @Option(help: "Application on /chatsocket and /: reply (text + 响应), echo, chat.")
    var app: AppName = .reply

    @Option(help: "Event loop threads (default: number of cores).")
    var threads: Int = ServerConfiguration.coreCount

    @Option(help: "Event loop backend: epoll or uring (default: WSS_IO from the environment, else epoll). uring runs on epoll, with one log line, where io_uring is unavailable or disabled.")
    var io: IOBackend = ServerConfiguration.defaults.io

    @Option(help: "Largest message in bytes after reassembly; larger ones close with 1009.")
    var maxMessageSize: Int = ServerConfiguration.defaults.limits.maxMessageSize

    @Option(help: "Seconds without traffic before a ping; no answer in as long again closes with 1001. 0 disables.")
    var idleTimeout: Double = ServerConfiguration.defaults.idleTimeout

    @Option(help: "Seconds from accept to a completed WebSocket upgrade (TLS included).")
    var handshakeTimeout: Double = ServerConfiguration.defaults.handshakeTimeout

    @Option(help: "Seconds to wait for the peer's close frame after sending ours.")
    var closeTimeout: Double = ServerConfiguration.defaults.closeTimeout

    @Option(help: "Largest single frame payload in bytes (default: --max-message-size); larger closes with 1009.")
    var maxFrameSize: Int?

    @Option(help: "Most frames in one fragmented message; more closes with 1009.")
    var maxFragments: Int = ServerConfiguration.defaults.limits.maxFragments

    @Option(help: "Most pongs waiting unsent per connection (1–255); further pings get no pong until output drains.")
    var maxQueuedPongs: Int = ServerConfiguration.defaults.limits.maxQueuedPongs

    @Option(help: "Most simultaneous connections; excess ones are closed at once (503 for plain HTTP).")
    var maxConnections: Int = ServerConfiguration.defaults.maxConnections

    @Option(help: "Queued output bytes per connection above which the server stops reading from it.")
    var highWaterMark: Int = ServerConfiguration.defaults.highWaterMark

    @Option(help: "Queued output bytes per connection beyond which sends are dropped.")
    var maxBackpressure: Int = ServerConfiguration.defaults.maxBackpressure

    @Flag(help: "Close a connection with 1008 instead of dropping messages when it passes --max-backpressure.")
    var closeOnBackpressure = false

    @Option(help: "Seconds a graceful shutdown (SIGINT/SIGTERM) waits for clients to answer close 1001.")
    var shutdownTimeout: Double = ServerConfiguration.defaults.shutdownTimeout

    @Option(help: "Largest HTTP request head in bytes (431 beyond).")
    var maxHeaderSize: Int = ServerConfiguration.defaults.headLimits.maxHeadSize

    @Option(help: "Most HTTP header lines (431 beyond).")
    var maxHeaders: Int = ServerConfiguration.defaults.headLimits.maxHeaders

    @Option(help: ArgumentHelp("Origin allowed to open WebSockets, e.g. https://example.com (repeatable; '*' allows any). Default: the page's own origin and clients that send no Origin.", valueName: "ORIGIN"))
    var allowedOrigin: [String] = []

    @Flag(help: "Refuse permessage-deflate (compression is negotiated by default).")
    var noDeflate = false

    @Option(help: "permessage-deflate: server window bits 9–15 (memory per connection: see README).")
    var deflateWindowBits: Int = ServerConfiguration.defaults.deflate.serverMaxWindowBits

    @Option(help: "permessage-deflate: zlib memLevel 1–9.")
    var deflateMemLevel: Int = ServerConfiguration.defaults.deflate.memLevel

    @Option(help: "permessage-deflate: compression level 0–9.")
    var deflateLevel: Int = ServerConfiguration.defaults.deflate.compressionLevel

    @Option(help: "permessage-deflate: messages smaller than this many bytes are sent uncompressed.")
    var deflateMinSize: Int = ServerConfiguration.defaults.deflate.minSizeToCompress

    @Flag(help: "permessage-deflate: no context takeover on either side (less memory, less compression).")
    var deflateNoContextTakeover = false

    @Flag(help: "TLS: keep OpenSSL's record layer after the handshake instead of ours (see README).")
    var opensslRecords = false

    @Option(help: ArgumentHelp("TLS session-ticket secret: the first 32 bytes of FILE (e.g. `openssl rand 32`), mode 0600. Servers sharing the file (and a clock) resume each other's sessions. Default: random per process.", valueName: "FILE"))
    var ticketKeyFile: String?

    @Flag(help: "Do not serve GET /metrics.")
    var noMetrics = false

    @Option(help: ArgumentHelp("TOML file of settings: keys are these flags' long names (max-message-size = 1048576); flags given here override it.", valueName: "FILE"))
    var config: String?

    @Flag(help: "Print the effective settings (defaults, --config file and flags merged) as a config file and exit.")
    var printConfig = false

    @OptionGroup(title: "Logging")
    var logging: LogOptions

    @OptionGroup(title: "Metrics")
    var metrics: MetricsOptions

    @Flag(help: "Do not serve the chat page on / (WebSocket and /healthz only; tlsfuzzer wants a one-record answer to GET /).")
    var noPage = false

    @OptionGroup(title: "Scale-out") var scaleOut: BackplaneOptions

    @OptionGroup(title: "Behind a load balancer") var balancer: ProxyOptions

    func validate() throws {
        if key != nil && cert == nil { throw ValidationError("--key needs --cert") }
        if ticketKeyFile != nil && cert == nil { throw ValidationError("--ticket-key-file needs --cert") }
        if let port, !(0...65535).contains(port) { throw ValidationError("--port must be 0–65535") }
        if threads < 1 || threads > 1024 { throw ValidationError("--threads must be 1–1024") }
        try IOSelection.checkEnvironment()
        if maxMessageSize < 1 { throw ValidationError("--max-message-size must be positive") }
        if let f = maxFrameSize, f < 1 { throw ValidationError("--max-frame-size must be positive") }
        if !(1...255).contains(maxQueuedPongs) { throw ValidationError("--max-queued-pongs must be 1–255") }
        if maxFragments < 1 { throw ValidationError("--max-fragments must be positive") }
        if !(9...15).contains(deflateWindowBits) { throw ValidationError("--deflate-window-bits must be 9–15") }
        if !(1...9).contains(deflateMemLevel) { throw ValidationError("--deflate-mem-level must be 1–9") }
        if !(0...9).contains(deflateLevel) { throw ValidationError("--deflate-level must be 0–9") }
        if maxConnections < 1 { throw ValidationError("--max-connections must be positive") }
        if highWaterMark < 1024 { throw ValidationError("--high-water-mark must be at least 1024") }
        if maxBackpressure < highWaterMark { throw ValidationError("--max-backpressure must be at least --high-water-mark") }
        for (name, v) in [("--idle-timeout", idleTimeout), ("--handshake-timeout", handshakeTimeout),
                          ("--close-timeout", closeTimeout), ("--shutdown-timeout", shutdownTimeout)] where v < 0 || !v.isFinite {
            throw ValidationError("\(name) must be a non-negative number of seconds")
        }
    }

    @OptionGroup(title: "SSE and long-polling fallbacks") var fallback: FallbackOptions

    func run() throws {
        if printConfig {
            RawOutput.write(ConfigDump.toml(self), fd: 1)
            return
        }
        logging.bootstrap()
        let logger = Logger(label: "wss-server")

        var config = ServerConfiguration()
        config.host = host
        config.port = port ?? (cert != nil ? 8443 : 8080)
        config.certificateFile = cert
        config.keyFile = key
        config.threads = threads
        config.io = io
        config.limits = try .init(maxMessageSize: maxMessageSize, maxFrameSize: maxFrameSize, maxFragments: maxFragments,
                              maxQueuedPongs: maxQueuedPongs)
        config.maxConnections = maxConnections
        config.highWaterMark = highWaterMark
        config.maxBackpressure = maxBackpressure
        config.closeOnBackpressureLimit = closeOnBackpressure
        config.shutdownTimeout = shutdownTimeout
        config.backplaneReadyTimeout = scaleOut.backplaneReadyTimeout
        config.allowedOrigins = allowedOrigin.isEmpty ? nil : allowedOrigin
        config.metricsEnabled = !noMetrics
        config.tlsNativeRecords = !opensslRecords
        config.ticketKeyFile = ticketKeyFile
        config.deflate = try DeflateOptions(enabled: !noDeflate, serverMaxWindowBits: deflateWindowBits,
                                        serverNoContextTakeover: deflateNoContextTakeover,
                                        clientNoContextTakeover: deflateNoContextTakeover,
                                        memLevel: deflateMemLevel, compressionLevel: deflateLevel,
                                        minSizeToCompress: deflateMinSize)
        config.headLimits = .init(maxHeadSize: maxHeaderSize, maxHeaders: maxHeaders)
        config.idleTimeout = idleTimeout
        config.handshakeTimeout = handshakeTimeout
        config.closeTimeout = closeTimeout
        config.fallback = fallback.configuration
        balancer.apply(to: &config)
        do {
            try metrics.apply(to: &config)
            config.accessLog = try logging.makeAccessLog()
        } catch {
            fail("\(error)")
        }

        let server: Server
        do {
            server = try Server(configuration: config, logger: logger, backplane: scaleOut.makeBackplane(logger: logger))
        } catch {
            fail("\(error)")
        }
        let handler: WebSocketHandler = switch app {
        case .reply: ReplyApp()
        case .echo: EchoApp()
        case .chat: ChatApp()
        }
        server.route("/chatsocket", handler)
        server.route("/", handler)
        if !noPage { server.page("/", Page(html: ChatPage.html(app: app.rawValue))) }
        server.page("/healthz", Page(contentType: "text/plain; charset=utf-8", body: Array("ok\n".utf8)))
        // SIGINT/SIGTERM: close 1001, drain, return; SIGHUP: certificate reload.
        let left: Int
        do {
            let accessLog = config.accessLog
            left = try server.runUntilSignalled(onReady: { announce(server, logger: logger) }, onHangup: {
                do {
                    try accessLog?.reopen()
                } catch {
                    logger.error("SIGHUP: \(error); still writing to the old file")
                }
            })
        } catch {
            fail("\(error)")
        }
        logger.notice(left == 0 ? "all connections closed; bye" : "\(left) connection(s) did not close in time; dropped them")
    }

    /// The startup lines: "listening on URL" on stdout (what scripts and tests wait for),
    /// the rest on the log.
    func announce(_ server: Server, logger: Logger) {
        if cert == nil {
            logger.warning("no --cert given: serving plain ws:// and http:// (unencrypted)")
        } else if let key = server.keyFile {
            logger.info("TLS certificate \(cert!), key \(key)")
        }
        logger.info("app '\(app.rawValue)', \(threads) thread(s), max message \(maxMessageSize) bytes")
        // One line on stdout, written directly so that it is never stuck in a pipe buffer.
        RawOutput.write("listening on \(server.url)\n", fd: 1)
        if ["::", "0.0.0.0", "127.0.0.1", "::1", "localhost"].contains(host) {
            logger.info("chat page: \(cert == nil ? "http" : "https")://localhost:\(server.port)/")
        }
    }

    func fail(_ message: String) -> Never {
        RawOutput.write("wss-server: error: \(message)\n")
        Glibc.exit(1)
    }
}

enum RawOutput {
    static func write(_ s: String, fd: Int32 = 2) {
        var s = s
        s.withUTF8 { _ = Glibc.write(fd, $0.baseAddress, $0.count) }
    }
}

if let warning = ArgvSecrets.warning(for: Array(CommandLine.arguments.dropFirst())) { RawOutput.write(warning + "\n") }
do {
    WSSServerCommand.mainWithOneLineErrors(try ConfigFile.expand(Array(CommandLine.arguments.dropFirst())))
} catch {
    WSSServerCommand.failLine("\(error)")
}
