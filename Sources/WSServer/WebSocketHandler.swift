import WebSocket

/// A received message, valid only during the callback that receives it: its bytes point into
/// the connection's receive buffer. Copy (`text`, `data`) to keep it.
public struct Message {
    public enum Kind: Sendable { case text, binary }
    public let kind: Kind
    /// The payload (UTF-8 for text, already validated).
    public let bytes: UnsafeRawBufferPointer

    public init(kind: Kind, bytes: UnsafeRawBufferPointer) {
        self.kind = kind
        self.bytes = bytes
    }

    public var isText: Bool { kind == .text }
    /// The payload decoded as a String (text messages are valid UTF-8).
    public var text: String { String(decoding: bytes, as: UTF8.self) }
    /// A copy of the payload.
    public var data: [UInt8] { Array(bytes) }
}

/// What an application does with the connections on one path. Callbacks run on the
/// connection's event loop thread, one at a time per connection; a handler instance is shared
/// by all loops, so it must be safe to call from several threads (keep per-connection state in
/// `connection.userData`).
public protocol WebSocketHandler: AnyObject, Sendable {
    func onOpen(_ connection: WebSocketConnection)
    func onMessage(_ connection: WebSocketConnection, _ message: Message)
    func onPing(_ connection: WebSocketConnection, _ payload: UnsafeRawBufferPointer)
    func onPong(_ connection: WebSocketConnection, _ payload: UnsafeRawBufferPointer)
    /// The connection is gone. `code` is the peer's close code, 1005 if its close frame had
    /// none, or 1006 if the connection ended without a close frame.
    func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String)
    /// The connection's output fell back below half the high-water mark after being above it.
    func onDrain(_ connection: WebSocketConnection)
}

extension WebSocketHandler {
    public func onOpen(_ connection: WebSocketConnection) {}
    public func onPing(_ connection: WebSocketConnection, _ payload: UnsafeRawBufferPointer) {}
    public func onPong(_ connection: WebSocketConnection, _ payload: UnsafeRawBufferPointer) {}
    public func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {}
    public func onDrain(_ connection: WebSocketConnection) {}
}

/// Outcome of a send, as uWebSockets reports it.
public enum SendStatus: Sendable, Equatable {
    /// Queued; it goes out at the end of this loop iteration.
    case written
    /// Queued, but the connection's output is above its high-water mark: slow down.
    case buffered
    /// Not sent: the connection is closing or closed.
    case dropped
}
