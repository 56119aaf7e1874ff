#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Transport
import WSClient
import WebSocket

/// Settings shared by every worker (immutable, crosses threads once at start).
struct RunSettings: @unchecked Sendable {
    var options: ClientOptions
    var size: Int
    var depth: Int
    var binary: Bool
    var quiet: Bool
    /// JSON bodies (text) instead of random letters.
    var json = false
    /// Distinct bodies cycled through by sequence number (a power of two). With --json or
    /// --deflate, enough for ≥ 64 KiB, so a message's body is no longer in the LZ77 window
    /// (≤ 32 KiB) when it comes round again: otherwise deflate would shrink every message to
    /// a back-reference to an identical earlier one.
    var variants = 1
    /// Window bounds, monotonic ns.
    var t0: UInt64 = 0
    var w0: UInt64 = 0
    var w1: UInt64 = 0
}

/// Lowercase hex digit of the low nibble.
@inline(__always)
private func hexDigit(_ v: UInt64) -> UInt8 {
    let n = UInt8(truncatingIfNeeded: v & 15)
    return n < 10 ? 48 &+ n : 87 &+ n
}

/// The 16-char tag that starts every payload: connection id in the high bits, sequence number
/// in the low 40 bits, least significant nibble first (so short payloads still vary).
@inline(__always)
private func tagValue(uid: UInt32, seq: UInt64) -> UInt64 {
    (UInt64(uid) << 40) ^ (seq & ((1 << 40) - 1))
}

/// Per-loop state the connections of one worker share on the hot path. Plain memory reached
/// through a pointer: no reference counting, no exclusivity bookkeeping per message.
struct EchoShared {
    // Immutable after setup.
    var size = 0
    var hl = 0
    /// Where the tag starts in the payload (0, or after `{"seq":"` for JSON).
    var tagOff = 0
    /// variants - 1 (variants is a power of two).
    var variantMask: UInt64 = 0
    var depth = 0
    var binary = false
    var w0: UInt64 = 0
    var w1: UInt64 = 0
    /// `variants` bodies of `size` bytes, back to back.
    var payload: UnsafeMutableRawPointer
    var latency: LatencySamples
    // Counters.
    var msgs: UInt64 = 0          // echoes completed inside the window
    var txMsgs: UInt64 = 0        // messages queued inside the window
    var txFrameBytes: UInt64 = 0  // WebSocket frame bytes (header, mask, possibly compressed payload) those sends queued
    var msgsTotal: UInt64 = 0
    var mismatches: UInt64 = 0
    var protoErrors: UInt64 = 0
    var clock = ReadClock()
    var clockHookQueued = false
}

/// One echo connection: its sequence numbers and the send times of the messages in flight.
/// The message path runs entirely here, on `self` and the shared block.
final class EchoConn: ClientDelegate {
    typealias State = ConnState
    unowned(unsafe) let worker: EchoWorker
    let sh: UnsafeMutablePointer<EchoShared>
    let uid: UInt32
    var conn: ClientConnection?
    var state: State = .connecting
    var sendSeq: UInt64 = 0
    var recvSeq: UInt64 = 0
    var inflight = 0
    /// Ring of send timestamps, `depth` entries.
    let sendTimes: UnsafeMutablePointer<UInt64>
    var sendSlot = 0
    var recvSlot = 0
    /// Counted in the worker's `drained`.
    var drained = false

    init(worker: EchoWorker, shared: UnsafeMutablePointer<EchoShared>, uid: UInt32) {
        self.worker = worker
        self.sh = shared
        self.uid = uid
        let depth = shared.pointee.depth
        sendTimes = .allocate(capacity: depth)
        sendTimes.initialize(repeating: 0, count: depth)
    }

    deinit { sendTimes.deallocate() }

