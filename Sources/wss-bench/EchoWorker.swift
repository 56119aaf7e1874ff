#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Transport
import WSClient

/// Settings shared by every worker (immutable, crosses threads once at start).
struct RunSettings: @unchecked Sendable {
    var options: ClientOptions
    var size: Int
    var depth: Int
    var binary: Bool
    var quiet: Bool
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

/// One echo connection: its sequence numbers and the send times of the messages in flight.
final class EchoConn: ClientDelegate {
    enum State: UInt8 { case connecting, open, closing, done }
    unowned(unsafe) let worker: EchoWorker
    let uid: UInt32
    var conn: ClientConnection?
    var state: State = .connecting
    var sendSeq: UInt64 = 0
    var recvSeq: UInt64 = 0
    var inflight = 0
    /// Ring of send timestamps, `depth` entries: slot = seq mod depth.
    let sendTimes: UnsafeMutablePointer<UInt64>
    var sendSlot = 0
    var recvSlot = 0

    init(worker: EchoWorker, uid: UInt32, depth: Int) {
        self.worker = worker
        self.uid = uid
        sendTimes = .allocate(capacity: depth)
        sendTimes.initialize(repeating: 0, count: depth)
    }

    deinit { sendTimes.deallocate() }

    func clientDidOpen(_ client: ClientConnection) { worker.opened(self) }
    func client(_ client: ClientConnection, didReceive message: Message) { worker.received(self, message) }
    func clientDidClose(_ client: ClientConnection, code: CloseCode, reason: String, error: String?) {
        worker.closed(self, code: code, error: error)
    }
}

/// The echo load of one event loop (one thread). Touched only on its loop's thread until the
/// loop has been joined; the main thread reads the counters afterwards.
final class EchoWorker: @unchecked Sendable {
    let loop: EventLoop
    let settings: RunSettings
    let size: Int
    let depth: Int
    let hl: Int
    let opcode: Opcode
    let expectKind: Message.Kind
    let t0: UInt64, w0: UInt64, w1: UInt64
    /// One payload buffer per loop: the tag is rewritten before each send (the protocol copies
    /// and masks it into the connection's output buffer), the body never changes.
    let payload: UnsafeMutableRawBufferPointer
    private var uids: [UInt32]
    var conns: [EchoConn] = []
    let hist = Histogram()
    let log: ErrorLog

    // Counters (loop thread; read by main after join).
    var msgs: UInt64 = 0          // echoes completed inside the window
    var txMsgs: UInt64 = 0        // messages queued inside the window
    var msgsTotal: UInt64 = 0
    var mismatches: UInt64 = 0
    var protoErrors: UInt64 = 0
    var connErrors: UInt64 = 0
    var closedByServer: UInt64 = 0
    var closeErrors: UInt64 = 0
    var opened: UInt64 = 0

    /// Connections that reached `done` (read by main to know when to stop the loop).
    let finished = Atomic<Int>(0)

    init(loop: EventLoop, settings: RunSettings, uids: [UInt32], bodySeed: UInt64) {
        self.loop = loop
        self.settings = settings
        self.size = settings.size
        self.depth = settings.depth
        self.hl = min(settings.size, 16)
        self.opcode = settings.binary ? .binary : .text
        self.expectKind = settings.binary ? .binary : .text
        self.t0 = settings.t0
        self.w0 = settings.w0
        self.w1 = settings.w1
        self.uids = uids
        self.log = ErrorLog(quiet: settings.quiet)
        payload = .allocate(byteCount: max(settings.size, 1), alignment: 64)
        var rng = SplitMix(state: bodySeed)
        // Text: ASCII letters and digits (valid UTF-8). Binary: any byte.
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
        for i in 0..<payload.count {
            let r = rng.next()
            payload[i] = settings.binary ? UInt8(truncatingIfNeeded: r >> 24)
                                         : alphabet[Int(r % UInt64(alphabet.count))]
        }
    }

    deinit { payload.deallocate() }

    var connectionCount: Int { uids.count }

