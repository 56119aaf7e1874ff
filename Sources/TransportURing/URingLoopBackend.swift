#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Transport

/// An event loop on io_uring. Readiness goes through the ring as one-shot IORING_OP_POLL_ADD
/// requests, re-armed after the handler ran: a descriptor still ready is reported again at
/// once, which is epoll's level-triggered contract every owner is written against (a multishot
/// poll would be edge-triggered: a handler that stopped reading early, under backpressure or
/// mid-TLS-record, would never hear of its bytes again). The re-arms, interest changes and
/// removals of an iteration are only prepared; they reach the kernel with the wait, in the one
/// io_uring_enter per iteration that also carries the tick timeout. The wake eventfd is a read
/// request in the same ring (no read(2) on a wake-up).
///
/// Completion-mode receive (`stageReceive`, plain-TCP connections): one multishot recv per
/// descriptor into the loop's provided-buffer ring (an idle connection holds no buffer); each
/// completion's bytes are queued in `StagedInput` and the owner is told "readable" once per
/// iteration after every completion of the batch is in, so it reads them (in place) with no
/// recv syscall. Level-triggered still: an owner that left bytes (or an unreported end) queued
/// while it wants to read hears of them again in the next iteration, which then does not
/// block. An owner that stops reading (interest without read: backpressure) has its recv
/// cancelled; what arrives before the cancel lands stays queued (bounded by the socket's
/// buffer), and the recv is armed again when it reads again. A recv that ended without EOF
/// (no buffer left: ENOBUFS) leaves the bytes in the socket: the descriptor falls back to a
/// readiness poll with the owner reading the socket directly (`StagedInput.direct`: only while
/// no recv is in flight, so nothing is received out of order) and gets a recv again once
/// buffers are back. A poll is armed for a staged descriptor only for what the recv does not
/// report: write interest, or hang-up/error while no recv is armed.
///
/// Listeners accept multishot (`stageAccept`, URingLoopBackend+Accept.swift): one request for
/// every connection, the new sockets queued for the owner like staged bytes.
///
/// Removal cancels the poll, the recv and the accept: an io_uring request holds a reference to its file,
/// so a closed socket with a request still armed would not send its FIN until the ring let go.
package final class URingLoopBackend: LoopBackend {
    package var kind: IOBackend { .uring }
    package let wakeFD: Int32
    let ring: URing
    /// The provided buffers every staged descriptor's multishot recv fills (nil if the kernel
    /// refused the ring: then nothing is staged).
    let buffers: URingBufferRing?
    package let staged: StagedInput?
    enum Recv: UInt8 {
        /// No recv in flight (never armed, ended, or its cancel completed).
        case idle
        case armed
        /// Cancelled (the owner stopped reading, or removal), its last completion not yet seen.
        case cancelling
    }
    enum Send: UInt8 {
        case idle
        /// The owner asked (`queueSend`); its bytes are taken and prepared right before the wait.
        case queued
        /// Submitted with the wait, its completion not yet seen.
        case inFlight
    }
    /// Per fd: the registration's tag, its interest, the poll in flight and, for a staged
    /// descriptor, its recv and its queued send.
    struct Slot {
        var tag: UInt64 = 0
        var interest: UInt32 = 0
        /// The bits of the poll in flight (valid while `armed`).
        var armedMask: UInt32 = 0
        var armed = false
        /// The backend receives for this descriptor (multishot recv into `buffers`).
        var staged = false
        var recv = Recv.idle
        /// In `ready`: the owner hears of its staged bytes after this batch.
        var readyQueued = false
        /// The last recv ended for want of a buffer: the poll reads (directly) once before
        /// the next recv, so a ring kept empty by others cannot make it spin.
        var starved = false
        var send = Send.idle
        /// Bytes asked of the send in flight.
        var sendLength: Int32 = 0
        /// A listener the backend accepts for (`stageAccept`: new sockets in `acceptQueues`).
        var accepting = false
        var accept = Recv.idle
    }
    var slots: [Slot] = []
    /// The sockets accepted for each staged listener, not yet taken by its owner.
    var acceptQueues: [Int32: AcceptQueue] = [:]
    /// Multishot accepts prepared, and sockets they accepted (tests look).
    package internal(set) var acceptsArmed = 0
    package internal(set) var socketsAccepted = 0
    /// Descriptors whose owner queued a send this iteration (prepared before the wait).
    var sends: [Int32] = []
    /// Sends submitted whose completion was not seen yet: 0 whenever a wait returns (the
    /// kernel completes a MSG_DONTWAIT send while submitting it, `URingSendTests`, and
    /// `settleSends` waits for any it did not). Tests look.
    package internal(set) var sendsInFlight = 0
    /// Sends prepared so far (tests look).
    package internal(set) var sendsSubmitted = 0
    /// Waits that found a send still in flight after the drain and waited for it (tests look).
    package internal(set) var sendsSettled = 0
    /// Batched sends are used only where the kernel completes a MSG_DONTWAIT send while
    /// submitting it (`URingProbe.sendsCompleteInline`, checked once per process): the owner's
    /// bytes may move as soon as the wait returns. Elsewhere the owners send themselves.
    let batchSends: Bool
    /// Recvs that ended for want of a provided buffer (tests look).
    package private(set) var starvedRecvs = 0
    /// Descriptors whose poll or recv could not be prepared (no submission slot), or whose recv
    /// waits for buffers: retried before the wait.
    var unarmed: [Int32] = []
    /// Recv cancels that could not be prepared (no submission slot): retried before the wait.
    var uncancelled: [UInt64] = []
    private var wakeUnarmed = false
    /// Staged descriptors whose owner is told "readable" once the batch of completions is in,
    /// and the ones still holding bytes after their owner ran (told again next iteration).
    private var ready: [Int32] = []
    private var readyNext: [Int32] = []
    static let ignoreTag = UInt64.max
    static let wakeTag = UInt64.max - 1
    /// The user data of a registration's recv: its tag with bit 31 set (fds are below 2^29: the kernel's limit on open files is 2^20 unless raised).
    static let recvBit: UInt64 = 1 << 31
    /// The user data of a registration's send: its tag with bit 30 set.
    static let sendBit: UInt64 = 1 << 30
    /// The user data of a staged listener's accept: its tag with bit 29 set.
    static let acceptBit: UInt64 = 1 << 29
    /// Reported whatever the interest (epoll does the same).
    static let always = EPOLLERR.rawValue | EPOLLHUP.rawValue
    static let readBit = EPOLLIN.rawValue
    /// The default provided-buffer ring: 256 buffers of 16 KiB (4 MiB per loop), enough for a
    /// completion from each of a few hundred busy connections per iteration; a buffer is held
    /// only from its completion to the owner's read.
    package static let defaultBufferCount = 256
    package static let defaultBufferSize = 16 << 10
    static let bufferGroup: UInt16 = 1

    /// `batchSends`: nil follows the probe (`URingProbe.sendsCompleteInline`); tests may turn
    /// batched sends off.
    package init(entries: UInt32 = 1024, bufferCount: Int = defaultBufferCount,
                 bufferSize: Int = defaultBufferSize, batchSends: Bool? = nil) throws(TransportError) {
        self.batchSends = batchSends ?? URingProbe.sendsCompleteInline
        ring = try URing(loopEntries: entries)
        if bufferCount > 0, let b = try? URingBufferRing(uring: ring, group: Self.bufferGroup, count: bufferCount, size: bufferSize) {
            buffers = b
            staged = StagedInput(base: b.storage, bufferSize: bufferSize, bufferCount: bufferCount)
        } else {
            buffers = nil
            staged = nil
        }
        // Blocking: the ring's read waits on it (an O_NONBLOCK eventfd would complete -EAGAIN).
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC))
        if wakeFD < 0 { throw .syscall("eventfd", errno) }
        armWake()
    }

    deinit { Glibc.close(wakeFD) }

    private func armWake() {
        if !ring.prepareEventFDRead(fd: wakeFD, userData: Self.wakeTag) { wakeUnarmed = true }
    }

    package func start() { ring.enable() }

    /// Submits the last removals and runs the kernel's deferred work for them, so the cancelled
    /// polls let go of their files now: with DEFER_TASKRUN a cancelled request is freed only
    /// when its issuer next waits, and a process that exits instead leaves its listeners
    /// accepting until the kernel's asynchronous ring teardown (seen as a connect that
    /// succeeds after exit).
    package func finish() {
        retryCancels()
        ring.drainCompletions { Self.discard($0) }
        ring.submitAndWait(timeoutMillis: 0)
        ring.drainCompletions { Self.discard($0) }
    }

    // MARK: - Registration

    package func add(fd: Int32, tag: UInt64, events: UInt32) throws(TransportError) {
        let i = Int(fd)
        if i >= slots.count { slots += Array(repeating: Slot(), count: i + 1 - slots.count + 64) }
        if slots[i].tag != 0 { throw .syscall("io_uring poll(ADD)", EEXIST) }
        slots[i] = Slot(tag: tag, interest: events)
        sync(i)
    }

    package func modify(fd: Int32, tag: UInt64, events: UInt32) {
        let i = Int(fd)
        guard i < slots.count, slots[i].tag == tag else { return }
        slots[i].interest = events
        sync(i)
        // Reading again with bytes still queued: the owner hears of them (level-triggered).
        if events & Self.readBit != 0 && hasPending(i) { markReady(i) }
    }

    package func remove(fd: Int32, tag: UInt64, closing: Bool) {
        let i = Int(fd)
        guard i < slots.count, slots[i].tag == tag else { return }
        if slots[i].armed { _ = ring.preparePollRemove(target: tag, userData: Self.ignoreTag) }
        if slots[i].recv == .armed { cancel(tag | Self.recvBit) }
        if slots[i].staged { staged!.reset(fd: fd) }
        if slots[i].accepting { endAccepting(i) }
        slots[i] = Slot()
    }

    package func stageReceive(fd: Int32, tag: UInt64) -> Bool {
        let i = Int(fd)
        guard let staged, i < slots.count, slots[i].tag == tag else { return false }
        if slots[i].staged { return true }
        staged.begin(fd: fd)
        slots[i].staged = true
        sync(i)
        return true
    }

    /// Makes the requests in flight match the interest: a staged descriptor that wants to read
    /// has a recv (unless its stream ended), one that does not has none; a poll covers the rest.
    func sync(_ i: Int) {
        let wanted = slots[i].interest | Self.always
        if slots[i].accepting { syncAccept(i) }
        if slots[i].staged {
            let fd = Int32(i)
            // An owner reading a large frame straight into its buffer gets readiness instead.
            if wanted & Self.readBit != 0 && !staged!.wantsDirect(fd: fd) {
                if slots[i].recv == .idle && !slots[i].starved && !staged!.hasEnded(fd: fd) { armRecv(i) }
            } else if slots[i].recv == .armed {
                cancel(slots[i].tag | Self.recvBit)
                slots[i].recv = .cancelling
            }
        }
        var mask = wanted
        let reading = readsInFlight(i)
        if reading { mask &= ~Self.readBit }
        // A descriptor with a recv or accept in flight needs a poll only for what that does
        // not report (write); otherwise a poll, as on every descriptor.
        let needed = !reading || mask & ~Self.always != 0
        guard needed else { return } // an armed poll left over reports at most once (filtered)
        if !slots[i].armed {
            if ring.preparePoll(fd: Int32(i), mask: mask, userData: slots[i].tag) {
                slots[i].armed = true
                slots[i].armedMask = mask
            } else {
                unarmed.append(Int32(i))
            }
        } else if mask & ~slots[i].armedMask != 0,
                  ring.preparePollUpdate(target: slots[i].tag, mask: mask, userData: Self.ignoreTag) {
            // More bits: the armed poll must hear of them now. Fewer: at most one unwanted
            // event, filtered out.
            slots[i].armedMask = mask
        }
    }

    private func armRecv(_ i: Int) {
        // No buffer free: the poll reads for it until some are back (retried before the wait).
        guard staged!.held < buffers!.count else { return unarmed.append(Int32(i)) }
        if ring.prepareMultishotRecv(fd: Int32(i), group: Self.bufferGroup, userData: slots[i].tag | Self.recvBit) {
            slots[i].recv = .armed
            // Prepared is enough: once submitted it may take bytes at any moment.
            staged!.setDirect(fd: Int32(i), false)
        } else {
            unarmed.append(Int32(i))
        }
    }

    /// A recv or accept of this descriptor is in flight: it reports the reads, not a poll.
    @inline(__always) func readsInFlight(_ i: Int) -> Bool {
        (slots[i].staged && slots[i].recv != .idle) || (slots[i].accepting && slots[i].accept != .idle)
    }

    /// Whether the owner of a staged descriptor has something to take: bytes or an end, or
    /// new sockets or an accept error.
    @inline(__always) func hasPending(_ i: Int) -> Bool {
        if slots[i].accepting { return acceptQueues[Int32(i)]?.isEmpty == false }
        return slots[i].staged && staged!.hasPending(fd: Int32(i))
    }

    /// Cancels the request with this user data (a recv or accept; retried before the wait if
    /// no submission slot could be had).
    func cancel(_ userData: UInt64) {
        if !ring.prepareCancel(userData: userData, userData: Self.ignoreTag) {
            uncancelled.append(userData)
        }
    }

    func markReady(_ i: Int) {
        if !slots[i].readyQueued {
            slots[i].readyQueued = true
            ready.append(Int32(i))
        }
    }

    // MARK: - Waiting

    package func wait(timeoutMillis: Int32, loop: EventLoop) -> Bool {
        if let staged, let buffers {
            staged.takeReleased { buffers.recycle($0) }
            buffers.publish()
            staged.takeModeChanges { fd in
                if Int(fd) < slots.count && slots[Int(fd)].staged { sync(Int(fd)) }
            }
        }
        if !uncancelled.isEmpty { retryCancels() }
        if !unarmed.isEmpty { retryArms() }
        if wakeUnarmed { wakeUnarmed = false; armWake() }
        // Last: the owners' bytes as they are now. Their completions are posted during the
        // submit, so the wait counts them and still waits for one more event.
        let sendCount = sends.isEmpty ? 0 : prepareSends(loop)
        // Staged bytes an owner has not taken yet: look at the ring without blocking.
        let rc = ring.submitAndWait(count: 1 + sendCount, timeoutMillis: ready.isEmpty ? Int(timeoutMillis) : 0)
        loop.updateClock()
        switch -rc {
        case EBADF, EBADFD, EFAULT, EINVAL, EOPNOTSUPP, EEXIST: return false
        default: break
        }
        ring.drainCompletions { complete($0, loop) }
        if sendsInFlight > 0 { settleSends(loop) }
        if !ready.isEmpty { deliverStaged(loop) }
        return true
    }

    private func retryArms() {
        let fds = unarmed
        unarmed.removeAll(keepingCapacity: true)
        for fd in fds where Int(fd) < slots.count && slots[Int(fd)].tag != 0 { sync(Int(fd)) }
    }

    private func retryCancels() {
        let targets = uncancelled
        uncancelled.removeAll(keepingCapacity: true)
        for t in targets { cancel(t) }
    }

    /// Tells each staged descriptor's owner of the bytes its completions queued (once per
    /// iteration however many there were); one that left some while still reading is told
    /// again in the next iteration.
    private func deliverStaged(_ loop: EventLoop) {
        swap(&ready, &readyNext)
        // By index: a for-in iterator would share the buffer, and `removeAll(keepingCapacity:)`
        // on a shared buffer allocates a new one (every iteration, in debug builds).
        var k = 0
        while k < readyNext.count {
            let fd = readyNext[k]
            k += 1
            let i = Int(fd)
            guard i < slots.count, slots[i].readyQueued else { continue }
            slots[i].readyQueued = false
            let tag = slots[i].tag
            guard slots[i].interest & Self.readBit != 0, hasPending(i) else { continue }
            if !loop.dispatch(tag: tag, events: Self.readBit) {
                remove(fd: fd, tag: tag, closing: false) // the loop knows no such registration
                continue
            }
            if slots[i].tag == tag, slots[i].interest & Self.readBit != 0, hasPending(i) {
                markReady(i)
            }
        }
        readyNext.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    func complete(_ c: URing.Completion, _ loop: EventLoop) {
        let tag = c.userData
        if tag == Self.ignoreTag { return }
        if tag == Self.wakeTag {
            loop.runTasks()
            if c.result != -ECANCELED { armWake() }
            return
        }
        if tag & Self.recvBit != 0 { return received(c, tag: tag & ~Self.recvBit) }
        if tag & Self.sendBit != 0 { return sent(c, tag: tag & ~Self.sendBit, loop) }
        if tag & Self.acceptBit != 0 { return accepted(c, tag: tag & ~Self.acceptBit) }
        let i = Int(UInt32(truncatingIfNeeded: tag))
        guard i < slots.count, slots[i].tag == tag else { return } // a registration that ended
        slots[i].armed = false
        var wanted = slots[i].interest | Self.always
        if readsInFlight(i) { wanted &= ~Self.readBit } // the recv or accept reports reads
        let ready: UInt32
        if c.result >= 0 {
            ready = UInt32(c.result) & wanted
        } else if c.result == -ECANCELED {
            ready = 0
        } else {
            // The poll itself failed (say the fd was closed while registered): the owner hears
            // a hang-up and reads the error; no re-arm until it changes its interest.
            _ = loop.dispatch(tag: tag, events: Self.always)
            return
        }
        if ready != 0, !loop.dispatch(tag: tag, events: ready) {
            remove(fd: Int32(i), tag: tag, closing: false) // the loop knows no such registration
            return
        }
        if slots[i].tag == tag && !slots[i].armed {
            slots[i].starved = false
            sync(i)
        }
    }

    /// A completion of a staged descriptor's multishot recv: bytes queued for the owner (told
    /// after the batch), or the end of the recv (EOF, an error, a cancel, no buffer left).
    private func received(_ c: URing.Completion, tag: UInt64) {
        let i = Int(UInt32(truncatingIfNeeded: tag))
        let fd = Int32(i)
        guard i < slots.count, slots[i].tag == tag, slots[i].staged, let staged else {
            // A registration that ended: its buffer goes back.
            if let id = c.bufferID { buffers?.recycle(id) }
            return
        }
        if c.result > 0, let id = c.bufferID {
            staged.append(fd: fd, buffer: id, length: Int(c.result))
            markReady(i)
        } else if let id = c.bufferID {
            buffers!.recycle(id)
        }
        if c.hasMore { return }
        // The recv ended: the socket is ours to read directly until one is armed again.
        slots[i].recv = .idle
        switch c.result {
        case 0, -ECONNRESET:
            staged.end(fd: fd, code: 1)
            markReady(i)
        case -ENOBUFS:
            starvedRecvs += 1
            slots[i].starved = true
            staged.setDirect(fd: fd, true)
        case -ECANCELED, -EINTR, -EAGAIN, 1...:
            staged.setDirect(fd: fd, true)
        default:
            staged.end(fd: fd, code: c.result)
            markReady(i)
        }
        sync(i)
    }
}
