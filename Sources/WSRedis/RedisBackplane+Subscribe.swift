import WSServer

/// The SUBSCRIBE side: one channel per topic with local subscribers, messages from Redis
/// into `Topics.deliverLocally`. Backplane-loop only.
extension RedisBackplane {
    public func topicActivated(_ topic: String) { loop.execute { [self] in reconcile(topic) } }
    public func topicDeactivated(_ topic: String) { loop.execute { [self] in reconcile(topic) } }

    /// Subscribes or unsubscribes `topic` to match whether it has local subscribers now
    /// (activation events from two loops may arrive in either order; the truth is read here).
    func reconcile(_ topic: String) {
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

    func resubscribe() {
        subscribed = Set(topics?.activeTopics ?? [])
        subscribeAcksPending = subscribed.count
        guard !subscribed.isEmpty else { return drainOutbox() }
        subscriber.send(RedisCommand.format([Array("SUBSCRIBE".utf8)] + subscribed.map { Array((options.channelPrefix + $0).utf8) }))
        logger.notice("redis: subscribed to \(subscribed.count) active topic(s)")
        counters.resubscribes.add(1, ordering: .relaxed)
    }

    func subscriptionLost(wasReady: Bool) {
        if wasReady && !subscribed.isEmpty {
            logger.warning("redis: subscription connection lost with \(subscribed.count) active topic(s); messages other instances publish until it is back cannot reach this instance (counted in wss_backplane_lost_total when detected)")
        }
        subscribed = []
        subscribeAcksPending = 0
    }

    func subscriberReply(_ value: RESPValue) {
        if subscribeAcksPending > 0, case .array(let items) = value, items.first?.string == "subscribe" {
            subscribeAcksPending -= 1
            if subscribeAcksPending == 0 { drainOutbox() }
            return
        }
        guard case .array(let items) = value, items.count == 3, items[0].string == "message",
              case .bulk(let channel) = items[1], case .bulk(let message) = items[2] else { return }
        let prefix = options.channelPrefix.utf8
        guard channel.starts(with: prefix) else { return }
        let topic = String(decoding: channel[prefix.count...], as: UTF8.self)
        message.withUnsafeBytes { receive(topic: topic, $0) }
    }

    static let streamKey = InstanceID(high: 0, low: 0)

    func receive(topic: String, _ bytes: UnsafeRawBufferPointer) {
        switch BackplaneEnvelope.parse(bytes) {
        case .failure(let why):
            if counters.malformed.add(1, ordering: .relaxed).oldValue == 0 {
                logger.warning("redis: ignoring a message on topic '\(topic)': \(why) (logged once; counted in wss_backplane_malformed_total)")
            }
        case .success(let (envelope, payload)):
            let mine = envelope.instance == instance
            // Without history our own messages were delivered when published; with history
            // they come back here with their offset, unless delivered during an outage.
            if mine && !envelope.isStreamOffset { return }
            let key = envelope.isStreamOffset ? Self.streamKey : envelope.instance
            let last = lastSeen[topic]?[key]
            if let last, envelope.sequence <= last {
                counters.duplicates.add(1, ordering: .relaxed)
                return
            }
            if let last, envelope.sequence > last + 1 { reportLoss(topic, envelope, missed: envelope.sequence - last - 1) }
            lastSeen[topic, default: [:]][key] = envelope.sequence
            if mine && envelope.deliveredAtOrigin { return }
            counters.received.add(1, ordering: .relaxed)
            topics?.deliverLocally(topic, kind: envelope.kind, payload: payload)
        }
    }

    func reportLoss(_ topic: String, _ envelope: BackplaneEnvelope, missed: UInt64) {
        counters.lost.add(Int(missed), ordering: .relaxed)
        let from = envelope.isStreamOffset ? "the stream" : "instance \(envelope.instance)"
        logger.warning("redis: \(missed) message(s) from \(from) on topic '\(topic)' never arrived (Redis outage or overflow); clients of this instance missed them\(envelope.isStreamOffset ? " (recoverable from history)" : "")")
    }
}
