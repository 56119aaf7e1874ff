#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Transport
@_exported import WebSocket

/// What a client connection reports. Callbacks run on the connection's event loop.
public protocol ClientDelegate: AnyObject {
    func clientDidOpen(_ client: ClientConnection)
    func client(_ client: ClientConnection, didReceive message: Message)
    func client(_ client: ClientConnection, didReceivePong payload: UnsafeRawBufferPointer)
    /// The connection ended: `code` is the server's close code (1006 without a close
    /// handshake); `error` says what went wrong, if anything did.
    func clientDidClose(_ client: ClientConnection, code: CloseCode, reason: String, error: String?)
}

extension ClientDelegate {
    public func client(_ client: ClientConnection, didReceivePong payload: UnsafeRawBufferPointer) {}
}

/// Where and how to connect.
public struct ClientOptions: Sendable {
    public var host: String
    public var port: Int
    public var path: String = "/"
    /// TLS (wss://) when set.
    public var tls: TLSClientContext?
    /// Name checked against the certificate and sent as SNI (default: `host`).
    public var serverName: String?
    public var subprotocols: [String] = []
    public var origin: String?
    /// Extra request headers ("Authorization", cookies), sent as given after the standard ones.
    public var headers: [(name: String, value: String)] = []
    public var limits = WebSocketProtocol.Limits()
    /// Offer permessage-deflate (RFC 7692); used if the server accepts.
    public var offerDeflate = false
    /// Our compressor's settings when deflate is negotiated.
    public var deflateOptions = DeflateOptions()
    /// Milliseconds allowed for TCP connect + TLS + upgrade.
    public var connectTimeoutMillis: UInt64 = 10_000

    public init(host: String, port: Int, path: String = "/", tls: TLSClientContext? = nil) {
        self.host = host
        self.port = port
        self.path = path
        self.tls = tls
    }

    /// Parses "ws://host:port/path" or "wss://…" (TLS context supplied separately).
    public init?(url: String, tls: TLSClientContext? = nil) {
        let secure: Bool
        var rest: Substring
        if url.hasPrefix("wss://") { secure = true; rest = url.dropFirst(6) }
        else if url.hasPrefix("ws://") { secure = false; rest = url.dropFirst(5) }
        else { return nil }
        var path = "/"
        if let slash = rest.firstIndex(of: "/") { path = String(rest[slash...]); rest = rest[..<slash] }
        var host = String(rest)
        var port = secure ? 443 : 80
        if rest.hasPrefix("["), let close = rest.firstIndex(of: "]") {
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { return nil }; port = p }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            guard let p = Int(rest[rest.index(after: colon)...]) else { return nil }
            port = p
        }
        if secure && tls == nil { return nil }
        self.init(host: host, port: port, path: path, tls: secure ? tls : nil)
    }

    var hostHeader: String {
        let h = host.contains(":") ? "[\(host)]" : host
        let defaultPort = tls == nil ? 80 : 443
        return port == defaultPort ? h : "\(h):\(port)"
    }
}

/// A WebSocket client connection on an event loop: TCP connect, TLS, the opening handshake,
/// then the same sans-IO protocol core the server uses, in the client role (masking).
public final class ClientConnection: EventHandler {
    /// Where the connection is in its life: TCP connect, TLS, HTTP upgrade, open, closing, closed.
    public enum Phase: UInt8 { case connecting, tlsHandshake, upgrading, open, closing, closed }

    public let loop: EventLoop
    public let options: ClientOptions
    /// Held strongly until the connection closes (then released), so a delegate needs no
    /// other owner and the message path pays for no weak-reference load.
    public var delegate: ClientDelegate?
    @exclusivity(unchecked) public private(set) var phase: Phase = .connecting
    /// The subprotocol the server chose.
    public private(set) var subprotocol: String?
    /// Application data.
    public var userData: AnyObject?
    @exclusivity(unchecked) public var proto: WebSocketProtocol
    let stream: ByteStream
    private let fd: Int32
    private var handshake: ClientHandshake
    private var responseParser = HTTPHeadParser()
    @exclusivity(unchecked) private var flushQueued = false
    @exclusivity(unchecked) private var writeBlocked = false
    @exclusivity(unchecked) private var interest: UInt32 = EPOLLOUT.rawValue
    private var closeNotified = false
    /// Drop TCP if the server has not answered our close by then (loop ms; 0 = none).
    private var closeDeadline: UInt64 = 0
    /// Give up if not open by then (loop ms).
    private var setupDeadline: UInt64 = 0

