/// The timing and flow rules of one connection, without I/O: the phase, its deadline, the
/// idle ping and the backpressure hysteresis. The owner feeds it times (loop milliseconds)
/// and sizes as plain values and carries out the one `ConnectionAction` each call returns,
/// so tests drive it with integers for a clock (no sleeps, no sockets).
///
/// 19 bytes, stored inline in every connection; the settings are shared (`Settings`).
public struct ConnectionPolicy: Sendable {
    public enum Phase: UInt8, Sendable {
        /// TLS and HTTP, until the upgrade (or the client's connect + upgrade).
        case handshake
        /// WebSocket frames flow (the closing handshake included).
        case open
        /// Our last bytes and FIN are out; input is discarded until the peer closes.
        case lingering
        case closed
        /// Messages travel through another transport (SSE, long polling) that keeps its own
        /// timers: no deadline, no ping here.
        case external
    }

    /// Limits shared by all connections of a server (or a client).
    public struct Settings: Sendable {
        /// Accept (or connect) to upgrade; 0 = none.
        public var handshakeMillis: UInt64
        /// Silence before we ping; as long again without an answer closes 1001. 0 = never.
        public var idleMillis: UInt64
        /// Our close frame sent: how long we wait for the peer's.
        public var closeMillis: UInt64
        /// After our FIN: how long we read and discard before closing.
        public var lingerMillis: UInt64
        /// Output above this: stop reading from the peer.
        public var highWaterMark: Int
        /// Output at or below this after a pause: read again.
        public var lowWaterMark: Int

        public init(handshakeMillis: UInt64, idleMillis: UInt64, closeMillis: UInt64, lingerMillis: UInt64,
                    highWaterMark: Int, lowWaterMark: Int? = nil) {
            self.handshakeMillis = handshakeMillis
            self.idleMillis = idleMillis
            self.closeMillis = closeMillis
            self.lingerMillis = lingerMillis
            self.highWaterMark = highWaterMark
            self.lowWaterMark = lowWaterMark ?? highWaterMark / 2
        }
    }

    /// Deadline of the phase (handshake, close, linger) in loop ms; 0 = none.
    public private(set) var deadline: UInt64
    public private(set) var lastReceive: UInt64
    public private(set) var phase: Phase
    public private(set) var pingOutstanding = false
    /// Output went above the high-water mark: reading is paused.
    public private(set) var readPaused = false

    public init(now: UInt64, settings: Settings) {
        phase = .handshake
        lastReceive = now
        deadline = settings.handshakeMillis == 0 ? 0 : now + settings.handshakeMillis
    }

    /// The handshake must end within `millis` from `now` (or by its deadline, if sooner).
    public mutating func limitHandshake(now: UInt64, millis: UInt64) {
        guard phase == .handshake else { return }
        let limit = now + max(1, millis)
        if deadline == 0 || limit < deadline { deadline = limit }
    }

    /// A connection whose messages travel through another transport (no timers here).
    public static var external: ConnectionPolicy {
        var p = ConnectionPolicy(now: 0, settings: Settings(handshakeMillis: 0, idleMillis: 0, closeMillis: 0,
                                                            lingerMillis: 0, highWaterMark: .max))
        p.phase = .external
        return p
    }

    /// Bytes arrived from the peer (any bytes answer an outstanding ping).
    @inline(__always) public mutating func received(now: UInt64) {
        lastReceive = now
        pingOutstanding = false
    }

    /// The upgrade completed: frames flow, no deadline until a close is sent.
    public mutating func opened(now: UInt64) {
        phase = .open
        deadline = 0
        lastReceive = now
    }

    /// Our close frame is out: the peer has `closeMillis` to answer.
    public mutating func closeSent(now: UInt64, settings: Settings) {
        if phase == .open && deadline == 0 { deadline = now + max(1, settings.closeMillis) }
    }

    /// The output queue holds `bytes`: pause reading above the high-water mark, resume at or
    /// below the low-water mark.
    @inline(__always)
    public mutating func outputChanged(bytes: Int, settings: Settings) -> ConnectionAction {
        if !readPaused {
            if bytes > settings.highWaterMark && phase == .open {
                readPaused = true
                return .pauseReading
            }
        } else if bytes <= settings.lowWaterMark {
            readPaused = false
            return .resumeReading
        }
        return .none
    }

    /// Our last bytes are written and a FIN follows: read and discard until the peer closes or
    /// `lingerMillis` passes.
    public mutating func startLinger(now: UInt64, settings: Settings) -> ConnectionAction {
        guard phase != .lingering && phase != .closed else { return .none }
        phase = .lingering
        readPaused = false
        deadline = now + settings.lingerMillis
        return .shutdownWrite
    }

    /// The connection is gone; every later call returns `.none`.
    public mutating func closed() {
        readPaused = false
        phase = .closed
        deadline = 0
    }

    /// Timers: what is due at `now`. `protocolOpen` is false once a close frame was sent or
    /// received (idle pings stop; the close deadline runs).
    public mutating func tick(now: UInt64, protocolOpen: Bool, settings: Settings) -> ConnectionAction {
        switch phase {
        case .handshake:
            return deadline != 0 && now >= deadline ? .drop(.handshakeTimeout) : .none
        case .open:
            if !protocolOpen {
                return deadline != 0 && now >= deadline ? .drop(.closeTimeout) : .none
            }
            let idle = settings.idleMillis
            guard idle > 0, now >= lastReceive + idle else { return .none }
            if !pingOutstanding {
                pingOutstanding = true
                return .sendPing
            }
            return now >= lastReceive + 2 * idle ? .close(.idleTimeout) : .none
        case .lingering:
            return now >= deadline ? .drop(.lingerDone) : .none
        case .closed, .external:
            return .none
        }
    }

    /// True when nothing arrived for a second: idle memory (zlib, cipher contexts) may go.
    @inline(__always) public func isQuiet(now: UInt64) -> Bool { now >= lastReceive + 1000 }
}

/// One thing the owner of a `ConnectionPolicy` must do now.
public enum ConnectionAction: Equatable, Sendable {
    case none
    case pauseReading
    case resumeReading
    case sendPing
    /// Start the closing handshake (the owner maps the reason to its close code).
    case close(CloseReason)
    /// Flush is done: send FIN (TLS: close_notify first) and linger.
    case shutdownWrite
    /// Close the socket now.
    case drop(DropReason)

    /// Written out and inlinable: owners compare with a constant (`== .pauseReading`) per
    /// receive, which then folds to a tag test instead of a call to the derived `==`.
    @inlinable public static func == (lhs: ConnectionAction, rhs: ConnectionAction) -> Bool {
        switch (lhs, rhs) {
        case (.none, .none), (.pauseReading, .pauseReading), (.resumeReading, .resumeReading),
             (.sendPing, .sendPing), (.shutdownWrite, .shutdownWrite):
            return true
        case let (.close(a), .close(b)): return a == b
        case let (.drop(a), .drop(b)): return a == b
        default: return false
        }
    }

    public enum CloseReason: Equatable, Sendable {
        /// No answer to our ping for a whole idle period (WebSocket: 1001).
        case idleTimeout
    }

    public enum DropReason: Equatable, Sendable {
        case handshakeTimeout
        /// The peer did not answer our close frame in time.
        case closeTimeout
        case lingerDone
    }
}
