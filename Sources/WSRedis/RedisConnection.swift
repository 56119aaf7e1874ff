#if canImport(Glibc)
import Glibc
#endif
import Logging
import Transport

/// One TCP connection to Redis on an event loop: non-blocking connect, AUTH/SELECT, a RESP
/// reader, an output buffer, and reconnect with backoff (100 ms doubling to 1 s, so a Redis
/// that comes back is reached again within about 1.25 s at the loop's 250 ms tick).
/// Loop-confined: every method runs on `loop`'s thread.
final class RedisConnection: EventHandler {
    enum State { case down, connecting, loggingIn, ready }

    let loop: EventLoop
    let endpoint: RedisEndpoint
    let name: String
    let logger: Logger
    private(set) var state = State.down
    private var fd: Int32 = -1
    private var reader = RESPReader()
    private var out: [UInt8] = []
    private var sent = 0
    /// AUTH/SELECT answers still to come before the connection is `ready`.
    private var handshakeReplies = 0
    private var retryAt: UInt64 = 0
    private var backoff: UInt64 = 100
    /// When the phase in progress gives up: the connect, then the login (AUTH/SELECT), 2 s
    /// each. Without the second a Redis that accepts TCP and never answers would hold the
    /// connection in `loggingIn` for good, with no reconnect.
    private var connectDeadline: UInt64 = 0
    static let phaseTimeoutMillis: UInt64 = 2000
    /// One log line per outage, not one per retry.
    private var outageLogged = false
    private var stopped = false

    /// Called when the connection is up and logged in (queue SUBSCRIBE etc. here).
    var onReady: (() -> Void)?
    /// Called for every reply after the handshake.
    var onReply: ((RESPValue) -> Void)?
    /// Called when an up (or connecting) connection is lost; `wasReady` says whether it was up.
    var onDown: ((_ wasReady: Bool) -> Void)?
    /// Called for every failed attempt (refused, timed out, login refused, unresolvable),
    /// before the retry is scheduled.
    var onAttemptFailed: (() -> Void)?

    init(loop: EventLoop, endpoint: RedisEndpoint, name: String, logger: Logger) {
        self.loop = loop
        self.endpoint = endpoint
        self.name = name
        self.logger = logger
    }

    /// Bytes not yet written to the socket (backpressure for the caller).
    var unsentCount: Int { out.count - sent }

    func start() { connect() }

    func stop() {
        stopped = true
        close(reason: nil)
    }

    /// Queues `bytes` (one or more complete commands) and writes what the socket takes.
    /// Ignored unless the connection is `ready` (callers queue their own backlog until then).
    func send(_ bytes: [UInt8]) {
        guard state == .ready else { return }
        out.append(contentsOf: bytes)
        flush()
    }

    /// The caller gave up waiting for an answer (`reason` says which): closed as if Redis had
    /// dropped it, so the waiting requests fail as in an outage (`onDown`), and retried with
    /// backoff.
    func abandon(_ reason: String) {
        guard state == .ready else { return }
        close(reason: reason)
    }

