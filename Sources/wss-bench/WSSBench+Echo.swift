#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Transport
import WSClient
import ToolSupport
import WSSBuildInfo

// Echo mode: every echo verified byte for byte, in order.
extension WSSBench {
    func runEcho(loops: [EventLoop], settings: inout RunSettings) -> Int32 {
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
        var msgs: UInt64 = 0, tx: UInt64 = 0, mism: UInt64 = 0, ends = EndCounts(), opened: UInt64 = 0, txFrame: UInt64 = 0
        for w in workers {
            hist.merge(w.histogram())
            msgs += w.msgs; tx += w.txMsgs; mism += w.mismatches; ends += w.ends; opened += w.opened
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
        let errors = ends.total + UInt64(deflateRefused)
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
        line("  connections up: \(opened - ends.closedByServer)/\(connections)   mismatches: \(mism)   errors: \(errors) "
             + "(connect \(ends.connErrors), protocol \(ends.protoErrors), closed by server \(ends.closedByServer), close \(ends.closeErrors))")
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
            + "conns_up=\(opened - ends.closedByServer) conn_errors=\(ends.connErrors) proto_errors=\(ends.protoErrors) "
            + "closed=\(ends.closedByServer) close_errors=\(ends.closeErrors) mismatches=\(mism) errors=\(errors)")
        if deflateRefused > 0 {
            warn("wss-bench: --deflate: \(deflateRefused) connection(s) opened without permessage-deflate")
            return 2
        }
        return (mism > 0 || errors > 0 || msgs == 0) ? 1 : 0
    }
}
