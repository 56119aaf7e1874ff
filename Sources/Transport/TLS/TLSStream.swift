#if canImport(Glibc)
import Glibc
#endif
import CLinux  // MSG_NOSIGNAL, MSG_DONTWAIT (sys/socket.h; Glibc's module does not always show them)
import COpenSSL

/// TLS over a non-blocking socket. OpenSSL runs the handshake; afterwards a TLS 1.3
/// connection with a scratch buffer switches to our own record layer (TLS13RecordLayer) and
/// frees its `SSL` object, while TLS 1.2 stays on OpenSSL's. WANT_READ / WANT_WRITE are results.
public final class TLSStream: ByteStream {
    public let fd: Int32
    private var ssl: OpaquePointer?
    public private(set) var isEstablished = false
    /// When the TCP connection was accepted (µs), for handshake timing.
    public var startedMicros: UInt64 = 0
    /// Negotiated TLS version, e.g. "TLSv1.3" (kept after the `SSL` object is freed).
    public private(set) var protocolVersion = ""

    /// Native record protection once a TLS 1.3 handshake is done (nil: OpenSSL's).
    public private(set) var records: TLS13RecordLayer?
    /// The loop's scratch buffer: ciphertext in and out passes through it. Nil: no offload.
    private let scratch: UnsafeMutableRawBufferPointer?
    private let role: TLS13RecordLayer.Role
    /// Traffic secrets captured by the key-log callback during the handshake.
    private var clientSecret: [UInt8] = []
    private var serverSecret: [UInt8] = []
    /// A partial record left over from the last read (allocated only then).
    private var carry: [UInt8] = []
    /// Sealed bytes the socket did not take yet (allocated only then).
    private var unsent: [UInt8] = []
    private var unsentOffset = 0
    private var closeNotifySent = false

    init(fd: Int32, ssl: OpaquePointer, role: TLS13RecordLayer.Role, scratch: UnsafeMutableRawBufferPointer?) {
        self.fd = fd
        self.ssl = ssl
        self.role = role
        self.scratch = scratch
        if scratch != nil {
            // Record by record during the handshake, so that OpenSSL never reads past the
            // peer's Finished: the application records that follow are ours to open.
            SSL_set_read_ahead(ssl, 0)
            _ = SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
        }
    }

    deinit { if let ssl { SSL_free(ssl) } }

    /// Installed on contexts that offload records: hands the two application traffic secrets
    /// of each handshake to its stream. Key-log lines are "LABEL <client_random> <secret>" in
    /// hex; parsed as C bytes (this runs five times per handshake).
    static let keyLogCallback: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Void = { ssl, line in
        guard let ssl, let line, let p = SSL_get_ex_data(ssl, 0) else { return }
        let isClient: Bool
        if strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0 { isClient = true }
        else if strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0 { isClient = false }
        else { return }
        guard let space = strchr(line + 24, 32) else { return }
        let secret = hexBytes(UnsafeRawBufferPointer(start: space + 1, count: strlen(space + 1)))
        let stream = Unmanaged<TLSStream>.fromOpaque(p).takeUnretainedValue()
        if isClient { stream.clientSecret = secret } else { stream.serverSecret = secret }
    }

    /// Lowercase or uppercase hex to bytes; empty for anything else.
    static func hexBytes(_ u: UnsafeRawBufferPointer) -> [UInt8] {
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        guard u.count % 2 == 0, u.count <= 128 else { return [] }
        var out = [UInt8](repeating: 0, count: u.count / 2)
        for i in 0..<out.count {
            guard let hi = nibble(u[2 * i]), let lo = nibble(u[2 * i + 1]) else { return [] }
            out[i] = hi << 4 | lo
        }
        return out
    }

    public func handshake() -> IOResult {
        if isEstablished { return .done(0) }
        guard let ssl else { return .error("TLS handshake: no session") }
        ERR_clear_error()
        let r = SSL_do_handshake(ssl)
        if r == 1 {
            isEstablished = true
            protocolVersion = String(cString: SSL_get_version(ssl))
            takeOverRecords(ssl)
            return .done(0)
        }
        return result(r, "TLS handshake")
    }

    /// TLS 1.3 with a suite we know and both secrets seen: our record layer from here on.
    private func takeOverRecords(_ ssl: OpaquePointer) {
        defer { clientSecret = []; serverSecret = [] }
        guard scratch != nil else { return }
        guard SSL_version(ssl) == TLS1_3_VERSION, let cipher = SSL_get_current_cipher(ssl),
              let suite = TLS13Suite.forCipherID(UInt32(truncatingIfNeeded: SSL_CIPHER_get_id(cipher))),
              clientSecret.count == suite.hashLength, serverSecret.count == suite.hashLength,
              SSL_has_pending(ssl) == 0 else {
            SSL_set_read_ahead(ssl, 1)  // OpenSSL keeps the records: batch reads again
            return
        }
        records = role == .server
            ? TLS13RecordLayer(role: .server, suite: suite, readSecret: clientSecret, writeSecret: serverSecret)
            : TLS13RecordLayer(role: .client, suite: suite, readSecret: serverSecret, writeSecret: clientSecret)
        SSL_free(ssl)
        self.ssl = nil
    }

    // MARK: - Reading

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if let records { return readRecords(records, into: buffer) }
        guard let ssl else { return .eof }
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

