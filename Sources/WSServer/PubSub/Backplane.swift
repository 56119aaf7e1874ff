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
}

extension Backplane {
    public func topicActivated(_ topic: String) {}
    public func topicDeactivated(_ topic: String) {}
    public func shutdown() {}
    public func metricsText() -> String { "" }
}

/// Today's behaviour, the default: a publish goes to every loop of this process.
public final class InProcessBackplane: Backplane {
    private let topics = Locked<Topics?>(nil)
    public init() {}
    public func attach(to topics: Topics) { self.topics.withLock { $0 = topics } }
    public func publish(_ topic: String, kind: Message.Kind, payload: UnsafeRawBufferPointer) {
        topics.withLock { $0 }?.deliverLocally(topic, kind: kind, payload: payload)
    }
}
