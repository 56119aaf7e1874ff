#if canImport(Glibc)
import Glibc
#endif
import Logging
import Transport

extension WebSocketConnection {
    /// Whether this client may read /metrics on the service port: its address is in
    /// `configuration.metricsAllow` (default loopback only). Others get 404, as if there were
    /// no such page: traffic figures are not for the public.
    var mayReadMetrics: Bool {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let address: IPAddress? = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                getpeername(driver.fd, sa, &len) == 0 ? IPAddress(sockaddr: sa) : nil
            }
        }
        guard let address else { return false }
        return core.configuration.metricsAllow.contains(address: address)
    }
}

extension Server {
    /// Binds `configuration.metricsListen` ("ADDR:PORT") if set; called by `start()`.
    func startMetricsListener() throws {
        guard let spec = configuration.metricsListen else { return }
        guard let (host, port) = MetricsListener.parse(spec) else {
            throw MetricsListener.Failure(description: "--metrics-listen must be ADDR:PORT or [IPv6]:PORT: \(spec)")
        }
        let core = self.core
        metricsListener = try MetricsListener(host: host, port: port, logger: logger) {
            core.metrics.render()
        }
    }

    /// The port of the separate /metrics listener (nil without `metricsListen`).
    public var metricsPort: Int? { metricsListener?.port }
}

/// A separate, tiny HTTP listener that answers only `GET /metrics` (404 for any other path,
/// 405 for other methods), on its own thread with blocking sockets: a scraper calls every few
/// seconds, so one request at a time, each with a 5 s I/O timeout and an 8 KiB head limit,
/// is plenty and keeps it away from the event loops.
final class MetricsListener: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible { let description: String }

    let port: Int
    private let listener: Listener
    private let render: @Sendable () -> String
    private let stopped = Locked(false)
    private var thread: pthread_t?

    init(host: String, port: Int, logger: Logger, render: @escaping @Sendable () -> String) throws {
        listener = try Listener(host: host, port: port, reusePort: false, backlog: 16)
        self.port = listener.port
        self.render = render
        var t = pthread_t()
        let box = Unmanaged.passRetained(self)
        guard pthread_create(&t, nil, { arg in
            let me = Unmanaged<MetricsListener>.fromOpaque(arg!).takeRetainedValue()
            me.serve()
            return nil
        }, box.toOpaque()) == 0 else {
            box.release()
            listener.close()
            throw Failure(description: "cannot start the metrics listener thread")
        }
        thread = t
        logger.info("metrics on http://\(formatHostPort(host, self.port))/metrics")
    }

    static func parse(_ spec: String) -> (String, Int)? {
        guard let colon = spec.lastIndex(of: ":"), let port = Int(spec[spec.index(after: colon)...]),
              (0...65535).contains(port) else { return nil }
        var host = spec[..<colon]
        if host.hasPrefix("[") && host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty else { return nil }
        return (String(host), port)
    }

    func stop() {
        guard !stopped.withLock({ let was = $0; $0 = true; return was }) else { return }
        if let thread { pthread_join(thread, nil) }
        listener.close()
    }

    private func serve() {
        var pfd = pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)
        while !stopped.withLock({ $0 }) {
            guard poll(&pfd, 1, 200) > 0, let fd = listener.accept() else { continue }
            answer(fd)
            close(fd)
        }
    }

    private func answer(_ fd: Int32) {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var head: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        while head.count < 8192 {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { return }
            head += chunk[0..<n]
            if head.count >= 4, head.suffix(4) == [13, 10, 13, 10] || head.firstRange(of: [13, 10, 13, 10]) != nil { break }
        }
        let line = String(decoding: head.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let (status, body): (String, String)
        if line.count != 3 || !line[2].hasPrefix("HTTP/1.") {
            (status, body) = ("400 Bad Request", "bad request\n")
        } else if line[0] != "GET" && line[0] != "HEAD" {
            (status, body) = ("405 Method Not Allowed", "method not allowed\n")
        } else if line[1] == "/metrics" {
            (status, body) = ("200 OK", render())
        } else {
            (status, body) = ("404 Not Found", "not found\n")
        }
        let type = status.hasPrefix("200") ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8"
        var response = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n"
        if line.first != "HEAD" { response += body }
        response.withUTF8 { bytes in
            var off = 0
            while off < bytes.count {
                let n = send(fd, bytes.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
    }
}