    /// One read() of ciphertext into the scratch buffer (after any partial record kept from
    /// the last one), every whole record opened straight into `buffer`.
    private func readRecords(_ records: TLS13RecordLayer, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if records.receivedCloseNotify { return .eof }
        let scratch = self.scratch!
        let capacity = min(scratch.count, buffer.count)
        var have = carry.count
        if have > 0 {
            carry.withUnsafeBytes { scratch.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: have) }
            carry = []
        }
        switch TCPStream.read(fd: fd, into: UnsafeMutableRawBufferPointer(rebasing: scratch[have..<capacity])) {
        case .done(let n):
            have += n
        case let other:  // .wantRead, .eof or .error: keep the partial record
            if have > 0 { carry = Array(UnsafeRawBufferPointer(start: scratch.baseAddress, count: have)) }
            return other
        }
        let opened: TLS13RecordLayer.Opened
        do throws(TLSRecordError) {
            opened = try records.open(UnsafeRawBufferPointer(start: scratch.baseAddress, count: have), into: buffer)
        } catch {
            sendAlert(error.alert)
            return .error(error.description)
        }
        if opened.consumed < have {
            carry = Array(UnsafeRawBufferPointer(start: scratch.baseAddress! + opened.consumed, count: have - opened.consumed))
        }
        if records.keyUpdateOwed && !hasPendingOutput { _ = write(UnsafeRawBufferPointer(start: nil, count: 0)) }
        if opened.produced > 0 { return .done(opened.produced) }
        if records.receivedCloseNotify { return .eof }
        // Only a partial record, a KeyUpdate or a ticket: nothing for the caller yet. Bytes
        // still in the kernel are signalled again (level-triggered epoll).
        return .wantRead
    }

    /// True if bytes are decrypted and waiting to be returned by `read` (OpenSSL only: our
    /// record layer opens every whole record it reads).
    public var hasPendingBytes: Bool {
        guard let ssl else { return false }
        return SSL_pending(ssl) > 0
    }

    // MARK: - Writing

    /// Sealed bytes waiting for the socket (our record layer only).
    public var hasPendingOutput: Bool { unsentOffset < unsent.count }

    public func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        if let records { return writeRecords(records, bytes) }
        guard let ssl else { return .eof }
        if bytes.count == 0 { return .done(0) }
        ERR_clear_error()
        let n = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        if n > 0 { return .done(Int(n)) }
        return result(n, "TLS write")
    }

    /// Sends what an earlier call left, then seals as much of `bytes` as the scratch buffer
    /// holds into records and sends them with one send(). Bytes sealed are consumed even if
    /// the socket takes only part of them (the rest waits in `unsent`). An empty `bytes`
    /// only pushes what waits.
    private func writeRecords(_ records: TLS13RecordLayer, _ bytes: UnsafeRawBufferPointer) -> IOResult {
        if hasPendingOutput {
            switch sendUnsent() {
            case .done: break
            case let other: return other
            }
        }
        if bytes.count == 0 && !records.keyUpdateOwed { return .done(0) }
        let scratch = self.scratch!
        let (consumed, produced) = records.seal(bytes, into: scratch)
        let (sent, stop) = sendSome(UnsafeRawBufferPointer(rebasing: scratch[0..<produced]))
        if let stop { return stop }
        if sent < produced {
            unsent = Array(UnsafeRawBufferPointer(start: scratch.baseAddress! + sent, count: produced - sent))
            unsentOffset = 0
        }
        return .done(consumed)
    }

    private func sendUnsent() -> IOResult {
        let (sent, stop) = unsent.withUnsafeBytes { sendSome(UnsafeRawBufferPointer(rebasing: $0[unsentOffset...])) }
        unsentOffset += sent
        if let stop { return stop }
        if unsentOffset < unsent.count { return .wantWrite }
        unsent = []
        unsentOffset = 0
        return .done(0)
    }

    /// Sends as much of `bytes` as the socket takes: how much, and the result that ended it
    /// early (.eof, .error); a full socket is not an error.
    private func sendSome(_ bytes: UnsafeRawBufferPointer) -> (sent: Int, stop: IOResult?) {
        var sent = 0
        while sent < bytes.count {
            switch TCPStream.write(fd: fd, UnsafeRawBufferPointer(rebasing: bytes[sent...])) {
            case .done(let n): sent += n
            case .wantWrite: return (sent, nil)
            case let other: return (sent, other)
            }
        }
        return (sent, nil)
    }

    /// Best effort: one alert record, straight to the socket (the connection is ending).
    private func sendAlert(_ description: UInt8?) {
        guard let description, let records, !closeNotifySent else { return }
        closeNotifySent = true
        var record = [UInt8](repeating: 0, count: 32)
        let n = record.withUnsafeMutableBytes { records.sealAlert(description, into: $0.baseAddress!) }
        _ = record.withUnsafeBytes { send(fd, $0.baseAddress, n, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
    }

    /// Frees what an idle connection does not need (cipher contexts; buffers already empty).
    public func releaseIdleState() {
        if !hasPendingOutput && carry.isEmpty { records?.releaseIdleState() }
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
        if records != nil {
            // close_notify after whatever is still queued (best effort, like SSL_shutdown).
            if hasPendingOutput { _ = sendUnsent() }
            if !hasPendingOutput { sendAlert(0) }
        } else if let ssl, isEstablished {
            ERR_clear_error()
            _ = SSL_shutdown(ssl)  // close_notify; we do not wait for the peer's
            _ = drainErrorQueue()
        }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    public func close() { _ = Glibc.close(fd) }

    /// The peer ended its side with close_notify (RFC 8446 §6.1: answer with ours).
    public var peerSentCloseNotify: Bool {
        if let records { return records.receivedCloseNotify }
        guard let ssl else { return false }
        return SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN != 0
    }
}
