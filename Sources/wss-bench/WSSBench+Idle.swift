#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Transport
import WSClient
import ToolSupport
import WSSBuildInfo

// Idle mode: server memory per held connection.
extension WSSBench {
    func runIdle(loops: [EventLoop], settings: inout RunSettings, target: Int) -> Int32 {
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
        var ends = EndCounts()
        for w in workers {
            hist.merge(w.hist)
            ends += w.ends
        }
        var perConn = -1.0
        if let a = rssBefore, let b = rssAfter, upAtEnd > 0 { perConn = Double(b - a) * 1024 / Double(upAtEnd) }
        let errors = ends.total
        line("wss-bench idle \(url): \(proto) target=\(target) up=\(upAfterSetup) after setup (\(fmt(setupSecs, 2)) s), "
             + "\(upAtEnd) at the end of a \(fmt(duration, 1)) s hold")
        line("  " + latencyLine("connect→open latency", hist))
        if let a = rssBefore, let b = rssAfter {
            line("  server RSS: before \(a) KiB, all up \(rssUp ?? -1) KiB, after hold \(b) KiB → \(fmt(perConn, 0)) bytes per connection")
        }
        line("  errors: \(errors) (connect/upgrade \(ends.connErrors), protocol \(ends.protoErrors), closed by server \(ends.closedByServer), close \(ends.closeErrors))")
        out("RESULT mode=idle proto=\(proto) conns_target=\(target) conns_up=\(upAtEnd) setup_s=\(fmt(setupSecs, 2)) "
            + "hold_s=\(fmt(duration, 1)) rss_before_kb=\(rssBefore ?? -1) rss_up_kb=\(rssUp ?? -1) rss_after_kb=\(rssAfter ?? -1) "
            + "per_conn_bytes=\(fmt(perConn, 0)) hs_p50_us=\(fmt(Double(hist.percentile(0.5)) / 1e3)) "
            + "hs_p99_us=\(fmt(Double(hist.percentile(0.99)) / 1e3)) conn_errors=\(ends.connErrors) proto_errors=\(ends.protoErrors) "
            + "closed=\(ends.closedByServer) close_errors=\(ends.closeErrors) mismatches=0 errors=\(errors)")
        return (upAtEnd == target && errors == 0) ? 0 : 1
    }
}
