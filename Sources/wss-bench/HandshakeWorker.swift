#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Transport
import WSClient

/// A connection used for one handshake (handshakes mode) or held idle (idle mode).
final class SetupConn: ClientDelegate {
    typealias State = ConnState
    unowned(unsafe) let owner: SetupOwner
    let slot: Int
    var conn: ClientConnection?
    var state: State = .connecting
    var started: UInt64 = 0
    /// Prewarm connection (idle mode): closed right after the upgrade, not counted.
    var prewarm = false

    init(owner: SetupOwner, slot: Int) {
        self.owner = owner
        self.slot = slot
    }

    func clientDidOpen(_ client: ClientConnection) { owner.opened(self) }
    func client(_ client: ClientConnection, didReceive message: Message) { owner.unexpected(self) }
    func clientDidClose(_ client: ClientConnection, code: CloseCode, reason: String, error: String?) {
        owner.closed(self, code: code, error: error)
    }
}

protocol SetupOwner: AnyObject {
    func opened(_ c: SetupConn)
    func unexpected(_ c: SetupConn)
    func closed(_ c: SetupConn, code: CloseCode, error: String?)
}

/// Client-side setup deadline: ClientConnection itself has none.
let setupTimeoutNanos: UInt64 = 10_000_000_000

/// Handshakes mode on one loop: `slots` concurrent connect → TLS → upgrade → close loops.
/// New connections are started from `flushScheduled` (end of the loop iteration), never inside
/// another connection's callback, so a reused fd number never meets a stale epoll event.
final class HandshakeWorker: SetupOwner, EventHandler, @unchecked Sendable {
    let loop: EventLoop
    let options: ClientOptions
    let w0: UInt64, w1: UInt64
    var slots: [SetupConn?]
    let hist = Histogram()
    let log: ErrorLog
    private var refillQueued = false

    var handshakes: UInt64 = 0      // upgrades completed inside the window
    var handshakesTotal: UInt64 = 0
    var ends = EndCounts()
    /// Slots with a connection in progress (read by main to know when the tail is done).
    let busy = Atomic<Int>(0)

    init(loop: EventLoop, settings: RunSettings, slots: Int) {
        self.loop = loop
        self.options = settings.options
        self.w0 = settings.w0
        self.w1 = settings.w1
        self.slots = Array(repeating: nil, count: slots)
        self.log = ErrorLog(quiet: settings.quiet)
    }

    /// Starts a connection in every free slot while the window is open (loop thread).
    func refill() {
        let now = nowNanos()
        for i in slots.indices {
            if let c = slots[i] {
                // Our own setup deadline (the client has none).
                if c.state == .connecting && now &- c.started > setupTimeoutNanos {
                    c.conn?.abort()
                }
                if slots[i] != nil { continue }
            }
            if now >= w1 { continue }
            let c = SetupConn(owner: self, slot: i)
            c.started = nowNanos()
            do {
                c.conn = try ClientConnection(loop: loop, options: options, delegate: c)
                slots[i] = c
                busy.add(1, ordering: .relaxed)
            } catch {
                ends.connErrors &+= 1
                log.report("connect: \(error)")
                return  // retried at the next poll
            }
        }
    }

    func opened(_ c: SetupConn) {
        let now = nowNanos()
        handshakesTotal &+= 1
        if now >= w0 && now < w1 {
            handshakes &+= 1
            hist.add(now &- c.started)
        }
        c.state = .closing
        c.conn?.close(code: .normal, timeoutMillis: 1000)
    }

    func unexpected(_ c: SetupConn) {
        ends.protoErrors &+= 1
        log.report("unexpected message from the server")
    }

    func closed(_ c: SetupConn, code: CloseCode, error: String?) {
        switch c.state {
        case .connecting:
            ends.connErrors &+= 1
            log.report("handshake failed: \(error ?? "closed by server")")
        case .closing, .open:
            if let error {
                ends.closeErrors &+= 1
                log.report("close handshake: \(error)")
            }
        case .done: return
        }
        let failed = c.state == .connecting
        c.state = .done
        slots[c.slot] = nil
        busy.subtract(1, ordering: .relaxed)
        // After a failure the slot waits for the next poll (≤50 ms) instead of spinning.
        if !failed && !refillQueued {
            refillQueued = true
            loop.scheduleFlush(self)
        }
    }

    func abortAll() {
        for case let c? in slots { c.conn?.abort() }
    }

    // EventHandler: used only for the end-of-iteration hook.
    func handleEvent(_ events: IOEvents) {}
    func tick(now: UInt64) {}
    func flushScheduled() {
        refillQueued = false
        refill()
    }
}