    private func connect() {
        guard !stopped, state == .down else { return }
        let resolved: (family: Int32, addr: [UInt8])
        do { resolved = try Listener.resolve(endpoint.host, port: endpoint.port) } catch {
            failed("cannot resolve \(endpoint.host)"); return
        }
        let s = socket(resolved.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { failed("socket: \(errnoDescription())"); return }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
        let rc = resolved.addr.withUnsafeBytes {
            Glibc.connect(s, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(resolved.addr.count))
        }
        if rc != 0 && errno != EINPROGRESS {
            let why = errnoDescription()
            Glibc.close(s)
            failed(why); return
        }
        do { try loop.register(fd: s, handler: self, interest: [.read, .write]) } catch {
            Glibc.close(s)
            failed("\(error)"); return
        }
        fd = s
        state = .connecting
        connectDeadline = loop.now + Self.phaseTimeoutMillis
        reader = RESPReader()
        out.removeAll(keepingCapacity: true)
        sent = 0
        var login: [UInt8] = []
        handshakeReplies = 0
        if let password = endpoint.password {
            login += endpoint.user.map { RedisCommand.format("AUTH", $0, password) } ?? RedisCommand.format("AUTH", password)
            handshakeReplies += 1
        }
        if endpoint.database != 0 {
            login += RedisCommand.format("SELECT", String(endpoint.database))
            handshakeReplies += 1
        }
        out = login
    }

    private func failed(_ why: String) {
        if !outageLogged {
            logger.warning("redis \(name): cannot reach \(endpoint): \(why); retrying with backoff (local pub/sub goes on)")
            outageLogged = true
        }
        retryAt = loop.now + backoff
        backoff = min(backoff * 2, 1000)
        onAttemptFailed?()
    }

    private func close(reason: String?) {
        let wasReady = state == .ready
        let wasOpen = state != .down
        if fd >= 0 {
            loop.unregister(fd: fd)
            Glibc.close(fd)
            fd = -1
        }
        if !wasReady { wipeOut() }  // an unsent login may hold the password
        state = .down
        out.removeAll(keepingCapacity: true)
        sent = 0
        if wasOpen {
            if let reason { failed(reason) }
            onDown?(wasReady)
        }
    }

    func handleEvent(_ events: IOEvents) {
        if state == .connecting {
            var err: Int32 = 0
            var len = socklen_t(4)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
            if err != 0 { close(reason: errnoDescription(err)); return }
            if events.contains(.hangup) { close(reason: "connection refused"); return }
            if handshakeReplies == 0 {
                becameReady()
            } else {
                state = .loggingIn
                connectDeadline = loop.now + Self.phaseTimeoutMillis
                flush()
            }
            if fd < 0 { return }
        }
        if events.wantsRead { readAvailable() }
        if fd >= 0, events.contains(.writable) { flush() }
    }

    private func becameReady() {
        state = .ready
        backoff = 100
        if outageLogged { logger.notice("redis \(name): connected to \(endpoint)") }
        else { logger.info("redis \(name): connected to \(endpoint)") }
        outageLogged = false
        onReady?()
        if fd >= 0 { flush() }
    }

    private func readAvailable() {
        while fd >= 0 {
            switch TCPStream.read(fd: fd, into: loop.readBuffer) {
            case .done(let n):
                do {
                    try reader.feed(UnsafeRawBufferPointer(rebasing: loop.readBuffer[0..<n]))
                    while fd >= 0, let value = try reader.next() { deliver(value) }
                } catch {
                    logger.error("redis \(name): protocol error from \(endpoint): \(error); reconnecting")
                    close(reason: "protocol error"); return
                }
                if n < loop.readBuffer.count { return }
            case .wantRead, .wantWrite: return
            case .eof: close(reason: "Redis closed the connection"); return
            case .error(let why): close(reason: why); return
            }
        }
    }

    private func deliver(_ value: RESPValue) {
        guard handshakeReplies > 0 else { onReply?(value); return }
        handshakeReplies -= 1
        if case .error(let why) = value {
            // Wrong password or database: log every time (an operator must see it), retry slowly.
            logger.error("redis \(name): \(endpoint) refused the login: \(why)")
            outageLogged = true
            backoff = 1000
            close(reason: "login refused")
            return
        }
        if handshakeReplies == 0 { becameReady() }
    }

    private func flush() {
        while fd >= 0 && sent < out.count {
            let r = out.withUnsafeBytes { TCPStream.write(fd: fd, UnsafeRawBufferPointer(rebasing: $0[sent...])) }
            switch r {
            case .done(let n): sent += n
            case .wantRead, .wantWrite:
                loop.modify(fd: fd, interest: [.read, .write]); return
            case .eof: close(reason: "Redis closed the connection"); return
            case .error(let why): close(reason: why); return
            }
        }
        guard fd >= 0 else { return }
        if sent == out.count {
            if state != .ready { wipeOut() }  // the login (AUTH password) is written: no copy left in the buffer
            out.removeAll(keepingCapacity: out.capacity <= 1 << 20)
            sent = 0
            if state != .connecting { loop.modify(fd: fd, interest: .read) }
            onDrained?()
        }
    }

    private func wipeOut() {
        out.withUnsafeMutableBytes { if let b = $0.baseAddress { explicit_bzero(b, $0.count) } }
    }

    /// Called when everything queued has been written (the caller may queue more).
    var onDrained: (() -> Void)?

    func tick(now: UInt64) {
        if state == .connecting && now >= connectDeadline { close(reason: "connect timed out") }
        if state == .loggingIn && now >= connectDeadline { close(reason: "no answer to the login (AUTH/SELECT) within 2 s") }
        if state == .down && !stopped && now >= retryAt { connect() }
    }

    func flushScheduled() {}

    func loopStopped() { stop() }
}
