/// Where Redis is and how to log in: `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`.
/// rediss:// (TLS) is not supported: it is refused with a clear error, never downgraded.
public struct RedisEndpoint: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public var user: String?
    public var password: String?
    public var database: Int

    public init(host: String, port: Int = 6379, user: String? = nil, password: String? = nil, database: Int = 0) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// Parses a redis:// URL; the error says what is wrong with it.
    public init(url: String) throws(RedisURLError) {
        guard url.hasPrefix("redis://") else {
            if url.hasPrefix("rediss://") { throw RedisURLError(url, "rediss:// (TLS) is not supported; use redis:// on a trusted network") }
            throw RedisURLError(url, "must start with redis://")
        }
        var rest = Substring(url.dropFirst("redis://".count))
        var database = 0
        if let slash = rest.firstIndex(of: "/") {
            let db = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
            if !db.isEmpty {
                guard let n = Int(db), n >= 0, n <= 1_000_000 else { throw RedisURLError(url, "database '\(db)' is not a number") }
                database = n
            }
        }
        var user: String?, password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = credentials.firstIndex(of: ":") else {
                throw RedisURLError(url, "credentials must be ':PASSWORD@' or 'USER:PASSWORD@'")
            }
            let u = credentials[..<colon]
            user = u.isEmpty ? nil : String(u)
            password = String(credentials[credentials.index(after: colon)...])
        }
        var host = rest, port = 6379
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw RedisURLError(url, "unclosed '[' in the host") }
            host = rest[rest.index(after: rest.startIndex)..<close]
            let after = rest[rest.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw RedisURLError(url, "unexpected text after ']'") }
                port = try Self.port(after.dropFirst(), url)
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = rest[..<colon]
            port = try Self.port(rest[rest.index(after: colon)...], url)
        }
        guard !host.isEmpty else { throw RedisURLError(url, "no host") }
        self.init(host: String(host), port: port, user: user, password: password, database: database)
    }

    private static func port(_ s: Substring, _ url: String) throws(RedisURLError) -> Int {
        guard let p = Int(s), (1...65535).contains(p) else { throw RedisURLError(url, "port '\(s)' must be 1–65535") }
        return p
    }

    /// The URL without the password (for logs).
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        let cred = password == nil ? "" : "\(user ?? ""):***@"
        return "redis://\(cred)\(h):\(port)\(database == 0 ? "" : "/\(database)")"
    }
}

public struct RedisURLError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    init(_ url: String, _ why: String) {
        // Never echo a password back into a log or terminal.
        var shown = url
        if let at = url.lastIndex(of: "@"), let scheme = url.firstRange(of: "://"), scheme.upperBound <= at {
            shown = String(url[..<scheme.upperBound]) + "***" + String(url[at...])
        }
        description = "bad Redis URL '\(shown)': \(why)"
    }
}
