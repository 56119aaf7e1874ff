#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Transport
import WSClient
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

    @Flag(name: .customShort("q"), help: "Print only the RESULT line.")
    var quiet = false

    func validate() throws {
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
        for (i, l) in loops.enumerated() { l.start(name: "bench-\(i)") }
        defer {
            for l in loops { l.stop() }
            for l in loops { l.join() }
        }

        let code: Int32
        if handshakes {
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

    private var proto: String { url.hasPrefix("wss://") ? "wss" : "ws" }

    private func setWindow(_ s: inout RunSettings) {
        s.t0 = nowNanos()
        s.w0 = s.t0 + UInt64(warmup * 1e9)
        s.w1 = s.w0 + UInt64(duration * 1e9)
    }

    private func line(_ s: String) { if !quiet { out(s) } }

    private func latencyLine(_ label: String, _ h: Histogram) -> String {
        "\(label): p50 \(fmt(Double(h.percentile(0.5)) / 1e3)) µs  p99 \(fmt(Double(h.percentile(0.99)) / 1e3)) µs  "
            + "p99.9 \(fmt(Double(h.percentile(0.999)) / 1e3)) µs  max \(fmt(Double(h.max) / 1e3)) µs  (n=\(h.count))"
    }

    // MARK: - Echo

    private func runEcho(loops: [EventLoop], settings: inout RunSettings) -> Int32 {
        setWindow(&settings)
        let s = settings
        let n = loops.count
        var workers: [EchoWorker] = []
        for (i, loop) in loops.enumerated() {
            let uids = stride(from: i, to: connections, by: n).map { UInt32($0) }
            workers.append(EchoWorker(loop: loop, settings: s, uids: uids, bodySeed: 0x5EED_0000 + UInt64(i)))
        }
        for w in workers { w.loop.execute { w.start() } }

        func refused() -> Int { workers.reduce(0) { $0 + $1.deflateRefused.load(ordering: .acquiring) } }
        if deflate {
            // Stop early and clearly if the server answers without permessage-deflate.
            waitUntil(deadline: s.w0) { refused() > 0 }
            if refused() > 0 {
                for w in workers { w.loop.execute { w.closeAll() } }
                sleepNanos(100_000_000)
                for l in loops { l.stop() }
                for l in loops { l.join() }
                warn("wss-bench: --deflate: the server at \(url) did not accept permessage-deflate "
                     + "(no Sec-WebSocket-Extensions in its 101 response); is compression disabled on the server?")
                return 2
            }
        }
        sleepUntil(s.w0)
        let b0 = TCPBytes.take()
        let u0 = UsageSample.take(serverPid: serverPid)
        sleepUntil(s.w1)
        // No connection closes before this (see EchoWorker.markDrained): the byte counters of
        // every socket are still there to read.
        let b1 = TCPBytes.take()
        let u1 = UsageSample.take(serverPid: serverPid)

        // Drain (≤1 s), then close everything (≤1.4 s).
        let total = workers.reduce(0) { $0 + $1.connectionCount }
        func allDone() -> Bool { workers.reduce(0) { $0 + $1.finished.load(ordering: .acquiring) } >= total }
        func allDrained() -> Bool { workers.reduce(0) { $0 + $1.drainedCount.load(ordering: .acquiring) } >= total }
        waitUntil(deadline: s.w1 + 1_000_000_000, allDrained)
        for w in workers { w.loop.execute { w.closeAll() } }
        waitUntil(deadline: nowNanos() + 1_400_000_000, allDone)
        for l in loops { l.stop() }
        for l in loops { l.join() }

        let hist = Histogram()
        var msgs: UInt64 = 0, tx: UInt64 = 0, mism: UInt64 = 0, perr: UInt64 = 0, cerr: UInt64 = 0
        var closed: UInt64 = 0, closeErr: UInt64 = 0, opened: UInt64 = 0, txFrame: UInt64 = 0
        for w in workers {
            hist.merge(w.histogram())
            msgs += w.msgs; tx += w.txMsgs; mism += w.mismatches; perr += w.protoErrors
            cerr += w.connErrors; closed += w.closedByServer; closeErr += w.closeErrors; opened += w.opened
            txFrame += w.txFrameBytes
        }
        let deflateRefused = refused()
        let deflateParams = workers.lazy.compactMap { $0.deflateParams }.first
        let secs = Double(s.w1 - s.w0) / 1e9
        let rate = Double(msgs) / secs
        let mib = Double(msgs) * Double(size) / secs / 1_048_576
        let txMib = Double(tx) * Double(size) / secs / 1_048_576
        let usage = Usage(u0, u1, seconds: secs)
        let serverCPU = usage.serverCPU, clientCPU = usage.clientCPU
        let efficiency = usage.efficiency(msgs)
        let errors = perr + cerr + closed + closeErr + UInt64(deflateRefused)
        let typeName = kind == .binary ? "binary" : "text"
        // Bytes on the wire per message in the window (TCP payload of our sockets: frames, and
        // for wss the TLS records around them): out per message sent, in per echo received.
        let wireOK = b0.available && b1.available && b1.sockets == b0.sockets
        let wireOut = wireOK && tx > 0 ? Double(b1.sent &- b0.sent) / Double(tx) : -1
        let wireIn = wireOK && msgs > 0 ? Double(b1.received &- b0.received) / Double(msgs) : -1
        let frameOut = tx > 0 ? Double(txFrame) / Double(tx) : -1
        let payloadNote = json ? "json" : (kind == .binary ? "random bytes" : "random letters")
        var deflateNote = "off"
        if deflate, let d = deflateParams {
            deflateNote = "on (server window \(d.serverMaxWindowBits) bits\(d.serverNoContextTakeover ? ", no context takeover" : ""), "
                + "client window \(d.clientMaxWindowBits) bits\(d.clientNoContextTakeover ? ", no context takeover" : ""); "
                + "\(settings.variants) distinct bodies cycled)"
        }

        line("wss-bench echo \(url): \(proto) \(typeName) conns=\(connections) depth=\(depth) size=\(size) threads=\(threads) window=\(fmt(secs, 1)) s")
        line("  payload: \(payloadNote); permessage-deflate: \(deflateNote)")
        line("  throughput: \(fmt(rate, 0)) msgs/s, \(fmt(mib, 2)) MiB/s payload one way (sent \(fmt(txMib, 2)) MiB/s)")
        line("  wire bytes per message: out \(fmt(wireOut, 1)) (WebSocket frames \(fmt(frameOut, 1))), in \(fmt(wireIn, 1)) "
             + "(payload \(size); TCP payload of our sockets\(proto == "wss" ? ", TLS records included" : ""))")
        line("  " + latencyLine("latency", hist))
        line("  connections up: \(opened - closed)/\(connections)   mismatches: \(mism)   errors: \(errors) "
             + "(connect \(cerr), protocol \(perr), closed by server \(closed), close \(closeErr))")
        if serverCPU >= 0 {
            line("  server CPU: \(fmt(serverCPU * 100, 1)) %   efficiency: \(fmt(efficiency, 0)) msgs per server-CPU-second")
        }
        line("  client CPU: \(fmt(clientCPU * 100, 1)) % (of one core; ≈100 % per thread means the client may be the limit)" + usage.runqNote)
        out("RESULT mode=echo proto=\(proto) type=\(typeName) conns=\(connections) depth=\(depth) size=\(size) threads=\(threads) "
            + "secs=\(fmt(secs, 2)) msgs=\(msgs) msgs_per_s=\(fmt(rate, 0)) mib_per_s=\(fmt(mib, 2)) tx_mib_per_s=\(fmt(txMib, 2)) "
            + "p50_us=\(fmt(Double(hist.percentile(0.5)) / 1e3)) p99_us=\(fmt(Double(hist.percentile(0.99)) / 1e3)) "
            + "p999_us=\(fmt(Double(hist.percentile(0.999)) / 1e3)) max_us=\(fmt(Double(hist.max) / 1e3)) "
            + "\(usage.keys) efficiency=\(fmt(efficiency, 0)) "
            + "payload=\(json ? "json" : "random") deflate=\(deflate ? 1 : 0) "
            + "wire_bytes_per_msg_out=\(fmt(wireOut, 1)) wire_bytes_per_msg_in=\(fmt(wireIn, 1)) frame_bytes_per_msg_out=\(fmt(frameOut, 1)) "
            + "conns_up=\(opened - closed) conn_errors=\(cerr) proto_errors=\(perr) "
            + "closed=\(closed) close_errors=\(closeErr) mismatches=\(mism) errors=\(errors)")
        if deflateRefused > 0 {
            warn("wss-bench: --deflate: \(deflateRefused) connection(s) opened without permessage-deflate")
            return 2
        }
        return (mism > 0 || errors > 0 || msgs == 0) ? 1 : 0
    }

    // MARK: - Handshakes

    private func runHandshakes(loops: [EventLoop], settings: inout RunSettings) -> Int32 {
        setWindow(&settings)
        let s = settings
        let n = loops.count
        var workers: [HandshakeWorker] = []
        for (i, loop) in loops.enumerated() {
            let slots = connections / n + (i < connections % n ? 1 : 0)
            workers.append(HandshakeWorker(loop: loop, settings: s, slots: slots))
        }
        for w in workers { w.loop.execute { w.refill() } }

        // Poll every 50 ms: retries connects that failed to start and enforces setup deadlines.
        var u0: UsageSample?
        while nowNanos() < s.w1 {
            if u0 == nil && nowNanos() >= s.w0 { u0 = UsageSample.take(serverPid: serverPid) }
            let sampled = u0 != nil
            let next = min(s.w1, nowNanos() + 50_000_000)
            sleepUntil(!sampled ? min(next, s.w0) : next)
            for w in workers { w.loop.execute { w.refill() } }
        }
        let u1 = UsageSample.take(serverPid: serverPid)
        waitUntil(deadline: s.w1 + 1_500_000_000) { workers.allSatisfy { $0.busy.load(ordering: .relaxed) == 0 } }
        for w in workers { w.loop.execute { w.abortAll() } }
        sleepNanos(20_000_000)
        for l in loops { l.stop() }
        for l in loops { l.join() }

        let hist = Histogram()
        var hs: UInt64 = 0, cerr: UInt64 = 0, perr: UInt64 = 0, closeErr: UInt64 = 0
        for w in workers {
            hist.merge(w.hist)
            hs += w.handshakes; cerr += w.connErrors; perr += w.protoErrors; closeErr += w.closeErrors
        }
        let secs = Double(s.w1 - s.w0) / 1e9
        let rate = Double(hs) / secs
        let usage = Usage(u0 ?? u1, u1, seconds: secs)
        let serverCPU = usage.serverCPU, clientCPU = usage.clientCPU
        let efficiency = usage.efficiency(hs)
        let errors = cerr + perr + closeErr
        line("wss-bench handshakes \(url): \(proto) slots=\(connections) threads=\(threads) window=\(fmt(secs, 1)) s"
             + (proto == "wss" ? " (TLS full handshake every time, no session cache)" : ""))
        line("  \(fmt(rate, 0)) handshakes/s (\(hs) upgrades in the window), each followed by a close handshake")
        line("  " + latencyLine("connect→open latency", hist))
        line("  errors: \(errors) (connect/upgrade \(cerr), protocol \(perr), close \(closeErr))")
        if serverCPU >= 0 {
            line("  server CPU: \(fmt(serverCPU * 100, 1)) %   efficiency: \(fmt(efficiency, 0)) handshakes per server-CPU-second")
        }
        line("  client CPU: \(fmt(clientCPU * 100, 1)) %" + usage.runqNote)
        out("RESULT mode=handshakes proto=\(proto) conns=\(connections) threads=\(threads) secs=\(fmt(secs, 2)) "
            + "handshakes=\(hs) hs_per_s=\(fmt(rate, 0)) msgs_per_s=\(fmt(rate, 0)) "
            + "p50_us=\(fmt(Double(hist.percentile(0.5)) / 1e3)) p99_us=\(fmt(Double(hist.percentile(0.99)) / 1e3)) "
            + "max_us=\(fmt(Double(hist.max) / 1e3)) \(usage.keys) "
            + "efficiency=\(fmt(efficiency, 0)) conn_errors=\(cerr) proto_errors=\(perr) "
            + "close_errors=\(closeErr) mismatches=0 errors=\(errors)")
        return (errors > 0 || hs == 0) ? 1 : 0
    }

    // MARK: - Pub/sub

    private func runPubSub(loops: [EventLoop], settings: RunSettings, subscribers: Int) -> Int32 {
        let s = settings
        let n = loops.count
        let win = window ?? (rate != nil ? 1024 : 16)
        var workers: [PubSubWorker] = []
        for (i, loop) in loops.enumerated() {
            let ids = Array(stride(from: i, to: subscribers, by: n))
            let conc = hsConc / n + (i < hsConc % n ? 1 : 0)
            workers.append(PubSubWorker(loop: loop, settings: s, ids: ids, hasPublisher: i == 0,
                                        maxInProgress: conc, window: win, rate: rate ?? 0))
        }
        let pubWorker = workers[0]
        let total = subscribers + 1

        // Setup: every subscriber and the publisher open (bounded), before the first publish.
        let setupStart = nowNanos()
        for w in workers { w.loop.execute { w.startOpening() } }
        func upCount() -> Int { workers.reduce(0) { $0 + $1.up.load(ordering: .relaxed) } }
        func failedCount() -> Int { workers.reduce(0) { $0 + $1.failed.load(ordering: .relaxed) } }
        waitUntil(deadline: setupStart + UInt64(setupTimeout * 1e9)) { upCount() + failedCount() >= total }
        let setupSecs = Double(nowNanos() - setupStart) / 1e9
        let upAfterSetup = upCount()
        var setupFailed = upAfterSetup < total
        if setupFailed {
            warn("wss-bench: pubsub setup: \(upAfterSetup)/\(total) connections open after \(fmt(setupSecs, 2)) s; not publishing")
        }

        // Window: armed on every loop before the publisher starts.
        let t0 = nowNanos()
        let w0 = t0 + UInt64(warmup * 1e9)
        let w1 = w0 + UInt64(duration * 1e9)
        var u0: UsageSample?, u1: UsageSample?
        var final: UInt64 = 0
        if !setupFailed {
            for w in workers { w.loop.execute { w.arm(w0: w0, w1: w1) } }
            waitUntil(deadline: nowNanos() + 2_000_000_000) { workers.allSatisfy { $0.armed.load(ordering: .acquiring) } }
            pubWorker.loop.execute { pubWorker.startPublishing() }
            sleepUntil(w0)
            u0 = UsageSample.take(serverPid: serverPid)
            sleepUntil(w1)
            u1 = UsageSample.take(serverPid: serverPid)
            // The publisher stops by itself at the first echo (or tick) after w1; make sure.
            pubWorker.loop.execute { pubWorker.stopPublishing() }
            waitUntil(deadline: nowNanos() + 2_000_000_000) { pubWorker.finalPublishes.load(ordering: .acquiring) >= 0 }
            let f = pubWorker.finalPublishes.load(ordering: .acquiring)
            if f < 0 {
                warn("wss-bench: publisher did not stop")
                setupFailed = true
            }
            final = UInt64(max(f, 0))
            // Drain (≤3 s): every subscriber has every publish, the publisher all its own.
            let want = final * UInt64(subscribers)
            waitUntil(deadline: nowNanos() + 3_000_000_000) {
                pubWorker.echoes.load(ordering: .relaxed) >= final
                    && workers.reduce(0) { $0 + $1.delivered.load(ordering: .relaxed) } >= want
            }
        }
        for w in workers { w.loop.execute { w.closeAll() } }
        waitUntil(deadline: nowNanos() + 1_400_000_000) {
            workers.reduce(0) { $0 + $1.finished.load(ordering: .relaxed) } >= total
        }
        for l in loops { l.stop() }
        for l in loops { l.join() }

        let hist = Histogram(), setupHist = Histogram()
        var deliveries: UInt64 = 0, deliveriesTotal: UInt64 = 0, gaps: UInt64 = 0, tail: UInt64 = 0
        var dups: UInt64 = 0, mism: UInt64 = 0
        var cerr: UInt64 = 0, perr: UInt64 = 0, closed: UInt64 = 0, closeErr: UInt64 = 0
        for w in workers {
            hist.merge(w.histogram())
            setupHist.merge(w.setupHist)
            let sh = w.shared.pointee
            deliveries += sh.deliveries; deliveriesTotal += sh.deliveriesTotal
            dups += sh.duplicates; mism += sh.mismatches
            gaps += sh.gaps
            tail += setupFailed ? 0 : w.tailMissing(final: final)
            cerr += w.connErrors; perr += w.protoErrors; closed += w.closedByServer; closeErr += w.closeErrors
        }
        let pubMissing = final > pubWorker.pubEchoes ? final - pubWorker.pubEchoes : 0
        let secs = Double(w1 - w0) / 1e9
        let pubRate = Double(pubWorker.publishes) / secs
        let delRate = Double(deliveries) / secs
        let mib = Double(deliveries) * Double(size) / secs / 1_048_576
        let usage = u0.flatMap { a in u1.map { b in Usage(a, b, seconds: secs) } }
        let serverCPU = usage?.serverCPU ?? -1, clientCPU = usage?.clientCPU ?? -1
        let efficiency = usage?.efficiency(deliveries) ?? -1
        // Connections that neither opened nor failed by the setup deadline (failures count as connect errors).
        let setupErr: UInt64 = setupFailed ? UInt64(max(total - upAfterSetup - failedCount(), cerr == 0 ? 1 : 0)) : 0
        let errors = gaps + tail + dups + mism + pubMissing + cerr + perr + closed + closeErr + setupErr
        let typeName = kind == .binary ? "binary" : "text"
        let us: (UInt64) -> String = { fmt(Double($0) / 1e3) }
        let rateNote = rate.map { " rate=\(fmt($0, 0))/s" } ?? ""

        line("wss-bench pubsub \(url): \(proto) \(typeName) subscribers=\(subscribers) size=\(size) window=\(win)\(rateNote) "
             + "threads=\(threads) measured=\(fmt(secs, 1)) s")
        line("  setup: \(upAfterSetup)/\(total) connections open in \(fmt(setupSecs, 2)) s  (" + latencyLine("connect→open", setupHist) + ")")
        line("  publishes: \(fmt(pubRate, 0))/s (\(pubWorker.publishes) in the window, \(final) in all)"
             + (pubWorker.rateBehind > 0 ? "; the full window held back up to \(pubWorker.rateBehind) scheduled publishes" : ""))
        line("  deliveries: \(fmt(delRate, 0))/s (\(deliveries) in the window, \(deliveriesTotal) in all), \(fmt(mib, 2)) MiB/s payload")
        line("  " + latencyLine("delivery latency (send → subscriber)", hist))
        line("  " + latencyLine("publisher round trip (own message back)", pubWorker.pubRTT))
        line("  gaps: \(gaps) (+\(tail) never arrived by the end of the drain)  duplicates: \(dups)  mismatches: \(mism)  publisher echoes missing: \(pubMissing)  errors: \(errors) "
             + "(connect \(cerr), protocol \(perr), closed by server \(closed), close \(closeErr))")
        if serverCPU >= 0 {
            line("  server CPU: \(fmt(serverCPU * 100, 1)) %   efficiency: \(fmt(efficiency, 0)) deliveries per server-CPU-second")
        }
        if let usage {
            line("  client CPU: \(fmt(clientCPU * 100, 1)) % (of one core; ≈100 % per thread means the client may be the limit)" + usage.runqNote)
        }
        out("RESULT mode=pubsub proto=\(proto) type=\(typeName) subscribers=\(subscribers) size=\(size) window=\(win) "
            + "rate=\(rate.map { fmt($0, 0) } ?? "-1") threads=\(threads) secs=\(fmt(secs, 2)) setup_s=\(fmt(setupSecs, 2)) "
            + "publishes=\(pubWorker.publishes) deliveries=\(deliveries) publishes_total=\(final) "
            + "publishes_per_s=\(fmt(pubRate, 0)) deliveries_per_s=\(fmt(delRate, 0)) msgs_per_s=\(fmt(delRate, 0)) "
            + "mib_per_s=\(fmt(mib, 2)) p50_us=\(us(hist.percentile(0.5))) p99_us=\(us(hist.percentile(0.99))) "
            + "p999_us=\(us(hist.percentile(0.999))) max_us=\(us(hist.max)) "
            + "pub_rtt_p50_us=\(us(pubWorker.pubRTT.percentile(0.5))) pub_rtt_p99_us=\(us(pubWorker.pubRTT.percentile(0.99))) "
            + "rate_behind=\(pubWorker.rateBehind) "
            + (usage.map { "\($0.keys) " } ?? "") + "efficiency=\(fmt(efficiency, 0)) "
            + "conns_up=\(upAfterSetup) conn_errors=\(cerr) proto_errors=\(perr) closed=\(closed) close_errors=\(closeErr) "
            + "gaps=\(gaps) tail_missing=\(tail) duplicates=\(dups) mismatches=\(mism) errors=\(errors)")
        return (errors > 0 || pubWorker.publishes == 0) ? 1 : 0
    }

    // MARK: - Idle

    private func runIdle(loops: [EventLoop], settings: inout RunSettings, target: Int) -> Int32 {
        let s = settings
        let n = loops.count
        var workers: [IdleWorker] = []
        for (i, loop) in loops.enumerated() {
            let share = target / n + (i < target % n ? 1 : 0)
            let conc = hsConc / n + (i < hsConc % n ? 1 : 0)
            workers.append(IdleWorker(loop: loop, settings: s, target: share, maxInProgress: conc))
        }
        func poll() { for w in workers { w.loop.execute { w.poll() } } }

        var rssBefore: Int?
        if let pid = serverPid {
            if prewarm > 0 {
                for (i, w) in workers.enumerated() {
                    let k = prewarm / n + (i < prewarm % n ? 1 : 0)
                    w.loop.execute { w.startPrewarm(k) }
                }
                waitUntil(deadline: nowNanos() + 15_000_000_000) {
                    workers.reduce(0) { $0 + $1.prewarmDone.load(ordering: .relaxed) } >= prewarm
                }
                sleepNanos(500_000_000)
            }
            rssBefore = processRSSKiB(pid: pid)
        }
        let setupStart = nowNanos()
        for w in workers { w.loop.execute { w.startOpening() } }
        func upCount() -> Int { workers.reduce(0) { $0 + $1.up.load(ordering: .relaxed) } }
        func failedCount() -> Int { workers.reduce(0) { $0 + $1.failed.load(ordering: .relaxed) } }
        let setupDeadline = setupStart + UInt64(setupTimeout * 1e9)
        var lastPoll = nowNanos()
        while nowNanos() < setupDeadline && upCount() + failedCount() < target {
            sleepNanos(10_000_000)
            if nowNanos() - lastPoll > 500_000_000 { poll(); lastPoll = nowNanos() }
        }
        let setupSecs = Double(nowNanos() - setupStart) / 1e9
        let upAfterSetup = upCount()
        let rssUp = serverPid.flatMap { processRSSKiB(pid: $0) }
        sleepUntil(nowNanos() + UInt64(duration * 1e9))
        let rssAfter = serverPid.flatMap { processRSSKiB(pid: $0) }
        let upAtEnd = upCount()

        for w in workers { w.loop.execute { w.closeAll() } }
        waitUntil(deadline: nowNanos() + 1_400_000_000) { upCount() == 0 }
        for l in loops { l.stop() }
        for l in loops { l.join() }

        let hist = Histogram()
        var cerr: UInt64 = 0, perr: UInt64 = 0, closed: UInt64 = 0, closeErr: UInt64 = 0
        for w in workers {
            hist.merge(w.hist)
            cerr += w.connErrors; perr += w.protoErrors; closed += w.closedByServer; closeErr += w.closeErrors
        }
        var perConn = -1.0
        if let a = rssBefore, let b = rssAfter, upAtEnd > 0 { perConn = Double(b - a) * 1024 / Double(upAtEnd) }
        let errors = cerr + perr + closed + closeErr
        line("wss-bench idle \(url): \(proto) target=\(target) up=\(upAfterSetup) after setup (\(fmt(setupSecs, 2)) s), "
             + "\(upAtEnd) at the end of a \(fmt(duration, 1)) s hold")
        line("  " + latencyLine("connect→open latency", hist))
        if let a = rssBefore, let b = rssAfter {
            line("  server RSS: before \(a) KiB, all up \(rssUp ?? -1) KiB, after hold \(b) KiB → \(fmt(perConn, 0)) bytes per connection")
        }
        line("  errors: \(errors) (connect/upgrade \(cerr), protocol \(perr), closed by server \(closed), close \(closeErr))")
        out("RESULT mode=idle proto=\(proto) conns_target=\(target) conns_up=\(upAtEnd) setup_s=\(fmt(setupSecs, 2)) "
            + "hold_s=\(fmt(duration, 1)) rss_before_kb=\(rssBefore ?? -1) rss_up_kb=\(rssUp ?? -1) rss_after_kb=\(rssAfter ?? -1) "
            + "per_conn_bytes=\(fmt(perConn, 0)) hs_p50_us=\(fmt(Double(hist.percentile(0.5)) / 1e3)) "
            + "hs_p99_us=\(fmt(Double(hist.percentile(0.99)) / 1e3)) conn_errors=\(cerr) proto_errors=\(perr) "
            + "closed=\(closed) close_errors=\(closeErr) mismatches=0 errors=\(errors)")
        return (upAtEnd == target && errors == 0) ? 0 : 1
    }

    private func waitUntil(deadline: UInt64, _ done: () -> Bool) {
        while nowNanos() < deadline && !done() { sleepNanos(5_000_000) }
    }
}

WSSBench.main()
