#if canImport(Glibc)
import Glibc
#endif
import WSServer

/// Presence across instances: every second each instance writes its subscriber count per
/// active topic into `<prefix>p:<topic>` (field = instance id, value = "count:unix seconds",
/// the hash expires after 10 s); a query adds the other instances' fresh entries (≤ 3 s old,
/// so a crashed instance stops counting within 3 s) to the local count.
extension RedisBackplane {
    static let presenceFresh = 3

    /// Called every tick on the backplane loop; writes every 4th tick (1 s).
    func presenceTick() {
        presenceTicks += 1
        guard presenceTicks % 4 == 0, commands.state == .ready, let topics else { return }
        for topic in subscribed {
            topics.localSubscriberCount(topic) { [self] n in
                loop.execute { [self] in writePresence(topic, n) }
            }
        }
    }

    private func writePresence(_ topic: String, _ count: Int) {
        guard commands.state == .ready else { return }
        let key = options.channelPrefix + "p:" + topic
        if count == 0 {
            replies.push(.ignore(1), now: loop.now)
            commands.send(RedisCommand.format("HDEL", key, instanceField))
            return
        }
        replies.push(.ignore(2), now: loop.now)
        commands.send(RedisCommand.format("HSET", key, instanceField, "\(count):\(time(nil))")
                      + RedisCommand.format("EXPIRE", key, "10"))
    }

    var instanceField: String { "\(instance.high)-\(instance.low)" }

    public func presence(_ topic: String, local: Int, completion: @escaping @Sendable (Int) -> Void) {
        loop.execute { [self] in
            guard commands.state == .ready else { return completion(local) }
            replies.push(.presence(local: local, completion: completion), now: loop.now)
            commands.send(RedisCommand.format("HGETALL", options.channelPrefix + "p:" + topic))
        }
    }

    /// HGETALL answer: [field, value, field, value, …].
    func finishPresence(_ value: RESPValue, local: Int, completion: @Sendable (Int) -> Void) {
        var total = local
        let now = Int(time(nil))
        let items = value.array ?? []
        var i = 0
        while i + 1 < items.count {
            defer { i += 2 }
            guard items[i].string != instanceField, let v = items[i + 1].string else { continue }
            let parts = v.split(separator: ":")
            guard parts.count == 2, let n = Int(parts[0]), let at = Int(parts[1]), now - at <= Self.presenceFresh else { continue }
            total += n
        }
        completion(total)
    }
}