    /// Opens every connection (on the loop thread).
    func start() {
        for uid in uids {
            let c = EchoConn(worker: self, uid: uid, depth: depth)
            conns.append(c)
            do {
                c.conn = try ClientConnection(loop: loop, options: settings.options, delegate: c)
            } catch {
                connErrors += 1
                log.report("connect: \(error)")
                c.state = .done
                finished.add(1, ordering: .releasing)
            }
        }
    }

    // MARK: - Hot path

    @inline(__always)
    private func send(_ c: EchoConn, now: UInt64) {
        // Write the tag for this sequence number into the shared payload buffer.
        var v = tagValue(uid: c.uid, seq: c.sendSeq)
        let p = payload.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for i in 0..<hl { p[i] = hexDigit(v); v >>= 4 }
        guard c.conn!.send(opcode, UnsafeRawBufferPointer(payload)) else { return }
        c.sendTimes[c.sendSlot] = now
        c.sendSlot += 1
        if c.sendSlot == depth { c.sendSlot = 0 }
        c.sendSeq &+= 1
        c.inflight += 1
        if now >= w0 && now < w1 { txMsgs &+= 1 }
    }

    @inline(__always)
    private func verify(_ c: EchoConn, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count == size else { return false }
        if size == 0 { return true }
        let q = bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
        var v = tagValue(uid: c.uid, seq: c.recvSeq)
        var ok = true
        for i in 0..<hl { ok = ok && q[i] == hexDigit(v); v >>= 4 }
        if size > hl {
            ok = ok && memcmp(bytes.baseAddress! + hl, payload.baseAddress! + hl, size - hl) == 0
        }
        return ok
    }

    func opened(_ c: EchoConn) {
        opened &+= 1
        c.state = .open
        let now = nowNanos()
        if now >= w1 { return beginClose(c) }
        for _ in 0..<depth { send(c, now: now) }
    }

    func received(_ c: EchoConn, _ m: Message) {
        let now = nowNanos()
        if c.inflight <= 0 {
            protoErrors &+= 1
            log.report("conn \(c.uid): received a message that was never sent")
            return
        }
        if m.kind != expectKind || !verify(c, m.bytes) {
            mismatches &+= 1
            log.report("echo mismatch on conn \(c.uid) seq \(c.recvSeq) (\(m.kind), \(m.bytes.count) bytes)")
        }
        let sent = c.sendTimes[c.recvSlot]
        c.recvSlot += 1
        if c.recvSlot == depth { c.recvSlot = 0 }
        c.recvSeq &+= 1
        c.inflight -= 1
        msgsTotal &+= 1
        if now >= w0 && now < w1 {
            msgs &+= 1
            hist.add(now &- sent)
        }
        if c.state == .open {
            if now < w1 {
                send(c, now: now)
            } else if c.inflight == 0 {
                // Window over and everything drained: this connection says goodbye.
                beginClose(c)
            }
        }
    }

    func closed(_ c: EchoConn, code: CloseCode, error: String?) {
        switch c.state {
        case .connecting:
            connErrors &+= 1
            log.report("conn \(c.uid): setup failed: \(error ?? "closed by server")")
        case .open:
            closedByServer &+= 1
            log.report("conn \(c.uid): closed by the server during the run (code \(code.rawValue))\(error.map { ": " + $0 } ?? "")")
        case .closing:
            if let error {
                closeErrors &+= 1
                log.report("conn \(c.uid): close handshake: \(error)")
            }
        case .done:
            return
        }
        c.state = .done
        finished.add(1, ordering: .releasing)
    }

    private func beginClose(_ c: EchoConn) {
        guard c.state == .open, let conn = c.conn else { return }
        c.state = .closing
        conn.close(code: .normal, timeoutMillis: 1000)
    }

    /// Closes whatever is still open (the drain deadline passed); aborts unopened ones.
    func closeAll() {
        for c in conns {
            switch c.state {
            case .open: beginClose(c)
            case .connecting: c.conn?.abort()
            default: break
            }
        }
    }
}
