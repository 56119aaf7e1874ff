import Logging
import Transport
import WebSocket

/// How a connection reaches its client. Handlers may look, but need not care: every call
/// below behaves the same on each.
public enum ConnectionTransport: UInt8, Sendable {
    case webSocket
    /// Server-sent events down, POST up.
    case sse
    case longPolling
}

/// A session of another transport (SSE, long polling) standing behind a `WebSocketConnection`,
/// so that a `WebSocketHandler` works unchanged when a client falls back. Loop-confined: every
/// call comes from the loop the connection was made on.
protocol FallbackTransport: AnyObject {
    var kind: ConnectionTransport { get }
    /// Queues one message (as the transport frames it); `.buffered` above the high-water mark,
    /// `.dropped` when closed or over the backpressure limit.
    func send(_ kind: Message.Kind, _ payload: UnsafeRawBufferPointer) -> SendStatus
    /// A keep-alive (SSE comment) or nothing.
    func ping(_ payload: [UInt8])
    /// Ends the session with this code; the transport calls `fallbackEnded` when it is gone.
    func close(code: CloseCode, reason: String)
    var bufferedAmount: Int { get }
    var remoteAddress: String { get }
    var isOpen: Bool { get }
}

extension WebSocketConnection {
    /// A connection whose messages travel through `transport` (SSE or long polling) on
    /// `loop`: no socket of its own, no timers (the transport keeps them). Call `fallbackOpened`
    /// once the session is established.
    convenience init(id: UInt64, loop: EventLoop, fallback transport: FallbackTransport, route: Route,
                     subprotocol: String?, userData: AnyObject?, query: String? = nil, core: ServerCore) {
        self.init(id: id, loop: loop, fd: -1, tls: nil, core: core)
        policy = .external
        httpParser = nil
        extrasBox.fallback = transport
        if let subprotocol { extrasBox.subprotocol = subprotocol }
        if let query { extrasBox.query = query }
        self.route = route
        self.userData = userData
    }

    /// The fallback session is ready: the handler's `onOpen`.
    func fallbackOpened() { handler?.onOpen(self) }

    /// A message from the fallback session's client: the handler's `onMessage` (or one
    /// whole fragment for a streaming handler), counted like a WebSocket message.
    func fallbackReceived(_ message: Message) {
        counters.messagesIn &+= 1
        counters.bytesIn &+= message.bytes.count
        guard let handler else { return }
        if handler.receivesFragments {
            handler.onFragment(self, Fragment(kind: message.kind, bytes: message.bytes, isFirst: true, isLast: true))
        } else {
            handler.onMessage(self, message)
        }
    }

    /// The fallback session is gone: unsubscribes, the handler's `onClose` (once), releases
    /// `userData`.
    func fallbackEnded(code: CloseCode, reason: String) {
        notifyClose(code, reason)
        route = nil
        userData = nil
    }

    var extrasBox: ConnectionExtras {
        if let extras { return extras }
        let e = ConnectionExtras()
        extras = e
        return e
    }

    // MARK: - What a handler sees

    /// How this connection reaches its client.
    public var transport: ConnectionTransport { extras?.fallback?.kind ?? .webSocket }
    /// Path of the endpoint this connection upgraded on.
    public var path: String { route?.path ?? "" }
    /// The subprotocol chosen in the upgrade hook, if any.
    public var subprotocol: String? { extras?.subprotocol }
    /// The query of the request that opened the connection ("room=lobby" for "/chat?room=lobby").
    public var query: String? { extras?.query }
    /// The server's pub/sub topics (publish from here to any topic, on every loop).
    public var topics: Topics { core.topics }
    /// The peer's address, "ip:port".
    public var remoteAddress: String { extras?.fallback?.remoteAddress ?? driver.remoteAddress }
    /// Messages not sent (`send` answered `.dropped`) because the output was over
    /// `maxBackpressure`: a handler can tell a slow client from a fast one.
    public var droppedMessages: Int { extras?.droppedMessages ?? 0 }
    /// Bytes waiting to be written to the peer.
    public var bufferedAmount: Int { extras?.fallback?.bufferedAmount ?? proto.outboundCount }
    public var isOpen: Bool {
        policy.phase == .open ? proto.state == .open : extras?.fallback?.isOpen ?? false
    }

    // MARK: - Sending

    /// Sends a text message. The string is sent as its UTF-8 bytes.
    ///
    /// `compress` (every send): with permessage-deflate negotiated, true compresses this
    /// message, false sends it plain, nil (default) compresses at or above the configured
    /// minimum size. Without deflate it is ignored.
    @discardableResult
    public func send(text: String, compress: Bool? = nil) -> SendStatus {
        var s = text
        return s.withUTF8 { sendFrame(.text, UnsafeRawBufferPointer($0), compress: compress) }
    }

    /// Sends bytes that are already valid UTF-8 as a text message.
    @discardableResult
    public func send(utf8Text bytes: UnsafeRawBufferPointer, compress: Bool? = nil) -> SendStatus {
        sendFrame(.text, bytes, compress: compress)
    }

    @discardableResult
    public func send(binary bytes: UnsafeRawBufferPointer, compress: Bool? = nil) -> SendStatus {
        sendFrame(.binary, bytes, compress: compress)
    }

    @discardableResult
    public func send(binary bytes: [UInt8], compress: Bool? = nil) -> SendStatus {
        bytes.withUnsafeBytes { sendFrame(.binary, $0, compress: compress) }
    }

    /// Sends a received message back unchanged (same kind, same bytes).
    @discardableResult
    public func send(_ message: Message, compress: Bool? = nil) -> SendStatus {
        sendFrame(message.isText ? .text : .binary, message.bytes, compress: compress)
    }

    public func ping(_ payload: [UInt8] = []) {
        loop.assertInLoop()
        guard policy.phase == .open else { extras?.fallback?.ping(payload); return }
        guard proto.ping(payload) == .queued else { return }
        scheduleFlush()
    }

    /// Starts the closing handshake; the connection ends when the peer answers or after the
    /// close timeout.
    public func close(code: CloseCode = .normal, reason: String = "") {
        loop.assertInLoop()
        guard policy.phase == .open else {
            extras?.fallback?.close(code: code, reason: reason)
            return
        }
        guard proto.state == .open else { return }
        proto.close(code: code, reason: reason)
        core.metrics.closeSent(code)
        notifyClose(code, reason)
        afterProtocolStep()
    }

    // MARK: - Pub/sub

    /// Subscribes to a pub/sub topic (see `Server.publish`).
    public func subscribe(_ topic: String) {
        guard !subscriptions.contains(topic) else { return }
        subscriptions.append(topic)
        core.topics.subscribe(self, to: topic)
    }

    public func unsubscribe(_ topic: String) {
        guard let i = subscriptions.firstIndex(of: topic) else { return }
        subscriptions.remove(at: i)
        core.topics.unsubscribe(self, from: topic)
    }

    /// Publishes to every subscriber of `topic` on every loop (this connection included if
    /// subscribed).
    public func publish(_ topic: String, _ message: Message) {
        core.topics.publish(topic, kind: message.kind, bytes: message.bytes)
    }
}

extension WebSocketConnection: TopicSubscriber {
    var loopIndex: Int { loop.index }

    func receive(_ frame: PreparedFrame) -> SendStatus {
        if policy.phase != .open, let fallback = extras?.fallback {
            return frame.withPayload { kind, payload in fallback.send(kind, payload) }
        }
        return frame.bytes(for: proto.deflate).withUnsafeBytes { sendPrepared($0, payloadCount: frame.payloadCount) }
    }
}