    @inline(__always)
    private func clock() -> UInt64 {
        let (now, fresh) = sh.pointee.clock.now(for: UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))
        if fresh && !sh.pointee.clockHookQueued {
            sh.pointee.clockHookQueued = true
            worker.queueClockReset()
        }
        return now
    }

    @inline(__always)
    func send(_ client: ClientConnection, now: UInt64) {
        let size = sh.pointee.size, hl = sh.pointee.hl
        let payload = sh.pointee.payload + Int(truncatingIfNeeded: sendSeq & sh.pointee.variantMask) &* size
        var v = tagValue(uid: uid, seq: sendSeq)
        let p = (payload + sh.pointee.tagOff).assumingMemoryBound(to: UInt8.self)
        for i in 0..<hl { p[i] = hexDigit(v); v >>= 4 }
        // The frame bytes this send queues (ClientConnection.send only queues; it flushes
        // at the end of the loop iteration).
        let queued = client.bufferedAmount
        guard client.send(sh.pointee.binary ? .binary : .text, UnsafeRawBufferPointer(start: payload, count: size)) else { return }
        if now >= sh.pointee.w0 && now < sh.pointee.w1 {
            sh.pointee.txFrameBytes &+= UInt64(truncatingIfNeeded: client.bufferedAmount &- queued)
        }
        sendTimes[sendSlot] = now
        sendSlot += 1
        if sendSlot == sh.pointee.depth { sendSlot = 0 }
        sendSeq &+= 1
        inflight += 1
        if now >= sh.pointee.w0 && now < sh.pointee.w1 { sh.pointee.txMsgs &+= 1 }
    }

    @inline(__always)
    private func verify(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let size = sh.pointee.size, hl = sh.pointee.hl, off = sh.pointee.tagOff
        guard bytes.count == size else { return false }
        if size == 0 { return true }
        let body = sh.pointee.payload + Int(truncatingIfNeeded: recvSeq & sh.pointee.variantMask) &* size
        let q = (bytes.baseAddress! + off).assumingMemoryBound(to: UInt8.self)
        var v = tagValue(uid: uid, seq: recvSeq)
        var ok = true
        for i in 0..<hl { ok = ok && q[i] == hexDigit(v); v >>= 4 }
        if off > 0 { ok = ok && memcmp(bytes.baseAddress!, body, off) == 0 }
        let rest = off + hl
        if size > rest {
            ok = ok && memcmp(bytes.baseAddress! + rest, body + rest, size - rest) == 0
        }
        return ok
    }

    func clientDidOpen(_ client: ClientConnection) { worker.opened(self, client) }

    func client(_ client: ClientConnection, didReceive m: Message) {
        let now = clock()
        if inflight <= 0 {
            sh.pointee.protoErrors &+= 1
            worker.report("conn \(uid): received a message that was never sent")
            return
        }
        if m.isText == sh.pointee.binary || !verify(m.bytes) {
            sh.pointee.mismatches &+= 1
            worker.report("echo mismatch on conn \(uid) seq \(recvSeq) (\(m.kind), \(m.bytes.count) bytes)")
        }
        let sent = sendTimes[recvSlot]
        recvSlot += 1
        if recvSlot == sh.pointee.depth { recvSlot = 0 }
        recvSeq &+= 1
        inflight -= 1
        sh.pointee.msgsTotal &+= 1
        if now >= sh.pointee.w0 && now < sh.pointee.w1 {
            let v = now &- sent
            sh.pointee.msgs &+= 1
            sh.pointee.latency.record(v)
        }
        if state == .open {
            if now < sh.pointee.w1 {
                send(client, now: now)
            } else if inflight == 0 {
                // Window over and everything drained. The connection stays open until the
                // main thread has read the sockets' byte counters and calls closeAll().
                worker.markDrained(self)
            }
        }
    }

    func clientDidClose(_ client: ClientConnection, code: CloseCode, reason: String, error: String?) {
        worker.closed(self, code: code, error: error)
    }
}

/// The echo load of one event loop (one thread). Touched only on its loop's thread until the
/// loop has been joined; the main thread reads the counters afterwards.
final class EchoWorker: EventHandler, @unchecked Sendable {
    let loop: EventLoop
    let settings: RunSettings
    let shared: UnsafeMutablePointer<EchoShared>
    private var uids: [UInt32]
    var conns: [EchoConn] = []
    let log: ErrorLog

    private var counted = EndCounts()
    var opened: UInt64 = 0
    /// Parameters of the first connection that negotiated permessage-deflate.
    var deflateParams: DeflateParameters?

    /// Connections whose server declined the permessage-deflate we offered (--deflate).
    let deflateRefused = Atomic<Int>(0)

    /// Connections that reached `done` (read by main to know when to stop the loop).
    let finished = Atomic<Int>(0)
    /// Connections with nothing more to do before closing: drained after the window, or done.
    let drainedCount = Atomic<Int>(0)

    func markDrained(_ c: EchoConn) {
        if c.drained { return }
        c.drained = true
        drainedCount.add(1, ordering: .releasing)
    }

