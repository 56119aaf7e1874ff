#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Logging
import Synchronization
import Transport
import WSServer
import WebSocket

/// Pub/sub across instances through Redis. Every local publish is delivered locally at once
/// (so local pub/sub works while Redis is down) and queued for Redis as `PUBLISH
/// <prefix><topic> <envelope>`; messages from other instances arrive on a SUBSCRIBE
/// connection and enter `Topics.deliverLocally`, the same per-loop queues. Both Redis
/// connections live on one dedicated event loop: no server loop ever waits for Redis, and
/// neither they nor the loop's timer are in a server loop's `wss_connections_open` gauge
/// (which counts what a server loop has registered beside its listener and session tick;
/// test_cluster.py checks it). Keep them off the server loops, or subtract them there.
///
/// With `history`, a publish runs a script that appends it to the topic's Redis Stream and
/// publishes it with its offset; local subscribers then get it back from Redis like every
/// instance (so every delivery has its offset, in stream order), except while Redis is
/// down, when it is delivered locally at once and forwarded later.
public final class RedisBackplane: Backplane, @unchecked Sendable {
    public struct Options: Sendable {
        public var endpoint: RedisEndpoint
        /// Channel names are prefix + topic (Redis pub/sub ignores the database number, so
        /// the prefix is what separates two deployments on one Redis).
        public var channelPrefix = "wss:"
        /// Bytes waiting for Redis beyond which publishes are not forwarded (counted and
        /// logged). 16 MiB: about 100,000 chat-size messages, several seconds of a stall.
        public var maxQueuedBytes = 16 << 20
        /// Keep each topic's last messages in a Redis Stream for recovery (nil: off).
        public var history: HistoryOptions?
        /// Seconds a command's reply (or a SUBSCRIBE's confirmation) may be overdue, counted
        /// from when it was sent or from the last reply, whichever is later, before the
        /// connection is taken for broken: closed, its waiting recoveries and presence
        /// queries answered as in an outage, and reconnected with backoff. Checked at the
        /// loop's 250 ms tick; at least 0.25 s. Without it a Redis that stopped answering after
        /// the login held every request for good. A quiet subscription is not cut while Redis
        /// answers its keepalive PING.
        public var replyTimeout: Double = 5
        /// Seconds a connection may hear nothing from Redis before it is sent a PING, whose
        /// answer is then due within `replyTimeout` (0: off; else at least 0.25). Without it
        /// a subscription connection that only receives never noticed a Redis gone silent
        /// (a network partition, a paused host: no FIN, no RST, TCP itself sends nothing), and
        /// this instance's subscribers missed every message from the others for good. So a
        /// silent Redis is found within `keepalive + replyTimeout` (15 s by default).
        public var keepalive: Double = 10
        /// How a Redis host name becomes addresses: `getaddrinfo` on a thread of its own by
        /// default (never on the backplane loop), every address tried in order. Replaceable
        /// (service discovery, tests). A numeric host is never looked up.
        public var lookup: HostResolver.Lookup = HostResolver.system
        public init(endpoint: RedisEndpoint) { self.endpoint = endpoint }
    }

    public let options: Options
    public let instance = InstanceID.random()
    let logger: Logger
    let loop: EventLoop
    let commands: RedisConnection
    let subscriber: RedisConnection
    let timer: LoopTimer
    let scripts: HistoryScripts?
    /// Written once by `attach`, before the server's loops run.
    var topics: Topics?
    let outbox = Locked(Outbox())
    let counters = BackplaneCounters()
    /// The publish connection is up (read by publishers to decide on local delivery).
    let redisUp = Atomic<Bool>(false)
    /// The first connection attempts are over: both connections are up, or one attempt
    /// failed (an outage from the start). Set once, never cleared (`settleStartup`).
    let startupSettled = Atomic<Bool>(false)
    /// An eventfd written once when `startupSettled` is set: `waitUntilReady` sleeps in
    /// poll(2) on it instead of polling the flag.
    private let settledEvent: Int32
    /// Backplane-loop state: channels SUBSCRIBEd on the current connection; per topic the
    /// last sequence seen from each other instance (or the stream offset, keyed `.zero`);
    /// what each reply on the publish connection answers.
    var subscribed: Set<String> = []
    var lastSeen: [String: [InstanceID: UInt64]] = [:]
    var replies = ReplyQueue()
    /// SUBSCRIBE confirmations still to come after a (re)subscribe. The backlog waits for
    /// them: with history our own subscribers get our messages back from Redis, so the
    /// subscription must be in place before they are published.
    /// Per topic, SUBSCRIBE confirmations still to come.
    var awaitingAck: [String: Int] = [:]
    /// Recoveries waiting for their topic's SUBSCRIBE to be confirmed (the history is read
    /// only once live messages reach us, so none falls between); run with false if the
    /// subscription connection drops first.
    var deferredRecoveries: [String: [(Bool) -> Void]] = [:]
    /// Per topic, the epoch of the stream its offsets belong to.
    var streamEpochs: [String: String] = [:]
    var presenceTicks = 0
    /// Loop time (ms) of the last SUBSCRIBE sent onto no pending one, or of the last
    /// confirmation: the subscription connection's side of the reply deadline.
    var ackWaitingSince: UInt64 = 0
    let replyTimeoutMillis: UInt64
    /// 0: no keepalive.
    let keepaliveMillis: UInt64
    /// Loop time (ms) the subscription connection's keepalive PING was sent (0: none awaited).
    var subscriberPingSentAt: UInt64 = 0
    var subscriptionSettled: Bool { subscriber.state == .ready && awaitingAck.isEmpty }

