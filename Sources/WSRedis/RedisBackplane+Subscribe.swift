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
            if awaitingAck.isEmpty { ackWaitingSince = loop.now }
            awaitingAck[topic, default: 0] += 1
            subscriber.send(RedisCommand.format("SUBSCRIBE", options.channelPrefix + topic))
        } else if !wanted && subscribed.contains(topic) {
            subscribed.remove(topic)
            lastSeen[topic] = nil
            streamEpochs[topic] = nil
            subscriber.send(RedisCommand.format("UNSUBSCRIBE", options.channelPrefix + topic))
        }
    }

    func resubscribe() {
        subscriberPingSentAt = 0
        connectionUp()
        subscribed = Set(topics?.activeTopics ?? [])
        awaitingAck = Dictionary(uniqueKeysWithValues: subscribed.map { ($0, 1) })
        ackWaitingSince = loop.now
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
        awaitingAck = [:]
        subscriberPingSentAt = 0
        // Recoveries waiting for a subscription that is gone: answered incomplete now (what
        // is published until it is back may never reach this instance).
        let waiting = deferredRecoveries.values.joined()
        deferredRecoveries = [:]
        for run in waiting { run(false) }
    }

    func subscriberReply(_ value: RESPValue) {
        // The keepalive's answer: ["pong", ""] while subscribed (RESP2), +PONG with no channel.
        if value == .simple("PONG") { subscriberPingSentAt = 0; return }
        if case .array(let items) = value, items.count == 2, items[0].string == "pong" { subscriberPingSentAt = 0; return }
        if case .array(let items) = value, items.count == 3, items[0].string == "subscribe", case .bulk(let channel) = items[1] {
            return subscribeConfirmed(channel)
        }
        guard case .array(let items) = value, items.count == 3, items[0].string == "message",
              case .bulk(let channel) = items[1], case .bulk(let message) = items[2] else { return }
        let prefix = options.channelPrefix.utf8
        guard channel.starts(with: prefix) else { return }
        let topic = String(decoding: channel[prefix.count...], as: UTF8.self)
        message.withUnsafeBytes { receive(topic: topic, $0) }
    }

    private func subscribeConfirmed(_ channel: [UInt8]) {
        let prefix = options.channelPrefix.utf8
        guard channel.starts(with: prefix) else { return }
        let topic = String(decoding: channel[prefix.count...], as: UTF8.self)
        guard let n = awaitingAck[topic] else { return }
        awaitingAck[topic] = n > 1 ? n - 1 : nil
        ackWaitingSince = loop.now
        if n == 1, let waiting = deferredRecoveries.removeValue(forKey: topic) {
            for run in waiting { run(true) }
        }
        if awaitingAck.isEmpty { drainOutbox() }
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
            if envelope.isStreamOffset { streamEpochChanged(topic, envelope.epoch) }
            let last = lastSeen[topic]?[key]
            if let last, envelope.sequence <= last {
                counters.duplicates.add(1, ordering: .relaxed)
                return
            }
            if let last, envelope.sequence > last + 1 { reportLoss(topic, envelope, missed: envelope.sequence - last - 1) }
            lastSeen[topic, default: [:]][key] = envelope.sequence
            if mine && envelope.deliveredAtOrigin { return }
            counters.received.add(1, ordering: .relaxed)
            let position = envelope.epoch.map { StreamPosition(offset: envelope.sequence, epoch: $0) }
            topics?.deliverLocally(topic, kind: envelope.kind, payload: payload, position: position)
        }
    }

    /// A stream offset from another epoch: the stream began again (Redis lost it, or it
    /// expired), so its offsets restart and the last one seen means nothing.
    private func streamEpochChanged(_ topic: String, _ epoch: String?) {
        guard let epoch, streamEpochs[topic] != epoch else { return }
        if streamEpochs[topic] != nil, lastSeen[topic]?[Self.streamKey] != nil {
            logger.warning("redis: the history of topic '\(topic)' began again (new epoch \(epoch)): what it held is gone; subscribers that resume from an older position are told their recovery is incomplete")
            lastSeen[topic]?[Self.streamKey] = nil
        }
        streamEpochs[topic] = epoch
    }

    func reportLoss(_ topic: String, _ envelope: BackplaneEnvelope, missed: UInt64) {
        counters.lost.add(Int(missed), ordering: .relaxed)
        let from = envelope.isStreamOffset ? "the stream" : "instance \(envelope.instance)"
        logger.warning("redis: \(missed) message(s) from \(from) on topic '\(topic)' never arrived (Redis outage or overflow); clients of this instance missed them\(envelope.isStreamOffset ? " (recoverable from history)" : "")")
    }
}