    init(loop: EventLoop, settings: RunSettings, uids: [UInt32], bodySeed: UInt64) {
        self.loop = loop
        self.settings = settings
        self.uids = uids
        self.log = ErrorLog(quiet: settings.quiet)
        let size = settings.size
        let variants = settings.variants
        precondition(variants > 0 && variants & (variants - 1) == 0, "variants must be a power of two")
        let payload = UnsafeMutableRawPointer.allocate(byteCount: max(size * variants, 1), alignment: 64)
        var rng = SplitMix(state: bodySeed)
        // Text: ASCII letters and digits (valid UTF-8), or JSON records. Binary: any byte.
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        let p = payload.assumingMemoryBound(to: UInt8.self)
        for k in 0..<variants {
            let base = k * size
            if settings.json {
                let body = makeJSONBody(size: size, rng: &rng)
                for i in 0..<size { p[base + i] = body[i] }
                continue
            }
            for i in 0..<size {
                let r = rng.next()
                p[base + i] = settings.binary ? UInt8(truncatingIfNeeded: r >> 24) : alphabet[Int(r % UInt64(alphabet.count))]
            }
        }
        shared = .allocate(capacity: 1)
        shared.initialize(to: EchoShared(size: size, hl: min(size, 16), tagOff: settings.json ? jsonTagOffset : 0,
                                         variantMask: UInt64(variants - 1), depth: settings.depth,
                                         binary: settings.binary, w0: settings.w0, w1: settings.w1,
                                         payload: payload, latency: .make()))
    }

    deinit {
        shared.pointee.payload.deallocate()
        shared.pointee.latency.deallocate()
        shared.deallocate()
    }

    var connectionCount: Int { uids.count }
    var msgs: UInt64 { shared.pointee.msgs }
    var txMsgs: UInt64 { shared.pointee.txMsgs }
    var txFrameBytes: UInt64 { shared.pointee.txFrameBytes }
    var mismatches: UInt64 { shared.pointee.mismatches }
    /// How connections ended badly (protocol errors are counted in `shared`).
    var ends: EndCounts {
        var e = counted
        e.protoErrors = shared.pointee.protoErrors
        return e
    }

    /// The latency histogram (after the loop has stopped).
    func histogram() -> Histogram {
        let h = Histogram()
        let s = shared.pointee
        h.absorb(s.latency)
        return h
    }

    func report(_ s: @autoclosure () -> String) { log.report(s()) }

    /// Opens every connection (on the loop thread).
    func start() {
        for uid in uids {
            let c = EchoConn(worker: self, shared: shared, uid: uid)
            conns.append(c)
            do {
                c.conn = try ClientConnection(loop: loop, options: settings.options, delegate: c)
            } catch {
                counted.connErrors += 1
                log.report("connect: \(error)")
                c.state = .done
                markDrained(c)
                finished.add(1, ordering: .releasing)
            }
        }
    }

    func queueClockReset() { loop.scheduleFlush(self) }

    func opened(_ c: EchoConn, _ client: ClientConnection) {
        opened &+= 1
        c.state = .open
        if settings.options.offerDeflate {
            guard client.isCompressing, let d = client.proto.deflate else {
                // --deflate: the server answered without permessage-deflate; the run stops.
                if deflateRefused.add(1, ordering: .releasing).oldValue == 0 {
                    log.report("conn \(c.uid): the server did not accept permessage-deflate")
                }
                return beginClose(c)
            }
            if deflateParams == nil { deflateParams = d.parameters }
        }
        let now = nowNanos()
        if now >= shared.pointee.w1 { return markDrained(c) }
        for _ in 0..<shared.pointee.depth { c.send(client, now: now) }
    }

    func closed(_ c: EchoConn, code: CloseCode, error: String?) {
        switch c.state {
        case .connecting:
            counted.connErrors &+= 1
            log.report("conn \(c.uid): setup failed: \(error ?? "closed by server")")
        case .open:
            counted.closedByServer &+= 1
            log.report("conn \(c.uid): closed by the server during the run (code \(code.rawValue))\(error.map { ": " + $0 } ?? "")")
        case .closing:
            if let error {
                counted.closeErrors &+= 1
                log.report("conn \(c.uid): close handshake: \(error)")
            }
        case .done:
            return
        }
        c.state = .done
        markDrained(c)
        finished.add(1, ordering: .releasing)
    }

    func beginClose(_ c: EchoConn) {
        guard c.state == .open, let conn = c.conn else { return }
        c.state = .closing
        conn.close(code: .normal, timeoutMillis: 1000)
    }

    /// Closes every open connection (drained, or the drain deadline passed); aborts unopened ones.
    func closeAll() {
        for c in conns {
            switch c.state {
            case .open: beginClose(c)
            case .connecting: c.conn?.abort()
            default: break
            }
        }
    }

    // EventHandler, used only for the end-of-iteration hook that forgets the cached clock.
    func handleEvent(_ events: IOEvents) {}
    func tick(now: UInt64) {}
    func flushScheduled() {
        shared.pointee.clockHookQueued = false
        shared.pointee.clock.reset()
    }
}
