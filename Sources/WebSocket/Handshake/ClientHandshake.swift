/// Why a server's answer to our opening handshake was refused (RFC 6455 §4.1, client side).
public enum ClientHandshakeError: Error, Equatable, Sendable, CustomStringConvertible {
    case status(Int, String)
    case missingUpgrade
    case missingConnectionUpgrade
    case badAccept(String?)
    case unexpectedExtension(String)
    case unexpectedSubprotocol(String)
    case malformedResponse(String)

    public var description: String {
        switch self {
        case .status(let s, let r): return "server answered \(s) \(r) instead of 101"
        case .missingUpgrade: return "response lacks 'Upgrade: websocket'"
        case .missingConnectionUpgrade: return "response lacks 'Connection: upgrade'"
        case .badAccept(let v): return "wrong Sec-WebSocket-Accept \(v ?? "(none)")"
        case .unexpectedExtension(let e): return "server chose an extension we did not offer: \(e)"
        case .unexpectedSubprotocol(let p): return "server chose a subprotocol we did not offer: \(p)"
        case .malformedResponse(let why): return "malformed response: \(why)"
        }
    }
}

/// The client side of the opening handshake: the request to send and the check of the answer.
public struct ClientHandshake: Sendable {
    public let key: String
    public let request: String
    public let subprotocols: [String]
    /// Whether the request offers permessage-deflate.
    public let offersDeflate: Bool

    /// - Parameters:
    ///   - host: the Host header value (with ":port" unless it is the scheme's default).
    ///   - path: request target, e.g. "/chatsocket?room=1".
    public init(host: String, path: String, subprotocols: [String] = [], origin: String? = nil,
                offerDeflate: Bool = false, extraHeaders: [(String, String)] = []) {
        offersDeflate = offerDeflate
        var nonce = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in 0..<16 { nonce[i] = UInt8.random(in: 0...255, using: &rng) }
        key = Base64.encode(nonce)
        self.subprotocols = subprotocols
        var r = "GET \(path.isEmpty ? "/" : path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\n"
        r += "Connection: Upgrade\r\nSec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n"
        if !subprotocols.isEmpty { r += "Sec-WebSocket-Protocol: \(subprotocols.joined(separator: ", "))\r\n" }
        if let origin { r += "Origin: \(origin)\r\n" }
        // RFC 7692 §7.1.2.2: client_max_window_bits without a value lets the server limit our window.
        if offerDeflate { r += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" }
        for (n, v) in extraHeaders { r += "\(n): \(v)\r\n" }
        request = r + "\r\n"
    }

    /// What the server agreed to.
    public struct Accepted: Sendable {
        public var subprotocol: String?
        /// permessage-deflate parameters, if the server accepted our offer.
        public var deflate: DeflateParameters?
    }

    /// Checks the server's response.
    public func accept(_ response: HTTPResponseHead) -> Result<Accepted, ClientHandshakeError> {
        let ext = response.values("Sec-WebSocket-Extensions")
        var deflate: DeflateParameters?
        if !ext.isEmpty {
            guard offersDeflate, let params = Self.deflateResponse(ext) else {
                return .failure(.unexpectedExtension(ext.joined(separator: ", ")))
            }
            deflate = params
        }
        var plain = response
        plain.headers.removeAll { asciiCaseInsensitiveEquals($0.name, "Sec-WebSocket-Extensions") }
        return validate(plain).map { Accepted(subprotocol: $0, deflate: deflate) }
    }

    /// RFC 7692 §7.1: the server's answer must be one permessage-deflate element whose
    /// parameters we allow (all four are; client_max_window_bits only because we offered it).
    static func deflateResponse(_ values: [String]) -> DeflateParameters? {
        guard let offers = DeflateNegotiation.parse(values), offers.count == 1,
              offers[0].name.lowercased() == DeflateNegotiation.extensionName else { return nil }
        var flags: Set<String> = []
        var bits: [String: Int] = [:]
        var seen = Set<String>()
        for (name, value) in offers[0].parameters {
            let n = name.lowercased()
            guard seen.insert(n).inserted else { return nil }
            switch n {
            case "server_no_context_takeover", "client_no_context_takeover":
                guard value == nil else { return nil }
                flags.insert(n)
            case "server_max_window_bits", "client_max_window_bits":
                guard let value, let b = DeflateParameters.windowBits(value) else { return nil }
                bits[n] = b
            default:
                return nil
            }
        }
        return DeflateParameters(serverNoContextTakeover: flags.contains("server_no_context_takeover"),
                                 clientNoContextTakeover: flags.contains("client_no_context_takeover"),
                                 serverMaxWindowBits: bits["server_max_window_bits"] ?? 15,
                                 clientMaxWindowBits: bits["client_max_window_bits"] ?? 15)
    }

    /// Checks the server's response (no extensions allowed); returns the chosen subprotocol.
    public func validate(_ response: HTTPResponseHead) -> Result<String?, ClientHandshakeError> {
        guard response.status == 101 else { return .failure(.status(response.status, response.reason)) }
        guard response.containsToken("Upgrade", "websocket") else { return .failure(.missingUpgrade) }
        guard response.containsToken("Connection", "upgrade") else { return .failure(.missingConnectionUpgrade) }
        let accept = response.value("Sec-WebSocket-Accept")
        guard accept == Handshake.acceptValue(forKey: key) else { return .failure(.badAccept(accept)) }
        if let ext = response.value("Sec-WebSocket-Extensions"), !ext.isEmpty {
            return .failure(.unexpectedExtension(ext))
        }
        let chosen = response.value("Sec-WebSocket-Protocol")
        if let chosen, !subprotocols.contains(chosen) { return .failure(.unexpectedSubprotocol(chosen)) }
        return .success(chosen)
    }
}

/// A received message, valid only during the callback that receives it: its bytes point into
/// a receive buffer. Copy (`text`, `data`) to keep it.
public struct Message {
    /// Text (UTF-8) or binary.
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

/// A received message that owns its bytes (for async code, which outlives callbacks).
public struct OwnedMessage: Sendable, Equatable {
    public let kind: Message.Kind
    public let data: [UInt8]
    public init(kind: Message.Kind, data: [UInt8]) {
        self.kind = kind
        self.data = data
    }
    public init(_ message: Message) { self.init(kind: message.kind, data: message.data) }
    public static func text(_ s: String) -> OwnedMessage { OwnedMessage(kind: .text, data: Array(s.utf8)) }
    public var isText: Bool { kind == .text }
    public var text: String { String(decoding: data, as: UTF8.self) }
}
