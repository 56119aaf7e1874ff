#if canImport(Glibc)
import Glibc
#endif

/// An address to connect to: the bytes of a `sockaddr_in` or `sockaddr_in6`.
public struct SocketAddress: Sendable, Equatable, CustomStringConvertible {
    public let family: Int32
    public let bytes: [UInt8]

    public init(family: Int32, bytes: [UInt8]) {
        self.family = family
        self.bytes = bytes
    }

    /// "127.0.0.1:6379" or "[::1]:6379".
    public var description: String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var port = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = bytes.withUnsafeBytes {
            getnameinfo($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(bytes.count),
                        &host, socklen_t(host.count), &port, socklen_t(port.count), NI_NUMERICHOST | NI_NUMERICSERV)
        }
        guard rc == 0 else { return "(address family \(family))" }
        let h = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let p = String(decoding: port.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return family == AF_INET6 ? "[\(h)]:\(p)" : "\(h):\(p)"
    }
}

/// Host names to addresses for outgoing connections, without blocking an event loop:
/// `getaddrinfo` can take seconds (glibc: 5 s per nameserver and attempt when DNS is down),
/// and a loop waiting in it serves nothing else meanwhile — no timers, no other connection.
public enum HostResolver {
    /// How a name becomes addresses. Runs on a thread of its own, never on a loop; may block.
    /// Replaceable (service discovery, tests); `system` is `getaddrinfo`.
    public typealias Lookup = @Sendable (_ host: String, _ port: Int) -> Result<[SocketAddress], TransportError>

    /// A numeric IPv4 or IPv6 host (no brackets), parsed with `AI_NUMERICHOST`, which never
    /// looks anything up; nil for a name.
    public static func numeric(_ host: String, port: Int) -> SocketAddress? {
        guard case .success(let all) = getAddresses(host, port: port, flags: AI_NUMERICHOST | AI_NUMERICSERV) else { return nil }
        return all.first
    }

    /// `getaddrinfo` for a stream connection: every address in the order it gives them (RFC
    /// 6724: on a typical host `localhost` is `::1`, then `127.0.0.1`), duplicates dropped.
    /// Blocks for as long as the resolver takes.
    public static let system: Lookup = { host, port in
        getAddresses(host, port: port, flags: AI_ADDRCONFIG | AI_NUMERICSERV)
    }

    /// Looks `host` up with `lookup` on a new thread and calls `completion` with the answer on
    /// `loop`'s thread. One thread per lookup: callers keep at most one in flight per
    /// connection (a lookup that never returns then holds one idle thread, not a loop).
    public static func lookUp(_ host: String, port: Int, on loop: EventLoop, using lookup: @escaping Lookup = system,
                              completion: @escaping (Result<[SocketAddress], TransportError>) -> Void) {
        let job = LookupJob(host: host, port: port, lookup: lookup, loop: loop, completion: completion)
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        pthread_attr_setstacksize(&attributes, 256 << 10)  // getaddrinfo needs little; not 8 MiB
        defer { pthread_attr_destroy(&attributes) }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(job)
        let rc = pthread_create(&thread, &attributes, { arg in
            let job = Unmanaged<LookupJob>.fromOpaque(arg!).takeRetainedValue()
            job.run()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            // No thread to be had (RLIMIT_NPROC, memory): answer as a failed lookup, still on the loop.
            box.release()
            let failure = TransportError.lookup(host: host, "cannot start a lookup thread: \(errnoDescription(rc))")
            loop.execute(Completion(completion, .failure(failure)).call)
        }
    }

    static func getAddresses(_ host: String, port: Int, flags: Int32) -> Result<[SocketAddress], TransportError> {
        var hints = addrinfo()
        hints.ai_flags = flags
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var res: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &res)
        guard rc == 0 else { return .failure(.lookup(host: host, String(cString: gai_strerror(rc)))) }
        defer { freeaddrinfo(res) }
        var all: [SocketAddress] = []
        var next = res
        while let info = next {
            let a = SocketAddress(family: info.pointee.ai_family,
                                  bytes: Array(UnsafeRawBufferPointer(start: info.pointee.ai_addr, count: Int(info.pointee.ai_addrlen))))
            if !all.contains(a) { all.append(a) }
            next = info.pointee.ai_next
        }
        return all.isEmpty ? .failure(.lookup(host: host, "no address")) : .success(all)
    }
}

/// What a lookup thread holds: the question, and the loop and completion for the answer.
private final class LookupJob: @unchecked Sendable {
    let host: String
    let port: Int
    let lookup: HostResolver.Lookup
    let loop: EventLoop
    /// Called only on `loop`'s thread (handed over through `execute`).
    let completion: (Result<[SocketAddress], TransportError>) -> Void

    init(host: String, port: Int, lookup: @escaping HostResolver.Lookup, loop: EventLoop,
         completion: @escaping (Result<[SocketAddress], TransportError>) -> Void) {
        self.host = host
        self.port = port
        self.lookup = lookup
        self.loop = loop
        self.completion = completion
    }

    func run() {
        let result = lookup(host, port)
        loop.execute(Completion(completion, result).call)
    }
}

/// A completion and its answer, sent to the loop's thread, where alone it is called.
private struct Completion: @unchecked Sendable {
    let body: (Result<[SocketAddress], TransportError>) -> Void
    let result: Result<[SocketAddress], TransportError>
    init(_ body: @escaping (Result<[SocketAddress], TransportError>) -> Void, _ result: Result<[SocketAddress], TransportError>) {
        self.body = body
        self.result = result
    }
    var call: @Sendable () -> Void { { body(result) } }
}
