import Logging
import Transport
import WebSocket

/// What the policy says is due on each loop tick, and the memory an idle connection gives back.
extension WebSocketConnection {
    @_spi(EventLoop) public func tick(now: UInt64) {
        if policy.phase == .open { releaseIdleMemory(now: now) }
        switch policy.tick(now: now, protocolOpen: proto.state == .open, settings: core.policySettings) {
        case .sendPing: ping()
        case .close(.idleTimeout):
            log.info("idle timeout: no answer to ping", metadata: meta)
            close(code: .goingAway, reason: "idle timeout")
        case .drop(let why):
            switch why {
            case .handshakeTimeout:
                log.debug("handshake timeout (\(core.configuration.handshakeTimeout) s)", metadata: meta)
                                core.metrics.handshakeFailed("timeout")
            case .closeTimeout: log.debug("close timeout: peer did not answer our close frame", metadata: meta)
            case .lingerDone: break
            }
            finish()
        case .none, .pauseReading, .resumeReading, .shutdownWrite: break
        }
    }

    /// An idle connection keeps no output buffer (per-connection memory budget), no zlib
    /// streams where no_context_takeover makes them disposable, and (TLS) its keys but not its
    /// two cipher contexts (~2.3 KB).
    func releaseIdleMemory(now: UInt64) {
        releaseOutboundIfIdle()
        if policy.isQuiet(now: now) {
            if !proto.isMidMessage { proto.deflate?.releaseIdleMemory() }
            if !flushQueued { driver.releaseIdleState() }
        }
    }
}
