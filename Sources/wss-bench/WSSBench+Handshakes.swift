#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Transport
import WSClient
import ToolSupport
import WSSBuildInfo

// Handshakes mode: connect → (TLS) → upgrade → close cycles.
extension WSSBench {
    func runHandshakes(loops: [EventLoop], settings: inout RunSettings) -> Int32 {
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
        var hs: UInt64 = 0, ends = EndCounts()
        for w in workers {
            hist.merge(w.hist)
            hs += w.handshakes; ends += w.ends
        }
        let secs = Double(s.w1 - s.w0) / 1e9
        let rate = Double(hs) / secs
        let usage = Usage(u0 ?? u1, u1, seconds: secs)
        let serverCPU = usage.serverCPU, clientCPU = usage.clientCPU
        let efficiency = usage.efficiency(hs)
        let errors = ends.total
        line("wss-bench handshakes \(url): \(proto) slots=\(connections) threads=\(threads) window=\(fmt(secs, 1)) s"
             + (proto == "wss" ? " (TLS full handshake every time, no session cache)" : ""))
        line("  \(fmt(rate, 0)) handshakes/s (\(hs) upgrades in the window), each followed by a close handshake")
        line("  " + latencyLine("connect→open latency", hist))
        line("  errors: \(errors) (connect/upgrade \(ends.connErrors), protocol \(ends.protoErrors), close \(ends.closeErrors))")
        if serverCPU >= 0 {
            line("  server CPU: \(fmt(serverCPU * 100, 1)) %   efficiency: \(fmt(efficiency, 0)) handshakes per server-CPU-second")
        }
        line("  client CPU: \(fmt(clientCPU * 100, 1)) %" + usage.runqNote)
        out("RESULT mode=handshakes proto=\(proto) conns=\(connections) threads=\(threads) secs=\(fmt(secs, 2)) "
            + "handshakes=\(hs) hs_per_s=\(fmt(rate, 0)) msgs_per_s=\(fmt(rate, 0)) "
            + "p50_us=\(fmt(Double(hist.percentile(0.5)) / 1e3)) p99_us=\(fmt(Double(hist.percentile(0.99)) / 1e3)) "
            + "max_us=\(fmt(Double(hist.max) / 1e3)) \(usage.keys) "
            + "efficiency=\(fmt(efficiency, 0)) conn_errors=\(ends.connErrors) proto_errors=\(ends.protoErrors) "
            + "close_errors=\(ends.closeErrors) mismatches=0 errors=\(errors)")
        return (errors > 0 || hs == 0) ? 1 : 0
    }
}