/// Idle mode on one loop: opens `target` connections with at most `maxInProgress` handshakes
/// in flight, then holds them until told to close.
final class IdleWorker: SetupOwner, EventHandler, @unchecked Sendable {
    let loop: EventLoop
    let options: ClientOptions
    let target: Int
    let maxInProgress: Int
    var conns: [SetupConn] = []
    private var prewarmConns: [SetupConn] = []
    let log: ErrorLog
    private var refillQueued = false
    private var inProgress = 0
    private var prewarmLeft = 0
    private var opening = false

    var ends = EndCounts()
    let hist = Histogram()

    /// Read by main.
    let up = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let prewarmDone = Atomic<Int>(0)
    let finished = Atomic<Int>(0)

    init(loop: EventLoop, settings: RunSettings, target: Int, maxInProgress: Int) {
        self.loop = loop
        self.options = settings.options
        self.target = target
        self.maxInProgress = max(1, maxInProgress)
        self.log = ErrorLog(quiet: settings.quiet)
        conns.reserveCapacity(target)
    }

    func startPrewarm(_ n: Int) {
        prewarmLeft = n
        refill()
    }

    func startOpening() {
        opening = true
        refill()
    }

    private func refill() {
        let now = nowNanos()
        while inProgress < maxInProgress {
            let c: SetupConn
            if prewarmLeft > 0 {
                prewarmLeft -= 1
                c = SetupConn(owner: self, slot: -1)
                c.prewarm = true
                prewarmConns.append(c)  // the client holds its delegate weakly
            } else if opening && conns.count < target {
                c = SetupConn(owner: self, slot: conns.count)
                conns.append(c)
            } else {
                return
            }
            c.started = now
            do {
                c.conn = try ClientConnection(loop: loop, options: options, delegate: c)
                inProgress += 1
            } catch {
                ends.connErrors &+= 1
                log.report("connect: \(error)")
                c.state = .done
                if c.prewarm { prewarmDone.add(1, ordering: .relaxed) } else {
                    failed.add(1, ordering: .relaxed)
                    finished.add(1, ordering: .relaxed)
                }
            }
        }
    }

    /// Periodic (from main): enforce the setup deadline.
    func poll() {
        let now = nowNanos()
        for c in conns where c.state == .connecting && now &- c.started > setupTimeoutNanos {
            c.conn?.abort()
        }
    }

    private func queueRefill() {
        if !refillQueued {
            refillQueued = true
            loop.scheduleFlush(self)
        }
    }

    func opened(_ c: SetupConn) {
        inProgress -= 1
        queueRefill()
        if c.prewarm {
            c.state = .closing
            c.conn?.close(code: .normal, timeoutMillis: 1000)
            return
        }
        hist.add(nowNanos() &- c.started)
        c.state = .open
        up.add(1, ordering: .relaxed)
    }

    func unexpected(_ c: SetupConn) {
        ends.protoErrors &+= 1
        log.report("unexpected message from the server")
    }

    func closed(_ c: SetupConn, code: CloseCode, error: String?) {
        let was = c.state
        c.state = .done
        if c.prewarm {
            if was == .connecting { inProgress -= 1; ends.connErrors &+= 1; log.report("prewarm: \(error ?? "closed")") }
            prewarmDone.add(1, ordering: .relaxed)
            queueRefill()
            return
        }
        switch was {
        case .connecting:
            inProgress -= 1
            ends.connErrors &+= 1
            failed.add(1, ordering: .relaxed)
            log.report("setup failed: \(error ?? "closed by server")")
            queueRefill()
        case .open:
            ends.closedByServer &+= 1
            up.subtract(1, ordering: .relaxed)
            log.report("idle connection closed by the server (code \(code.rawValue))\(error.map { ": " + $0 } ?? "")")
        case .closing:
            up.subtract(1, ordering: .relaxed)
            if let error { ends.closeErrors &+= 1; log.report("close handshake: \(error)") }
        case .done:
            return
        }
        finished.add(1, ordering: .relaxed)
    }

    func closeAll() {
        opening = false
        for c in conns {
            switch c.state {
            case .open:
                c.state = .closing
                c.conn?.close(code: .normal, timeoutMillis: 1000)
            case .connecting:
                c.conn?.abort()
            default: break
            }
        }
    }

    func handleEvent(_ events: IOEvents) {}
    func tick(now: UInt64) {}
    func flushScheduled() {
        refillQueued = false
        refill()
    }
}
