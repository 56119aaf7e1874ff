import Transport
import WSServer
import WebSocket

/// History in Redis Streams: publishing through the script, recovery by XRANGE.
extension RedisBackplane {
    /// `EVALSHA <publish> 2 <prefix>h:<topic> <prefix>m:<topic> <header> <payload> <maxlen>
    /// <ttl> <prefix><topic> <epoch> <meta ttl>`, written straight into the outbox.
    func appendHistoryPublish(_ out: inout [UInt8], _ scripts: HistoryScripts, topic: String,
                              envelope: BackplaneEnvelope, payload: UnsafeRawBufferPointer) {
        withHeader(envelope) { header in
            withNames(topic) { prefix, name in
                appendEvalSHA(&out, scripts.publishSHA, arguments: 7, prefix, name)
                RedisCommand.appendBulk(&out, header)
                RedisCommand.appendBulk(&out, payload)
                scripts.maxLength.withUnsafeBytes { RedisCommand.appendBulk(&out, $0) }
                scripts.ttl.withUnsafeBytes { RedisCommand.appendBulk(&out, $0) }
                RedisCommand.appendBulk(&out, prefix, name)
                var epoch = scripts.epochPrefix + "-" + String(envelope.sequence)
                epoch.withUTF8 { RedisCommand.appendBulk(&out, UnsafeRawBufferPointer($0)) }
                scripts.metaTTL.withUnsafeBytes { RedisCommand.appendBulk(&out, $0) }
            }
        }
    }

    /// `EVALSHA <sha> 2 <prefix>h:<topic> <prefix>m:<topic>`, the array header counting
    /// the `arguments` the caller appends next.
    private func appendEvalSHA(_ out: inout [UInt8], _ sha: [UInt8], arguments: Int,
                               _ prefix: UnsafeRawBufferPointer, _ name: UnsafeRawBufferPointer) {
        RedisCommand.appendArrayHeader(&out, 5 + arguments)
        RedisCommand.appendASCII(&out, "$7\r\nEVALSHA\r\n")
        sha.withUnsafeBytes { RedisCommand.appendBulk(&out, $0) }
        RedisCommand.appendASCII(&out, "$1\r\n2\r\n")
        appendKeys(&out, prefix, name)
    }

    private func appendKeys(_ out: inout [UInt8], _ prefix: UnsafeRawBufferPointer, _ name: UnsafeRawBufferPointer) {
        var h = "h:", m = "m:"
        h.withUTF8 { RedisCommand.appendBulk(&out, prefix, UnsafeRawBufferPointer($0), name) }
        m.withUTF8 { RedisCommand.appendBulk(&out, prefix, UnsafeRawBufferPointer($0), name) }
    }

    public func recover(_ topic: String, since: StreamPosition?, completion: @escaping @Sendable (Recovery) -> Void) {
        guard let scripts else { return completion(Recovery(messages: [], position: nil, recovered: since == nil)) }
        loop.execute { [self] in
            // Read the history only once live messages of the topic reach this instance: a
            // first local subscriber's SUBSCRIBE may still be on its way, or (activation from
            // another loop not run yet) not even sent.
            let active = topics?.activeTopics.contains(topic) == true
            if active && subscriber.state == .ready && !subscribed.contains(topic) { reconcile(topic) }
            if active && subscriber.state != .ready {
                return completion(Recovery(messages: [], position: nil, recovered: false))
            }
            guard awaitingAck[topic] != nil else { return readHistory(scripts, topic, since, completion) }
            deferredRecoveries[topic, default: []].append { [self] subscribed in
                if subscribed { readHistory(scripts, topic, since, completion) } else { completion(Recovery(messages: [], position: nil, recovered: false)) }
            }
        }
    }

    private func readHistory(_ scripts: HistoryScripts, _ topic: String, _ since: StreamPosition?,
                             _ completion: @escaping @Sendable (Recovery) -> Void) {
        guard commands.state == .ready else {
            return completion(Recovery(messages: [], position: nil, recovered: false))
        }
        var out: [UInt8] = []
        withNames(topic) { prefix, name in
            appendEvalSHA(&out, scripts.recoverSHA, arguments: 4, prefix, name)
        }
        let first = since.map { "\($0.offset + 1)-0" } ?? "-"
        for arg in [first, scripts.epochPrefix + "-r\(monotonicMillis())", String(decoding: scripts.metaTTL, as: UTF8.self), since?.epoch ?? ""] {
            var a = arg
            a.withUTF8 { RedisCommand.appendBulk(&out, UnsafeRawBufferPointer($0)) }
        }
        replies.push(.recovery(.init(topic: topic, since: since, completion: completion)), now: loop.now)
        commands.send(out)
    }

    /// `{epoch, last offset, [[id, [m, envelope]], …]}` → a Recovery.
    func finishRecovery(_ request: ReplyQueue.RecoveryRequest, _ value: RESPValue) {
        guard let items = value.array, items.count == 3, let epoch = items[0].string,
              let last = items[1].string.flatMap({ UInt64($0) }), let entries = items[2].array else {
            logger.error("redis: unexpected answer to a history recovery of '\(request.topic)': \(value)")
            return request.completion(Recovery(messages: [], position: nil, recovered: false))
        }
        var messages: [RecoveredMessage] = []
        for entry in entries {
            guard let fields = entry.array?.last?.array, fields.count == 2, let bytes = fields[1].bytes else { continue }
            bytes.withUnsafeBytes { raw in
                if case .success(let (e, payload)) = BackplaneEnvelope.parse(raw) {
                    messages.append(RecoveredMessage(kind: e.kind, payload: Array(payload), offset: e.sequence))
                }
            }
        }
        let position = StreamPosition(offset: last, epoch: epoch)
        guard let since = request.since else { return request.completion(Recovery(messages: [], position: position, recovered: true)) }
        let complete = since.epoch == epoch && since.offset <= last
            && (messages.first.map { $0.offset == since.offset + 1 } ?? (last == since.offset))
        request.completion(Recovery(messages: messages, position: position, recovered: complete))
    }
}
