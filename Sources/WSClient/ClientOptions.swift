import Transport
import WebSocket

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
    /// Where to connect, if already known (e.g. looked up off the loop with `HostResolver`):
    /// tried in turn as a refused one fails. nil: `host` itself — a numeric address, or a name
    /// looked up when the connection starts, which blocks that loop as long as the lookup
    /// takes (`WebSocketClient` looks names up off its loop). `host` still names the Host
    /// header and, by default, SNI.
    public var addresses: [SocketAddress]?

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
