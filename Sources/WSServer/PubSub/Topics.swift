import Synchronization
import Transport
import WebSocket

/// Pub/sub across loops (and, through the backplane, across instances). Each loop keeps its
/// own subscriber lists, touched only by that loop; a message to deliver is framed once and
/// the same bytes go to every loop's queue.
public final class Topics: @unchecked Sendable {
    let loops: [EventLoop]
    private let perLoop: [LoopTopics]
    public let backplane: Backplane
    /// Per topic, how many loops have at least one subscriber: touched only when a loop's
    /// first subscriber of a topic arrives or its last leaves, never per message.
    private let activeLoops = Locked<[String: Int]>([:])
    /// Compresses each published message once for every permessage-deflate subscriber without
    /// context takeover (nil: compression off).
    let compressor: SharedCompressor?

    init(loops: [EventLoop], backplane: Backplane = InProcessBackplane(), compressor: SharedCompressor? = nil) {
        self.loops = loops
        self.compressor = compressor
        self.perLoop = loops.map { _ in LoopTopics() }
        self.backplane = backplane
        backplane.attach(to: self)
    }

    /// Call on `c`'s loop.
    func subscribe(_ c: TopicSubscriber, to topic: String) {
        loops[c.loopIndex].assertInLoop()
        if perLoop[c.loopIndex].add(c, topic) { loopActivity(topic, +1) }
    }

    /// Call on `c`'s loop.
    func unsubscribe(_ c: TopicSubscriber, from topic: String) {
        loops[c.loopIndex].assertInLoop()
        let target = c.detachStream(topic) ?? c
        if perLoop[c.loopIndex].remove(target, topic) { loopActivity(topic, -1) }
    }

    private func loopActivity(_ topic: String, _ delta: Int) {
        let (before, after) = activeLoops.withLock { m -> (Int, Int) in
            let b = m[topic] ?? 0
            m[topic] = b + delta == 0 ? nil : b + delta
            return (b, b + delta)
        }
        if before == 0 && after > 0 { backplane.topicActivated(topic) }
        if before > 0 && after == 0 { backplane.topicDeactivated(topic) }
    }

    /// How many subscribers `topic` has on this instance (each loop counts its own);
    /// `completion` runs on one of the loops.
    public func localSubscriberCount(_ topic: String, completion: @escaping @Sendable (Int) -> Void) {
        let tally = Locked<(sum: Int, left: Int)>((0, loops.count))
        for loop in loops {
            let local = perLoop[loop.index]
            loop.execute {
                let n = local.count(topic)
                let total = tally.withLock { t -> Int? in
                    t.sum += n
                    t.left -= 1
                    return t.left == 0 ? t.sum : nil
                }
                if let total { completion(total) }
            }
        }
    }

    /// Presence: how many clients are subscribed to `topic` on every instance the backplane
    /// reaches (this one only for the in-process backplane). `completion` may run on any thread.
    public func presence(_ topic: String, completion: @escaping @Sendable (Int) -> Void) {
        localSubscriberCount(topic) { [backplane] local in backplane.presence(topic, local: local, completion: completion) }
    }

    /// Topics with at least one subscriber on this instance (e.g. to resubscribe a broker).
    public var activeTopics: [String] { activeLoops.withLock { Array($0.keys) } }

    /// Publishes a text message to every subscriber of `topic`. Safe from any thread.
    public func publish(_ topic: String, text: String) {
        var t = text
        t.withUTF8 { publish(topic, kind: .text, bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Publishes a binary message to every subscriber of `topic`. Safe from any thread.
    public func publish(_ topic: String, binary: [UInt8]) {
        binary.withUnsafeBytes { publish(topic, kind: .binary, bytes: $0) }
    }

    /// Sends to every subscriber of `topic`, through the backplane. Safe from any thread.
    public func publish(_ topic: String, kind: Message.Kind, bytes: UnsafeRawBufferPointer) {
        backplane.publish(topic, kind: kind, payload: bytes)
    }

    /// Delivers to this instance's subscribers of `topic` on every loop (what a backplane
    /// calls), with the message's `position` in the topic's stream when there is history.
    /// Safe from any thread; calls for one topic must come in offset order.
    public func deliverLocally(_ topic: String, kind: Message.Kind, payload bytes: UnsafeRawBufferPointer,
                               position: StreamPosition? = nil) {
        let frame = PreparedFrame(opcode: kind == .text ? .text : .binary, payload: bytes, compressor: compressor, position: position)
        for loop in loops {
            let local = perLoop[loop.index]
            if loop.isCurrent {
                local.deliver(topic, frame)
            } else {
                loop.execute { local.deliver(topic, frame) }
            }
        }
    }
}

/// Anything that can be subscribed to topics: a WebSocket connection, or a fallback session
/// standing behind one. It gets the frame built once for all subscribers; a transport that
/// does not speak WebSocket takes the payload (`PreparedFrame.withPayload`) instead.
protocol TopicSubscriber: AnyObject {
    /// The loop it lives on; deliveries come on that loop's thread.
    var loopIndex: Int { get }
    func receive(_ frame: PreparedFrame) -> SendStatus
    /// The subscription object standing for it on `topic` (`subscribe(_:since:)`), taken away.
    func detachStream(_ topic: String) -> TopicSubscriber?
}

extension TopicSubscriber {
    func detachStream(_ topic: String) -> TopicSubscriber? { nil }
}

extension PreparedFrame {
    /// The message kind and payload inside the frame (server frames are unmasked: the
    /// payload is the frame's tail).
    func withPayload<R>(_ body: (Message.Kind, UnsafeRawBufferPointer) -> R) -> R {
        bytes.withUnsafeBytes { raw in
            let kind: Message.Kind = opcode == .text ? .text : .binary
            return body(kind, UnsafeRawBufferPointer(rebasing: raw[(raw.count - payloadCount)...]))
        }
    }
}

/// One loop's subscriptions. Loop-confined.
final class LoopTopics: @unchecked Sendable {
    private var subscribers: [String: [ObjectIdentifier: TopicSubscriber]] = [:]

    /// True if `c` is this loop's first subscriber of `topic`.
    func add(_ c: TopicSubscriber, _ topic: String) -> Bool {
        let first = subscribers[topic] == nil
        subscribers[topic, default: [:]][ObjectIdentifier(c)] = c
        return first
    }

    /// True if `c` was this loop's last subscriber of `topic`.
    func remove(_ c: TopicSubscriber, _ topic: String) -> Bool {
        guard subscribers[topic]?.removeValue(forKey: ObjectIdentifier(c)) != nil else { return false }
        if subscribers[topic]?.isEmpty == true { subscribers[topic] = nil; return true }
        return false
    }

    func count(_ topic: String) -> Int { subscribers[topic]?.count ?? 0 }

    func deliver(_ topic: String, _ frame: PreparedFrame) {
        guard let subs = subscribers[topic] else { return }
        for c in subs.values { _ = c.receive(frame) }
    }
}