    struct Outbox {
        var bytes: [UInt8] = []
        var messages = 0
        var sequences: [String: UInt64] = [:]
        var wakeQueued = false
        /// When the last overflow line was logged (0: never); drops since then.
        var overflowLoggedAt: UInt64 = 0
        var droppedSinceLog = 0
    }

    public init(options: Options, logger: Logger = Logger(label: "wss-server.redis")) throws {
        self.options = options
        self.logger = logger
        if case .failure(let bad)? = IOBackend.environment { throw bad }
        loop = try EventLoop(index: 0, readBufferSize: 256 << 10)
        if let why = loop.uringSetupFailure { logger.warning("redis: io_uring ring setup failed (\(why)); its loop uses epoll") }
        commands = RedisConnection(loop: loop, endpoint: options.endpoint, name: "publish", logger: logger, lookup: options.lookup)
        subscriber = RedisConnection(loop: loop, endpoint: options.endpoint, name: "subscribe", logger: logger, lookup: options.lookup)
        timer = try LoopTimer(loop: loop)
        settledEvent = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        if settledEvent < 0 { throw TransportError.syscall("eventfd", errno) }
        scripts = options.history.map { HistoryScripts(options: $0) }
        let t = options.replyTimeout
        replyTimeoutMillis = UInt64((t.isFinite ? min(max(t, 0.25), 86400) : 5) * 1000)
        let k = options.keepalive
        keepaliveMillis = k.isFinite ? (k <= 0 ? 0 : UInt64(min(max(k, 0.25), 86400) * 1000)) : 10_000
        outbox.withLock { $0.bytes.reserveCapacity(64 << 10) }
    }

    public func attach(to topics: Topics) {
        self.topics = topics
        commands.onReady = { [unowned self] in self.publishConnectionUp() }
        commands.onDrained = { [unowned self] in self.drainOutbox() }
        commands.onReply = { [unowned self] in self.commandReply($0) }
        commands.onDown = { [unowned self] _ in self.publishConnectionDown() }
        subscriber.onReady = { [unowned self] in self.resubscribe() }
        subscriber.onReply = { [unowned self] in self.subscriberReply($0) }
        subscriber.onDown = { [unowned self] in self.subscriptionLost(wasReady: $0) }
        commands.onAttemptFailed = { [unowned self] in self.settleStartup() }
        subscriber.onAttemptFailed = { [unowned self] in self.settleStartup() }
        timer.onTick = { [unowned self] now in
            commands.tick(now: now)
            subscriber.tick(now: now)
            keepAlive(now)
            checkReplyDeadlines(now)
            presenceTick()
        }
        loop.execute { [self] in
            timer.register()
            commands.start()
            subscriber.start()
        }
        loop.start(name: "wss-redis")
    }

    // MARK: - Publishing (any thread)

