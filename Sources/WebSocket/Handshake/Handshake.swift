/// Why an opening handshake was refused (RFC 6455 §4.2.1), with the HTTP answer.
public enum HandshakeError: Error, Equatable, Sendable {
    case methodNotGet(String)
    case httpVersionTooOld
    case missingHost
    case missingUpgrade
    case missingConnectionUpgrade
    case missingKey
    case invalidKey
    /// `Sec-WebSocket-Protocol` is not a comma list of tokens (§4.1, §11.3.4): a value like
    /// `a b` or `x: y` would otherwise be echoed into the 101 response.
    case invalidSubprotocols
    /// `Sec-WebSocket-Version` other than 13: answered 426 with `Sec-WebSocket-Version: 13` (§4.2.2).
    case unsupportedVersion(String?)

    public var status: Int {
        switch self {
        case .methodNotGet: return 405
        case .unsupportedVersion: return 426
        default: return 400
        }
    }

    /// A short reason, safe to send to the peer and to log.
    public var reason: String {
        switch self {
        case .methodNotGet(let m): return "WebSocket upgrade needs GET, got \(m)"
        case .httpVersionTooOld: return "WebSocket upgrade needs HTTP/1.1 or later"
        case .missingHost: return "missing Host header"
        case .missingUpgrade: return "missing 'Upgrade: websocket'"
        case .missingConnectionUpgrade: return "missing 'Connection: upgrade'"
        case .missingKey: return "missing Sec-WebSocket-Key"
        case .invalidKey: return "Sec-WebSocket-Key is not base64 of 16 bytes"
        case .invalidSubprotocols: return "Sec-WebSocket-Protocol is not a list of tokens"
        case .unsupportedVersion(let v): return "unsupported Sec-WebSocket-Version \(v ?? "(none)"); this server speaks 13"
        }
    }
}

/// A validated opening handshake request.
public struct HandshakeRequest: Sendable {
    public var head: HTTPRequestHead
    /// The `Sec-WebSocket-Key` as sent (base64 text).
    public var key: String
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order.
    public var subprotocols: [String]
    /// Raw `Sec-WebSocket-Extensions` values, for extension negotiation.
    public var extensions: [String]
    public var origin: String? { head.value("Origin") }
}

/// The opening handshake, server side (RFC 6455 §4.2): the building blocks of
/// `ServerHandshake`.
package enum Handshake {
    /// RFC 6455 §1.3: the GUID appended to the key before hashing.
    package static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    /// Whether a request asks for a WebSocket upgrade at all (so that a bad one gets a
    /// handshake error instead of being served as plain HTTP).
    package static func isUpgradeAttempt(_ head: HTTPRequestHead) -> Bool {
        head.containsToken("Upgrade", "websocket") || head.count("Sec-WebSocket-Key") > 0
            || head.count("Sec-WebSocket-Version") > 0
    }

    package static func validate(_ head: HTTPRequestHead) -> Result<HandshakeRequest, HandshakeError> {
        guard head.method == "GET" else { return .failure(.methodNotGet(head.method)) }
        guard head.versionMajor > 1 || (head.versionMajor == 1 && head.versionMinor >= 1) else {
            return .failure(.httpVersionTooOld)
        }
        guard head.count("Host") == 1, let host = head.value("Host"), !host.isEmpty else {
            return .failure(.missingHost)
        }
        // §4.2.1: Upgrade contains "websocket", Connection contains "Upgrade", both case-insensitive.
        guard head.containsToken("Upgrade", "websocket") else { return .failure(.missingUpgrade) }
        guard head.containsToken("Connection", "upgrade") else { return .failure(.missingConnectionUpgrade) }
        var versions = 0, is13 = false  // exactly one token, "13"
        head.forEachToken("Sec-WebSocket-Version") { versions += 1; is13 = $0.elementsEqual("13".utf8) }
        guard versions == 1, is13 else {
            return .failure(.unsupportedVersion(head.value("Sec-WebSocket-Version")))
        }
        let keys = head.values("Sec-WebSocket-Key")
        guard let key = keys.first else { return .failure(.missingKey) }
        guard keys.count == 1, let decoded = Base64.decode(key.utf8), decoded.count == 16 else {
            return .failure(.invalidKey)
        }
        // The same comma-list splitting as every token header, keeping the case (§4.1: subprotocol
        // names are compared exactly).
        var protocols: [String] = []
        var tokens = true
        head.forEachToken("Sec-WebSocket-Protocol") {
            tokens = tokens && $0.allSatisfy(HeaderLexer.isTokenChar)
            protocols.append(String(Substring($0)))
        }
        guard tokens else { return .failure(.invalidSubprotocols) }
        return .success(HandshakeRequest(head: head, key: key, subprotocols: protocols,
                                         extensions: head.values("Sec-WebSocket-Extensions")))
    }

    /// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)).
    package static func acceptValue(forKey key: String) -> String {
        Base64.encode(SHA1.digest(Array((key + guid).utf8)))
    }

    /// The 101 response.
    package static func response(acceptingKey key: String, subprotocol: String? = nil,
                                extensions: String? = nil, extraHeaders: [(String, String)] = []) -> String {
        var r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        r += "Sec-WebSocket-Accept: \(acceptValue(forKey: key))\r\n"
        if let subprotocol { r += "Sec-WebSocket-Protocol: \(subprotocol)\r\n" }
        if let extensions { r += "Sec-WebSocket-Extensions: \(extensions)\r\n" }
        for (n, v) in extraHeaders { r += "\(n): \(v)\r\n" }
        return r + "\r\n"
    }
}
