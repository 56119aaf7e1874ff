import CLiburing
import Transport

/// One io_uring (liburing, through CLiburing), owned by one thread: the submission/completion
/// rings an io_uring event loop runs on. Preparing a request only fills a submission slot;
/// nothing reaches the kernel until `submit()` or `submitAndWait`, so every send a loop
/// iteration prepares goes in with one `io_uring_enter`.
///
/// Not thread-safe (the ring is set up single-issuer when the kernel allows): confine it to its
/// loop's thread.
public final class URing {
    /// One completion (CQE), copied out of the ring.
    public struct Completion: Sendable, Equatable {
        public let userData: UInt64
        /// The request's result: bytes, a new descriptor, 0 (EOF), or -errno.
        public let result: Int32
        public let flags: UInt32

        public init(userData: UInt64, result: Int32, flags: UInt32) {
            self.userData = userData
            self.result = result
            self.flags = flags
        }

        /// A multishot request (accept, recv) stays armed and will complete again.
        public var hasMore: Bool { flags & UInt32(WSS_CQE_F_MORE) != 0 }
        /// The provided buffer a multishot recv filled (its id in the buffer group).
        public var bufferID: UInt16? {
            flags & UInt32(WSS_CQE_F_BUFFER) != 0
                ? UInt16(truncatingIfNeeded: flags >> UInt32(WSS_CQE_BUFFER_SHIFT)) : nil
        }
        /// SEND_ZC's second completion: the kernel no longer needs the sent bytes.
        public var isNotification: Bool { flags & UInt32(WSS_CQE_F_NOTIF) != 0 }
        /// recv: the socket still had data after this completion.
        public var socketNonEmpty: Bool { flags & UInt32(WSS_CQE_F_SOCK_NONEMPTY) != 0 }
    }

    let handle: OpaquePointer
    public let entries: UInt32
    /// The IORING_SETUP_* flags the kernel accepted.
    public let setupFlags: UInt32

    public init(entries: UInt32 = 256) throws(TransportError) {
        var flags: UInt32 = 0
        var err: Int32 = 0
        guard let h = wss_uring_new(entries, &flags, &err) else { throw .syscall("io_uring_setup", -err) }
        handle = h
        self.entries = entries
        setupFlags = flags
    }

    /// A ring for an event loop (`wss_uring_new_loop`): created disabled so any thread may make
    /// it and prepare requests; `enable()` on the loop's thread makes that thread its one issuer.
    public init(loopEntries entries: UInt32) throws(TransportError) {
        var flags: UInt32 = 0
        var err: Int32 = 0
        guard let h = wss_uring_new_loop(entries, &flags, &err) else { throw .syscall("io_uring_setup", -err) }
        handle = h
        self.entries = entries
        setupFlags = flags
    }

    deinit { wss_uring_free(handle) }

    /// Enables a ring made with `init(loopEntries:)` on the calling thread (its issuer from now on).
    @discardableResult
    public func enable() -> Int32 { wss_uring_enable(handle) }

    /// The ring's descriptor.
    public var fd: Int32 { wss_uring_fd(handle) }

    // MARK: - Preparing requests (a full submission queue is submitted first)

    /// Accepts connections on `listener` until cancelled or it fails: one completion per new
    /// socket (result = its descriptor, non-blocking and close-on-exec). False when no
    /// submission slot could be had.
    @discardableResult
    public func prepareMultishotAccept(listener: Int32, userData: UInt64) -> Bool {
        wss_uring_prep_accept_multishot(handle, listener, userData) == 0
    }

    /// Receives on `fd` into buffers of `group` as data arrives, until EOF, an error, or the
    /// group runs out of buffers (-ENOBUFS without `hasMore`: prepare it again after recycling).
    /// False when no submission slot could be had.
    @discardableResult
    public func prepareMultishotRecv(fd: Int32, group: UInt16, userData: UInt64) -> Bool {
        wss_uring_prep_recv_multishot(handle, fd, group, userData) == 0
    }

    /// One recv into the caller's buffer (which must stay valid until the completion).
    public func prepareRecv(fd: Int32, into buffer: UnsafeMutableRawBufferPointer, userData: UInt64) {
        wss_uring_prep_recv(handle, fd, buffer.baseAddress, buffer.count, userData)
    }

    /// One send of `bytes` (valid until the completion). MSG_NOSIGNAL: a closed peer is -EPIPE.
    public func prepareSend(fd: Int32, _ bytes: UnsafeRawBufferPointer, userData: UInt64) {
        wss_uring_prep_send(handle, fd, bytes.baseAddress, bytes.count, userData)
    }

