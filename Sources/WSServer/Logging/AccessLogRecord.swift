/// One access-log entry: an HTTP request answered, or a WebSocket session from upgrade to close.
///
/// Keys (JSON and text alike, stable): ts, level, kind (http|websocket), conn, remote_addr,
/// remote_port, method, path, status (101 for a WebSocket), close_code (WebSocket only),
/// bytes_in, bytes_out, duration_ms, tls_version, tls_cipher, subprotocol, compression,
/// user_agent. Empty strings and absent values are written as JSON null (text: "-"). `path` is
/// the request target as sent, query included, sensitive values masked (`QueryRedaction`).
public struct AccessLogRecord: Sendable, Equatable {
    public enum Kind: String, Sendable { case http, websocket }

    public var kind: Kind
    public var connection: UInt64
    public var remoteAddress: String
    public var remotePort: Int
    public var method: String
    public var path: String
    public var status: Int
    public var closeCode: Int?
    /// HTTP: request head and response bytes. WebSocket: the handshake's request and response
    /// (frames are counted per loop in /metrics, not per connection).
    public var bytesIn: Int
    public var bytesOut: Int
    public var durationMillis: Double
    public var tlsVersion: String
    public var tlsCipher: String
    public var subprotocol: String
    public var compression: Bool
    public var userAgent: String

    public init(kind: Kind, connection: UInt64 = 0, remoteAddress: String = "", remotePort: Int = 0,
                method: String = "", path: String = "", status: Int = 0, closeCode: Int? = nil,
                bytesIn: Int = 0, bytesOut: Int = 0, durationMillis: Double = 0, tlsVersion: String = "",
                tlsCipher: String = "", subprotocol: String = "", compression: Bool = false, userAgent: String = "") {
        self.kind = kind
        self.connection = connection
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.method = method
        self.path = path
        self.status = status
        self.closeCode = closeCode
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.durationMillis = durationMillis
        self.tlsVersion = tlsVersion
        self.tlsCipher = tlsCipher
        self.subprotocol = subprotocol
        self.compression = compression
        self.userAgent = userAgent
    }

    /// Splits what `remoteAddress` gives into address and port: "ip:port", "[v6]:port", or an
    /// address without a port (an X-Forwarded-For client: "1.2.3.4", "::1", "2001:db8::1",
    /// "[::1]"), port 0. Anything else is returned whole, port 0.
    public static func split(hostPort: String) -> (String, Int) {
        func port(_ s: Substring) -> Int? {
            guard !s.isEmpty, s.count <= 5, s.allSatisfy(\.isASCII), let p = Int(s), (0...65535).contains(p) else { return nil }
            return p
        }
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { return (hostPort, 0) }
            let host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if after.isEmpty, !host.isEmpty { return (String(host), 0) }
            guard after.hasPrefix(":"), !host.isEmpty, let p = port(after.dropFirst()) else { return (hostPort, 0) }
            return (String(host), p)
        }
        let colons = hostPort.utf8.lazy.filter { $0 == UInt8(ascii: ":") }.count
        if colons != 1 { return (hostPort, 0) }  // IPv4 or a name without a port, bare IPv6, or junk
        let colon = hostPort.firstIndex(of: ":")!
        let host = hostPort[..<colon]
        guard !host.isEmpty, let p = port(hostPort[hostPort.index(after: colon)...]) else { return (hostPort, 0) }
        return (String(host), p)
    }
}

/// How log lines look: `--log-format text|json`.
public enum LogFormat: String, Sendable, CaseIterable {
    /// "2026-12-01T20:18:01.123Z info access kind=http remote_addr=127.0.0.1 …"
    case text
    /// JSON Lines: one object per line, the same keys in the same order every time.
    case json
}

extension AccessLogRecord {
    /// The line, without the trailing newline.
    public func formatted(_ format: LogFormat, timestamp: String = LogTimestamp.now()) -> String {
        let duration = (durationMillis * 1000).rounded() / 1000
        let fields: [(String, Value)] = [
            ("kind", .string(kind.rawValue)), ("conn", .int(Int(truncatingIfNeeded: connection))),
            ("remote_addr", .string(remoteAddress)), ("remote_port", .int(remotePort)),
            ("method", .string(method)), ("path", .string(path)), ("status", .int(status)),
            ("close_code", closeCode.map(Value.int) ?? .null), ("bytes_in", .int(bytesIn)),
            ("bytes_out", .int(bytesOut)), ("duration_ms", .double(duration)),
            ("tls_version", .string(tlsVersion)), ("tls_cipher", .string(tlsCipher)),
            ("subprotocol", .string(subprotocol)), ("compression", .bool(compression)),
            ("user_agent", .string(userAgent)),
        ]
        switch format {
        case .json:
            let body = fields.map { "\(JSONText.quoted($0.0)):\($0.1.json)" }.joined(separator: ",")
            return "{\"ts\":\"\(timestamp)\",\"level\":\"info\",\"msg\":\"access\",\(body)}"
        case .text:
            return "\(timestamp) info access " + fields.map { "\($0.0)=\($0.1.text)" }.joined(separator: " ")
        }
    }

    enum Value {
        case string(String), int(Int), double(Double), bool(Bool), null

        var json: String {
            switch self {
            case .string(let s): return s.isEmpty ? "null" : JSONText.quoted(s)
            case .int(let i): return String(i)
            case .double(let d): return d.isFinite ? "\(d)" : "null"
            case .bool(let b): return b ? "true" : "false"
            case .null: return "null"
            }
        }

        var text: String {
            switch self {
            case .string(let s): return s.isEmpty ? "-" : JSONText.textValue(s)
            case .null: return "-"
            default: return json
            }
        }
    }
}

extension AccessLogRecord {
    /// What a WebSocket line keeps from its upgrade request in one string (interned by
    /// `AccessSessions`): method, path, TLS version and cipher, subprotocol, compression and
    /// user agent, NUL-separated. None of the first five can hold a NUL (request-target, token
    /// and OpenSSL names); the user agent comes last, so whatever it holds comes back whole.
    var sessionText: String {
        [method, path, tlsVersion, tlsCipher, subprotocol, compression ? "1" : "", userAgent].joined(separator: "\u{0}")
    }

    /// A WebSocket record (status 101) with the fields of `sessionText` filled in.
    init(sessionText text: String) {
        let f = text.split(separator: "\u{0}", maxSplits: 6, omittingEmptySubsequences: false).map(String.init)
        func field(_ i: Int) -> String { i < f.count ? f[i] : "" }
        self.init(kind: .websocket, method: field(0), path: field(1), status: 101, tlsVersion: field(2),
                  tlsCipher: field(3), subprotocol: field(4), compression: field(5) == "1", userAgent: field(6))
    }
}
