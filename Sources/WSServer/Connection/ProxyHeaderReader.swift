#if canImport(Glibc)
import Glibc
#endif
import Transport

/// Reads the PROXY protocol header a balancer sends before anything else (before TLS), then
/// hands the socket on. Only trusted balancers may send it; anything else — another peer, a
/// malformed or missing header — is closed at once with a log line. It consumes exactly the
/// header: the client's first bytes (TLS ClientHello, HTTP request) stay in the socket.
final class ProxyHeaderReader: EventHandler {
    let fd: Int32
    let loop: EventLoop
    unowned let core: ServerCore
    let deadline: UInt64
    let then: (Int32) -> Void
    private var got: [UInt8] = []
    private var done = false

    /// Starts reading the header of `fd` (just accepted); `then` gets the socket once the
    /// real client address is recorded.
    static func begin(fd: Int32, loop: EventLoop, core: ServerCore, trusted: [IPAddressRange], then: @escaping (Int32) -> Void) {
        let peer = socketPeerAddress(fd: fd)
        guard trustedPeer(fd, trusted) else {
            return refuse(fd, core, "connection from \(peer), which is not a --trusted-proxy")
        }
        let reader = ProxyHeaderReader(fd: fd, loop: loop, core: core, then: then)
        do { try loop.register(fd: fd, handler: reader, interest: .read) } catch {
            refuse(fd, core, "cannot watch socket: \(error)")
        }
    }

    private init(fd: Int32, loop: EventLoop, core: ServerCore, then: @escaping (Int32) -> Void) {
        self.fd = fd
        self.loop = loop
        self.core = core
        self.then = then
        deadline = loop.now + UInt64(core.configuration.handshakeTimeout * 1000)
    }

    private static func trustedPeer(_ fd: Int32, _ trusted: [IPAddressRange]) -> Bool {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let address: IPAddress? = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                getpeername(fd, sa, &len) == 0 ? IPAddress(sockaddr: sa) : nil
            }
        }
        guard let address else { return false }
        return trusted.contains(address: address.unmapped)
    }

    private static func refuse(_ fd: Int32, _ core: ServerCore, _ why: String) {
        core.logger.notice("PROXY protocol: refused \(socketPeerAddress(fd: fd)): \(why)")
        core.metrics.handshakeFailed("proxy_protocol")
        core.metrics.openConnections.subtract(1)
        Glibc.close(fd)
    }

    func handleEvent(_ events: IOEvents) {
        guard !done else { return }
        let room = ProxyProtocolParser.v2MaxLength - got.count
        let n = recv(fd, loop.readBuffer.baseAddress, min(room, loop.readBuffer.count), Int32(MSG_PEEK))
        if n == 0 { return fail("closed before a complete PROXY header") }
        if n < 0 {
            if errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR { return }
            return fail("read failed: \(errnoDescription())")
        }
        let peeked = UnsafeRawBufferPointer(rebasing: loop.readBuffer[0..<n])
        switch ProxyProtocolParser.parse(got + peeked) {
        case .needMore:
            // Every byte so far belongs to the header: take them off the socket.
            got += peeked
            _ = recv(fd, loop.readBuffer.baseAddress, n, 0)
            if got.count >= ProxyProtocolParser.v2MaxLength { fail("PROXY header over \(got.count) bytes") }
        case .header(let header):
            _ = recv(fd, loop.readBuffer.baseAddress, header.length - got.count, 0)
            finish(header)
        case .invalid(let error):
            fail("\(error)")
        }
    }

    private func finish(_ header: ProxyHeader) {
        done = true
        loop.unregister(fd: fd)
        // LOCAL / UNKNOWN (the balancer's own health check): the socket's address stands.
        PeerAddressOverride.set(fd: fd, header.source?.description)
        core.logger.debug("PROXY v\(header.version) from \(socketPeerAddress(fd: fd)): client \(header.source?.description ?? "(balancer's own check)")")
        then(fd)
    }

    private func fail(_ why: String) {
        guard !done else { return }
        done = true
        loop.unregister(fd: fd)
        Self.refuse(fd, core, why)
    }

    func tick(now: UInt64) {
        if now >= deadline { fail("no complete PROXY header within \(core.configuration.handshakeTimeout) s") }
    }

    func flushScheduled() {}

    func loopStopped() { fail("server stopping") }
}
