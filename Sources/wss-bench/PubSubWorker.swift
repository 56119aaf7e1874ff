#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Transport
import WSClient

// Pub/sub fan-out mode: N subscribers and one publisher on the same path of `--app chat`.
// Every payload starts with 16 lowercase hex digits of the sequence number and 16 of the send
// time (CLOCK_MONOTONIC ns, this process); the rest is a fixed body, checked byte for byte.

/// Fires the publisher in --rate mode (a timerfd on the publisher's loop).
final class RateTimer: EventHandler {
    unowned(unsafe) let worker: PubSubWorker
    let fd: Int32
    init(worker: PubSubWorker, fd: Int32) { self.worker = worker; self.fd = fd }
    func handleEvent(_ events: IOEvents) {
        var v: UInt64 = 0
        _ = Glibc.read(fd, &v, 8)
        worker.pump(now: nowNanos())
    }
    func tick(now: UInt64) {}
    func flushScheduled() {}
    func loopStopped() { worker.stopTimer() }
}

// timerfd is not in Swift's Glibc module (nor in CLinux, which this target may not touch).
@_silgen_name("timerfd_create") private func c_timerfd_create(_ clock: Int32, _ flags: Int32) -> Int32
@_silgen_name("timerfd_settime") private func c_timerfd_settime(
    _ fd: Int32, _ flags: Int32, _ new: UnsafePointer<itimerspec>, _ old: UnsafeMutablePointer<itimerspec>?) -> Int32

/// The subscribers of one event loop, plus the publisher on loop 0. Touched only on its loop's
/// thread (atomics aside) until the loop has been joined.
final class PubSubWorker: EventHandler, @unchecked Sendable {
    let loop: EventLoop
    let options: ClientOptions
    let shared: UnsafeMutablePointer<PubSubShared>
    let log: ErrorLog
    var conns: [PubSubConn] = []
    let maxInProgress: Int
    private var nextToOpen = 0
    private var inProgress = 0
    private var refillWanted = false

    var ends = EndCounts()
    let setupHist = Histogram()

    // Read by main.
    let up = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let finished = Atomic<Int>(0)
    let armed = Atomic<Bool>(false)
    /// Messages received by this loop's subscribers (published at the end of each iteration).
    let delivered = Atomic<UInt64>(0)

    // Publisher (loop 0 only).
    private(set) var publisher: PubSubConn?
    let window: Int
    let rate: Double
    private var payload: UnsafeMutablePointer<UInt8>
    private var pubSeq: UInt64 = 0        // next to send = publishes so far
    private var rateStart: UInt64 = 0
    private var publishing = false
    private var timer: RateTimer?
    var publishes: UInt64 = 0             // sent inside the window
    var pubEchoes: UInt64 = 0             // own messages back (all)
    var rateBehind: UInt64 = 0            // rate mode: most sends the full window held back at once
    let pubRTT = Histogram()
    /// Publishes sent, once the publisher has stopped (-1 while it runs).
    let finalPublishes = Atomic<Int>(-1)
    /// Own messages received back (published at the end of each iteration).
    let echoes = Atomic<UInt64>(0)

    init(loop: EventLoop, settings: RunSettings, ids: [Int], hasPublisher: Bool,
         maxInProgress: Int, window: Int, rate: Double) {
        self.loop = loop
        self.options = settings.options
        self.log = ErrorLog(quiet: settings.quiet)
        self.maxInProgress = max(1, maxInProgress)
        self.window = window
        self.rate = rate
        let size = settings.size
        let body = UnsafeMutablePointer<UInt8>.allocate(capacity: max(size, 1))
        fillPubSubBody(body, size: size, binary: settings.binary)
        payload = .allocate(capacity: max(size, 1))
        payload.update(from: body, count: size)
        shared = .allocate(capacity: 1)
        shared.initialize(to: PubSubShared(size: size, binary: settings.binary, body: body, latency: .make()))
        if hasPublisher {
            let p = PubSubConn(worker: self, shared: shared, id: -1, isPublisher: true)
            publisher = p
            conns.append(p)
        }
        for id in ids { conns.append(PubSubConn(worker: self, shared: shared, id: id, isPublisher: false)) }
    }

    deinit {
        shared.pointee.body.deallocate()
        shared.pointee.latency.deallocate()
        shared.deallocate()
        payload.deallocate()
    }

    var connectionCount: Int { conns.count }
    var subscriberCount: Int { conns.count - (publisher == nil ? 0 : 1) }

    func report(_ s: @autoclosure () -> String) { log.report(s()) }

    func histogram() -> Histogram {
        let h = Histogram()
        let s = shared.pointee
        h.absorb(s.latency)
        return h
    }

    /// End-of-iteration hook: forget the cached clock, publish counters, open more connections.
    func queueHook() {
        if !shared.pointee.hookQueued {
            shared.pointee.hookQueued = true
            loop.scheduleFlush(self)
        }
    }

    func handleEvent(_ events: IOEvents) {}
    func tick(now: UInt64) {}
    func flushScheduled() {
        shared.pointee.hookQueued = false
        shared.pointee.clock.reset()
        delivered.store(shared.pointee.deliveriesTotal, ordering: .relaxed)
        echoes.store(pubEchoes, ordering: .relaxed)
        if refillWanted { refillWanted = false; refill() }
    }

    // MARK: - Setup

    func startOpening() { refill() }

