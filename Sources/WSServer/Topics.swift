import Synchronization
import Transport
import WebSocket

/// Pub/sub across loops. Each loop keeps its own subscriber lists, touched only by that loop;
/// a publish frames the message once and hands the same bytes to every loop's queue.
public final class Topics: @unchecked Sendable {
    let loops: [EventLoop]
    private let perLoop: [LoopTopics]

    init(loops: [EventLoop]) {
        self.loops = loops
        self.perLoop = loops.map { _ in LoopTopics() }
    }

    func subscribe(_ c: WebSocketConnection, to topic: String) {
        perLoop[c.loop.index].add(c, topic)
    }

    func unsubscribe(_ c: WebSocketConnection, from topic: String) {
        perLoop[c.loop.index].remove(c, topic)
    }

    /// Publishes a text message to every subscriber of `topic`. Safe from any thread.
    public func publish(_ topic: String, text: String) {
        var t = text
        t.withUTF8 { publish(topic, kind: .text, bytes: UnsafeRawBufferPointer($0)) }
    }

    /// Publishes a binary message to every subscriber of `topic`. Safe from any thread.
    public func publish(_ topic: String, binary: [UInt8]) {
        binary.withUnsafeBytes { publish(topic, kind: .binary, bytes: $0) }
    }

    /// Sends to every subscriber of `topic` on every loop. Safe from any thread.
    public func publish(_ topic: String, kind: Message.Kind, bytes: UnsafeRawBufferPointer) {
        let frame = PreparedFrame(opcode: kind == .text ? .text : .binary, payload: bytes)
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

/// A server frame built once and shared by every recipient.
final class PreparedFrame: Sendable {
    let bytes: [UInt8]
    let payloadCount: Int
    init(opcode: Opcode, payload: UnsafeRawBufferPointer) {
        payloadCount = payload.count
        var proto = WebSocketProtocol(role: .server)
        proto.send(opcode, payload)
        bytes = proto.outbound.bytes
    }
}

/// One loop's subscriptions. Loop-confined.
final class LoopTopics: @unchecked Sendable {
    private var subscribers: [String: [ObjectIdentifier: WebSocketConnection]] = [:]

    func add(_ c: WebSocketConnection, _ topic: String) {
        subscribers[topic, default: [:]][ObjectIdentifier(c)] = c
    }

    func remove(_ c: WebSocketConnection, _ topic: String) {
        subscribers[topic]?[ObjectIdentifier(c)] = nil
        if subscribers[topic]?.isEmpty == true { subscribers[topic] = nil }
    }

    func deliver(_ topic: String, _ frame: PreparedFrame) {
        guard let subs = subscribers[topic] else { return }
        frame.bytes.withUnsafeBytes { bytes in
            for c in subs.values { _ = c.sendPrepared(bytes, payloadCount: frame.payloadCount) }
        }
    }
}
