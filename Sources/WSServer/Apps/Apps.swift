import WebSocket

/// The classic example server: text comes back followed by "响应" ("response"); binary comes
/// back unchanged.
public final class ReplyApp: WebSocketHandler {
    static let suffix: [UInt8] = Array("响应".utf8)
    public init() {}
    public func onMessage(_ connection: WebSocketConnection, _ message: Message) {
        if message.isText {
            var reply = [UInt8]()
            reply.reserveCapacity(message.bytes.count + Self.suffix.count)
            reply.append(contentsOf: message.bytes)
            reply.append(contentsOf: Self.suffix)
            reply.withUnsafeBytes { _ = connection.send(utf8Text: $0) }
        } else {
            connection.send(message)
        }
    }
}

/// Byte-exact echo of text and binary (conformance and benchmarks).
public final class EchoApp: WebSocketHandler {
    public init() {}
    public func onMessage(_ connection: WebSocketConnection, _ message: Message) {
        connection.send(message)
    }
}

/// Chat rooms: every message goes to every client in the same room, on every loop and, with
/// a backplane, on every instance.
///
/// - `?room=NAME` (what the page sends): the room's topic is "<path>#NAME"; each text
///   message reaches clients in the JSON envelope of `ChatEnvelope`, with its stream offset
///   and epoch when history is on, and `?room=NAME&since=OFFSET&epoch=EPOCH` resumes: the
///   messages missed since then come first, in order, then a `recovery` line saying whether
///   that was all (`subscribe(_:since:)`).
/// - No room (a bare `/chat`): the classic relay, byte for byte, on the topic named by the
///   path, so `server.topics.publish("/chat", …)` speaks in it.
public final class ChatApp: WebSocketHandler {
    public init() {}

    public func shouldUpgrade(_ request: UpgradeRequest) -> UpgradeDecision {
        switch ChatRoom.parse(path: request.path, query: request.query) {
        case .success(let room): return .accept(userData: room)
        case .failure(let why): return .reject(status: 400, reason: why.description)
        }
    }

    public func onOpen(_ connection: WebSocketConnection) {
        guard let room = connection.userData as? ChatRoom else {
            connection.subscribe(connection.path)  // the room is the path (a stored string: no allocation per message)
            return
        }
        connection.subscribe(room.topic, since: room.since,
                             onRecovery: { c, r in c.send(text: ChatEnvelope.recovery(r)) },
                             onPublication: { c, p in
                                 if p.message.isText { ChatEnvelope.send(p, to: c) } else { c.send(p.message) }
                             })
    }

    public func onMessage(_ connection: WebSocketConnection, _ message: Message) {
        connection.publish((connection.userData as? ChatRoom)?.topic ?? connection.path, message)
    }
}
