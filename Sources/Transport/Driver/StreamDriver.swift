#if canImport(Glibc)
import Glibc
#endif

/// The one socket driver of every connection, server and client: a descriptor and, for TLS,
/// its `TLSStream`. A plain connection has no object here (the driver is 12 bytes stored
/// inline in its owner), and the owner never calls a socket function or names a backend
/// constant itself.
///
/// ## Contract (what a backend other than readiness + syscalls must keep)
/// - **Receive is push**: the owner calls `receive(into:_:)` when the loop reported its
///   descriptor readable; the driver hands every chunk of plaintext it gets to the owner's
///   closure, in order, until the socket has nothing more for now (`.drained`), the owner
///   returns false (`.stopped`: backpressure or closed), or the stream ended (`.eof`,
///   `.error`). A chunk is valid only during the call (it lives in the loop's buffer); the
///   owner keeps what it does not consume. A completion backend (io_uring) receives for a
///   plain-TCP owner that asked (`stageReceive(on:)`) with a multishot recv into provided
///   buffers and leaves the bytes in the loop's `StagedInput`; `receive(on:)` then hands the
///   same closure those buffers in place, in order, then the end of the stream: the owner's
///   closure does not change. Such an owner reads only through the calls that take the loop.
/// - **Send is pull**: `flush(pending:consumed:)` takes bytes from the owner's output
///   queue until it is empty or the socket refuses (`.writeBlocked`: ask for `.write`
///   interest). TLS may keep sealed bytes (`hasPendingOutput`); an empty queue still flushes
///   them. `writeDirect(head:payload:)` sends a large frame straight from the caller's
///   buffer and says how much was taken; the owner queues the rest.
/// - **Interest** is an `Interest` set the owner computes from its state; `update` talks to
///   the loop only when it changed.
/// - **End**: `shutdownWrite` sends TLS close_notify (if TLS) and a TCP FIN but keeps the
///   read side; `discardInput` reads and drops input while lingering; `close` unregisters
///   and closes the descriptor (exactly once, by the owner).
/// All calls are confined to the owner's loop thread.
public struct StreamDriver {
    /// nil for plain TCP.
    public let tls: TLSStream?
    /// After the reference: 12 bytes, so an owner's small fields pack into the last 4.
    public let fd: Int32

    public init(fd: Int32, tls: TLSStream?) {
        self.fd = fd
        self.tls = tls
    }

    /// True while a TLS handshake still has to run before application bytes flow.
    @inline(__always) public var needsHandshake: Bool {
        guard let tls else { return false }
        return !tls.isEstablished
    }

    /// What the first byte a client sent to a TLS port says it speaks.
    public enum Opening: Equatable {
        /// A TLS record (handshake, 0x16) or an SSLv2-style hello (high bit set): OpenSSL decides.
        case tls
        /// An ASCII capital letter: an HTTP request (`GET `, `POST `, ...) sent without TLS.
        case plaintextHTTP
        /// Anything else: not TLS, not HTTP.
        case garbage
        /// No byte yet.
        case nothingYet
    }

    /// Looks at the first byte without consuming it (MSG_PEEK), once, before the TLS handshake.
    public func peekOpening() -> Opening {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
        guard n == 1 else { return n == 0 || (errno != EAGAIN && errno != EINTR) ? .garbage : .nothingYet }
        if byte == 0x16 || byte & 0x80 != 0 { return .tls }
        return (0x41...0x5A).contains(byte) ? .plaintextHTTP : .garbage
    }

    /// Writes bytes to the socket as they are, even on a TLS connection (the plaintext answer
    /// to an HTTP request on a TLS port). Best effort: one non-blocking send.
    public func writeBypassingTLS(_ bytes: UnsafeRawBufferPointer) {
        _ = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
    }

    /// One step of the TLS handshake (plain TCP: done at once).
    public func handshake() -> IOResult { tls?.handshake() ?? .done(0) }

    // MARK: - Receiving

    public enum ReceiveEnd: Equatable {
        /// Nothing more to read now; the loop reports the next bytes.
        case drained
        /// The owner returned false (stop reading: backpressure or closed).
        case stopped
        /// TLS needs to write before it can read (wait for `.write`).
        case writeBlocked
        /// The peer closed its side (or reset: treated the same).
        case eof
        case error(String)
    }

