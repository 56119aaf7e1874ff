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
/// connections live on one dedicated event loop: no server loop ever waits for Redis.
public final class RedisBackplane: Backplane, @unchecked Sendable {
    public struct Options: Sendable {
        public var endpoint: RedisEndpoint
        /// Channel names are prefix + topic (Redis pub/sub ignores the database number, so
        /// the prefix is what separates two deployments on one Redis).
        public var channelPrefix = "wss:"
        /// Bytes waiting for Redis beyond which publishes are not forwarded (counted and
        /// logged). 16 MiB: about 100,000 chat-size messages, several seconds of a stall.
        public var maxQueuedBytes = 16 << 20
        public init(endpoint: RedisEndpoint) { self.endpoint = endpoint }
    }

    public let options: Options
    public let instance = InstanceID.random()
    let logger: Logger
    let loop: EventLoop
    let commands: RedisConnection
    let subscriber: RedisConnection
    private let timer: LoopTimer
    /// Written once by `attach`, before the server's loops run.
    private var topics: Topics?
    let outbox: Locked<Outbox>
    let counters = BackplaneCounters()
    /// Backplane-loop state: the channels SUBSCRIBEd on the current connection, and per topic
    /// the last sequence seen from each other instance.
    private var subscribed: Set<String> = []
    private var lastSeen: [String: [InstanceID: UInt64]] = [:]

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
        loop = try EventLoop(index: 0, readBufferSize: 256 << 10)
        commands = RedisConnection(loop: loop, endpoint: options.endpoint, name: "publish", logger: logger)
        subscriber = RedisConnection(loop: loop, endpoint: options.endpoint, name: "subscribe", logger: logger)
        timer = try LoopTimer(loop: loop)
        outbox = Locked(Outbox())
        var reserve = Outbox()
        reserve.bytes.reserveCapacity(64 << 10)
        outbox.withLock { $0 = reserve }
    }

    public func attach(to topics: Topics) {
        self.topics = topics
        commands.onReady = { [unowned self] in self.drainOutbox() }
        commands.onDrained = { [unowned self] in self.drainOutbox() }
        commands.onReply = { [unowned self] in self.commandReply($0) }
        subscriber.onReady = { [unowned self] in self.resubscribe() }
        subscriber.onReply = { [unowned self] in self.subscriberReply($0) }
        subscriber.onDown = { [unowned self] in self.subscriptionLost(wasReady: $0) }
        timer.onTick = { [commands, subscriber] now in
            commands.tick(now: now)
            subscriber.tick(now: now)
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
        topics?.deliverLocally(topic, kind: kind, payload: payload)
        counters.published.add(1, ordering: .relaxed)
        let prefix = options.channelPrefix
        let limit = options.maxQueuedBytes
        let wake = outbox.withLock { o -> Bool in
            // The sequence is taken even for a message that is then dropped: receivers see
            // the gap and count the loss (never silent).
            let seq = (o.sequences[topic] ?? 0) + 1
            o.sequences[topic] = seq
            let size = payload.count + topic.utf8.count + prefix.utf8.count + BackplaneEnvelope.headerSize + 48
            if o.bytes.count + size > limit {
                counters.dropped.add(1, ordering: .relaxed)
                o.droppedSinceLog += 1
                // One line per overflow episode: again only after a minute.
                let now = monotonicMillis()
                if o.overflowLoggedAt == 0 || now > o.overflowLoggedAt + 60_000 {
                    let earlier = o.overflowLoggedAt == 0 ? "" : " (\(o.droppedSinceLog - 1) more dropped since the last such line)"
                    o.overflowLoggedAt = now
                    o.droppedSinceLog = 0
                    logger.error("redis: outgoing queue full (\(limit) bytes waiting for Redis): messages are not forwarded to other instances until it drains (local delivery goes on; counted in wss_backplane_dropped_total)\(earlier)")
                }
                return false
            }
            Self.appendPublish(&o.bytes, prefix: prefix, topic: topic,
                               envelope: BackplaneEnvelope(kind: kind, instance: instance, sequence: seq), payload: payload)
            o.messages += 1
            if o.wakeQueued { return false }
            o.wakeQueued = true
            return true
        }
        if wake { loop.execute { [self] in drainOutbox() } }
    }

    static func appendPublish(_ out: inout [UInt8], prefix: String, topic: String,
                              envelope: BackplaneEnvelope, payload: UnsafeRawBufferPointer) {
        var header: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes on the stack
        withUnsafeMutableBytes(of: &header) { h in
            let head = UnsafeMutableRawBufferPointer(rebasing: h[0..<BackplaneEnvelope.headerSize])
            envelope.writeHeader(into: head)
            var p = prefix, t = topic
            p.withUTF8 { pb in
                t.withUTF8 { tb in
                    RedisCommand.appendPublish(to: &out, prefix: UnsafeRawBufferPointer(pb), channel: UnsafeRawBufferPointer(tb),
                                               header: UnsafeRawBufferPointer(head), payload: payload)
                }
            }
        }
    }

    /// Moves everything queued to the publish connection once it has written the last batch.
    private func drainOutbox() {
        guard commands.state == .ready, commands.unsentCount == 0 else {
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
        commands.send(batch)
        batch.removeAll(keepingCapacity: true)
        outbox.withLock { o in if o.bytes.isEmpty && o.bytes.capacity < batch.capacity { swap(&batch, &o.bytes) } }
    }

    private func commandReply(_ value: RESPValue) {
        if case .error(let why) = value {
            counters.errors.add(1, ordering: .relaxed)
            logger.error("redis: command refused: \(why)")
        }
    }

    // MARK: - Subscriptions (backplane loop)

    public func topicActivated(_ topic: String) { loop.execute { [self] in reconcile(topic) } }
    public func topicDeactivated(_ topic: String) { loop.execute { [self] in reconcile(topic) } }

    /// Subscribes or unsubscribes `topic` to match whether it has local subscribers now
    /// (activation events from two loops may arrive in either order; the truth is read here).
    private func reconcile(_ topic: String) {
        guard subscriber.state == .ready, let topics else { return }
        let wanted = topics.activeTopics.contains(topic)
        if wanted && !subscribed.contains(topic) {
            subscribed.insert(topic)
            subscriber.send(RedisCommand.format("SUBSCRIBE", options.channelPrefix + topic))
        } else if !wanted && subscribed.contains(topic) {
            subscribed.remove(topic)
            lastSeen[topic] = nil
            subscriber.send(RedisCommand.format("UNSUBSCRIBE", options.channelPrefix + topic))
        }
    }

    private func resubscribe() {
        subscribed = Set(topics?.activeTopics ?? [])
        guard !subscribed.isEmpty else { return }
        subscriber.send(RedisCommand.format([Array("SUBSCRIBE".utf8)] + subscribed.map { Array((options.channelPrefix + $0).utf8) }))
        logger.notice("redis: subscribed to \(subscribed.count) active topic(s)")
        counters.resubscribes.add(1, ordering: .relaxed)
    }

    private func subscriptionLost(wasReady: Bool) {
        if wasReady && !subscribed.isEmpty {
            logger.warning("redis: subscription connection lost with \(subscribed.count) active topic(s); messages other instances publish until it is back cannot reach this instance (counted in wss_backplane_lost_total when detected)")
        }
        subscribed = []
    }

    private func subscriberReply(_ value: RESPValue) {
        guard case .array(let items) = value, items.count == 3, items[0].string == "message",
              case .bulk(let channel) = items[1], case .bulk(let message) = items[2] else { return }
        let prefix = options.channelPrefix.utf8
        guard channel.starts(with: prefix) else { return }
        let topic = String(decoding: channel[prefix.count...], as: UTF8.self)
        message.withUnsafeBytes { receive(topic: topic, $0) }
    }

    private func receive(topic: String, _ bytes: UnsafeRawBufferPointer) {
        switch BackplaneEnvelope.parse(bytes) {
        case .failure(let why):
            if counters.malformed.add(1, ordering: .relaxed).oldValue == 0 {
                logger.warning("redis: ignoring a message on topic '\(topic)': \(why) (logged once; counted in wss_backplane_malformed_total)")
            }
        case .success(let (envelope, payload)):
            if envelope.instance == instance { return }  // ours: delivered locally already
            let last = lastSeen[topic]?[envelope.instance]
            if let last, envelope.sequence <= last {
                counters.duplicates.add(1, ordering: .relaxed)
                return
            }
            if let last, envelope.sequence > last + 1 { reportLoss(topic, envelope, missed: envelope.sequence - last - 1) }
            lastSeen[topic, default: [:]][envelope.instance] = envelope.sequence
            counters.received.add(1, ordering: .relaxed)
            topics?.deliverLocally(topic, kind: envelope.kind, payload: payload)
        }
    }

    private func reportLoss(_ topic: String, _ envelope: BackplaneEnvelope, missed: UInt64) {
        counters.lost.add(Int(missed), ordering: .relaxed)
        logger.warning("redis: \(missed) message(s) from instance \(envelope.instance) on topic '\(topic)' never arrived (Redis outage or overflow); clients of this instance missed them")
    }

    // MARK: - Lifecycle

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
}