    public func publish(_ topic: String, kind: Message.Kind, payload: UnsafeRawBufferPointer) {
        counters.published.add(1, ordering: .relaxed)
        // Without history, or with Redis away, local subscribers get it now; with history and
        // Redis up they get it from Redis with its offset.
        let deliveredHere = scripts == nil || !redisUp.load(ordering: .relaxed)
        if deliveredHere { topics?.deliverLocally(topic, kind: kind, payload: payload) }
        let wake = outbox.withLock { o -> Bool in
            // The sequence is taken even for a message that is then dropped: receivers see
            // the gap and count the loss (never silent).
            let seq = (o.sequences[topic] ?? 0) + 1
            o.sequences[topic] = seq
            let size = payload.count + 3 * (topic.utf8.count + options.channelPrefix.utf8.count) + BackplaneEnvelope.headerSize + 160
            if o.bytes.count + size > options.maxQueuedBytes {
                overflow(&o)
                if !deliveredHere { topics?.deliverLocally(topic, kind: kind, payload: payload) }
                return false
            }
            let envelope = BackplaneEnvelope(kind: kind, instance: instance, sequence: seq,
                                             isStreamOffset: scripts != nil, deliveredAtOrigin: deliveredHere && scripts != nil)
            if let scripts {
                appendHistoryPublish(&o.bytes, scripts, topic: topic, envelope: envelope, payload: payload)
            } else {
                appendPublish(&o.bytes, topic: topic, envelope: envelope, payload: payload)
            }
            o.messages += 1
            if o.wakeQueued { return false }
            o.wakeQueued = true
            return true
        }
        if wake { loop.execute { [self] in drainOutbox() } }
    }

    private func overflow(_ o: inout Outbox) {
        counters.dropped.add(1, ordering: .relaxed)
        o.droppedSinceLog += 1
        // One line per overflow episode: again only after a minute.
        let now = monotonicMillis()
        guard o.overflowLoggedAt == 0 || now > o.overflowLoggedAt + 60_000 else { return }
        let earlier = o.overflowLoggedAt == 0 ? "" : " (\(o.droppedSinceLog - 1) more dropped since the last such line)"
        o.overflowLoggedAt = now
        o.droppedSinceLog = 0
        logger.error("redis: outgoing queue full (\(options.maxQueuedBytes) bytes waiting for Redis): messages are not forwarded to other instances until it drains (local delivery goes on; counted in wss_backplane_dropped_total)\(earlier)")
    }

    /// Runs `body` with the UTF-8 bytes of the prefix and the topic (no copies).
    func withNames<R>(_ topic: String, _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> R) -> R {
        var p = options.channelPrefix, t = topic
        return p.withUTF8 { pb in t.withUTF8 { tb in body(UnsafeRawBufferPointer(pb), UnsafeRawBufferPointer(tb)) } }
    }

    func withHeader<R>(_ envelope: BackplaneEnvelope, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        var header: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes on the stack
        return withUnsafeMutableBytes(of: &header) { h in
            let head = UnsafeMutableRawBufferPointer(rebasing: h[0..<BackplaneEnvelope.headerSize])
            envelope.writeHeader(into: head)
            return body(UnsafeRawBufferPointer(head))
        }
    }

    func appendPublish(_ out: inout [UInt8], topic: String, envelope: BackplaneEnvelope, payload: UnsafeRawBufferPointer) {
        withHeader(envelope) { header in
            withNames(topic) { prefix, name in
                RedisCommand.appendPublish(to: &out, prefix: prefix, channel: name, header: header, payload: payload)
            }
        }
    }

    /// Moves everything queued to the publish connection once it has written the last batch.
    func drainOutbox() {
        guard commands.state == .ready, commands.unsentCount == 0, subscriptionSettled else {
            outbox.withLock { $0.wakeQueued = false }
            return
        }
        var batch: [UInt8] = []
        let count = outbox.withLock { o -> Int in
            swap(&batch, &o.bytes)
            let n = o.messages
            o.messages = 0
            o.wakeQueued = false
            return n
        }
        guard count > 0 else { return }
        counters.forwarded.add(count, ordering: .relaxed)
        replies.push(.publishes(count), now: loop.now)
        commands.send(batch)
        batch.removeAll(keepingCapacity: true)
        outbox.withLock { o in if o.bytes.isEmpty && o.bytes.capacity < batch.capacity { swap(&batch, &o.bytes) } }
    }

    private func publishConnectionUp() {
        if let scripts {
            replies.push(.ignore(2), now: loop.now)
            commands.send(scripts.load)
        }
        redisUp.store(true, ordering: .relaxed)
        connectionUp()
        drainOutbox()
    }

