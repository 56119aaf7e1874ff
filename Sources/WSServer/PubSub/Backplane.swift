import Transport
import WebSocket

/// Where published messages travel. `Topics` hands every publish to its backplane and the
/// backplane hands messages to deliver back to `Topics.deliverLocally`, which frames each
/// once and queues it on every loop. The in-process backplane does that directly; a broker
/// backplane (Redis) also forwards publishes to other instances and delivers theirs, so a
/// handler never sees which one runs.
public protocol Backplane: AnyObject, Sendable {
    /// Called once, before any publish, by the `Topics` this backplane serves.
    func attach(to topics: Topics)
    /// A publish on this instance (any thread). The backplane must deliver it to this
    /// instance's subscribers (`topics.deliverLocally`) exactly once.
    func publish(_ topic: String, kind: Message.Kind, payload: UnsafeRawBufferPointer)
    /// The first subscriber of `topic` on this instance appeared (any loop's thread).
    func topicActivated(_ topic: String)
    /// The last subscriber of `topic` on this instance left (any loop's thread).
    func topicDeactivated(_ topic: String)
    /// The server is stopping: release sockets and threads.
    func shutdown()
    /// Extra lines for `/metrics` (Prometheus text format), e.g. the broker's counters.
    func metricsText() -> String
    /// The messages of `topic` after `since` from the history (if this backplane keeps one),
    /// with the stream's position and whether that is all that was missed. `completion` may
    /// run on another thread (a broker answers asynchronously).
    func recover(_ topic: String, since: StreamPosition?, completion: @escaping @Sendable (Recovery) -> Void)
    /// Presence: `local` subscribers here plus those of the other instances it knows of.
    func presence(_ topic: String, local: Int, completion: @escaping @Sendable (Int) -> Void)
    /// Blocks up to `timeout` seconds until the backplane serves as it does in steady state
    /// (a broker: connected, or its first attempt failed, so it is an outage); returns
    /// whether it is. `Server.start` calls it once, after `attach`, before it binds, so
    /// that no client reaches the server while recoveries would report a loss that is not one.
    func waitUntilReady(timeout: Double) -> Bool
}

extension Backplane {
    public func topicActivated(_ topic: String) {}
    public func topicDeactivated(_ topic: String) {}
    public func shutdown() {}
    public func metricsText() -> String { "" }
    /// No history: nothing to recover, and a subscriber that had a position missed what
    /// was published meanwhile.
    public func recover(_ topic: String, since: StreamPosition?, completion: @escaping @Sendable (Recovery) -> Void) {
        completion(Recovery(messages: [], position: nil, recovered: since == nil))
    }
    /// Nothing to connect to: ready at once.
    public func waitUntilReady(timeout: Double) -> Bool { true }
    /// One instance: the local count is the whole count.
    public func presence(_ topic: String, local: Int, completion: @escaping @Sendable (Int) -> Void) {
        completion(local)
    }
}

/// Today's behaviour, the default: a publish goes to every loop of this process. With
/// `history`, each topic also keeps its last messages in memory for recovery.
public final class InProcessBackplane: Backplane {
    private let topics = Locked<Topics?>(nil)
    public let history: TopicHistory?
    public init(history: HistoryOptions? = nil) {
        self.history = history.map { TopicHistory(options: $0) }
    }
    public func attach(to topics: Topics) { self.topics.withLock { $0 = topics } }
    public func publish(_ topic: String, kind: Message.Kind, payload: UnsafeRawBufferPointer) {
        guard let topics = topics.withLock({ $0 }) else { return }
        if let history {
            // Delivered under the history's lock: offsets reach every loop's queue in order.
            history.append(topic, kind: kind, payload: payload) { topics.deliverLocally(topic, kind: kind, payload: payload, position: $0) }
        } else {
            topics.deliverLocally(topic, kind: kind, payload: payload)
        }
    }
    public func recover(_ topic: String, since: StreamPosition?, completion: @escaping @Sendable (Recovery) -> Void) {
        guard let history else { return completion(Recovery(messages: [], position: nil, recovered: since == nil)) }
        completion(history.recover(topic, since: since))
    }
}
