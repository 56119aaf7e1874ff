#if canImport(Glibc)
import Glibc
#endif
import Logging
import Transport

/// One TCP connection to Redis on an event loop: the host name looked up off the loop,
/// non-blocking connect to each of its addresses in turn, a login (AUTH/SELECT, then a PING
/// always: the connection is `ready` only once Redis has answered), a RESP reader, an
/// output buffer, and reconnect with backoff (100 ms doubling to 1 s, so a Redis that comes
/// back is reached again within about 1.25 s at the loop's 250 ms tick).
/// Loop-confined: every method runs on `loop`'s thread.
final class RedisConnection: EventHandler {
    enum State { case down, resolving, connecting, loggingIn, ready }

    let loop: EventLoop
    let endpoint: RedisEndpoint
    let name: String
    let logger: Logger
    /// How `endpoint.host` becomes addresses when it is a name (a numeric host is not looked up).
    let lookup: HostResolver.Lookup
    private(set) var state = State.down
    /// Loop time (ms) bytes last came from Redis on this connection, or it became ready: how
    /// long it has been quiet (the backplane's keepalive PINGs a connection quiet too long).
    private(set) var lastHeard: UInt64 = 0
    /// This attempt's addresses and the next one to dial: a refused or timed-out address
    /// moves on to the next (`localhost` is often `::1` first, where Redis may not listen).
    private var candidates: [SocketAddress] = []
    private var nextCandidate = 0
    /// Tells a lookup's answer from an older attempt's (after `stop`).
    private var lookupGeneration: UInt64 = 0
    private var slowLookupReported = false
    private var fd: Int32 = -1
    private var reader = RESPReader()
    private var out: [UInt8] = []
    private var sent = 0
    /// Login answers (AUTH/SELECT, PING) still to come before the connection is `ready`.
    private var handshakeReplies = 0
    /// What the login sent, for its timeout's line ("AUTH, SELECT, PING").
    private var loginCommands = ""
    private var retryAt: UInt64 = 0
    private var backoff: UInt64 = 100
    /// When the phase in progress gives up: the connect, then the login (AUTH/SELECT/PING), 2 s
    /// each. Without the second a Redis that accepts TCP and never answers would hold the
    /// connection in `loggingIn` for good, with no reconnect. A name lookup is not cut (its
    /// thread cannot be), but past 2 s it counts as a failed attempt (`tick`).
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

    init(loop: EventLoop, endpoint: RedisEndpoint, name: String, logger: Logger,
         lookup: @escaping HostResolver.Lookup = HostResolver.system) {
        self.loop = loop
        self.endpoint = endpoint
        self.name = name
        self.logger = logger
        self.lookup = lookup
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
        if let address = HostResolver.numeric(endpoint.host, port: endpoint.port) { return dial([address]) }
        // A name: looked up on a thread of its own, so this loop (the other connection, the
        // deadlines, the outbox) goes on meanwhile.
        state = .resolving
        connectDeadline = loop.now + Self.phaseTimeoutMillis
        slowLookupReported = false
        lookupGeneration &+= 1
        let generation = lookupGeneration
        // Held strongly until the answer (a weak reference's side table, still referenced when a
        // test's backplane outlives it, is what LeakSanitizer reports); a stopped connection
        // ignores the answer by its generation.
        HostResolver.lookUp(endpoint.host, port: endpoint.port, on: loop, using: lookup) { [self] result in
            guard lookupGeneration == generation, state == .resolving else { return }
            self.state = .down
            switch result {
            case .success(let addresses): self.dial(addresses)
            case .failure(let error): self.failed("\(error)")
            }
        }
    }

    /// Connects to the first of `addresses` that does not fail at once; the others stay
    /// candidates if it is refused or times out.
    private func dial(_ addresses: [SocketAddress]) {
        candidates = addresses
        nextCandidate = 0
        dialNext(failure: "no address")
    }

