#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

/// A server TLS configuration: certificate chain, private key, protocol settings. Shared by
/// every loop (SSL_CTX is thread-safe for creating sessions); replace it to reload a certificate.
public final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let certificateFile: String
    public let keyFile: String
    /// TLS 1.3 connections switch to our record layer after the handshake (TLSStream) and
    /// free their `SSL`.
    public let nativeRecords: Bool
    /// Keys of the stateless session tickets (rotating; see TLSTicketKeys).
    public let ticketKeys: TLSTicketKeys
    /// Full and resumed handshakes of every server context in this process (/metrics).
    public static let handshakes = TLSHandshakeCounters()
    /// NewSessionTickets sent after a full handshake.
    public static let ticketsPerHandshake = 1
    /// TLS 1.2 (Mozilla "intermediate"): ECDHE with AES-GCM or ChaCha20-Poly1305 only, no CBC
    /// (LUCKY13), no RSA key exchange, no SHA-1 MACs.
    public static let tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
        + "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
        + "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
    /// Key-exchange groups, both versions: no X448, no P-521, no finite-field groups.
    public static let groups = "X25519:P-256:P-384"

    /// Loads `certificateFile` (a PEM leaf optionally followed by intermediates) and the key:
    /// `keyFile` if given, else the certificate file itself if it holds a private key, else
    /// `key.pem` beside the certificate.
    public init(certificateFile: String, keyFile: String? = nil, nativeRecords: Bool = true,
                ticketKeys: TLSTicketKeys = .processWide) throws(TLSError) {
        try Self.checkReadable(certificateFile, what: "certificate")
        let key = keyFile ?? Self.defaultKeyFile(forCertificate: certificateFile)
        try Self.checkReadable(key, what: "private key")
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_server_method()) else { throw .drain("SSL_CTX_new failed") }
        self.ctx = ctx
        self.certificateFile = certificateFile
        self.keyFile = key
        self.nativeRecords = nativeRecords
        self.ticketKeys = ticketKeys
        if SSL_CTX_use_certificate_chain_file(ctx, certificateFile) != 1 {
            throw .drain("cannot load certificate '\(certificateFile)'")
        }
        if SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 {
            throw .drain("cannot load private key '\(key)'")
        }
        if SSL_CTX_check_private_key(ctx) != 1 {
            _ = drainErrorQueue()
            throw TLSError("private key '\(key)' does not match certificate '\(certificateFile)'")
        }
        _ = wss_SSL_CTX_set_min_proto_version(ctx, wss_TLS1_2_VERSION())
        // Idle connections keep no 34 KiB record buffers; writes may be partial and retried
        // from a buffer that moved (our output buffer can grow between attempts).
        // No chain building per handshake: the certificate file carries the chain we send
        // (without this, OpenSSL searches its store on every handshake).
        _ = wss_SSL_CTX_set_mode(ctx, wss_SSL_MODE_RELEASE_BUFFERS() | wss_SSL_MODE_ENABLE_PARTIAL_WRITE()
                                 | wss_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER() | wss_SSL_MODE_NO_AUTO_CHAIN())
        // AES-128-GCM first (server preference): 10 AES rounds instead of 14, the same
        // security margin browsers and CDNs settle on; ChaCha20 for clients without AES-NI.
        _ = SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256")
        guard SSL_CTX_set_cipher_list(ctx, Self.tls12Ciphers) == 1 else { throw .drain("TLS 1.2 cipher list") }
        guard wss_SSL_CTX_set1_groups_list(ctx, Self.groups) == 1 else { throw .drain("TLS groups") }
        _ = wss_SSL_CTX_set_options(ctx, wss_SSL_OP_NO_RENEGOTIATION() | wss_SSL_OP_NO_COMPRESSION()
                                    | wss_SSL_OP_IGNORE_UNEXPECTED_EOF() | wss_SSL_OP_CIPHER_SERVER_PREFERENCE())
        // Read ahead: one read() fills OpenSSL's buffer with as many records as are waiting
        // (instead of a read for each 5-byte record header and another for its body).
        _ = wss_SSL_CTX_set_read_ahead(ctx, 1)
        SSL_CTX_set_default_read_buffer_len(ctx, 64 << 10)
        configureTickets(ctx)
        // ALPN: we speak http/1.1 only (WebSocket over HTTP/2, RFC 8441, is not supported).
        SSL_CTX_set_alpn_select_cb(ctx, { _, out, outlen, input, inlen, _ in
            guard let input, let out, let outlen else { return SSL_TLSEXT_ERR_NOACK }
            var i = 0
            let total = Int(inlen)
            while i < total {
                let len = Int(input[i])
                if i + 1 + len > total { break }
                if len == 8, memcmp(input + i + 1, "http/1.1", 8) == 0 {
                    out.pointee = input + i + 1
                    outlen.pointee = 8
                    return SSL_TLSEXT_ERR_OK
                }
                i += 1 + len
            }
            return SSL_TLSEXT_ERR_NOACK
        }, nil)
        ERR_clear_error()
    }

    deinit { SSL_CTX_free(ctx) }

    public static func defaultKeyFile(forCertificate cert: String) -> String {
        if let fp = fopen(cert, "r") {
            defer { fclose(fp) }
            var line = [CChar](repeating: 0, count: 512)
            while fgets(&line, Int32(line.count), fp) != nil {
                let s = cString(line)
                if s.hasPrefix("-----BEGIN") && s.contains("PRIVATE KEY-----") { return cert }
            }
        }
        if let slash = cert.lastIndex(of: "/") { return String(cert[...slash]) + "key.pem" }
        return "key.pem"
    }

    static func checkReadable(_ path: String, what: String) throws(TLSError) {
        guard let fp = fopen(path, "r") else {
            throw TLSError("cannot read \(what) '\(path)': \(errnoDescription())")
        }
        fclose(fp)
    }

    /// A server-side TLS stream on an accepted socket. `scratch` is the loop's buffer for
    /// ciphertext (needed for native records).
    public func makeStream(fd: Int32, scratch: UnsafeMutableRawBufferPointer? = nil) -> TLSStream? {
        guard let ssl = SSL_new(ctx) else { _ = drainErrorQueue(); return nil }
        SSL_set_fd(ssl, fd)
        SSL_set_accept_state(ssl)
        let stream = TLSStream(fd: fd, ssl: ssl, role: .server, scratch: nativeRecords ? scratch : nil, counters: Self.handshakes)
        stream.ticketKeys = ticketKeys
        return stream
    }

    /// Serial number of the leaf certificate, as hex (for logs and reload checks).
    public var leafSerialHex: String {
        guard let cert = SSL_CTX_get0_certificate(ctx), let serial = X509_get_serialNumber(cert),
              let bn = ASN1_INTEGER_to_BN(serial, nil) else { return "?" }
        defer { BN_free(bn) }
        guard let hex = BN_bn2hex(bn) else { return "?" }
        defer { CRYPTO_free(hex, #file, #line) }
        return String(cString: hex)
    }
}