    /// A send that never waits (MSG_DONTWAIT | MSG_NOSIGNAL): on a socket the kernel issues it
    /// inline during the submit and completes it there with the count taken (maybe short) or
    /// -EAGAIN, arming no internal poll, so `bytes` may move once the submit returned
    /// (`URingSendTests` checks this kernel does). False when no submission slot could be had.
    @discardableResult
    public func prepareSendNoWait(fd: Int32, _ bytes: UnsafeRawBufferPointer, userData: UInt64) -> Bool {
        wss_uring_prep_send_nowait(handle, fd, bytes.baseAddress, bytes.count, userData) == 0
    }

    /// A zero-copy send: the kernel sends from `bytes` in place. Two completions: the result
    /// (with `hasMore`), then a notification once `bytes` may be reused or freed.
    public func prepareSendZeroCopy(fd: Int32, _ bytes: UnsafeRawBufferPointer, userData: UInt64) {
        wss_uring_prep_send_zc(handle, fd, bytes.baseAddress, bytes.count, userData)
    }

    /// Cancels every request whose user data is `target` (they complete with -ECANCELED).
    /// False when no submission slot could be had.
    @discardableResult
    public func prepareCancel(userData target: UInt64, userData: UInt64) -> Bool {
        wss_uring_prep_cancel(handle, target, userData) == 0
    }

    /// Closes `fd`.
    public func prepareClose(fd: Int32, userData: UInt64) {
        wss_uring_prep_close(handle, fd, userData)
    }

    /// One-shot readiness poll of `fd` for poll(2) bits (the same values as epoll's): completes
    /// once with the ready bits (or -errno). False when no submission slot could be had.
    public func preparePoll(fd: Int32, mask: UInt32, userData: UInt64) -> Bool {
        wss_uring_prep_poll_add(handle, fd, mask, userData) == 0
    }

    /// Removes the armed poll whose user data is `target` (it completes with -ECANCELED).
    public func preparePollRemove(target: UInt64, userData: UInt64) -> Bool {
        wss_uring_prep_poll_remove(handle, target, userData) == 0
    }

    /// Changes the bits of the armed poll `target` in place (-ENOENT if it already completed).
    public func preparePollUpdate(target: UInt64, mask: UInt32, userData: UInt64) -> Bool {
        wss_uring_prep_poll_update(handle, target, mask, userData) == 0
    }

    /// One read of `fd` into `buffer` (valid until the completion).
    public func prepareRead(fd: Int32, into buffer: UnsafeMutableRawPointer, count: UInt32, userData: UInt64) -> Bool {
        wss_uring_prep_read(handle, fd, buffer, count, userData) == 0
    }

    /// One 8-byte read of the eventfd `fd` into memory the ring owns (a wake-up).
    public func prepareEventFDRead(fd: Int32, userData: UInt64) -> Bool {
        wss_uring_prep_eventfd_read(handle, fd, userData) == 0
    }

    // MARK: - Submitting and completing

    /// Requests prepared and not yet submitted.
    public var pending: UInt32 { wss_uring_sq_ready(handle) }

    /// Submits everything prepared, in one io_uring_enter (none when nothing is queued).
    /// Returns how many requests went in, or -errno.
    @discardableResult
    public func submit() -> Int32 {
        pending == 0 ? 0 : wss_uring_submit(handle)
    }

    /// Submits, then waits until a completion is ready or `timeoutMillis` passed (< 0: no
    /// limit); returns at once if completions are already waiting. Returns the count
    /// submitted, or -ETIME (timeout), -EINTR.
    @discardableResult
    public func submitAndWait(timeoutMillis: Int) -> Int32 {
        if ready > 0 { return submit() }
        return wss_uring_submit_and_wait(handle, Int32(clamping: timeoutMillis))
    }

    /// `submitAndWait` waiting for `count` completions (the loop adds the ones its inline
    /// sends post during the submit, so those do not end the wait).
    @discardableResult
    public func submitAndWait(count: UInt32, timeoutMillis: Int) -> Int32 {
        if ready > 0 { return submit() }
        return wss_uring_submit_and_wait_n(handle, count, Int32(clamping: timeoutMillis))
    }

    /// Completions ready now.
    public var ready: UInt32 { wss_uring_cq_ready(handle) }

    /// Hands every ready completion to `body` (copied out and consumed in batches of 64, so
    /// `body` may prepare and even submit new requests) and returns how many there were.
    @discardableResult
    public func drainCompletions(_ body: (Completion) -> Void) -> Int {
        var total = 0
        withUnsafeTemporaryAllocation(of: wss_cqe.self, capacity: 64) { batch in
            while true {
                let n = Int(wss_uring_reap(handle, batch.baseAddress, 64))
                for i in 0..<n {
                    body(Completion(userData: batch[i].user_data, result: batch[i].res, flags: batch[i].flags))
                }
                total += n
                if n < 64 { break }
            }
        }
        return total
    }
}