    private func dialNext(failure: String) {
        var why = failure
        while nextCandidate < candidates.count {
            let address = candidates[nextCandidate]
            nextCandidate += 1
            switch open(address) {
            case .success(let s): return connecting(s)
            case .failure(let error): why = "\(error)"
            }
        }
        failed(tried(why))
    }

    /// A failure's reason, saying when every one of several addresses failed.
    private func tried(_ why: String) -> String {
        candidates.count > 1 ? "\(why) (tried its \(candidates.count) addresses)" : why
    }

    /// A non-blocking connect to `address` (`connectTCP(to:)`, the client's too), registered here.
    private func open(_ address: SocketAddress) -> Result<Int32, TransportError> {
        let s: Int32
        do { s = try connectTCP(to: address) } catch { return .failure(error) }
        do { try loop.register(fd: s, handler: self, interest: [.read, .write]) } catch {
            Glibc.close(s)
            return .failure(error)
        }
        return .success(s)
    }

    private func connecting(_ s: Int32) {
        fd = s
        state = .connecting
        connectDeadline = loop.now + Self.phaseTimeoutMillis
        reader = RESPReader()
        out.removeAll(keepingCapacity: true)
        sent = 0
        var login: [UInt8] = []
        var names: [String] = []
        if let password = endpoint.password {
            login += endpoint.user.map { RedisCommand.format("AUTH", $0, password) } ?? RedisCommand.format("AUTH", password)
            names.append("AUTH")
        }
        if endpoint.database != 0 {
            login += RedisCommand.format("SELECT", String(endpoint.database))
            names.append("SELECT")
        }
        // Always last: a TCP connect proves only that the kernel took it (a stopped or hung
        // Redis still completes handshakes from its backlog). Without it such a Redis was
        // "connected" on every retry and given up by the reply deadline: a connected /
        // unreachable line pair every few seconds for the whole outage, instead of one line.
        login += RedisCommand.ping
        names.append("PING")
        handshakeReplies = names.count
        loginCommands = names.joined(separator: ", ")
        out = login
    }

    /// The address being dialled was refused or timed out: the next one, or the outage.
    private func connectFailed(_ why: String) {
        guard nextCandidate < candidates.count else { return close(reason: tried(why)) }
        loop.unregister(fd: fd)
        Glibc.close(fd)
        fd = -1
        wipeOut()
        state = .down
        dialNext(failure: why)
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
        // A lookup in flight is no connection yet: its answer is ignored from now on.
        let wasOpen = state != .down && state != .resolving
        lookupGeneration &+= 1
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
            if err != 0 { connectFailed(errnoDescription(err)); return }
            if events.contains(.hangup) { connectFailed("connection refused"); return }
            state = .loggingIn
            connectDeadline = loop.now + Self.phaseTimeoutMillis
            flush()
            if fd < 0 { return }
        }
        if events.wantsRead { readAvailable() }
        if fd >= 0, events.contains(.writable) { flush() }
    }

    private func becameReady() {
        state = .ready
        lastHeard = loop.now
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
                lastHeard = loop.now
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
        if case .error(let why) = value, handshakeReplies == 0 {
            // The PING refused: Redis is up but cannot serve yet (LOADING, a replica still
            // syncing, NOAUTH without a password): an outage with its reason, one line.
            close(reason: "Redis answered the PING with: \(why)")
            return
        }
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
        if state == .resolving && now >= connectDeadline && !slowLookupReported {
            // Logged once and counted as a failed attempt (the start stops waiting); the
            // answer, when it comes, is still dialled.
            slowLookupReported = true
            failed("looking up \(endpoint.host) takes over 2 s")
        }
        if state == .connecting && now >= connectDeadline { connectFailed("connect timed out") }
        if state == .loggingIn && now >= connectDeadline { close(reason: "no answer to the login (\(loginCommands)) within 2 s") }
        if state == .down && !stopped && now >= retryAt { connect() }
    }

    func flushScheduled() {}

    func loopStopped() { stop() }
}
