#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import CLinux

/// TLS over a non-blocking socket. OpenSSL runs the handshake; afterwards a TLS 1.3
/// connection with a scratch buffer switches to our own record layer (TLS13RecordLayer) and
/// frees its `SSL` object, while TLS 1.2 stays on OpenSSL's. WANT_READ / WANT_WRITE are results.
///
/// Owners: after a `read` that returned `.done(n)` with n < buffer.count, read again while
/// `hasPendingBytes` is true: a fatal error found behind good bytes in the same read is
/// reported by the next `read` (level-triggered epoll would never signal it again).
public final class TLSStream: ByteStream {
    // Declared widest first (layout follows declaration order): a 192-byte malloc chunk per
    // connection instead of 224 with the one-byte fields between the pointers.
    var ssl: OpaquePointer?
    /// When the TCP connection was accepted (µs), for handshake timing.
    public var startedMicros: UInt64 = 0
    /// The suite's IANA name from OpenSSL's static cipher table (lives as long as libssl).
    private var cipherStandardName: UnsafePointer<CChar>?
    /// The negotiated cipher suite, IANA name (e.g. "TLS_AES_128_GCM_SHA256",
    /// "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"), on both record layers; "" before the handshake.
    public var cipherName: String { cipherStandardName.map { String(cString: $0) } ?? "" }

    /// Native record protection once a TLS 1.3 handshake is done (nil: OpenSSL's).
    /// The hot fields below are touched only on the loop's thread and never across an inout
    /// access of their own: no dynamic exclusivity check (~75 instructions each, 3 per message).
    @exclusivity(unchecked) public private(set) var records: TLS13RecordLayer?
    /// Counts handshakes for the context (nil for client streams).
    private let counters: TLSHandshakeCounters?
    /// Traffic secrets captured by the key-log callback during the handshake (wiped after use).
    private var clientSecret: [UInt8] = []
    private var serverSecret: [UInt8] = []
    /// NewSessionTickets OpenSSL sealed under the server's application key before the handover.
    var ticketsSent: UInt64 = 0
    /// The context's session-ticket keys, held during the handshake only (server streams).
    var ticketKeys: TLSTicketKeys?
    /// A partial record left over from the last read (allocated only then).
    @exclusivity(unchecked) var carry: [UInt8] = []
    /// Sealed bytes the socket did not take yet (allocated only then).
    @exclusivity(unchecked) var unsent: [UInt8] = []
    @exclusivity(unchecked) var unsentOffset = 0
    /// Negotiated TLS version, e.g. "TLSv1.3" (kept after the `SSL` object is freed).
    public private(set) var protocolVersion = ""
    /// A fatal error (or end of stream) found after good bytes, for the next `read`.
    @exclusivity(unchecked) var pendingResult: IOResult?
    /// The loop's scratch buffer: ciphertext in and out passes through it. Nil: no offload.
    let scratch: UnsafeMutableRawBufferPointer?
    public let fd: Int32
    public private(set) var isEstablished = false
    /// The handshake resumed a session (a ticket) instead of a full handshake.
    public private(set) var resumedSession = false
    private let role: TLS13RecordLayer.Role
    /// Our close_notify or fatal alert went out: nothing more is sealed.
    var alertSent = false
    /// The fatal alert a bad record earned, sent by `shutdownWrite` / `close` after the
    /// output queued before it (instead of close_notify).
    var owedAlert: UInt8?

    init(fd: Int32, ssl: OpaquePointer, role: TLS13RecordLayer.Role, scratch: UnsafeMutableRawBufferPointer?,
         counters: TLSHandshakeCounters? = nil) {
        self.fd = fd
        self.ssl = ssl
        self.role = role
        self.scratch = scratch
        self.counters = counters
        // Lets the context's callbacks (key log, ticket count) find this stream.
        _ = SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
        if scratch != nil {
            // Record by record during the handshake, so that OpenSSL never reads past the
            // peer's Finished: the application records that follow are ours to open.
            SSL_set_read_ahead(ssl, 0)
        }
    }

    deinit {
        if let ssl { SSL_free(ssl) }
        wipe(&clientSecret)
        wipe(&serverSecret)
    }

    static func stream(of ssl: OpaquePointer?) -> TLSStream? {
        guard let ssl, let p = SSL_get_ex_data(ssl, 0) else { return nil }
        return Unmanaged<TLSStream>.fromOpaque(p).takeUnretainedValue()
    }

