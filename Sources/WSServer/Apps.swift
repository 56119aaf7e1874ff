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
public final class ChatApp: WebSocketHandler {
    public init() {}
    public func onOpen(_ connection: WebSocketConnection) {
        connection.subscribe("chat:" + connection.path)
    }
    public func onMessage(_ connection: WebSocketConnection, _ message: Message) {
        connection.publish("chat:" + connection.path, message)
    }
}
