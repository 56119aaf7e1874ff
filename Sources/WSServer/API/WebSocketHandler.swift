import WebSocket
import Transport

/// An opening handshake that passed the protocol checks, shown to the application before the
/// server answers it.
public struct UpgradeRequest {
    public let head: HTTPRequestHead
    /// Subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order of preference.
    public let subprotocols: [String]
    let fd: Int32

    public var method: String { head.method }
    public var path: String { head.path }
    public var query: String? { head.query }
    public var headers: [(name: String, value: String)] { head.headers }
    public var origin: String? { head.value("Origin") }
    /// A header's value (case-insensitive name), repeated fields joined with ", ".
    public func header(_ name: String) -> String? { head.value(name) }
    /// The peer's "ip:port".
    public var remoteAddress: String { peerAddress(fd: fd) }
}

/// The application's answer to an upgrade request.
public enum UpgradeDecision {
    /// Upgrade; optionally with one of the offered subprotocols and data for the connection
    /// (e.g. the authenticated user), available as `connection.userData` from `onOpen` on.
    case accept(subprotocol: String? = nil, userData: AnyObject? = nil)
    /// Refuse with an HTTP status (e.g. 401, 403) and a short reason for the body and the log.
    case reject(status: Int, reason: String)
}

/// What an application does with the connections on one path. Callbacks run on the
/// connection's event loop thread, one at a time per connection; a handler instance is shared
/// by all loops, so it must be safe to call from several threads (keep per-connection state in
/// `connection.userData`).
public protocol WebSocketHandler: AnyObject, Sendable {
    /// Called before the 101 answer: authenticate, pick a subprotocol, or refuse. Runs on the
    /// connection's loop; keep it fast (no blocking I/O). Default: accept, no subprotocol.
    func shouldUpgrade(_ request: UpgradeRequest) -> UpgradeDecision
    func onOpen(_ connection: WebSocketConnection)
    func onMessage(_ connection: WebSocketConnection, _ message: Message)
    func onPing(_ connection: WebSocketConnection, _ payload: UnsafeRawBufferPointer)
    func onPong(_ connection: WebSocketConnection, _ payload: UnsafeRawBufferPointer)
    /// The connection is gone. `code` is the peer's close code, 1005 if its close frame had
    /// none, or 1006 if the connection ended without a close frame.
    func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String)
    /// The connection's output fell back below half the high-water mark after being above it.
    func onDrain(_ connection: WebSocketConnection)
    /// True to receive messages piece by piece in `onFragment` instead of whole in
    /// `onMessage` (streaming: no reassembly buffer; the size limit still applies). Read once,
    /// at the upgrade.
    var receivesFragments: Bool { get }
    /// A piece of a message (when `receivesFragments`): a frame, or the part of one that
    /// arrived in this read. Text pieces may end inside a character.
    func onFragment(_ connection: WebSocketConnection, _ fragment: Fragment)
}

/// A piece of a message, valid only during the callback.
public struct Fragment {
    public let kind: Message.Kind
    public let bytes: UnsafeRawBufferPointer
    public let isFirst: Bool
    public let isLast: Bool
}

extension WebSocketHandler {
    public func shouldUpgrade(_ request: UpgradeRequest) -> UpgradeDecision { .accept() }
    public func onOpen(_ connection: WebSocketConnection) {}
    public func onPing(_ connection: WebSocketConnection, _ payload: UnsafeRawBufferPointer) {}
    public func onPong(_ connection: WebSocketConnection, _ payload: UnsafeRawBufferPointer) {}
    public func onClose(_ connection: WebSocketConnection, code: CloseCode, reason: String) {}
    public func onDrain(_ connection: WebSocketConnection) {}
    public var receivesFragments: Bool { false }
    public func onFragment(_ connection: WebSocketConnection, _ fragment: Fragment) {}
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
