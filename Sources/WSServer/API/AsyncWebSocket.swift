import Transport
import WebSocket

/// Structured-concurrency view of one server connection: iterate `messages`, call `send`.
/// Sends hop to the connection's loop; messages are copied out of the loop's buffers, so this
/// is the convenient path, not the fastest (use `WebSocketHandler` callbacks for that).
public final class AsyncWebSocket: Sendable {
    /// Messages until the connection closes.
    public let messages: AsyncStream<OwnedMessage>
    let continuation: AsyncStream<OwnedMessage>.Continuation
    private let loop: EventLoop
    private let connection: UnsafeTransfer<WebSocketConnection>
    public let path: String
    public let subprotocol: String?

    init(connection: WebSocketConnection) {
        (messages, continuation) = AsyncStream.makeStream(of: OwnedMessage.self, bufferingPolicy: .unbounded)
        loop = connection.loop
        self.connection = UnsafeTransfer(connection)
        path = connection.path
        subprotocol = connection.subprotocol
    }

    public func send(text: String) {
        let c = connection
        loop.execute { c.value.send(text: text) }
    }

    public func send(binary: [UInt8]) {
        let c = connection
        loop.execute { c.value.send(binary: binary) }
    }

    public func send(_ message: OwnedMessage) {
        message.isText ? send(text: message.text) : send(binary: message.data)
    }

    public func close(code: CloseCode = .normal, reason: String = "") {
        let c = connection
        loop.execute { c.value.close(code: code, reason: reason) }
    }
}

/// Runs `body` as a task for every connection on a path, with the connection's messages as an
/// `AsyncSequence`. The connection is closed (1000) when `body` returns while it is still open.
public final class AsyncHandler: WebSocketHandler {
    let body: @Sendable (AsyncWebSocket) async -> Void
    let upgrade: (@Sendable (UpgradeRequest) -> UpgradeDecision)?

    public init(shouldUpgrade: (@Sendable (UpgradeRequest) -> UpgradeDecision)? = nil,
                _ body: @escaping @Sendable (AsyncWebSocket) async -> Void) {
        self.body = body
        self.upgrade = shouldUpgrade
    }

    public func shouldUpgrade(_ request: UpgradeRequest) -> UpgradeDecision {
        upgrade?(request) ?? .accept()
    }

    public func onOpen(_ connection: WebSocketConnection) {
        let ws = AsyncWebSocket(connection: connection)
        connection.userData = AsyncBox(ws)
        let body = self.body
        Task {
            await body(ws)
            ws.close()
        }
    }

    public func onMessage(_ connection: WebSocketConnection, _ message: Message) {
        (connection.userData as? AsyncBox)?.ws.continuation.yield(OwnedMessage(message))
    }

    public func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {
        (connection.userData as? AsyncBox)?.ws.continuation.finish()
    }

    final class AsyncBox {
        let ws: AsyncWebSocket
        init(_ ws: AsyncWebSocket) { self.ws = ws }
    }
}

/// Moves a loop-confined reference across threads; it is only dereferenced on its loop.
struct UnsafeTransfer<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
