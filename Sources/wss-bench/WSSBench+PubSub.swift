#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Transport
import WSClient
import ToolSupport
import WSSBuildInfo

// Pub/sub mode: 1 publisher → N subscribers on one path of `--app chat`.
extension WSSBench {
    func runPubSub(loops: [EventLoop], settings: RunSettings, subscribers: Int) -> Int32 {
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
        var ends = EndCounts()
        for w in workers {
            hist.merge(w.histogram())
            setupHist.merge(w.setupHist)
            let sh = w.shared.pointee
            deliveries += sh.deliveries; deliveriesTotal += sh.deliveriesTotal
            dups += sh.duplicates; mism += sh.mismatches
            gaps += sh.gaps
            tail += setupFailed ? 0 : w.tailMissing(final: final)
            ends += w.ends
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
        let setupErr: UInt64 = setupFailed ? UInt64(max(total - upAfterSetup - failedCount(), ends.connErrors == 0 ? 1 : 0)) : 0
        let errors = gaps + tail + dups + mism + pubMissing + ends.total + setupErr
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
             + "(connect \(ends.connErrors), protocol \(ends.protoErrors), closed by server \(ends.closedByServer), close \(ends.closeErrors))")
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
            + "conns_up=\(upAfterSetup) conn_errors=\(ends.connErrors) proto_errors=\(ends.protoErrors) closed=\(ends.closedByServer) close_errors=\(ends.closeErrors) "
            + "gaps=\(gaps) tail_missing=\(tail) duplicates=\(dups) mismatches=\(mism) errors=\(errors)")
        return (errors > 0 || pubWorker.publishes == 0) ? 1 : 0
    }
}