    /// Reads everything the socket has into `buffer`, handing each chunk to `deliver`
    /// (push; see the contract above).
    @inlinable
    public func receive(into buffer: UnsafeMutableRawBufferPointer,
                        _ deliver: (UnsafeMutableRawBufferPointer) -> Bool) -> ReceiveEnd {
        while true {
            switch read(into: buffer) {
            case .done(let n):
                guard deliver(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])) else { return .stopped }
                // A short read: the socket is empty, unless TLS kept an error or bytes for the next read.
                if n < buffer.count && !hasBufferedInput { return .drained }
            case .wantRead: return .drained
            case .wantWrite: return .writeBlocked
            case .eof: return .eof
            case .error(let why): return .error(why)
            }
        }
    }

    /// `receive(into:_:)` for an owner on `loop`: the same contract, and the bytes a completion
    /// backend received for this connection (`stageReceive(on:)`) come first, in place from
    /// its buffers. An owner that stages its input reads only through the calls that take
    /// the loop.
    @inlinable
    public func receive(on loop: EventLoop, _ deliver: (UnsafeMutableRawBufferPointer) -> Bool) -> ReceiveEnd {
        guard let staged = loop.staged, tls == nil else { return receive(into: loop.readBuffer, deliver) }
        if staged.isStaged(fd) { return staged.receive(fd: fd, scratch: loop.readBuffer, deliver) }
        let buffer = loop.readBuffer
        while true {
            switch TCPStream.read(fd: fd, into: buffer) {
            case .done(let n):
                guard deliver(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])) else { return .stopped }
                // Staged inside `deliver` (the upgrade): the loop's recv takes the rest, in order.
                if n < buffer.count || staged.isStaged(fd) { return .drained }
            case .wantRead, .wantWrite: return .drained
            case .eof: return .eof
            case .error(let why): return .error(why)
            }
        }
    }

    /// `hasBufferedInput`, or bytes staged by the loop for the next read.
    @inlinable public func hasBufferedInput(on loop: EventLoop) -> Bool {
        if let tls { return tls.hasPendingBytes }
        guard let staged = loop.staged else { return false }
        return staged.hasQueuedBytes(fd)
    }

    /// `read(into:)` for an owner on `loop` (staged bytes first, copied into `buffer`).
    @inlinable @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer, on loop: EventLoop) -> IOResult {
        if let staged = loop.staged, staged.isStaged(fd) { return staged.read(fd: fd, into: buffer) }
        return read(into: buffer)
    }

    /// Plain TCP on a completion backend: the loop receives for this connection from now on
    /// (io_uring: a multishot recv into provided buffers, no recv syscall per read), and the
    /// owner reads only through `receive(on:)`, `read(into:on:)` and `discardInput(on:)`.
    /// TLS and epoll: nothing changes. The owner must not hand the descriptor to another owner
    /// afterwards. True if staged.
    @discardableResult
    public func stageReceive(on loop: EventLoop) -> Bool {
        tls == nil && loop.stageReceive(fd: fd)
    }

    @inlinable @inline(__always)
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if let tls { return tls.read(into: buffer) }
        return TCPStream.read(fd: fd, into: buffer)
    }

    /// True if TLS holds something for the next `read` the loop will not signal: decrypted bytes
    /// (OpenSSL's records), or an error / end of stream found behind good bytes (both layers).
    /// Inlinable (like `hasPendingOutput`): read per receive and per flush; plain TCP folds to
    /// one compare.
    @inlinable public var hasBufferedInput: Bool { tls?.hasPendingBytes ?? false }

    // MARK: - Sending

    public enum FlushEnd: Equatable {
        /// Everything was written.
        case drained
        /// The socket is full: ask for `.write` interest.
        case writeBlocked
        /// TLS must read first (the read side continues it).
        case readBlocked
        case eof
        case error(String)
    }

    /// Sealed TLS bytes the socket has not taken yet.
    @inlinable @inline(__always) public var hasPendingOutput: Bool { tls?.hasPendingOutput ?? false }

    /// Writes `pending()` until it is empty, reporting each write with `consumed`.
    @inlinable
    public func flush(pending: () -> UnsafeRawBufferPointer, consumed: (Int) -> Void) -> FlushEnd {
        while true {
            let bytes = pending()
            if bytes.count == 0 && !hasPendingOutput { return .drained }
            switch write(bytes) {
            case .done(let n): consumed(n)
            case .wantWrite: return .writeBlocked
            case .wantRead: return .readBlocked
            case .eof: return .eof
            case .error(let why): return .error(why)
            }
        }
    }

    /// Plain TCP staged on a completion backend (`stageReceive(on:)`): the loop sends the
    /// owner's output itself, with its next wait (io_uring: one SEND per connection in the
    /// iteration's one io_uring_enter, no send syscall). The bytes stay in the owner's queue:
    /// the loop asks for them right before it enters the kernel (`EventHandler.queuedOutput`)
    /// and reports how it went (`queuedSendCompleted`, read with `completeQueuedSend`), so
    /// the queue may grow (and move) until then. At most one per connection. Anything that
    /// must follow the bytes (FIN, close, a direct write, another flush) first calls
    /// `withdrawSend(on:)`. False (epoll, TLS, not staged): flush as usual. One load and a
    /// compare on epoll.
    @inlinable @inline(__always)
    public func queueSend(on loop: EventLoop) -> Bool {
        guard tls == nil, let staged = loop.staged, staged.isStaged(fd) else { return false }
        return loop.queueSend(fd: fd)
    }

    /// Takes back a `queueSend` the loop has not handed to the kernel yet: true, write
    /// yourself now; false, the send is in flight and its completion comes before anything
    /// else may be written.
    public func withdrawSend(on loop: EventLoop) -> Bool { loop.withdrawSend(fd: fd) }

    /// Reads the end of a queued send: `consumed` with the bytes taken, then `.drained` (all
    /// of them went), `.writeBlocked` (a short count or a full socket: ask for `.write`), or
    /// the end a failed `write` reports.
    public func completeQueuedSend(_ r: QueuedSendResult, consumed: (Int) -> Void) -> FlushEnd {
        if r.result > 0 { consumed(Int(r.result)) }
        if r.result >= 0 { return r.result < r.requested ? .writeBlocked : .drained }
        switch -r.result {
        case EAGAIN, EINTR: return .writeBlocked
        case EPIPE, ECONNRESET: return .eof
        default: return .error(errnoDescription(-r.result))
        }
    }

    @inlinable @inline(__always)
    public func write(_ bytes: UnsafeRawBufferPointer) -> IOResult {
        if let tls { return tls.write(bytes) }
        return TCPStream.write(fd: fd, bytes)
    }

    /// Sends a frame header and its payload without copying the payload: one writev (plain
    /// TCP) or records sealed straight from `payload` (TLS). Returns how many bytes of
    /// head + payload were taken; the caller queues the rest (and flushes if
    /// `hasPendingOutput`).
    public func writeDirect(head: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) -> Int {
        if let tls {
            var written = 0
            for part in [head, payload] {
                var off = 0
                while off < part.count, case .done(let n) = tls.write(UnsafeRawBufferPointer(rebasing: part[off...])) {
                    off += n
                    if tls.hasPendingOutput { break }
                }
                written += off
                if off < part.count { break }
            }
            return written
        }
        var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: head.baseAddress), iov_len: head.count),
                   iovec(iov_base: UnsafeMutableRawPointer(mutating: payload.baseAddress), iov_len: payload.count))
        let n = withUnsafeMutablePointer(to: &iov) {
            $0.withMemoryRebound(to: iovec.self, capacity: 2) { writev(fd, $0, 2) }
        }
        return max(0, n)
    }

    // MARK: - Loop and end

    public func register(on loop: EventLoop, handler: EventHandler, interest: Interest) throws(TransportError) {
        try loop.register(fd: fd, handler: handler, interest: interest)
    }

    /// Tells the loop the new interest if it differs from `registered`.
    @inline(__always)
    public func update(_ registered: inout Interest, to wanted: Interest, on loop: EventLoop) {
        if wanted != registered {
            registered = wanted
            loop.modify(fd: fd, interest: wanted)
        }
    }

    /// Our end of the stream: TLS close_notify (RFC 8446 §6.1), then a TCP FIN. Reading stays
    /// possible (linger).
    public func shutdownWrite() {
        if let tls { tls.shutdownWrite() } else { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    /// While lingering: reads and drops whatever the peer still sends (closing with unread
    /// input would turn our FIN or alert into an RST). True once the peer closed or the
    /// socket failed: time to close.
    public func discardInput(into buffer: UnsafeMutableRawBufferPointer) -> Bool {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n > 0 { continue }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { return false }
            return true
        }
    }

    /// `discardInput(into:)` for an owner on `loop` (staged bytes are dropped first).
    public func discardInput(on loop: EventLoop) -> Bool {
        if let staged = loop.staged, staged.isStaged(fd) { return staged.discard(fd: fd, scratch: loop.readBuffer) }
        return discardInput(into: loop.readBuffer)
    }

    /// The peer closed TLS with close_notify (answer it with `shutdownWrite`); false for TCP.
    public var peerSentCloseNotify: Bool { tls?.peerSentCloseNotify ?? false }

    /// Unregisters and closes the descriptor (call once). TLS: close_notify if none went out
    /// yet, the input already received dropped (FIN, not RST), then close (TLSStream.close).
    public func close(on loop: EventLoop) {
        loop.unregisterClosing(fd: fd)
        if let tls { tls.close() } else { _ = Glibc.close(fd) }
    }

    /// The peer's "ip:port".
    public var remoteAddress: String { peerAddress(fd: fd) }

    /// Frees what an idle TLS connection does not need (cipher contexts).
    public func releaseIdleState() { tls?.releaseIdleState() }
}
