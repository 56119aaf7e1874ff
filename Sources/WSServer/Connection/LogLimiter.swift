import Transport

/// Says whether a log line about `key` (a client address) may be written now: once per key
/// per interval, so a scanner or a misconfigured client cannot flood the log. Shared by all
/// loops (not on the message path); holds at most `capacity` keys.
final class LogLimiter: Sendable {
    private let last = Locked<[String: UInt64]>([:])
    let intervalMillis: UInt64
    let capacity: Int

    init(intervalMillis: UInt64 = 60_000, capacity: Int = 4096) {
        self.intervalMillis = intervalMillis
        self.capacity = capacity
    }

    func allows(_ key: String, now: UInt64) -> Bool {
        last.withLock { m in
            if let t = m[key], now < t + intervalMillis { return false }
            if m.count >= capacity {
                m = m.filter { now < $0.value + intervalMillis }
                if m.count >= capacity { return false }
            }
            m[key] = now
            return true
        }
    }
}

/// "203.0.113.5:4242" → "203.0.113.5", "[::1]:80" and "::1" → "::1": the client, not the
/// connection (the access log's parser, so a bare IPv6 address is not cut at its last colon).
func hostPart(_ address: String) -> String { address.hostPart }
