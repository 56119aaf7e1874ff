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
    /// The `Sec-WebSocket-Key` as sent (base64 text; validation made sure there is one).
    public var key: String { head.value("Sec-WebSocket-Key") ?? "" }
    /// Subprotocols offered in `Sec-WebSocket-Protocol`, in order.
    public var subprotocols: [String]
    /// Raw `Sec-WebSocket-Extensions` values, for extension negotiation.
    public var extensions: [String] { head.values("Sec-WebSocket-Extensions") }
    /// Whether the request offers any extension (allocates nothing).
    var offersExtensions: Bool { head.count("Sec-WebSocket-Extensions") > 0 }
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

    /// §4.2.1, on the head's bytes: nothing is allocated for a valid request without
    /// subprotocols.
    package static func validate(_ head: HTTPRequestHead) -> Result<HandshakeRequest, HandshakeError> {
        guard head.isMethod("GET") else { return .failure(.methodNotGet(head.method)) }
        guard head.versionMajor > 1 || (head.versionMajor == 1 && head.versionMinor >= 1) else {
            return .failure(.httpVersionTooOld)
        }
        var hosts = 0, hostEmpty = true
        head.forEachValue("Host") { hosts += 1; hostEmpty = $0.isEmpty }
        guard hosts == 1, !hostEmpty else { return .failure(.missingHost) }
        // §4.2.1: Upgrade contains "websocket", Connection contains "Upgrade", both case-insensitive.
        guard head.containsToken("Upgrade", "websocket") else { return .failure(.missingUpgrade) }
        guard head.containsToken("Connection", "upgrade") else { return .failure(.missingConnectionUpgrade) }
        var versions = 0, is13 = false  // exactly one token, "13"
        head.forEachToken("Sec-WebSocket-Version") { versions += 1; is13 = $0.elementsEqual("13".utf8) }
        guard versions == 1, is13 else {
            return .failure(.unsupportedVersion(head.value("Sec-WebSocket-Version")))
        }
        var keys = 0, validKey = false
        head.forEachValue("Sec-WebSocket-Key") { keys += 1; validKey = Base64.isNonce($0) }
        guard keys > 0 else { return .failure(.missingKey) }
        guard keys == 1, validKey else { return .failure(.invalidKey) }
        // The same comma-list splitting as every token header, keeping the case (§4.1: subprotocol
        // names are compared exactly).
        var protocols: [String] = []
        var tokens = true
        head.forEachToken("Sec-WebSocket-Protocol") {
            tokens = tokens && $0.allSatisfy(HeaderLexer.isTokenChar)
            protocols.append(String(decoding: $0, as: UTF8.self))
        }
        guard tokens else { return .failure(.invalidSubprotocols) }
        return .success(HandshakeRequest(head: head, subprotocols: protocols))
    }

    /// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)).
    package static func acceptValue(forKey key: String) -> String {
        var key = key
        return key.withUTF8 { k in
            withUnsafeTemporaryAllocation(byteCount: 28, alignment: 1) { out in
                writeAccept(key: UnsafeRawBufferPointer(k), to: out.baseAddress!)
                return String(decoding: UnsafeRawBufferPointer(out), as: UTF8.self)
            }
        }
    }

    /// Writes the 28 bytes of `Sec-WebSocket-Accept` for `key` at `out`, allocating nothing.
    package static func writeAccept(key: UnsafeRawBufferPointer, to out: UnsafeMutableRawPointer) {
        var guid = guid
        guid.withUTF8 { g in
            withUnsafeTemporaryAllocation(byteCount: key.count + g.count + 20, alignment: 8) { buf in
                let p = buf.baseAddress!
                if key.count > 0 { p.copyMemory(from: key.baseAddress!, byteCount: key.count) }
                (p + key.count).copyMemory(from: g.baseAddress!, byteCount: g.count)
                let digest = p + key.count + g.count
                SHA1.hash(UnsafeRawBufferPointer(start: p, count: key.count + g.count), into: digest)
                Base64.encode(UnsafeRawBufferPointer(start: digest, count: 20), to: out)
            }
        }
    }

    /// The 101 response.
    package static func response(acceptingKey key: String, subprotocol: String? = nil,
                                extensions: String? = nil, extraHeaders: [(String, String)] = []) -> String {
        let out = ByteBuffer()
        var key = key
        key.withUTF8 { k in
            writeResponse(acceptingKey: UnsafeRawBufferPointer(k), subprotocol: subprotocol, extensions: extensions,
                          extraHeaders: extraHeaders, to: out)
        }
        return String(decoding: out.readableBytes, as: UTF8.self)
    }

    /// Appends the 101 response to `out` in one reservation, without building a `String`.
    package static func writeResponse(acceptingKey key: UnsafeRawBufferPointer, subprotocol: String?,
                                      extensions: String?, extraHeaders: [(String, String)], to out: ByteBuffer) {
        func put(_ s: StaticString) {
            out.append(UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
        }
        var length = 129
        if let subprotocol { length += 26 + subprotocol.utf8.count }
        if let extensions { length += 28 + extensions.utf8.count }
        for (n, v) in extraHeaders { length += n.utf8.count + v.utf8.count + 4 }
        _ = out.reserveWritable(length)
        put("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ")
        writeAccept(key: key, to: out.reserveWritable(28))
        out.commitWrite(28)
        put("\r\n")
        if let subprotocol {
            put("Sec-WebSocket-Protocol: ")
            out.append(subprotocol)
            put("\r\n")
        }
        if let extensions {
            put("Sec-WebSocket-Extensions: ")
            out.append(extensions)
            put("\r\n")
        }
        for (n, v) in extraHeaders {
            out.append(n)
            put(": ")
            out.append(v)
            put("\r\n")
        }
        put("\r\n")
    }
}
