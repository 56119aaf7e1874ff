/// Settings of the SSE and long-polling fallbacks (README "Fallback transports"). Every limit
/// has a flag in `wss-server` (`FallbackOptions`).
public struct FallbackConfiguration: Sendable, Equatable {
    /// Serve `?transport=sse|longpoll` on WebSocket routes. Off: such requests get what any
    /// plain GET on a WebSocket path gets (426).
    public var enabled = true
    /// A session with no request attached for this long ends (handler: onClose 1001). 60 s
    /// leaves a client that polls every 25 s two polls of slack.
    public var sessionTimeout: Double = 60
    /// How long a poll is held when there is nothing to send. 25 s stays under the 30 s many
    /// proxies and load balancers allow an idle response.
    public var pollTimeout: Double = 25
    /// SSE comment interval (keeps proxies from cutting an idle stream).
    public var heartbeatInterval: Double = Double(SSEEncoder.heartbeatSeconds)
    /// Sessions per server (all loops); more are answered 503.
    public var maxSessions = 10_000
    /// Bytes of one POST body (413 beyond).
    public var maxPostBody = 1 << 20
    /// Records in one POST body (413 beyond).
    public var maxPostMessages = 100
    /// A POST body (or a request head) must be complete within this many seconds (408 and
    /// the connection closed): slowloris.
    public var postTimeout: Double = 10

    public init() {}

    /// Rejects values that make no sense (never clamped silently).
    public func validate() throws(FallbackConfigurationError) {
        func positive(_ v: Double, _ name: String) throws(FallbackConfigurationError) {
            guard v > 0, v.isFinite else { throw FallbackConfigurationError("\(name) must be a positive number of seconds, got \(v)") }
        }
        try positive(sessionTimeout, "session timeout")
        try positive(pollTimeout, "poll timeout")
        try positive(heartbeatInterval, "heartbeat interval")
        try positive(postTimeout, "POST timeout")
        guard pollTimeout < sessionTimeout else {
            throw FallbackConfigurationError("poll timeout (\(pollTimeout) s) must be shorter than the session timeout (\(sessionTimeout) s)")
        }
        guard maxSessions > 0 else { throw FallbackConfigurationError("max sessions must be at least 1, got \(maxSessions)") }
        guard maxPostBody > 0 else { throw FallbackConfigurationError("max POST body must be at least 1 byte, got \(maxPostBody)") }
        guard maxPostMessages > 0 else { throw FallbackConfigurationError("max POST messages must be at least 1, got \(maxPostMessages)") }
    }

    var sessionTimeoutMillis: UInt64 { UInt64(sessionTimeout * 1000) }
    var pollTimeoutMillis: UInt64 { UInt64(pollTimeout * 1000) }
    var heartbeatMillis: UInt64 { UInt64(heartbeatInterval * 1000) }
    var postTimeoutMillis: UInt64 { UInt64(postTimeout * 1000) }
}

/// A fallback setting out of range, said in one line.
public struct FallbackConfigurationError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}
