#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// A listening TCP socket. Each loop has its own on the same port (SO_REUSEPORT), so the
/// kernel spreads new connections across loops with no shared accept lock.
public final class Listener {
    public let fd: Int32
    public let port: Int

    /// Resolves `host` (numeric IPv4/IPv6 or a name) to the first address to bind.
    public static func resolve(_ host: String, port: Int) throws(TransportError) -> (family: Int32, addr: [UInt8]) {
        guard case .success(let all) = HostResolver.getAddresses(host, port: port, flags: AI_PASSIVE | AI_NUMERICSERV),
              let first = all.first else { throw .badAddress(host) }
        return (first.family, first.bytes)
    }

    /// Binds and listens. `reusePort` lets sibling loops bind the same port.
    public init(host: String, port: Int, reusePort: Bool, backlog: Int32 = 1024) throws(TransportError) {
        let (family, addr) = try Self.resolve(host, port: port)
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw .syscall("socket", errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        if reusePort { setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, 4) }
        // Accepted sockets inherit TCP_NODELAY from the listener on Linux: one setsockopt here
        // instead of one per connection (checked by a test).
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, 4)
        if family == AF_INET6 {
            // "::" serves IPv4 too (dual stack); "::1" is IPv6 only by nature.
            var zero: Int32 = 0
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, 4)
        }
        let rc = addr.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count)) }
        if rc != 0 {
            let e = errno
            Glibc.close(fd)
            if e == EADDRINUSE { throw .addressInUse(host: host, port: port) }
            throw .bind(host: host, port: port, errnoDescription(e))
        }
        if listen(fd, backlog) != 0 {
            let e = errno
            Glibc.close(fd)
            if e == EADDRINUSE { throw .addressInUse(host: host, port: port) }
            throw .syscall("listen", e)
        }
        self.fd = fd
        self.port = Self.localPort(fd)
    }

    static func localPort(_ fd: Int32) -> Int {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) }
        }
        return withUnsafeBytes(of: &storage) { raw in
            // sin_port and sin6_port are both at offset 2, network order.
            Int(UInt16(raw[2]) << 8 | UInt16(raw[3]))
        }
    }

    /// Checks that nobody else holds `host:port` (a socket without SO_REUSEPORT cannot share
    /// it), so that a second server started on a busy port fails instead of silently joining
    /// the first one's SO_REUSEPORT group. Returns the port (a free one if `port` is 0).
    public static func probe(host: String, port: Int) throws(TransportError) -> Int {
        let l = try Listener(host: host, port: port, reusePort: false, backlog: 1)
        let p = l.port
        l.close()
        return p
    }

    /// Accepts one connection: the new non-blocking fd, or nil when none is waiting.
    public func accept() -> Int32? {
        let c = Self.acceptSocket(fd)
        if c >= 0 { return c }
        errno = -c
        return nil  // EAGAIN, or EMFILE/ENFILE: the caller logs and retries later
    }

    /// accept4(2) on `listener`, non-blocking and close-on-exec, past EINTR and a connection
    /// reset while queued: the new descriptor, or -errno.
    package static func acceptSocket(_ listener: Int32) -> Int32 {
        while true {
            let c = wss_accept4(listener, Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue))
            if c >= 0 { return c }
            switch errno {
            case EINTR, ECONNABORTED: continue
            default: return -errno
            }
        }
    }

    public func close() { Glibc.close(fd) }

    /// Closes a connection the server will not serve, after one best-effort line of plain
    /// text (e.g. an HTTP 503) if given.
    public static func refuse(_ fd: Int32, answer: String? = nil) {
        if var answer {
            answer.withUTF8 { _ = send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        }
        Glibc.close(fd)
    }
}

/// The peer address of a connected socket as "ip:port" ("[ip]:port" for IPv6): the client
/// a trusted balancer reported if there is one (`PeerAddressOverride`), else the socket's peer.
public func peerAddress(fd: Int32) -> String {
    if let reported = PeerAddressOverride.get(fd: fd) { return reported }
    return socketPeerAddress(fd: fd)
}

/// The socket's own peer address, whatever a balancer said.
public func socketPeerAddress(fd: Int32) -> String {
    var storage = sockaddr_storage()
    var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
    let ok = withUnsafeMutablePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &len) == 0 }
    }
    guard ok else { return "?" }
    var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
    var serv = [CChar](repeating: 0, count: Int(NI_MAXSERV))
    let rc = withUnsafePointer(to: &storage) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            getnameinfo($0, len, &host, socklen_t(host.count), &serv, socklen_t(serv.count), NI_NUMERICHOST | NI_NUMERICSERV)
        }
    }
    guard rc == 0 else { return "?" }
    var h = cString(host)
    if h.hasPrefix("::ffff:") { h = String(h.dropFirst(7)) }
    return formatHostPort(h, Int(cString(serv)) ?? 0)
}

func cString(_ chars: [CChar]) -> String {
    String(decoding: chars.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
