#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Transport
import WSClient

enum FallbackMode: String, ExpressibleByArgument, CaseIterable {
    case sse, longpoll

    var transport: FallbackBenchSession.Transport { self == .sse ? .sse : .longPoll }
}

// --fallback sse|longpoll: the same echo and idle measurements over the HTTP fallbacks
// (against `wss-server --app echo`): sessions instead of WebSocket connections.
extension WSSBench {
    func fallbackWorkers(_ loops: [EventLoop], _ s: RunSettings, _ mode: FallbackMode, echo: Bool) -> [FallbackWorker] {
        let n = loops.count
        return loops.enumerated().map { i, loop in
            FallbackWorker(loop: loop, settings: s, transport: mode.transport, echo: echo,
                           maxInProgress: hsConc / n + (i < hsConc % n ? 1 : 0))
        }
    }

    /// Spreads session ids `range` over the workers (round robin) and starts opening them.
    func openSessions(_ workers: [FallbackWorker], _ range: Range<Int>) {
        for (i, w) in workers.enumerated() {
            let uids = stride(from: range.lowerBound + i, to: range.upperBound, by: workers.count).map { UInt32($0) }
            w.loop.execute { w.open(uids) }
        }
    }

    func stopWorkers(_ workers: [FallbackWorker], _ loops: [EventLoop]) {
        for w in workers { w.loop.execute { w.closeAll() } }
        sleepNanos(200_000_000)
        for l in loops { l.stop() }
        for l in loops { l.join() }
    }

    func runFallbackEcho(loops: [EventLoop], settings: inout RunSettings, mode: FallbackMode) -> Int32 {
        setWindow(&settings)
        let s = settings
        let workers = fallbackWorkers(loops, s, mode, echo: true)
        openSessions(workers, 0..<connections)
        sleepUntil(s.w0)
        let u0 = UsageSample.take(serverPid: serverPid)
        sleepUntil(s.w1)
        let u1 = UsageSample.take(serverPid: serverPid)
        let upAtEnd = workers.reduce(0) { $0 + $1.up.load(ordering: .relaxed) }
        for w in workers { w.loop.execute { w.stopSending() } }
        waitUntil(deadline: s.w1 + 1_000_000_000) { workers.allSatisfy { $0.outstanding.load(ordering: .relaxed) <= 0 } }
        stopWorkers(workers, loops)

        let hist = Histogram()
        var msgs: UInt64 = 0, tx: UInt64 = 0, mism: UInt64 = 0, ends = EndCounts()
        for w in workers {
            hist.merge(w.latency)
            msgs += w.msgs; tx += w.txMsgs; mism += w.mismatches; ends += w.ends
        }
        let secs = Double(s.w1 - s.w0) / 1e9
        let rate = Double(msgs) / secs
        let mib = Double(msgs) * Double(size) / secs / 1_048_576
        let txMib = Double(tx) * Double(size) / secs / 1_048_576
        let usage = Usage(u0, u1, seconds: secs)
        let efficiency = usage.efficiency(msgs)
        let errors = ends.total
        let down = mode == .sse ? "SSE stream" : "long polls"
        line("wss-bench echo \(url): \(proto) fallback=\(mode.rawValue) sessions=\(connections) depth=\(depth) size=\(size) "
             + "threads=\(threads) window=\(fmt(secs, 1)) s")
        line("  each session: POSTs up (one message per POST, keep-alive, \(depth) in flight), \(down) down")
        line("  throughput: \(fmt(rate, 0)) msgs/s, \(fmt(mib, 2)) MiB/s payload one way (sent \(fmt(txMib, 2)) MiB/s)")
        line("  " + latencyLine("latency (POST sent → echo received)", hist))
        line("  sessions up: \(upAtEnd)/\(connections)   mismatches: \(mism)   errors: \(errors) "
             + "(connect \(ends.connErrors), protocol \(ends.protoErrors), closed by server \(ends.closedByServer))")
        if usage.serverCPU >= 0 {
            line("  server CPU: \(fmt(usage.serverCPU * 100, 1)) %   efficiency: \(fmt(efficiency, 0)) msgs per server-CPU-second")
        }
        line("  client CPU: \(fmt(usage.clientCPU * 100, 1)) % (of one core)" + usage.runqNote)
        out("RESULT mode=echo proto=\(proto) transport=\(mode.rawValue) type=text conns=\(connections) depth=\(depth) size=\(size) "
            + "threads=\(threads) secs=\(fmt(secs, 2)) msgs=\(msgs) msgs_per_s=\(fmt(rate, 0)) mib_per_s=\(fmt(mib, 2)) "
            + "tx_mib_per_s=\(fmt(txMib, 2)) p50_us=\(fmt(Double(hist.percentile(0.5)) / 1e3)) "
            + "p99_us=\(fmt(Double(hist.percentile(0.99)) / 1e3)) p999_us=\(fmt(Double(hist.percentile(0.999)) / 1e3)) "
            + "max_us=\(fmt(Double(hist.max) / 1e3)) \(usage.keys) efficiency=\(fmt(efficiency, 0)) "
            + "conns_up=\(upAtEnd) conn_errors=\(ends.connErrors) proto_errors=\(ends.protoErrors) closed=\(ends.closedByServer) close_errors=0 "
            + "mismatches=\(mism) errors=\(errors)")
        return (mism > 0 || errors > 0 || msgs == 0) ? 1 : 0
    }

