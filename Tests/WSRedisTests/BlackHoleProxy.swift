#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Transport
import TestSupport

/// A TCP relay to a real redis-server that can go silent the way a partitioned network does:
/// `blackHole()` stops forwarding on every connection it has (in both directions) and keeps
/// their sockets open, so the client sees no FIN, no RST and no data, ever. Connections made
/// after it are relayed normally (the network "healed" for new ones; the old ones stay dead,
/// as after a failover or a NAT table that forgot them). One thread, poll(2).
final class BlackHoleProxy: @unchecked Sendable {
    let listener: Listener
    let target: Int
    var port: Int { listener.port }
    private let lock = NSLock()
    private var pairs: [(client: Int32, redis: Int32, dead: Bool)] = []
    private var stopped = false
    private var thread: Thread?

    init(to target: Int) throws {
        self.target = target
        listener = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
        let t = Thread { [self] in run() }
        thread = t
        t.start()
    }

    /// How many connections it has accepted.
    var accepted: Int { lock.lock(); defer { lock.unlock() }; return acceptedCount }
    private var acceptedCount = 0

    func blackHole() {
        lock.lock()
        for i in pairs.indices { pairs[i].dead = true }
        lock.unlock()
    }

    func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
        while lock.withLock({ thread != nil }) { usleep(5_000) }
        for p in pairs { close(p.client); close(p.redis) }
        listener.close()
    }

    private func run() {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            lock.lock()
            if stopped { thread = nil; lock.unlock(); return }
            let live = pairs.filter { !$0.dead }
            lock.unlock()
            var fds = [pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)]
            for p in live {
                fds.append(pollfd(fd: p.client, events: Int16(POLLIN), revents: 0))
                fds.append(pollfd(fd: p.redis, events: Int16(POLLIN), revents: 0))
            }
            guard poll(&fds, nfds_t(fds.count), 20) > 0 else { continue }
            if fds[0].revents != 0, let c = listener.accept() {
                let (r, rc) = connectLoopback(port: target)
                if rc == 0 {
                    _ = fcntl(c, F_SETFL, fcntl(c, F_GETFL) & ~O_NONBLOCK)
                    lock.withLock { pairs.append((c, r, false)); acceptedCount += 1 }
                } else { close(c); close(r) }
            }
            for (i, p) in live.enumerated() {
                // A relay still alive at the poll but black-holed since forwards nothing more.
                if lock.withLock({ pairs.first { $0.client == p.client }?.dead ?? true }) { continue }
                for (from, to, slot) in [(p.client, p.redis, 1 + 2 * i), (p.redis, p.client, 2 + 2 * i)] where fds[slot].revents != 0 {
                    let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                    if n > 0 { _ = buffer.withUnsafeBytes { write(to, $0.baseAddress, n) }; continue }
                    // One side closed: so does the relay (both sockets, once).
                    lock.withLock { pairs.removeAll { $0.client == p.client } }
                    close(p.client)
                    close(p.redis)
                    break
                }
            }
        }
    }
}
