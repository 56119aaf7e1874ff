#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import CLinux

/// Client-side TLS: verifies the server's certificate chain against a CA file (or the system
/// store) and its name, sends SNI for names, offers ALPN http/1.1.
public final class TLSClientContext: @unchecked Sendable {
    let ctx: OpaquePointer
    public let verifies: Bool

    /// - Parameters:
    ///   - caFile: PEM file of trusted CAs; nil uses the system's default store.
    ///   - verify: false skips verification (benchmarks against self-signed test servers only).
    ///   - sessionCache: false forces a full handshake on every connection.
    ///   - releaseBuffers: free OpenSSL's record buffers whenever they drain: less memory for
    ///     many idle connections, more allocation for busy ones.
    public init(caFile: String? = nil, verify: Bool = true, sessionCache: Bool = true,
                releaseBuffers: Bool = false) throws(TLSError) {
        ERR_clear_error()
        guard let ctx = SSL_CTX_new(TLS_client_method()) else { throw .drain("SSL_CTX_new failed") }
        self.ctx = ctx
        self.verifies = verify
        _ = wss_SSL_CTX_set_min_proto_version(ctx, wss_TLS1_2_VERSION())
        _ = wss_SSL_CTX_set_mode(ctx, (releaseBuffers ? wss_SSL_MODE_RELEASE_BUFFERS() : 0)
                                 | wss_SSL_MODE_ENABLE_PARTIAL_WRITE() | wss_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER())
        _ = wss_SSL_CTX_set_options(ctx, wss_SSL_OP_NO_RENEGOTIATION() | wss_SSL_OP_IGNORE_UNEXPECTED_EOF())
        _ = wss_SSL_CTX_set_read_ahead(ctx, 1)
        // Streams made with a scratch buffer take TLS 1.3 records over after the handshake;
        // the callback hands them the traffic secrets (others ignore it).
        SSL_CTX_set_keylog_callback(ctx, TLSStream.keyLogCallback)
        if !sessionCache { _ = wss_SSL_CTX_set_session_cache_mode(ctx, 0) }
        if verify {
            if let caFile {
                if let fp = fopen(caFile, "r") { fclose(fp) } else {
                    throw TLSError("cannot read CA file '\(caFile)': \(errnoDescription())")
                }
                if SSL_CTX_load_verify_locations(ctx, caFile, nil) != 1 {
                    throw .drain("cannot load CA file '\(caFile)'")
                }
            } else if SSL_CTX_set_default_verify_paths(ctx) != 1 {
                throw .drain("cannot load the system CA store")
            }
            SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        } else {
            SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nil)
        }
        let alpn: [UInt8] = [8] + Array("http/1.1".utf8)
        _ = SSL_CTX_set_alpn_protos(ctx, alpn, UInt32(alpn.count))
        ERR_clear_error()
    }

    deinit { SSL_CTX_free(ctx) }

    /// A client TLS stream on a connected (or connecting) socket. `serverName` is checked
    /// against the certificate (DNS name or IP address) and sent as SNI when it is a name.
    public func makeStream(fd: Int32, serverName: String, scratch: UnsafeMutableRawBufferPointer? = nil) -> TLSStream? {
        guard let ssl = SSL_new(ctx) else { _ = drainErrorQueue(); return nil }
        SSL_set_fd(ssl, fd)
        SSL_set_connect_state(ssl)
        let isIP = serverName.contains(":") || serverName.allSatisfy { $0.isNumber || $0 == "." }
        if !isIP { _ = wss_SSL_set_tlsext_host_name(ssl, serverName) }
        if verifies {
            if isIP {
                _ = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName)
            } else {
                _ = SSL_set1_host(ssl, serverName)
            }
        }
        ERR_clear_error()
        return TLSStream(fd: fd, ssl: ssl, role: .client, scratch: scratch)
    }
}

/// Opens a non-blocking TCP connection; completion is signalled by EPOLLOUT (check
/// `connectResult`). Throws for an unresolvable name or when every address fails at once.
/// A name is looked up here, blocking the caller (`HostResolver.lookUp` does it off a loop).
public func connectTCP(host: String, port: Int) throws(TransportError) -> Int32 {
    let addresses: [SocketAddress]
    if let numeric = HostResolver.numeric(host, port: port) { addresses = [numeric] } else {
        switch HostResolver.system(host, port) {
        case .success(let all): addresses = all
        case .failure(let error): throw error
        }
    }
    var failure = TransportError.lookup(host: host, "no address")
    for address in addresses {
        do { return try connectTCP(to: address) } catch { failure = error }
    }
    throw failure
}

/// Opens a non-blocking TCP connection to `address` (TCP_NODELAY); completion is signalled
/// by EPOLLOUT (check `connectResult`). Throws when the connect fails at once.
public func connectTCP(to address: SocketAddress) throws(TransportError) -> Int32 {
    let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    if fd < 0 { throw .syscall("socket", errno) }
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
    let rc = address.bytes.withUnsafeBytes {
        connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(address.bytes.count))
    }
    if rc != 0 && errno != EINPROGRESS {
        let e = errno
        Glibc.close(fd)
        throw .syscall("connect to \(address)", e)
    }
    return fd
}

/// The outcome of a non-blocking connect: 0 on success, else the errno.
public func connectResult(fd: Int32) -> Int32 {
    var err: Int32 = 0
    var len = socklen_t(4)
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
    return err
}