    /// Starts connecting; must be called on `loop`'s thread.
    public init(loop: EventLoop, options: ClientOptions, delegate: ClientDelegate?) throws {
        self.loop = loop
        self.options = options
        self.delegate = delegate
        self.proto = WebSocketProtocol(role: .client, limits: options.limits)
        self.handshake = ClientHandshake(host: options.hostHeader, path: options.path,
                                         subprotocols: options.subprotocols, origin: options.origin,
                                         offerDeflate: options.offerDeflate,
                                         extraHeaders: options.headers.map { ($0.name, $0.value) })
        fd = try connectTCP(host: options.host, port: options.port)
        if let tls = options.tls {
            guard let s = tls.makeStream(fd: fd, serverName: options.serverName ?? options.host, scratch: loop.scratchBuffer) else {
                Glibc.close(fd)
                throw TLSError.drain("SSL_new")
            }
            stream = s
        } else {
            stream = TCPStream(fd: fd)
        }
        setupDeadline = loop.now + options.connectTimeoutMillis
        try loop.register(fd: fd, handler: self, events: EPOLLOUT.rawValue)
    }

    public var isOpen: Bool { phase == .open && proto.state == .open }
    /// True when permessage-deflate was negotiated.
    public var isCompressing: Bool { proto.deflate != nil }
    public var bufferedAmount: Int { proto.outbound.readableCount }

    // MARK: - Sending

    @discardableResult
    public func send(text: String) -> Bool {
        guard isOpen else { return false }
        proto.send(text: text)
        scheduleFlush()
        return true
    }

    @discardableResult
    public func send(_ opcode: Opcode, _ bytes: UnsafeRawBufferPointer) -> Bool {
        guard isOpen else { return false }
        proto.send(opcode, bytes)
        scheduleFlush()
        return true
    }

    public func ping(_ payload: [UInt8] = []) {
        guard isOpen else { return }
        proto.ping(payload)
        scheduleFlush()
    }

    /// Starts the closing handshake; the TCP connection ends when the server closes it or
    /// after `timeoutMillis`.
    public func close(code: CloseCode = .normal, reason: String = "", timeoutMillis: UInt64 = 3000) {
        guard phase == .open else {
            if phase != .closed && phase != .closing { finish(code: .abnormal, reason: "", error: "closed before open") }
            return
        }
        proto.close(code: code, reason: reason)
        phase = .closing
        closeDeadline = loop.now + timeoutMillis
        scheduleFlush()
    }

    /// Drops the connection without a close handshake.
    public func abort() { finish(code: .abnormal, reason: "", error: "aborted") }

    // MARK: - Event loop

