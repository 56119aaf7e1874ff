@_exported import WebSocket

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
