import Synchronization
import Transport
import WebSocket

/// Why `WebSocketClient.connect` failed.
public enum WebSocketClientError: Error, CustomStringConvertible, Sendable {
    case badURL(String)
    case connectFailed(String)
    public var description: String {
        switch self {
        case .badURL(let u): return "not a ws:// or wss:// URL: \(u)"
        case .connectFailed(let why): return "connection failed: \(why)"
        }
    }
}

/// An `async` WebSocket client over the library's own event loop and protocol core.
///
/// ```swift
/// let ws = try await WebSocketClient.connect(to: "wss://localhost:8443/chatsocket", caFile: "certs/ca.pem")
/// ws.send(text: "hello")
/// for await message in ws.messages { print(message.text) }
/// ```
public final class WebSocketClient: Sendable {
    /// Messages until the connection closes.
    public let messages: AsyncStream<OwnedMessage>
    private let continuation: AsyncStream<OwnedMessage>.Continuation
    private let connection: Locked<ConnectionRef?> = Locked(nil)
    private let closeInfo = Locked<(code: CloseCode, reason: String, error: String?)?>(nil)
    let loop: EventLoop

    /// One loop thread shared by every async client in the process, made at the first connect.
    /// A loop that cannot be made (no descriptors left, say) is that connect's error, and the
    /// next connect tries again.
    private static let shared = Locked<EventLoop?>(nil)

    static func sharedLoop() throws -> EventLoop {
        // A WSS_IO that names no backend is an error, not a silent epoll (as for Server).
        if case .failure(let bad)? = IOBackend.environment { throw bad }
        return try shared.withLock { (loop: inout EventLoop?) throws -> EventLoop in
            if let loop { return loop }
            let made = try EventLoop(index: 0, readBufferSize: 64 << 10)
            made.start(name: "wss-client")
            loop = made
            return made
        }
    }

    private init(loop: EventLoop) {
        self.loop = loop
        (messages, continuation) = AsyncStream.makeStream(of: OwnedMessage.self, bufferingPolicy: .unbounded)
    }

    /// Connects and completes the opening handshake.
    /// - Parameters:
    ///   - url: ws://host:port/path or wss://…
    ///   - caFile: CA certificates (PEM) to verify a wss server against; nil uses the system store.
    ///   - subprotocols: offered in `Sec-WebSocket-Protocol`.
    public static func connect(to url: String, caFile: String? = nil, subprotocols: [String] = [],
                               origin: String? = nil, compression: Bool = false) async throws -> WebSocketClient {
        let tls: TLSClientContext? = url.hasPrefix("wss://") ? try TLSClientContext(caFile: caFile) : nil
        guard var options = ClientOptions(url: url, tls: tls) else { throw WebSocketClientError.badURL(url) }
        options.subprotocols = subprotocols
        options.origin = origin
        options.offerDeflate = compression
        let client = WebSocketClient(loop: try sharedLoop())
        let opts = options
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<Void, Error>) in
            client.loop.execute {
                let delegate = Delegate(client: client, opened: cont)
                // A name is looked up off the shared loop: a slow DNS must not stall every
                // other client on it.
                guard HostResolver.numeric(opts.host, port: opts.port) == nil else { return open(client, opts, delegate) }
                HostResolver.lookUp(opts.host, port: opts.port, on: client.loop) { result in
                    switch result {
                    case .success(let addresses):
                        var resolved = opts
                        resolved.addresses = addresses
                        open(client, resolved, delegate)
                    case .failure(let error): delegate.fail("\(error)")
                    }
                }
            }
        }
        return client
    }

    /// Starts the connection (on the client's loop).
    private static func open(_ client: WebSocketClient, _ options: ClientOptions, _ delegate: Delegate) {
        do {
            let conn = try ClientConnection(loop: client.loop, options: options, delegate: delegate)
            conn.userData = delegate
            client.connection.withLock { $0 = ConnectionRef(conn) }
        } catch {
            delegate.fail("\(error)")
        }
    }

    /// The subprotocol the server chose.
    public var subprotocol: String? { connection.withLock { $0?.subprotocol } }
    /// True when permessage-deflate was negotiated.
    public var isCompressing: Bool { connection.withLock { $0?.compressing } ?? false }

    /// The close code and reason once closed (1006 if there was no close handshake).
    public var closeCode: CloseCode? { closeInfo.withLock { $0?.code } }
    public var closeReason: String? { closeInfo.withLock { $0?.reason } }

    public func send(text: String) {
        withConnection { $0.send(text: text) }
    }

    public func send(binary: [UInt8]) {
        withConnection { c in binary.withUnsafeBytes { _ = c.send(.binary, $0) } }
    }

    public func ping(_ payload: [UInt8] = []) {
        withConnection { $0.ping(payload) }
    }

    public func close(code: CloseCode = .normal, reason: String = "") {
        withConnection { $0.close(code: code, reason: reason) }
    }

    private func withConnection(_ body: @escaping @Sendable (ClientConnection) -> Void) {
        guard let ref = connection.withLock({ $0 }) else { return }
        loop.execute { body(ref.connection) }
    }

    final class ConnectionRef: @unchecked Sendable {
        let connection: ClientConnection
        let subprotocol: String?
        let compressing: Bool
        init(_ c: ClientConnection) { connection = c; subprotocol = c.subprotocol; compressing = c.isCompressing }
    }

    /// Loop-confined.
    final class Delegate: ClientDelegate, @unchecked Sendable {
        let client: WebSocketClient
        var opened: CheckedContinuation<Void, Error>?

        init(client: WebSocketClient, opened: CheckedContinuation<Void, Error>) {
            self.client = client
            self.opened = opened
        }

        func fail(_ why: String) {
            opened?.resume(throwing: WebSocketClientError.connectFailed(why))
            opened = nil
            client.continuation.finish()
        }

        func clientDidOpen(_ c: ClientConnection) {
            client.connection.withLock { $0 = ConnectionRef(c) }
            opened?.resume()
            opened = nil
        }

        func client(_ c: ClientConnection, didReceive message: Message) {
            client.continuation.yield(OwnedMessage(kind: message.kind, data: message.data))
        }

        func clientDidClose(_ c: ClientConnection, code: CloseCode, reason: String, error: String?) {
            client.closeInfo.withLock { $0 = (code, reason, error) }
            if opened != nil { return fail(error ?? "closed during the handshake") }
            client.continuation.finish()
            c.userData = nil
        }
    }
}
