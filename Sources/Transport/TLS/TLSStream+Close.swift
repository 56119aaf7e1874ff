#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import CLinux

/// Ending a TLS connection (RFC 8446 §6.1): close_notify on every orderly close, on both
/// record layers; a peer's close_notify answered with ours; and a close that does not turn
/// our last alert into a TCP reset.
extension TLSStream {
    /// Best effort: one alert record, straight to the socket (the connection is ending).
    func sendAlert(_ description: UInt8?) {
        guard let description, let records, !alertSent else { return }
        alertSent = true
        var record = (UInt64(0), UInt64(0), UInt64(0), UInt64(0))  // 24 bytes needed
        withUnsafeMutableBytes(of: &record) { r in
            let n = records.sealAlert(description, into: r.baseAddress!)
            _ = send(fd, r.baseAddress, n, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
        }
    }

    /// The peer sent close_notify: ours goes back at once (after whatever is still queued;
    /// if the socket cannot take that now, `shutdownWrite` or `close` sends it later).
    func answerCloseNotify() {
        if records != nil {
            if hasPendingOutput { _ = sendUnsent() }
            if !hasPendingOutput { sendAlert(0) }
        } else {
            sendOpenSSLCloseNotify()
        }
    }

    private func sendOpenSSLCloseNotify() {
        guard let ssl, isEstablished, !alertSent else { return }
        alertSent = true
        ERR_clear_error()
        // close_notify; we do not wait for the peer's. OpenSSL writes with write(2): a peer
        // that is gone must not raise SIGPIPE in a process that did not ignore it.
        Self.withoutSIGPIPE { _ = SSL_shutdown(ssl) }
        _ = drainErrorQueue()
    }

    /// Runs `body` with SIGPIPE blocked on this thread, consuming one it raised.
    static func withoutSIGPIPE(_ body: () -> Void) {
        var pipe = sigset_t(), old = sigset_t()
        sigemptyset(&pipe)
        sigaddset(&pipe, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipe, &old)
        body()
        var pending = sigset_t()
        sigpending(&pending)
        if sigismember(&pending, SIGPIPE) == 1 {
            var zero = timespec()
            _ = sigtimedwait(&pipe, nil, &zero)
        }
        pthread_sigmask(SIG_SETMASK, &old, nil)
    }

    /// close_notify (or the fatal alert a bad record earned) after whatever is still queued
    /// (best effort, like SSL_shutdown), then FIN; reading stays possible.
    public func shutdownWrite() {
        if records != nil {
            if hasPendingOutput { _ = sendUnsent() }
            if !hasPendingOutput { sendAlert(owedAlert ?? 0) }
        } else {
            sendOpenSSLCloseNotify()
        }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    /// Closes the socket: close_notify first if none went out yet (an orderly close), then
    /// the input already received is read and dropped, so that the kernel sends FIN instead
    /// of RST (an RST can destroy our alert before the peer reads it). Bounded: at most
    /// `maxDrainBytes` are read, without waiting.
    public func close() {
        if isEstablished && !alertSent { shutdownWrite() }
        Self.drainInput(fd)
        _ = Glibc.close(fd)
    }

    public static let maxDrainBytes = 256 << 10

    /// Reads and drops what the socket holds now, up to `maxDrainBytes`, without blocking.
    public static func drainInput(_ fd: Int32) {
        withUnsafeTemporaryAllocation(byteCount: 16 << 10, alignment: 16) { buf in
            var total = 0
            while total < maxDrainBytes {
                let n = recv(fd, buf.baseAddress, buf.count, Int32(MSG_DONTWAIT))
                if n <= 0 { break }
                total += n
            }
        }
    }
}
