#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

/// TLS over a non-blocking socket via an OpenSSL `SSL*`. WANT_READ / WANT_WRITE are results.
public final class TLSStream: ByteStream {
    public let fd: Int32
    let ssl: OpaquePointer
    public private(set) var isEstablished = false
    /// When the TCP connection was accepted (µs), for handshake timing.
    public var startedMicros: UInt64 = 0

    init(fd: Int32, ssl: OpaquePointer) {
        self.fd = fd
        self.ssl = ssl
    }

    deinit { SSL_free(ssl) }

    /// Negotiated TLS version, e.g. "TLSv1.3".
    public var protocolVersion: String { String(cString: SSL_get_version(ssl)) }

    public func handshake() -> IOResult {
        if isEstablished { return .done(0) }
        ERR_clear_error()
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            isEstablished = true
            return .done(0)
        }
        return result(r, "TLS handshake")
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        ERR_clear_error()
        var total = 0
        // Take every record OpenSSL already holds (read-ahead may have pulled many in one
        // read()): with level-triggered epoll, bytes left inside OpenSSL would never be
        // signalled again. Bytes still in the kernel are; no extra read() to see EAGAIN.
        repeat {
            let want = Int32(min(buffer.count - total, Int(Int32.max)))
            let n = SSL_read(ssl, buffer.baseAddress! + total, want)
            if n > 0 {
                total += Int(n)
                continue
            }
            if total > 0 {
                // Report what we have; the condition repeats on the next call.
                _ = drainErrorQueue()
                return .done(total)
            }
            return result(n, "TLS read")
        } while total < buffer.count && SSL_has_pending(ssl) == 1
        return .done(total)
    }

    /// True if OpenSSL holds decrypted bytes not yet returned by `read`.
    public var hasPendingBytes: Bool { SSL_pending(ssl) > 0 }

    public func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        if bytes.count == 0 { return .done(0) }
        ERR_clear_error()
        let n = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        if n > 0 { return .done(Int(n)) }
        return result(n, "TLS write")
    }

    private func result(_ r: Int32, _ what: String) -> IOResult {
        let savedErrno = errno
        switch SSL_get_error(ssl, r) {
        case SSL_ERROR_WANT_READ: return .wantRead
        case SSL_ERROR_WANT_WRITE: return .wantWrite
        case SSL_ERROR_ZERO_RETURN: return .eof
        case SSL_ERROR_SYSCALL:
            _ = drainErrorQueue()
            if savedErrno == 0 || savedErrno == ECONNRESET || savedErrno == EPIPE { return .eof }
            return .error("\(what): \(errnoDescription(savedErrno))")
        default:
            return .error(TLSError.drain(what).description)
        }
    }

    public func shutdownWrite() {
        if isEstablished {
            ERR_clear_error()
            _ = SSL_shutdown(ssl)  // close_notify; we do not wait for the peer's
            _ = drainErrorQueue()
        }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    public func close() { _ = Glibc.close(fd) }
}
