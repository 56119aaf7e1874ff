import ArgumentParser
import Logging
import WSRedis
import WSServer

/// `--backplane …`: pub/sub topics shared with other instances through Redis.
struct BackplaneOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Share topics with other instances through Redis: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]. Default: this process only. A password here shows in `ps`: prefer --backplane-password-file or WSS_BACKPLANE_PASSWORD.", valueName: "URL"))
    var backplane: String?

    @Option(help: ArgumentHelp("File holding the Redis password (one line; trailing newline ignored), so it stays out of `ps`. Or set WSS_BACKPLANE_PASSWORD.", valueName: "PATH"))
    var backplanePasswordFile: String?

    @Option(help: "Bytes of publishes waiting for Redis beyond which they are not forwarded (counted in /metrics; local delivery goes on).")
    var backplaneQueueLimit: Int = 16 << 20

    @Option(help: "Seconds the start waits for the Redis connections before it listens (0–300; 0: no wait). Then it listens anyway, warning that recoveries report incomplete until Redis is reached.")
    var backplaneReadyTimeout: Double = ServerConfiguration.defaults.backplaneReadyTimeout

    @Option(help: "Seconds a Redis reply may be overdue (counted from the command, or from the last reply) before the connection is taken for broken: what waits on it is answered as in an outage (recoveries incomplete, presence local only) and it reconnects with backoff (0.5–300). A quiet connection is PINGed first (--backplane-keepalive).")
    var backplaneReplyTimeout: Double = 5

    @Option(help: "Seconds a Redis connection may hear nothing before it is sent a PING, due within --backplane-reply-timeout: so a Redis gone silent (partition, paused host) is found and reconnected even by a quiet subscription (0: off; 0.5–3600).")
    var backplaneKeepalive: Double = 10

    @Option(help: "Prefix of the Redis channel names (separates deployments sharing one Redis; pub/sub ignores the database number).")
    var backplaneChannelPrefix: String = "wss:"

    @Option(help: "Keep each topic's last N messages for recovery after a reconnect (Redis Streams with --backplane, memory without). Default: off.")
    var historySize: Int?

    @Option(help: "Seconds a topic's history lives after its last publish (with --history-size; default 300).")
    var historyTTL: Double?

    @Option(help: "Seconds a topic's epoch and last offset outlive its last publish, so an idle topic keeps its place (with --history-size; default 86400, never less than --history-ttl).")
    var historyMetaTTL: Double?

    var history: HistoryOptions? {
        historySize.map { HistoryOptions(size: $0, ttl: historyTTL ?? 300, metaTTL: historyMetaTTL) }
    }

    func validate() throws {
        if let n = historySize, !(1...1_000_000).contains(n) { throw ValidationError("--history-size must be 1–1000000") }
        if let t = historyTTL {
            if historySize == nil { throw ValidationError("--history-ttl needs --history-size") }
            if !(t >= 1 && t <= 30 * 86400) { throw ValidationError("--history-ttl must be 1–2592000 seconds") }
        }
        if let t = historyMetaTTL {
            if historySize == nil { throw ValidationError("--history-meta-ttl needs --history-size") }
            if !(t >= 1 && t <= 365 * 86400) { throw ValidationError("--history-meta-ttl must be 1–31536000 seconds") }
        }
        if let url = backplane {
            do { _ = try RedisEndpoint(url: url) } catch { throw ValidationError("--backplane: \(error)") }
        } else if backplanePasswordFile != nil {
            throw ValidationError("--backplane-password-file needs --backplane")
        }
        if backplaneQueueLimit < 64 << 10 { throw ValidationError("--backplane-queue-limit must be at least 65536 bytes") }
        if !(backplaneReadyTimeout >= 0 && backplaneReadyTimeout <= 300) {
            throw ValidationError("--backplane-ready-timeout must be 0–300 seconds")
        }
        if !(backplaneReplyTimeout >= 0.5 && backplaneReplyTimeout <= 300) {
            throw ValidationError("--backplane-reply-timeout must be 0.5–300 seconds")
        }
        if !(backplaneKeepalive == 0 || (backplaneKeepalive >= 0.5 && backplaneKeepalive <= 3600)) {
            throw ValidationError("--backplane-keepalive must be 0 (off) or 0.5–3600 seconds")
        }
        if backplaneChannelPrefix.utf8.count > 64 { throw ValidationError("--backplane-channel-prefix must be at most 64 bytes") }
    }

    /// What `--print-config` writes for a URL's password: the password given elsewhere
    /// (file or environment) takes its place; alone it is an error, never sent to Redis.
    static let passwordPlaceholder = "(redacted)"

    /// `url` with its password replaced by `passwordPlaceholder` (nil if it has none):
    /// redis://[USER]:PASSWORD@HOST… → redis://[USER]:(redacted)@HOST….
    static func redactingPassword(_ url: String) -> String? {
        guard let scheme = url.range(of: "://") else { return nil }
        let rest = url[scheme.upperBound...]
        let authority = rest[..<(rest.firstIndex(of: "/") ?? rest.endIndex)]
        guard let at = authority.lastIndex(of: "@") else { return nil }
        let userinfo = authority[..<at]
        let user = userinfo.firstIndex(of: ":").map { userinfo[..<$0] } ?? ""
        return url[..<scheme.upperBound] + user + ":" + passwordPlaceholder + url[at...]
    }

    /// The backplane the flags ask for (the in-process one without --backplane).
    func makeBackplane(logger: Logger) throws -> Backplane {
        guard let url = backplane else { return InProcessBackplane(history: history) }
        var endpoint = try RedisEndpoint(url: url)
        let placeholder = endpoint.password == Self.passwordPlaceholder
        let urlHasOne = endpoint.password != nil && !placeholder
        if let password = try BackplanePassword.read(file: backplanePasswordFile, urlHasOne: urlHasOne, logger: logger) {
            endpoint.password = password
        } else if placeholder {
            throw ValidationError("the --backplane URL's password is \(Self.passwordPlaceholder) (as --print-config writes it): give the password with --backplane-password-file or WSS_BACKPLANE_PASSWORD, or in the URL")
        }
        var options = RedisBackplane.Options(endpoint: endpoint)
        options.history = history
        options.maxQueuedBytes = backplaneQueueLimit
        options.channelPrefix = backplaneChannelPrefix
        options.replyTimeout = backplaneReplyTimeout
        options.keepalive = backplaneKeepalive
        let redis = try RedisBackplane(options: options, logger: logger)
        let kept = history.map { ", history \($0.size) messages for \(Int($0.ttl)) s per topic" } ?? ""
        logger.info("backplane: \(options.endpoint) (instance \(redis.instance)), channels '\(backplaneChannelPrefix)<topic>'\(kept)")
        return redis
    }
}
