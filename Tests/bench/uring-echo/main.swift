// uring-echo PORT | --probe — a raw TCP echo server on io_uring (Transport's URing wrapper), the io_uring
// counterpart of tools/tcpecho (epoll + read/write): what a completion loop could save on this
// kernel before any WebSocket framing. Multishot accept, one multishot recv per connection into a
// provided-buffer ring (an idle connection holds no buffer), every connection's send prepared
// during an iteration submitted with the next wait in one io_uring_enter. Binds 127.0.0.1 only,
// prints "listening on PORT", runs until killed. A benchmark yardstick (make bench-peers), not a
// product. Exit 1 with one line if io_uring is unavailable (`--probe`: only that check).
#if canImport(Glibc)
import Glibc
#endif
import Transport
import TransportURing

enum Kind: UInt64 { case accept = 1, recv = 2, send = 3 }
/// User data: the request's kind, the connection's generation and its fd (a closed connection's
/// last completions must not reach a new connection that reused the descriptor).
func tag(_ k: Kind, _ conn: Conn?) -> UInt64 {
    guard let conn else { return k.rawValue << 56 }
    return k.rawValue << 56 | UInt64(conn.generation & 0xFF_FFFF) << 32 | UInt64(UInt32(bitPattern: conn.fd))
}

/// One connection: bytes received and not yet sent back, and the send in flight (its buffer must
/// stay put until the completion).
final class Conn {
    let fd: Int32
    let generation: UInt32
    var queued: [UInt8] = []
    var inFlight: [UInt8] = []
    var sentOfInFlight = 0
    var sending = false
    var closed = false
    init(fd: Int32, generation: UInt32) { self.fd = fd; self.generation = generation }
}

final class Server {
    let ring: URing
    let buffers: URingBufferRing
    let listener: Listener
    /// By descriptor.
    var conns: [Conn?] = []
    var generation: UInt32 = 1
    /// Connections with queued bytes and no send in flight, sent at the end of the iteration.
    var toSend: [Conn] = []

    init(port: Int) throws {
        ring = try URing(entries: 4096)
        buffers = try URingBufferRing(uring: ring, group: 1, count: 1024, size: 16 << 10)
        listener = try Listener(host: "127.0.0.1", port: port, reusePort: false)
    }

    func run() -> Never {
        ring.prepareMultishotAccept(listener: listener.fd, userData: tag(.accept, nil))
        say(1, "listening on \(listener.port)")
        while true {
            ring.submitAndWait(timeoutMillis: -1)
            ring.drainCompletions(complete)
            for c in toSend where !c.closed { startSend(c) }
            toSend.removeAll(keepingCapacity: true)
            buffers.publish()
        }
    }

    func complete(_ c: URing.Completion) {
        let fd = Int(UInt32(truncatingIfNeeded: c.userData))
        let gen = UInt32(truncatingIfNeeded: c.userData >> 32) & 0xFF_FFFF
        let conn = fd < conns.count ? conns[fd].flatMap { $0.generation & 0xFF_FFFF == gen ? $0 : nil } : nil
        switch Kind(rawValue: c.userData >> 56) {
        case .accept:
            if c.result >= 0 {
                let conn = Conn(fd: c.result, generation: generation)
                generation &+= 1
                if Int(conn.fd) >= conns.count { conns += Array(repeating: nil, count: Int(conn.fd) + 64 - conns.count) }
                conns[Int(conn.fd)] = conn
                ring.prepareMultishotRecv(fd: conn.fd, group: buffers.group, userData: tag(.recv, conn))
            }
            if !c.hasMore { ring.prepareMultishotAccept(listener: listener.fd, userData: tag(.accept, nil)) }
        case .recv:
            guard let conn else { return }
            received(conn, c)
        case .send:
            guard let conn else { return }
            sent(conn, c.result)
        case nil:
            break
        }
    }

    func received(_ conn: Conn, _ c: URing.Completion) {
        if c.result > 0, let id = c.bufferID {
            let was = conn.queued.isEmpty
            conn.queued.append(contentsOf: buffers.buffer(id, length: Int(c.result)))
            buffers.recycle(id)
            if was && !conn.sending { toSend.append(conn) }
        }
        if c.hasMore { return }
        if c.result == -ENOBUFS {
            // The group ran dry: buffers come back at the end of this iteration; re-arm.
            ring.prepareMultishotRecv(fd: conn.fd, group: buffers.group, userData: tag(.recv, conn))
        } else {
            close(conn)  // EOF or an error
        }
    }

    func startSend(_ conn: Conn) {
        guard !conn.sending, !conn.queued.isEmpty else { return }
        swap(&conn.queued, &conn.inFlight)
        conn.queued.removeAll(keepingCapacity: true)
        conn.sentOfInFlight = 0
        conn.sending = true
        sendRest(conn)
    }

    func sendRest(_ conn: Conn) {
        conn.inFlight.withUnsafeBytes { b in
            ring.prepareSend(fd: conn.fd, UnsafeRawBufferPointer(rebasing: b[conn.sentOfInFlight...]),
                             userData: tag(.send, conn))
        }
    }

    func sent(_ conn: Conn, _ result: Int32) {
        guard result > 0 else { close(conn); return }
        conn.sentOfInFlight += Int(result)
        if conn.sentOfInFlight < conn.inFlight.count { sendRest(conn); return }
        conn.sending = false
        conn.inFlight.removeAll(keepingCapacity: true)
        if !conn.queued.isEmpty { toSend.append(conn) }
    }

    func close(_ conn: Conn) {
        guard !conn.closed else { return }
        conn.closed = true
        conns[Int(conn.fd)] = nil
        // The recv may still be armed (an error on send): shutdown ends it before the close.
        _ = shutdown(conn.fd, Int32(SHUT_RDWR))
        _ = Glibc.close(conn.fd)
    }
}

/// One line to a descriptor, unbuffered (1: stdout, 2: stderr).
func say(_ fd: Int32, _ line: String) {
    var l = line + "\n"
    l.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
}

let args = CommandLine.arguments
let probeOnly = args.count == 2 && args[1] == "--probe"
guard args.count == 2, probeOnly || Int(args[1]).map({ (0...65535).contains($0) }) == true else {
    say(2, "usage: uring-echo PORT | --probe")
    exit(2)
}
if case .unavailable(let why) = URingProbe.check() {
    say(2, "uring-echo: io_uring unavailable: \(why)")
    exit(1)
}
if probeOnly {
    say(1, "uring-echo: io_uring available")
    exit(0)
}
let port = Int(args[1])!
do {
    try Server(port: port).run()
} catch {
    say(2, "uring-echo: \(error)")
    exit(1)
}
