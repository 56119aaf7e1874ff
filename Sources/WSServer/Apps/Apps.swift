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

/// A chat room per path: every message goes to every client on the same path, on every loop.
/// The room's topic is the path itself, so `server.topics.publish("/chat", …)` speaks in it.
public final class ChatApp: WebSocketHandler {
    public init() {}
    public func onOpen(_ connection: WebSocketConnection) {
        connection.subscribe(connection.path)  // the room is the path (a stored string: no allocation per message)
    }
    public func onMessage(_ connection: WebSocketConnection, _ message: Message) {
        connection.publish(connection.path, message)
    }
}