    /// Either connection is up: the start is settled once both are.
    func connectionUp() {
        if commands.state == .ready && subscriber.state == .ready { settleStartup() }
    }

    func settleStartup() {
        guard !startupSettled.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt64 = 1
        _ = write(settledEvent, &one, 8)
    }

    private func publishConnectionDown() {
        redisUp.store(false, ordering: .relaxed)
        let (unconfirmed, recoveries) = replies.drain()
        if scripts != nil && unconfirmed > 0 {
            counters.unconfirmed.add(unconfirmed, ordering: .relaxed)
            logger.warning("redis: \(unconfirmed) publish(es) were sent but not confirmed when the connection dropped; they may be missing from history and other instances")
        }
        for r in recoveries { r.completion(Recovery(messages: [], position: nil, recovered: false)) }
    }

    private func commandReply(_ value: RESPValue) {
        if case .error(let why) = value {
            if counters.errors.add(1, ordering: .relaxed).oldValue % 1000 == 0 {
                logger.error("redis: command refused: \(why) (every 1000th such error is logged; counted in wss_backplane_redis_errors_total)")
            }
        }
        switch replies.pop(now: loop.now) {
        case .recovery(let request)?: finishRecovery(request, value)
        case .presence(let local, let completion)?: finishPresence(value, local: local, completion: completion)
        default: break
        }
    }

    /// A connection whose oldest awaited answer is `replyTimeout` overdue is closed (one log
    /// line, through the connection's outage line) and reconnected; closing it fails what
    /// waits on it as a lost connection does (`publishConnectionDown`, `subscriptionLost`).
    func checkReplyDeadlines(_ now: UInt64) {
        let seconds = "\(Double(replyTimeoutMillis) / 1000) s"
        if commands.state == .ready && replies.overdue(now: now, limit: replyTimeoutMillis) {
            commands.abandon("no reply to a command within \(seconds) (connected, but Redis does not answer)")
        }
        if subscriber.state == .ready && !awaitingAck.isEmpty && now >= ackWaitingSince + replyTimeoutMillis {
            subscriber.abandon("no confirmation of SUBSCRIBE within \(seconds) (connected, but Redis does not answer)")
        }
        if subscriber.state == .ready && subscriberPingSentAt != 0
            && now >= max(subscriberPingSentAt, subscriber.lastHeard) + replyTimeoutMillis {
            subscriber.abandon("no answer to the keepalive PING within \(seconds) (connected, but Redis does not answer)")
        }
    }

    /// A ready connection that has heard nothing for `keepalive` and awaits nothing is sent a
    /// PING: its answer is then awaited like any reply (`checkReplyDeadlines`). A busy
    /// connection never needs one (every reply or message counts as heard).
    func keepAlive(_ now: UInt64) {
        guard keepaliveMillis > 0 else { return }
        if commands.state == .ready && replies.isEmpty && commands.unsentCount == 0
            && now >= commands.lastHeard + keepaliveMillis {
            replies.push(.ignore(1), now: now)
            commands.send(RedisCommand.ping)
            counters.keepalives.add(1, ordering: .relaxed)
        }
        if subscriber.state == .ready && subscriberPingSentAt == 0 && awaitingAck.isEmpty
            && now >= subscriber.lastHeard + keepaliveMillis {
            subscriberPingSentAt = now
            subscriber.send(RedisCommand.ping)
            counters.keepalives.add(1, ordering: .relaxed)
        }
    }

    // MARK: - Lifecycle

    /// Sleeps until the first connection attempts are over (`settleStartup` wakes it) or
    /// `timeout` seconds have passed (the caller is `Server.start`, once; the first attempts
    /// end within about 2.25 s: the 2 s connect timeout at the 250 ms tick).
    public func waitUntilReady(timeout: Double) -> Bool {
        let limit = monotonicMillis() + UInt64(max(0, timeout.isFinite ? timeout : 0) * 1000)
        while !startupSettled.load(ordering: .acquiring) {
            let now = monotonicMillis()
            if now >= limit { return false }
            var p = pollfd(fd: settledEvent, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, Int32(min(limit - now, 60_000)))  // readable for good once written
        }
        return true
    }

    public func shutdown() {
        loop.execute { [self] in
            commands.stop()
            subscriber.stop()
            timer.close()
        }
        loop.stop()
        loop.join()
    }

    public func metricsText() -> String { counters.render() }

    deinit { Glibc.close(settledEvent) }
}
