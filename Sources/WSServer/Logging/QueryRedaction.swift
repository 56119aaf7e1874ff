/// What the access log writes as a request's `path`: the request target as sent (path and
/// query, like nginx's `$request_uri`), with the values of sensitive query parameters
/// replaced by `***` — query strings carry tokens (a browser cannot set headers on a
/// WebSocket or an EventSource), and a log is read by more people than the service is.
/// Names match case-insensitively, percent-encoded or not; a parameter with an empty value or
/// none is left as it is (nothing to hide).
public struct QueryRedaction: Sendable, Equatable {
    /// The default list (`--access-log-redact`): bearer tokens, API keys, passwords, signed-URL
    /// signatures, and `sid` (a fallback session's id, which lets whoever holds it post to and
    /// read from that session).
    public static let defaultNames = ["token", "access_token", "refresh_token", "id_token", "jwt", "auth",
                                      "authorization", "key", "api_key", "apikey", "password", "passwd",
                                      "secret", "client_secret", "sig", "signature", "sid", "session"]
    public static let standard = QueryRedaction(names: defaultNames)
    /// What a redacted value is written as.
    public static let mask = "***"

    /// Lowercased names.
    public let names: Set<String>

    public init(names: [String]) {
        self.names = Set(names.map { $0.lowercased() })
    }

    /// `target` with the values of the listed parameters masked (unchanged without a query).
    public func apply(_ target: String) -> String {
        guard !names.isEmpty, let q = target.utf8.firstIndex(of: UInt8(ascii: "?")) else { return target }
        var out = String(target[...q])
        var first = true
        for part in target[target.index(after: q)...].split(separator: "&", omittingEmptySubsequences: false) {
            if !first { out += "&" }
            first = false
            guard let eq = part.firstIndex(of: "="), part.index(after: eq) != part.endIndex,
                  names.contains((PercentEncoding.decoded(part[..<eq]) ?? String(part[..<eq])).lowercased()) else {
                out += part
                continue
            }
            out += part[...eq]
            out += Self.mask
        }
        return out
    }
}

/// `%XX` and `+` (form encoding) decoding of query components (the chat app's parameters, the
/// access log's parameter names).
enum PercentEncoding {
    /// nil for a broken escape or invalid UTF-8.
    static func decoded(_ s: Substring) -> String? {
        guard s.contains("%") || s.contains("+") else { return String(s) }
        var bytes: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "+") { bytes.append(0x20); continue }
            guard b == UInt8(ascii: "%") else { bytes.append(b); continue }
            guard it.count >= 2, let h = hex(it.popFirst()!), let l = hex(it.popFirst()!) else { return nil }
            bytes.append(h << 4 | l)
        }
        return String(validating: bytes, as: UTF8.self)
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x37
        case 0x61...0x66: return c - 0x57
        default: return nil
        }
    }
}