    /// Installed on contexts that offload records: hands the two application traffic secrets
    /// of each handshake to its stream. Key-log lines are "LABEL <client_random> <secret>" in
    /// hex; parsed as C bytes (this runs five times per handshake).
    static let keyLogCallback: @convention(c) (OpaquePointer?, UnsafePointer<CChar>?) -> Void = { ssl, line in
        guard let line, let stream = TLSStream.stream(of: ssl), stream.scratch != nil else { return }
        let isClient: Bool
        if strncmp(line, "CLIENT_TRAFFIC_SECRET_0 ", 24) == 0 { isClient = true }
        else if strncmp(line, "SERVER_TRAFFIC_SECRET_0 ", 24) == 0 { isClient = false }
        else { return }
        guard let space = strchr(line + 24, 32) else { return }
        let secret = hexBytes(UnsafeRawBufferPointer(start: space + 1, count: strlen(space + 1)))
        if isClient { wipe(&stream.clientSecret); stream.clientSecret = secret }
        else { wipe(&stream.serverSecret); stream.serverSecret = secret }
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
            resumedSession = SSL_session_reused(ssl) == 1
            cipherStandardName = SSL_get_current_cipher(ssl).flatMap { SSL_CIPHER_standard_name($0) }
            ticketKeys = nil
            counters?.count(resumed: resumedSession)
            takeOverRecords(ssl)
            return .done(0)
        }
        return result(r, "TLS handshake")
    }

    /// TLS 1.3 with a suite we know and both secrets seen: our record layer from here on.
    /// OpenSSL has by then written its NewSessionTickets to the socket (SSL_do_handshake on a
    /// server returns only after they are out), sealed with the first records of the server's
    /// application key: our write sequence continues after them.
    private func takeOverRecords(_ ssl: OpaquePointer) {
        defer { wipe(&clientSecret); wipe(&serverSecret) }
        guard scratch != nil else { return }
        guard SSL_version(ssl) == TLS1_3_VERSION, let cipher = SSL_get_current_cipher(ssl),
              let suite = TLS13Suite.forCipherID(UInt32(truncatingIfNeeded: SSL_CIPHER_get_id(cipher))),
              clientSecret.count == suite.hashLength, serverSecret.count == suite.hashLength,
              SSL_has_pending(ssl) == 0 else {
            SSL_set_read_ahead(ssl, 1)  // OpenSSL keeps the records: batch reads again
            return
        }
        let limit = Self.maxFragmentLength(ssl)
        records = role == .server
            ? TLS13RecordLayer(role: .server, suite: suite, readSecret: clientSecret, writeSecret: serverSecret,
                               writeSequence: ticketsSent, plaintextLimit: limit)
            : TLS13RecordLayer(role: .client, suite: suite, readSecret: serverSecret, writeSecret: clientSecret,
                               plaintextLimit: limit)
        SSL_free(ssl)
        self.ssl = nil
    }

    /// RFC 6066 §4: the plaintext limit max_fragment_length agreed (512–4096), else 2^14.
    static func maxFragmentLength(_ ssl: OpaquePointer) -> Int {
        guard let session = SSL_get_session(ssl) else { return TLS13RecordLayer.maxPlaintext }
        let mode = Int(SSL_SESSION_get_max_fragment_length(session))
        return (1...4).contains(mode) ? 256 << mode : TLS13RecordLayer.maxPlaintext
    }

    // MARK: - Reading

    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if let pending = pendingResult {
            pendingResult = nil
            return pending
        }
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
            let r = result(n, "TLS read")
            if case .eof = r, SSL_get_shutdown(ssl) & wss_SSL_RECEIVED_SHUTDOWN() != 0 { answerCloseNotify() }
            if total > 0 {
                // Deliver the good bytes now; a fatal error or the end comes with the next
                // read (hasPendingBytes tells the owner to make it at once).
                switch r {
                case .eof, .error: pendingResult = r
                default: break
                }
                return .done(total)
            }
            return r
        } while total < buffer.count && SSL_has_pending(ssl) == 1
        return .done(total)
    }

    /// True if `read` has something to return without the socket becoming readable again:
    /// bytes decrypted inside OpenSSL, or an error or end of stream found behind good bytes.
    public var hasPendingBytes: Bool {
        if pendingResult != nil { return true }
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

    /// Frees what an idle connection does not need (cipher contexts; buffers already empty).
    public func releaseIdleState() {
        if !hasPendingOutput && carry.isEmpty { records?.releaseIdleState() }
    }

    func result(_ r: Int32, _ what: String) -> IOResult {
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
            alertSent = true  // OpenSSL sent its fatal alert, if any; no close_notify after it
            return .error(TLSError.drain(what).description)
        }
    }

    /// The peer ended its side with close_notify (RFC 8446 §6.1: answered with ours).
    public var peerSentCloseNotify: Bool {
        if let records { return records.receivedCloseNotify }
        guard let ssl else { return false }
        return SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN != 0
    }
}
