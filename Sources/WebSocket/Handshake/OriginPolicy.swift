/// Which web origins may open a WebSocket (RFC 6455 §10.2, RFC 6454).
///
/// Browsers send `Origin` on every WebSocket handshake; a page from another site can otherwise
/// open a connection that carries the user's cookies (cross-site WebSocket hijacking).
/// Non-browser clients usually send no `Origin`, and are always allowed: the header protects
/// browser users, it is not authentication.
///
/// - `sameOrigin` (the default): an `Origin` must name this server — the request's scheme
///   family (`https` on a TLS listener, `http` otherwise) and its `Host`, compared ASCII
///   case-insensitively. A default port (`:443`, `:80`) in `Host` matches an `Origin` without
///   one, as browsers serialize origins without the default port (RFC 6454 §6.2).
/// - `allowList`: an `Origin` must equal one entry, ASCII case-insensitively, or the list
///   contains `*` (any origin).
public struct OriginPolicy: Sendable, Equatable {
    /// nil: same origin only.
    public let allowed: [String]?

    /// Same origin (or no `Origin` header).
    public static let sameOrigin = OriginPolicy(allowed: nil)
    /// Every origin.
    public static let any = OriginPolicy(allowed: ["*"])

    /// - Parameter allowed: exact `scheme://host[:port]` origins, or `"*"`; nil: same origin.
    public init(allowed: [String]?) {
        self.allowed = allowed
    }

    /// Whether a handshake with this `Origin` (nil or empty: none sent) and `Host` may proceed.
    /// `secure`: the request arrived over TLS.
    public func allows(origin: String?, host: String?, secure: Bool) -> Bool {
        guard let origin, !origin.isEmpty else { return true }
        if let allowed {
            return allowed.contains { $0 == "*" || asciiCaseInsensitiveEquals($0, origin) }
        }
        guard let host, !host.isEmpty else { return false }
        let scheme = secure ? "https://" : "http://"
        if asciiCaseInsensitiveEquals(origin, scheme + host) { return true }
        let defaultPort = secure ? ":443" : ":80"
        guard host.utf8.count > defaultPort.utf8.count, host.hasSuffix(defaultPort) else { return false }
        return asciiCaseInsensitiveEquals(origin, scheme + host.dropLast(defaultPort.utf8.count))
    }
}
