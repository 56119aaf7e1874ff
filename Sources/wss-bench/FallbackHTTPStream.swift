#if canImport(Glibc)
import Glibc
#endif
import Transport
import WSClient

/// What a `FallbackHTTPStream` tells the session it belongs to (all on the stream's loop).
protocol FallbackStreamOwner: AnyObject {
    /// TCP (and TLS) is up: requests can be written.
    func streamOpened(_ stream: FallbackHTTPStream)
    /// New bytes were appended to `stream.input`; the owner consumes what it parses.
    func streamReceived(_ stream: FallbackHTTPStream)
    /// The connection failed or the server closed it.
    func streamEnded(_ stream: FallbackHTTPStream, _ why: String)
}

/// One HTTP/1.1 client connection of the fallback benchmark modes (plain or TLS) on an event
/// loop: connect, TLS handshake, then requests out (queued, written at the end of the loop
/// iteration) and response bytes in, through the same `StreamDriver` as the server's
/// connections. It knows nothing of HTTP; its owner writes requests and parses answers.
final class FallbackHTTPStream: EventHandler {
    enum Phase { case connecting, tls, open, closed }

    let loop: EventLoop
    let driver: StreamDriver
    unowned(unsafe) let owner: FallbackStreamOwner
    private(set) var phase = Phase.connecting
    private var interest: Interest = .write
    private var output: [UInt8] = []
    private var sent = 0
    private var flushQueued = false
    private var writeBlocked = false
    /// Received bytes not yet consumed by the owner.
    var input: [UInt8] = []

    init(loop: EventLoop, options: ClientOptions, owner: FallbackStreamOwner) throws {
        self.loop = loop
        self.owner = owner
        let fd = try connectTCP(host: options.host, port: options.port)
        var tls: TLSStream?
        if let context = options.tls {
            tls = context.makeStream(fd: fd, serverName: options.serverName ?? options.host, scratch: loop.scratchBuffer)
            if tls == nil {
                Glibc.close(fd)
                throw TLSError.drain("SSL_new")
            }
        }
        driver = StreamDriver(fd: fd, tls: tls)
        try driver.register(on: loop, handler: self, interest: .write)
    }

    var isOpen: Bool { phase == .open }

    /// Queues bytes; they go out at the end of this loop iteration.
    func send(_ bytes: [UInt8]) {
        guard phase != .closed else { return }
        output += bytes
        guard phase == .open, !flushQueued else { return }
        flushQueued = true
        loop.scheduleFlush(self)
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    func close() {
        guard phase != .closed else { return }
        phase = .closed
        driver.close(on: loop)
        output = []
        input = []
    }

    // MARK: - Event loop

    func handleEvent(_ events: IOEvents) {
        switch phase {
        case .connecting:
            let err = connectResult(fd: driver.fd)
            if err != 0 { return fail("connect: \(errnoDescription(err))") }
            if driver.needsHandshake {
                phase = .tls
                advanceTLS()
            } else {
                opened()
            }
        case .tls:
            advanceTLS()
        case .open:
            if events.contains(.writable) { flush() }
            if phase == .open && events.wantsRead { readAvailable() }
        case .closed:
            break
        }
    }

    private func advanceTLS() {
        switch driver.handshake() {
        case .done: opened()
        case .wantRead: driver.update(&interest, to: .read, on: loop)
        case .wantWrite: driver.update(&interest, to: [.read, .write], on: loop)
        case .eof: fail("server closed during the TLS handshake")
        case .error(let why): fail(why)
        }
    }

    private func opened() {
        phase = .open
        driver.update(&interest, to: .read, on: loop)
        owner.streamOpened(self)
        if sent < output.count { flush() }
    }

    private func readAvailable() {
        let end = driver.receive(into: loop.readBuffer) { bytes in
            input.append(contentsOf: bytes)
            return true
        }
        if !input.isEmpty { owner.streamReceived(self) }
        guard phase == .open else { return }
        switch end {
        case .drained, .stopped: break
        case .writeBlocked:
            writeBlocked = true
            updateInterest()
        case .eof: fail("server closed the connection")
        case .error(let why): fail(why)
        }
    }

    func flushScheduled() {
        flushQueued = false
        if phase == .open { flush() }
    }

    private func flush() {
        let end = output.withUnsafeBytes { all in
            driver.flush(pending: { UnsafeRawBufferPointer(rebasing: all[sent...]) }, consumed: { sent += $0 })
        }
        switch end {
        case .drained:
            output.removeAll(keepingCapacity: output.count <= 64 << 10)
            sent = 0
            writeBlocked = false
            updateInterest()
        case .writeBlocked:
            writeBlocked = true
            updateInterest()
        case .readBlocked: break
        case .eof: fail("server closed while we were writing")
        case .error(let why): fail(why)
        }
    }

    private func updateInterest() {
        guard phase == .open else { return }
        driver.update(&interest, to: writeBlocked ? [.read, .write] : .read, on: loop)
    }

    private func fail(_ why: String) {
        guard phase != .closed else { return }
        close()
        owner.streamEnded(self, why)
    }

    func tick(now: UInt64) {}

    func loopStopped() { close() }
}
