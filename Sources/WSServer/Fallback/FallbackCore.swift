#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Synchronization
import Transport

/// The server's fallback sessions: one `FallbackLoop` per event loop, each touched only by its
/// loop's thread. A session id names its loop, so any request finds its session's loop from
/// the id; the session count is the only shared value (an atomic, for `maxSessions`).
final class FallbackCore: @unchecked Sendable {
    let settings: FallbackConfiguration
    let loops: [FallbackLoop]
    let sessionCount = Atomic<Int>(0)

    init(configuration: FallbackConfiguration, loops: [EventLoop]) {
        settings = configuration
        self.loops = loops.map { FallbackLoop(loop: $0, settings: configuration) }
    }

    /// Takes a session slot; false when `maxSessions` are open (the request gets 503).
    func reserveSession() -> Bool {
        if sessionCount.wrappingAdd(1, ordering: .relaxed).newValue > settings.maxSessions {
            sessionCount.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        return true
    }

    func releaseSession() { sessionCount.wrappingSubtract(1, ordering: .relaxed) }
}

/// One loop's sessions and their expiry. Registered on its loop with an eventfd that never
/// fires, only so that the loop's tick reaches it (a session with no request attached has no
/// descriptor of its own to be ticked through).
final class FallbackLoop: EventHandler {
    let loop: EventLoop
    var table: SessionTable<FallbackSession>
    private var tickFD: Int32 = -1

    init(loop: EventLoop, settings: FallbackConfiguration) {
        self.loop = loop
        table = SessionTable(capacity: settings.maxSessions, timeoutMillis: settings.sessionTimeoutMillis)
    }

    /// Adds a session (on this loop's thread); registers for ticks on first use.
    func insert(_ session: FallbackSession) throws(SessionTable<FallbackSession>.InsertError) {
        if tickFD < 0 {
            tickFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
            if tickFD >= 0 { try? loop.register(fd: tickFD, handler: self, interest: []) }
        }
        try table.insert(session.id, session, now: loop.now)
    }

    func lookup(_ id: SessionID) -> FallbackSession? { table.lookup(id, now: loop.now) }

    /// Descriptors this object keeps registered on its loop (the tick eventfd): not
    /// connections, so the per-loop connection gauge leaves them out.
    var registeredDescriptors: Int { tickFD >= 0 ? 1 : 0 }

    func handleEvent(_ events: IOEvents) {}
    func flushScheduled() {}

    func tick(now: UInt64) {
        for (_, session) in table.expire(now: now) { session.expired() }
    }

    func loopStopped() {
        for session in table.removeAll() { session.end(code: .goingAway, reason: "server stopping", notify: true) }
        if tickFD >= 0 {
            loop.unregister(fd: tickFD)
            close(tickFD)
            tickFD = -1
        }
    }
}

/// What a graceful shutdown tells fallback objects on each loop (Server.shutdown).
protocol FallbackShutdown: AnyObject {
    func shutdown()
}

extension FallbackLoop: FallbackShutdown {
    /// Every session closes with 1001: its attached request carries the close; a session with
    /// none attached ends at once.
    func shutdown() {
        for session in table.allSessions {
            session.close(code: .goingAway, reason: "server shutting down")
            if session.attached == nil { session.end(code: .goingAway, reason: "", notify: false) }
        }
    }
}

extension FallbackHTTPConnection: FallbackShutdown {
    /// Between requests: close now. Holding a poll or a stream: its session's close goes out
    /// first (FallbackLoop.shutdown), then the connection closes.
    func shutdown() {
        keepAlive = false
        switch state {
        case .idle: if queuedOutput == 0 { close() } else { closeAfterFlush = true }
        default: closeAfterFlush = true
        }
    }
}
