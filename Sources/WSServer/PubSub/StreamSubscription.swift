import Transport
import WebSocket

/// A message on a topic subscribed with `subscribe(_:since:)`, valid during the callback.
public struct Publication {
    public let topic: String
    public let message: Message
    /// Its place in the topic's stream: nil without history (or, with history, never: such
    /// messages wait until they have one).
    public let position: StreamPosition?
}

/// The answer to `subscribe(_:since:)`, and to each later re-synchronisation (a gap after a
/// broker outage, a stream that began again).
public struct SubscriptionRecovery: Sendable, Equatable {
    public let topic: String
    /// True when nothing was missed: every message after `since` was delivered, in order
    /// (true for `since == nil`). False when the gap was older than the history, the epoch
    /// changed, the history was unreachable, or there is no history at all.
    public let recovered: Bool
    /// Where the subscriber now is in the stream (nil without history).
    public let position: StreamPosition?
    /// How many messages came from the history.
    public let count: Int
    /// False for the answer to the subscribe itself, true for a later re-synchronisation.
    public let isResync: Bool
}

/// What `subscribe(_:since:)` registers in `Topics` instead of the connection: it runs each
/// live message through the seam and hands it, with its position, to the handler's closure.
/// Loop-confined (the connection's loop): the history's answer is carried back to it.
final class StreamSubscription: TopicSubscriber, @unchecked Sendable {
    typealias OnRecovery = (WebSocketConnection, SubscriptionRecovery) -> Void
    typealias OnPublication = (WebSocketConnection, Publication) -> Void

    let topic: String
    let loopIndex: Int
    /// nil once unsubscribed: late answers and deliveries are ignored.
    var connection: WebSocketConnection?
    private var seam: RecoverySeam<PreparedFrame>
    private let onRecovery: OnRecovery
    private let onPublication: OnPublication
    private var answered = false

    init(_ connection: WebSocketConnection, topic: String, since: StreamPosition?,
         onRecovery: @escaping OnRecovery, onPublication: @escaping OnPublication) {
        self.connection = connection
        self.topic = topic
        loopIndex = connection.loop.index
        seam = RecoverySeam(since: since)
        self.onRecovery = onRecovery
        self.onPublication = onPublication
    }

    func receive(_ frame: PreparedFrame) -> SendStatus {
        guard let c = connection else { return .dropped }
        switch seam.live(frame, frame.position) {
        case .deliver: deliver(c, frame, frame.position)
        case .drop, .hold: break
        case .recover(let since): ask(since)
        }
        return .written
    }

    /// Asks the history for what follows `since`; the answer comes back on this loop.
    func ask(_ since: StreamPosition?) {
        guard let c = connection else { return }
        let loop = c.loop
        c.core.topics.backplane.recover(topic, since: since) { answer in
            loop.execute { self.answer(answer) }
        }
    }

    private func answer(_ r: Recovery) {
        guard let c = connection else { return }
        let release = seam.finish(r)
        var count = 0, reported = false
        for d in release.deliveries {
            guard connection != nil else { return }  // the handler unsubscribed or closed
            switch d {
            case .history(let m, let p):
                count += 1
                m.payload.withUnsafeBytes { onPublication(c, Publication(topic: topic, message: Message(kind: m.kind, bytes: $0), position: p)) }
            case .live(let frame, let p):
                if !reported { report(c, release, count); reported = true }
                deliver(c, frame, p)
            }
        }
        if !reported { report(c, release, count) }
        if let again = release.again { ask(again) }
    }

    private func report(_ c: WebSocketConnection, _ release: RecoverySeam<PreparedFrame>.Release, _ count: Int) {
        guard connection != nil else { return }
        onRecovery(c, SubscriptionRecovery(topic: topic, recovered: release.recovered, position: seam.last,
                                           count: count, isResync: answered))
        answered = true
    }

    private func deliver(_ c: WebSocketConnection, _ frame: PreparedFrame, _ position: StreamPosition?) {
        frame.withPayload { kind, bytes in onPublication(c, Publication(topic: topic, message: Message(kind: kind, bytes: bytes), position: position)) }
    }
}

extension WebSocketConnection {
    /// Subscribes to `topic` with positions and recovery (Centrifugo's model). Every message
    /// then goes to `onPublication` with its stream position (default: sent to the client
    /// as it is). With `since` (the position of the last message this client saw, e.g. from
    /// its reconnect URL), the messages it missed come first, in order, then live ones, none
    /// twice and none skipped at the seam; `onRecovery` then says whether that was
    /// everything (`recovered`). It is called again if the subscription later has to be
    /// re-synchronised (a gap after a broker outage). Subscribing again to a topic starts over.
    ///
    /// Needs history (`--history-size`, in process or in Redis) for positions; without it,
    /// messages have no position and any `since` is reported as not recovered. Plain
    /// `subscribe(_:)` stays the zero-copy fast path (no positions, no handler call).
    public func subscribe(_ topic: String, since: StreamPosition?,
                          onRecovery: @escaping (WebSocketConnection, SubscriptionRecovery) -> Void = { _, _ in },
                          onPublication: @escaping (WebSocketConnection, Publication) -> Void = { c, p in c.send(p.message) }) {
        loop.assertInLoop()
        unsubscribe(topic)
        let s = StreamSubscription(self, topic: topic, since: since, onRecovery: onRecovery, onPublication: onPublication)
        extrasBox.streams[topic] = s
        subscriptions.append(topic)
        core.topics.subscribe(s, to: topic)  // live first, so nothing falls between it and the history read
        s.ask(since)
    }

    func detachStream(_ topic: String) -> TopicSubscriber? {
        guard let s = extras?.streams.removeValue(forKey: topic) else { return nil }
        s.connection = nil
        return s
    }
}