    private func refill() {
        while inProgress < maxInProgress && nextToOpen < conns.count {
            let c = conns[nextToOpen]
            nextToOpen += 1
            c.started = nowNanos()
            do {
                c.conn = try ClientConnection(loop: loop, options: options, delegate: c)
                inProgress += 1
            } catch {
                ends.connErrors &+= 1
                log.report("connect: \(error)")
                c.state = .done
                failed.add(1, ordering: .relaxed)
                finished.add(1, ordering: .relaxed)
            }
        }
    }

    private func wantRefill() {
        refillWanted = true
        queueHook()
    }

    func opened(_ c: PubSubConn) {
        inProgress -= 1
        wantRefill()
        setupHist.add(nowNanos() &- c.started)
        c.state = .open
        up.add(1, ordering: .relaxed)
    }

    func closed(_ c: PubSubConn, code: CloseCode, error: String?) {
        let who = c.isPublisher ? "publisher" : "subscriber \(c.id)"
        switch c.state {
        case .connecting:
            inProgress -= 1
            wantRefill()
            ends.connErrors &+= 1
            failed.add(1, ordering: .relaxed)
            log.report("\(who): setup failed: \(error ?? "closed by server")")
        case .open:
            ends.closedByServer &+= 1
            up.subtract(1, ordering: .relaxed)
            log.report("\(who): closed by the server during the run (code \(code.rawValue))\(error.map { ": " + $0 } ?? "")")
            if c.isPublisher { stopPublishing() }
        case .closing:
            up.subtract(1, ordering: .relaxed)
            if let error { ends.closeErrors &+= 1; log.report("\(who): close handshake: \(error)") }
        case .done:
            return
        }
        c.state = .done
        finished.add(1, ordering: .relaxed)
    }

    /// Sets the measurement window (every loop, before the publisher starts).
    func arm(w0: UInt64, w1: UInt64) {
        shared.pointee.w0 = w0
        shared.pointee.w1 = w1
        armed.store(true, ordering: .releasing)
    }

    // MARK: - Publisher

    func startPublishing() {
        guard let p = publisher, p.state == .open else { stopPublishing(); return }
        publishing = true
        rateStart = nowNanos()
        if rate > 0 {
            let fd = c_timerfd_create(Int32(CLOCK_MONOTONIC), Int32(O_NONBLOCK | O_CLOEXEC))
            if fd < 0 {
                log.report("timerfd_create: errno \(errno)")
                return stopPublishing()
            }
            // One message per tick up to 10 000/s; above that, 100 µs ticks sending batches.
            let period = UInt64(max(1e9 / rate, 100_000))
            var spec = itimerspec()
            spec.it_interval.tv_sec = Int(period / 1_000_000_000)
            spec.it_interval.tv_nsec = Int(period % 1_000_000_000)
            spec.it_value = spec.it_interval
            _ = c_timerfd_settime(fd, 0, &spec, nil)
            let t = RateTimer(worker: self, fd: fd)
            do {
                try loop.register(fd: fd, handler: t, events: 0x001 /* EPOLLIN */)
            } catch {
                Glibc.close(fd)
                log.report("timerfd: \(error)")
                return stopPublishing()
            }
            timer = t
        }
        pump(now: rateStart)
    }

    func stopTimer() {
        if let t = timer {
            loop.unregister(fd: t.fd)
            Glibc.close(t.fd)
            timer = nil
        }
    }

    func stopPublishing() {
        if finalPublishes.load(ordering: .relaxed) >= 0 { return }
        publishing = false
        stopTimer()
        echoes.store(pubEchoes, ordering: .relaxed)
        finalPublishes.store(Int(pubSeq), ordering: .releasing)
    }

    /// Sends what the window (and, with --rate, the schedule) allows.
    func pump(now: UInt64) {
        guard publishing, let client = publisher?.conn else { return }
        let w1 = shared.pointee.w1
        if now >= w1 { return stopPublishing() }
        var room = window - Int(pubSeq &- pubEchoes)
        if rate > 0 {
            let due = UInt64(Double(now &- rateStart) * rate / 1e9) &+ 1
            let owed = due > pubSeq ? Int(clamping: due - pubSeq) : 0
            if owed > room && UInt64(owed - max(room, 0)) > rateBehind { rateBehind = UInt64(owed - max(room, 0)) }
            room = min(room, owed)
        }
        if room <= 0 { return }
        let size = shared.pointee.size
        let kind: Opcode = shared.pointee.binary ? .binary : .text
        let w0 = shared.pointee.w0
        while room > 0 {
            let t = nowNanos()
            putHex16(payload, pubSeq)
            putHex16(payload + 16, t)
            guard client.send(kind, UnsafeRawBufferPointer(start: payload, count: size)) else { return stopPublishing() }
            if t >= w0 && t < w1 { publishes &+= 1 }
            pubSeq &+= 1
            room -= 1
        }
    }

    /// The publisher received one of its own messages back: that publish is complete.
    func publisherGot(seq: UInt64, sent: UInt64, now: UInt64) {
        guard let p = publisher else { return }
        if seq != p.expect {
            ends.protoErrors &+= 1
            log.report("publisher: own message seq \(seq), expected \(p.expect)")
            if seq < p.expect { return }
        }
        p.expect = seq &+ 1
        pubEchoes = p.expect  // a lost echo must not hold a window slot forever
        if now >= shared.pointee.w0 && now < shared.pointee.w1 { pubRTT.add(now &- sent) }
        if publishing && rate == 0 { pump(now: now) }
    }

    // MARK: - End

    /// Publishes each subscriber of this loop missed at the end (after the drain).
    func tailMissing(final: UInt64) -> UInt64 {
        var missing: UInt64 = 0
        for c in conns where !c.isPublisher && c.expect < final { missing += final - c.expect }
        return missing
    }

    func closeAll() {
        stopPublishing()
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
}
