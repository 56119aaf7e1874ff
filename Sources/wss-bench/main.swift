#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Transport
import WSClient
import ToolSupport
import WSSBuildInfo

// wss-bench: the project's WebSocket benchmark client (ws and wss), built on WSClient.
// Echo mode verifies every echo byte for byte, in order; handshakes mode measures full
// connect → TLS → upgrade → close cycles; idle mode measures server memory per connection;
// pubsub mode measures fan-out (1 publisher → N subscribers on one path of `--app chat`).
// Output and behaviour follow /work/shared/tools/wsload (the C yardstick).

enum PayloadKind: String, EnumerableFlag {
    case text, binary
    static func help(for value: PayloadKind) -> ArgumentHelp? {
        value == .text ? "Text frames, ASCII payload (default)." : "Binary frames."
    }
}

struct WSSBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wss-bench",
        abstract: "WebSocket echo / handshake / idle-connection / pub-sub benchmark client (ws:// and wss://).",
        discussion: """
            Echo mode (default): every connection keeps DEPTH messages in flight; each echo is \
            verified byte for byte and in order. After WARMUP seconds, measures for DURATION \
            seconds, then drains (≤1 s) and closes (≤1 s). The last line starts with RESULT and \
            holds key=value pairs. --pubsub N (against `wss-server --app chat`): N subscribers and \
            a publisher on the URL's path; the publisher keeps --window publishes in flight (or \
            sends at --rate), every subscriber must receive every publish once, in order; reports \
            publishes/s, deliveries/s and send→subscriber latency. Echo mode also reports bytes on the \
            wire per message (TCP payload of its sockets, from TCP_INFO) and, with --deflate, \
            compresses with permessage-deflate. Exit status: 0 ok, 1 mismatches/errors/nothing measured, \
            2 --deflate not accepted by the server, 3 safety timeout.
            """,
        version: BuildInfo.versionLine("wss-bench"))

    @Argument(help: "ws://host:port/path or wss://host:port/path")
    var url: String

    @Option(name: [.customShort("c"), .customLong("connections")],
            help: "Connections (echo, idle prewarm), concurrent slots (handshakes).")
    var connections: Int = 100

    @Option(name: [.customShort("d"), .customLong("depth")], help: "Messages in flight per connection.")
    var depth: Int = 1

    @Option(name: [.customShort("s"), .customLong("size")], help: "Payload bytes per message.")
    var size: Int = 64

    @Flag(exclusivity: .exclusive)
    var kind: PayloadKind = .text

    @Option(name: [.customShort("T"), .customLong("duration")],
            help: "Measured seconds (idle: hold time).")
    var duration: Double = 5

    @Option(name: [.customShort("W"), .customLong("warmup")], help: "Warmup seconds before the window.")
    var warmup: Double = 1

    @Option(name: [.customShort("t"), .customLong("threads")], help: "Client event loops (threads).")
    var threads: Int = 1

    @Option(name: .customLong("ca"), help: "PEM CA file to verify the server certificate (wss). Without it, no verification.")
    var ca: String?

    @Flag(name: .customLong("handshakes"), help: "Loop connect → (TLS full handshake) → upgrade → close; report handshakes/s.")
    var handshakes = false

    @Option(name: .customLong("idle"), help: "Open N connections and hold them idle for DURATION seconds.")
    var idle: Int?

    @Option(name: .customLong("pubsub"),
            help: "Pub/sub fan-out against `wss-server --app chat`: N subscribers + 1 publisher on the URL's path.")
    var pubsub: Int?

    @Option(name: .customLong("window"),
            help: "(pubsub) Most publishes in flight; one completes when the publisher receives it back (default 16, 1024 with --rate).")
    var window: Int?

    @Option(name: .customLong("rate"), help: "(pubsub) Publish at R messages/s (open loop, still capped by --window).")
    var rate: Double?

    @Option(name: .customLong("server-pid"), help: "Server process: CPU use (echo, handshakes, pubsub), RSS per connection (idle).")
    var serverPid: Int32?

    @Option(name: .customLong("hs-conc"), help: "(idle, pubsub) Most handshakes in progress at once.")
    var hsConc: Int = 64

    @Option(name: .customLong("prewarm"), help: "(idle, with --server-pid) Open and close N connections before reading the baseline RSS.")
    var prewarm: Int = 32

    @Option(name: .customLong("setup-timeout"), help: "(idle, pubsub) Seconds allowed to open all connections (default 120 idle, 30 pubsub).")
    var setupTimeoutOption: Double?

    var setupTimeout: Double { setupTimeoutOption ?? (pubsub != nil ? 30 : 120) }

    @Flag(name: .customLong("deflate"),
          help: "(echo) Offer permessage-deflate (RFC 7692); exit 2 if the server does not accept it. Messages ≥ 64 bytes are compressed.")
    var deflate = false

    @Flag(name: .customLong("json"),
          help: "(echo, text) JSON bodies (batches of trade-like records with varying numbers) instead of random letters; -s at least \(jsonMinSize).")
    var json = false

    @Option(name: .customLong("fallback"),
            help: "Echo or --idle over the HTTP fallbacks of `wss-server` instead of WebSocket: sse (POST up, event stream down) or longpoll (POST up, polls down); -c = sessions.")
    var fallback: FallbackMode?

    @Flag(name: .customShort("q"), help: "Print only the RESULT line.")
    var quiet = false

    func validate() throws {
        try IOSelection.checkEnvironment()
        if connections < 1 { throw ValidationError("-c must be at least 1") }
        if depth < 1 { throw ValidationError("-d must be at least 1") }
        if size < 0 { throw ValidationError("-s must be non-negative") }
        if !(duration > 0) || !duration.isFinite { throw ValidationError("-T must be positive") }
        if warmup < 0 || !warmup.isFinite { throw ValidationError("-W must be non-negative") }
        if threads < 1 || threads > 256 { throw ValidationError("-t must be 1–256") }
        if let idle, idle < 1 { throw ValidationError("--idle must be at least 1") }
        if handshakes && idle != nil { throw ValidationError("--handshakes and --idle are exclusive") }
        if pubsub != nil && (handshakes || idle != nil) {
            throw ValidationError("--pubsub excludes --handshakes and --idle")
        }
        if let pubsub {
            if pubsub < 1 { throw ValidationError("--pubsub must be at least 1") }
            if size < pubSubHeaderBytes {
                throw ValidationError("-s must be at least \(pubSubHeaderBytes) with --pubsub (sequence number + send time)")
            }
        }
        if deflate || json {
            let other = handshakes || idle != nil || pubsub != nil
            if other { throw ValidationError("--deflate and --json apply to echo mode only") }
        }
        if json {
            if kind == .binary { throw ValidationError("--json sends text messages (drop --binary)") }
            if size < jsonMinSize { throw ValidationError("-s must be at least \(jsonMinSize) with --json") }
        }
        if fallback != nil {
            if handshakes || pubsub != nil || deflate || json || kind == .binary {
                throw ValidationError("--fallback measures text echo or --idle only")
            }
            if size < 16 { throw ValidationError("-s must be at least 16 with --fallback (the sequence tag)") }
        }
        if let window, window < 1 { throw ValidationError("--window must be at least 1") }
        if let rate, !(rate > 0) || !rate.isFinite { throw ValidationError("--rate must be positive") }
        if let s = setupTimeoutOption, !(s > 0) { throw ValidationError("--setup-timeout must be positive") }
        if !(url.hasPrefix("ws://") || url.hasPrefix("wss://")) {
            throw ValidationError("URL must start with ws:// or wss://")
        }
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        // Safety net, like wsload: never run forever.
        var limit = warmup + duration + 30
        if idle != nil { limit += 2 * setupTimeout }
        if pubsub != nil { limit += setupTimeout }
        alarm(UInt32(limit.rounded(.up)))
        signal(SIGALRM) { _ in
            let msg = "wss-bench: safety timeout, exiting\n"
            _ = msg.utf8CString.withUnsafeBufferPointer { Glibc.write(2, $0.baseAddress, msg.utf8.count) }
            _exit(3)
        }

        let conns = idle.map { $0 + prewarm } ?? pubsub.map { $0 + 1 } ?? connections
        let nofile = raiseFileLimit(need: conns + 64)
        if nofile < conns + 16 {
            warn("wss-bench: warning: RLIMIT_NOFILE is \(nofile), fewer than the \(conns) connections asked for")
        }

        var tls: TLSClientContext?
        if url.hasPrefix("wss://") {
            do {
                tls = try TLSClientContext(caFile: ca, verify: ca != nil, sessionCache: !handshakes)
            } catch {
                throw ValidationError("TLS: \(error)")
            }
        }
        guard var options = ClientOptions(url: url, tls: tls) else {
            throw ValidationError("cannot parse URL '\(url)'")
        }
        options.limits = try .init(maxMessageSize: max(16 << 20, size + 1024))
        options.offerDeflate = deflate
        if let why = Preflight.probe(options) { Self.failLine(why) }

        var settings = RunSettings(options: options, size: size, depth: depth,
                                   binary: kind == .binary, quiet: quiet)
        settings.json = json
        if json || deflate {
            // Enough distinct bodies that the one a message repeats left the 32 KiB LZ77
            // window long ago (≥ 64 KiB of other bodies in between; at most 4096 bodies).
            var v = 1
            while v < 4096 && v * max(size, 1) < (64 << 10) { v *= 2 }
            settings.variants = v
        }
        let loops: [EventLoop]
        do {
            loops = try (0..<threads).map { try EventLoop(index: $0) }
        } catch {
            throw ValidationError("event loop: \(error)")
        }
        if let warning = IOSelection.fallbackWarning(tool: "wss-bench", loops: loops) { warn(warning) }
        for (i, l) in loops.enumerated() { l.start(name: "bench-\(i)") }
        defer {
            for l in loops { l.stop() }
            for l in loops { l.join() }
        }

        let code: Int32
        if let fallback {
            code = idle.map { runFallbackIdle(loops: loops, settings: &settings, mode: fallback, target: $0) }
                ?? runFallbackEcho(loops: loops, settings: &settings, mode: fallback)
        } else if handshakes {
            code = runHandshakes(loops: loops, settings: &settings)
        } else if let idle {
            code = runIdle(loops: loops, settings: &settings, target: idle)
        } else if let pubsub {
            code = runPubSub(loops: loops, settings: settings, subscribers: pubsub)
        } else {
            code = runEcho(loops: loops, settings: &settings)
        }
        for l in loops { l.stop() }
        for l in loops { l.join() }
        if code != 0 { throw ExitCode(code) }
    }

    var proto: String { url.hasPrefix("wss://") ? "wss" : "ws" }

    func setWindow(_ s: inout RunSettings) {
        s.t0 = nowNanos()
        s.w0 = s.t0 + UInt64(warmup * 1e9)
        s.w1 = s.w0 + UInt64(duration * 1e9)
    }

    func line(_ s: String) { if !quiet { out(s) } }

    func latencyLine(_ label: String, _ h: Histogram) -> String {
        "\(label): p50 \(fmt(Double(h.percentile(0.5)) / 1e3)) µs  p99 \(fmt(Double(h.percentile(0.99)) / 1e3)) µs  "
            + "p99.9 \(fmt(Double(h.percentile(0.999)) / 1e3)) µs  max \(fmt(Double(h.max) / 1e3)) µs  (n=\(h.count))"
    }

    func waitUntil(deadline: UInt64, _ done: () -> Bool) {
        while nowNanos() < deadline && !done() { sleepNanos(5_000_000) }
    }
}

WSSBench.mainWithOneLineErrors()
