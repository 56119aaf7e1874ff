import Transport
import WebSocket

/// Where a subscriber is in a topic's stream (Centrifugo's model): the offset of the last
/// message it saw and the epoch of the stream. A new epoch means the history was lost (the
/// topic expired, or the store restarted), so offsets from an older epoch mean nothing.
public struct StreamPosition: Hashable, Sendable, CustomStringConvertible {
    public var offset: UInt64
    public var epoch: String
    public init(offset: UInt64, epoch: String) {
        self.offset = offset
        self.epoch = epoch
    }
    public var description: String { "\(epoch):\(offset)" }
}

/// `--history-size N --history-ttl S`: keep each topic's last N messages for S seconds.
/// The stream's epoch and last offset live longer (`metaTTL`, `--history-meta-ttl`, default a
/// day): a topic idle past the TTL loses its messages but not its place, so a subscriber that
/// saw everything is still told its recovery is complete, and live ones need no re-sync.
public struct HistoryOptions: Sendable, Equatable {
    public var size: Int
    public var ttl: Double
    public var metaTTL: Double
    public init(size: Int, ttl: Double, metaTTL: Double? = nil) {
        self.size = size
        self.ttl = ttl
        self.metaTTL = max(ttl, metaTTL ?? 86_400)
    }
}

public struct RecoveredMessage: Sendable, Equatable {
    public var kind: Message.Kind
    public var payload: [UInt8]
    public var offset: UInt64
    public init(kind: Message.Kind, payload: [UInt8], offset: UInt64) {
        self.kind = kind
        self.payload = payload
        self.offset = offset
    }
}

/// What a reconnecting subscriber gets: the messages after its position, in order, the
/// stream's position now, and whether that is everything it missed (false when the gap is
/// older than the history, the epoch changed, or there is no history at all).
public struct Recovery: Sendable, Equatable {
    public var messages: [RecoveredMessage]
    public var position: StreamPosition?
    public var recovered: Bool
    public init(messages: [RecoveredMessage], position: StreamPosition?, recovered: Bool) {
        self.messages = messages
        self.position = position
        self.recovered = recovered
    }
}

/// In-memory history per topic (the single-instance store; Redis Streams for many). Safe
/// from any thread; one lock, taken once per publish and per recovery.
public final class TopicHistory: @unchecked Sendable {
    public let options: HistoryOptions
    private let clock: @Sendable () -> UInt64
    private let streams = Locked<[String: Stream]>([:])
    private var appends = 0  // under the lock: every 1024 appends, expired topics are swept

    struct Stream {
        var epoch: String
        var lastOffset: UInt64 = 0
        var entries: [(offset: UInt64, kind: Message.Kind, payload: [UInt8], at: UInt64)] = []
        var head = 0  // entries before `head` are dropped (ring without moving elements)
        var touched: UInt64
        var retained: ArraySlice<(offset: UInt64, kind: Message.Kind, payload: [UInt8], at: UInt64)> { entries[head...] }
    }

    /// `clock`: milliseconds (monotonic); injectable so tests need no sleeps.
    public init(options: HistoryOptions, clock: @escaping @Sendable () -> UInt64 = monotonicMillis) {
        self.options = options
        self.clock = clock
    }

    /// Appends a message and returns its position. `body` runs under the same lock with the
    /// new offset, so deliveries done there leave in offset order.
    @discardableResult
    public func append(_ topic: String, kind: Message.Kind, payload: UnsafeRawBufferPointer,
                       then body: (StreamPosition) -> Void = { _ in }) -> StreamPosition {
        let now = clock()
        return streams.withLock { all in
            appends += 1
            if appends & 1023 == 0 { all = all.filter { now < $0.value.touched + metaTTLMillis } }
            var s = current(&all, topic, now)
            s.lastOffset += 1
            s.entries.append((s.lastOffset, kind, Array(payload), now))
            trim(&s, now)
            all[topic] = s
            let position = StreamPosition(offset: s.lastOffset, epoch: s.epoch)
            body(position)
            return position
        }
    }

    /// The messages after `since`, and whether they are all that was missed.
    public func recover(_ topic: String, since: StreamPosition?) -> Recovery {
        let now = clock()
        return streams.withLock { all in
            var s = current(&all, topic, now)
            trim(&s, now)
            all[topic] = s
            let position = StreamPosition(offset: s.lastOffset, epoch: s.epoch)
            guard let since else { return Recovery(messages: [], position: position, recovered: true) }
            let sameEpoch = since.epoch == s.epoch && since.offset <= s.lastOffset
            let after = sameEpoch ? since.offset : 0
            let messages = s.retained.filter { $0.offset > after }.map { RecoveredMessage(kind: $0.kind, payload: $0.payload, offset: $0.offset) }
            // Complete when nothing between `since` and the first retained message is gone.
            let oldest = s.retained.first?.offset ?? s.lastOffset + 1
            return Recovery(messages: messages, position: position, recovered: sameEpoch && oldest <= since.offset + 1)
        }
    }

    /// The topic's stream, or a new one (new epoch) if it never existed or expired: after
    /// `metaTTL` without a publish or a recovery its offsets are gone too.
    private func current(_ all: inout [String: Stream], _ topic: String, _ now: UInt64) -> Stream {
        if var s = all[topic], now < s.touched + metaTTLMillis {
            s.touched = now
            return s
        }
        return Stream(epoch: Self.newEpoch(), touched: now)
    }

    private var ttlMillis: UInt64 { UInt64(options.ttl * 1000) }
    private var metaTTLMillis: UInt64 { UInt64(options.metaTTL * 1000) }

    private func trim(_ s: inout Stream, _ now: UInt64) {
        while s.entries.count - s.head > options.size || (s.head < s.entries.count && now >= s.entries[s.head].at + ttlMillis) {
            s.entries[s.head].payload = []
            s.head += 1
        }
        if s.head > 64 && s.head * 2 > s.entries.count {
            s.entries.removeFirst(s.head)
            s.head = 0
        }
    }

    /// 64 random bits (OS CSPRNG) as 16 hex digits.
    static func newEpoch() -> String {
        var rng = SystemRandomNumberGenerator()
        let h = String(rng.next() as UInt64, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h
    }
}
