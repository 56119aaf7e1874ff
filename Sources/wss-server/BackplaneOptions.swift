import ArgumentParser
import Logging
import WSRedis
import WSServer

/// `--backplane …`: pub/sub topics shared with other instances through Redis.
struct BackplaneOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Share topics with other instances through Redis: redis://[:PASSWORD@]HOST[:PORT][/DB]. Default: this process only.", valueName: "URL"))
    var backplane: String?

    @Option(help: "Bytes of publishes waiting for Redis beyond which they are not forwarded (counted in /metrics; local delivery goes on).")
    var backplaneQueueLimit: Int = 16 << 20

    @Option(help: "Prefix of the Redis channel names (separates deployments sharing one Redis; pub/sub ignores the database number).")
    var backplaneChannelPrefix: String = "wss:"

    func validate() throws {
        if let url = backplane {
            do { _ = try RedisEndpoint(url: url) } catch { throw ValidationError("--backplane: \(error)") }
        }
        if backplaneQueueLimit < 64 << 10 { throw ValidationError("--backplane-queue-limit must be at least 65536 bytes") }
        if backplaneChannelPrefix.utf8.count > 64 { throw ValidationError("--backplane-channel-prefix must be at most 64 bytes") }
    }

    /// The backplane the flags ask for (the in-process one without --backplane).
    func makeBackplane(logger: Logger) throws -> Backplane {
        guard let url = backplane else { return InProcessBackplane() }
        var options = RedisBackplane.Options(endpoint: try RedisEndpoint(url: url))
        options.maxQueuedBytes = backplaneQueueLimit
        options.channelPrefix = backplaneChannelPrefix
        let redis = try RedisBackplane(options: options, logger: logger)
        logger.info("backplane: \(options.endpoint) (instance \(redis.instance)), channels '\(backplaneChannelPrefix)<topic>'")
        return redis
    }
}
