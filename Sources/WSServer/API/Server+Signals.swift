#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Written by the signal handlers, read by `runUntilSignalled`: the self-pipe trick, so a
/// signal delivered to any thread (a loop thread included) wakes the waiting one.
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1

extension Server {
    /// Starts the server if it is not started yet and serves until SIGINT or SIGTERM, then shuts
    /// down gracefully, as the `wss-server` CLI does: stop accepting, close every connection
    /// with 1001 (going away), wait up to `configuration.shutdownTimeout` for the clients'
    /// answers, stop the loops, return. SIGHUP reloads the certificate and key (TLS only; a
    /// failed reload keeps the old ones and logs why) and then calls `onHangup` (e.g. to reopen
    /// a log file). SIGPIPE is ignored for the whole process: a peer that vanishes mid-write
    /// must be an error return, not the end of the process.
    ///
    /// ```swift
    /// let server = try Server(configuration: config)
    /// server.route("/room", ChatRoom())
    /// try server.runUntilSignalled()   // Ctrl-C: clients see 1001, then this returns
    /// ```
    /// - Parameters:
    ///   - onReady: called once, when the server listens and the signals are handled (the
    ///     place to announce the port: a signal sent after it is always handled gracefully).
    ///   - onHangup: called after each SIGHUP's certificate reload.
    /// - Returns: how many connections were still open when the wait ended (0 = all drained).
    /// - Throws: what `start()` throws (port in use, bad address).
    @discardableResult
    public func runUntilSignalled(onReady: (() -> Void)? = nil,
                                  onHangup: (() -> Void)? = nil) throws -> Int {
        signal(SIGPIPE, SIG_IGN)
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            throw SignalSetupError.pipe(String(cString: strerror(errno)))
        }
        defer { close(fds[0]); close(fds[1]) }
        // Blocking reads on our end; the handler's end is non-blocking (never stalls a signal).
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        signalPipeWrite = fds[1]
        let handled = [SIGINT, SIGTERM, SIGHUP]
        for s in handled { installHandler(s) }
        defer {
            for s in handled { signal(s, SIG_DFL) }
            signalPipeWrite = -1
        }
        if port == 0 { try start() }
        onReady?()

        var sig: UInt8 = 0
        while true {
            let n = read(fds[0], &sig, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { break }
            if Int32(sig) == SIGHUP {
                reloadOnHangup()
                onHangup?()
                continue
            }
            logger.notice("signal \(Int32(sig) == SIGINT ? "SIGINT" : "SIGTERM"): closing connections with 1001 (up to \(configuration.shutdownTimeout) s)")
            break
        }
        return shutdown()
    }

    private func reloadOnHangup() {
        guard configuration.isTLS else {
            logger.notice("SIGHUP: no certificate to reload (plain ws://)")
            return
        }
        do {
            let serial = try reloadCertificate()
            logger.notice("SIGHUP: certificate reloaded (serial \(serial)); open connections keep theirs")
        } catch {
            logger.error("SIGHUP: certificate reload failed, keeping the old one: \(error)")
        }
    }

    private func installHandler(_ s: Int32) {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in
            var byte = UInt8(truncatingIfNeeded: sig)
            let saved = errno
            _ = write(signalPipeWrite, &byte, 1)
            errno = saved
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(s, &action, nil)
    }
}

/// Why `runUntilSignalled` could not start waiting.
enum SignalSetupError: Error, CustomStringConvertible {
    case pipe(String)
    var description: String {
        switch self {
        case .pipe(let why): return "cannot create the signal pipe: \(why)"
        }
    }
}