    /// N idle sessions (SSE: an open stream; long polling: a held poll, asked again when the
    /// server answers it empty at its timeout). With --server-pid, `prewarm` sessions are opened
    /// first and kept, then the baseline RSS is read, so the per-session figure leaves out what
    /// the first sessions allocate once (tables, buffers).
    func runFallbackIdle(loops: [EventLoop], settings: inout RunSettings, mode: FallbackMode, target: Int) -> Int32 {
        let s = settings
        let workers = fallbackWorkers(loops, s, mode, echo: false)
        func upCount() -> Int { workers.reduce(0) { $0 + $1.up.load(ordering: .relaxed) } }
        func failedCount() -> Int { workers.reduce(0) { $0 + $1.failed.load(ordering: .relaxed) } }
        let warm = serverPid != nil ? prewarm : 0
        if warm > 0 {
            openSessions(workers, 0..<warm)
            waitUntil(deadline: nowNanos() + 15_000_000_000) { upCount() + failedCount() >= warm }
            sleepNanos(500_000_000)
        }
        let warmUp = upCount()
        let rssBefore = serverPid.flatMap { processRSSKiB(pid: $0) }
        let setupStart = nowNanos()
        openSessions(workers, warm..<(warm + target))
        waitUntil(deadline: setupStart + UInt64(setupTimeout * 1e9)) { upCount() + failedCount() >= warm + target }
        let setupSecs = Double(nowNanos() - setupStart) / 1e9
        let upAfterSetup = upCount() - warmUp
        let rssUp = serverPid.flatMap { processRSSKiB(pid: $0) }
        sleepUntil(nowNanos() + UInt64(duration * 1e9))
        let rssAfter = serverPid.flatMap { processRSSKiB(pid: $0) }
        let upAtEnd = upCount() - warmUp
        stopWorkers(workers, loops)

        let hist = Histogram()
        var ends = EndCounts()
        for w in workers {
            hist.merge(w.setup)
            ends += w.ends
        }
        var perSession = -1.0
        if let a = rssBefore, let b = rssAfter, upAtEnd > 0 { perSession = Double(b - a) * 1024 / Double(upAtEnd) }
        let errors = ends.total
        line("wss-bench idle \(url): \(proto) fallback=\(mode.rawValue) target=\(target) up=\(upAfterSetup) after setup "
             + "(\(fmt(setupSecs, 2)) s), \(upAtEnd) at the end of a \(fmt(duration, 1)) s hold")
        line("  " + latencyLine("request→session open latency", hist))
        if let a = rssBefore, let b = rssAfter {
            line("  server RSS: before \(a) KiB (\(warm) sessions), all up \(rssUp ?? -1) KiB, after hold \(b) KiB "
                 + "→ \(fmt(perSession, 0)) bytes per session")
        }
        line("  errors: \(errors) (connect \(ends.connErrors), protocol \(ends.protoErrors), closed by server \(ends.closedByServer))")
        out("RESULT mode=idle proto=\(proto) transport=\(mode.rawValue) conns_target=\(target) conns_up=\(upAtEnd) "
            + "setup_s=\(fmt(setupSecs, 2)) hold_s=\(fmt(duration, 1)) rss_before_kb=\(rssBefore ?? -1) rss_up_kb=\(rssUp ?? -1) "
            + "rss_after_kb=\(rssAfter ?? -1) per_conn_bytes=\(fmt(perSession, 0)) hs_p50_us=\(fmt(Double(hist.percentile(0.5)) / 1e3)) "
            + "hs_p99_us=\(fmt(Double(hist.percentile(0.99)) / 1e3)) conn_errors=\(ends.connErrors) proto_errors=\(ends.protoErrors) "
            + "closed=\(ends.closedByServer) close_errors=0 mismatches=0 errors=\(errors)")
        return (upAtEnd == target && errors == 0) ? 0 : 1
    }
}