    public func handleEvent(_ events: UInt32) {
        switch phase {
        case .connecting:
            let err = connectResult(fd: fd)
            if err != 0 { return finish(code: .abnormal, reason: "", error: "connect: \(errnoDescription(err))") }
            if stream.isEstablished {
                startUpgrade()
            } else {
                phase = .tlsHandshake
                advanceTLS()
            }
        case .tlsHandshake:
            advanceTLS()
        default:
            if events & EPOLLOUT.rawValue != 0 { flush() }
            if phase != .closed && events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                readAvailable()
            }
        }
    }

    private func advanceTLS() {
        switch stream.handshake() {
        case .done: startUpgrade()
        case .wantRead: setInterest(EPOLLIN.rawValue)
        case .wantWrite: setInterest(EPOLLIN.rawValue | EPOLLOUT.rawValue)
        case .eof: finish(code: .abnormal, reason: "", error: "server closed during TLS handshake")
        case .error(let why): finish(code: .abnormal, reason: "", error: why)
        }
    }

    private func startUpgrade() {
        phase = .upgrading
        proto.outbound.append(handshake.request)
        setInterest(EPOLLIN.rawValue)
        flush()
    }

    private func readAvailable() {
        let buffer = loop.readBuffer
        while phase != .closed {
            switch stream.read(into: buffer) {
            case .done(let n):
                received(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
                if n < buffer.count { flush(); return }
            case .wantRead: flush(); return
            case .wantWrite: writeBlocked = true; updateInterest(); return
            case .eof:
                let clean = proto.state == .closed
                return finish(code: clean ? lastCloseCode : .abnormal, reason: lastCloseReason,
                              error: clean ? nil : "server closed TCP without a close handshake")
            case .error(let why): return finish(code: .abnormal, reason: "", error: why)
            }
        }
    }

    private var lastCloseCode: CloseCode = .abnormal
    private var lastCloseReason = ""

    private func received(_ bytes: UnsafeMutableRawBufferPointer) {
        var start = 0
        if phase == .upgrading {
            do {
                guard let (head, consumed) = try responseParser.feedResponse(UnsafeRawBufferPointer(bytes)) else { return }
                switch handshake.accept(head) {
                case .failure(let e): return finish(code: .abnormal, reason: "", error: "\(e)")
                case .success(let accepted):
                    subprotocol = accepted.subprotocol
                    if let params = accepted.deflate {
                        proto.deflate = PerMessageDeflate(role: .client, parameters: params, options: options.deflateOptions)
                    }
                }
                phase = .open
                start = consumed
                delegate?.clientDidOpen(self)
            } catch {
                return finish(code: .abnormal, reason: "", error: "bad handshake response: \(error)")
            }
        }
        var cursor = start
        while let event = proto.next(bytes, cursor: &cursor) {
            switch event {
            case .text(let p): delegate?.client(self, didReceive: Message(kind: .text, bytes: p))
            case .binary(let p): delegate?.client(self, didReceive: Message(kind: .binary, bytes: p))
            case .ping: break
            case .pong(let p): delegate?.client(self, didReceivePong: p)
            case .close(let code, let reason):
                lastCloseCode = code ?? .noStatus
                lastCloseReason = String(decoding: reason, as: UTF8.self)
                phase = .closing
                if closeDeadline == 0 { closeDeadline = loop.now + 3000 }
            case .fragment:
                break  // the client does not enable streamsMessages
            case .failed(let err):
                lastCloseCode = err.closeCode
                lastCloseReason = err.reason
                phase = .closing
                closeDeadline = loop.now + 1000
            }
        }
        if !proto.outbound.isEmpty { scheduleFlush() }
    }

    // MARK: - Output

    private func scheduleFlush() {
        if !flushQueued && phase != .closed {
            flushQueued = true
            loop.scheduleFlush(self)
        }
    }

    public func flushScheduled() {
        flushQueued = false
        if phase == .upgrading || phase == .open || phase == .closing { flush() }
    }

    private func flush() {
        let out = proto.outbound
        while !out.isEmpty || stream.hasPendingOutput {
            switch stream.write(out.readableBytes) {
            case .done(let n): out.consume(n)
            case .wantWrite: writeBlocked = true; updateInterest(); return
            case .wantRead: return
            case .eof: return finish(code: .abnormal, reason: "", error: "server closed while we were writing")
            case .error(let why): return finish(code: .abnormal, reason: "", error: why)
            }
        }
        writeBlocked = false
        proto.outboundDrained()
        updateInterest()
        out.releaseIfEmpty(threshold: 64 << 10)
    }

    private func updateInterest() {
        setInterest(EPOLLIN.rawValue | (writeBlocked ? EPOLLOUT.rawValue : 0))
    }

    private func setInterest(_ events: UInt32) {
        if events != interest && phase != .closed {
            interest = events
            loop.modify(fd: fd, events: events)
        }
    }

    private func finish(code: CloseCode, reason: String, error: String?) {
        guard phase != .closed else { return }
        phase = .closed
        loop.unregister(fd: fd)
        stream.close()
        if !closeNotified {
            closeNotified = true
            delegate?.clientDidClose(self, code: code, reason: reason, error: error)
        }
        delegate = nil
    }

    public func loopStopped() {
        finish(code: .abnormal, reason: "", error: "event loop stopped")
        userData = nil
    }

    public func tick(now: UInt64) {
        if phase.rawValue < Phase.open.rawValue && now >= setupDeadline {
            return finish(code: .abnormal, reason: "", error: "timed out in \(phase) after \(options.connectTimeoutMillis) ms")
        }
        if closeDeadline != 0 && now >= closeDeadline && phase != .closed {
            finish(code: lastCloseCode, reason: lastCloseReason,
                   error: proto.state == .closed ? nil : "close timeout")
        }
    }
}
