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
/// Removal cancels the poll: an io_uring request holds a reference to its file, so a closed
/// socket with a poll still armed would not send its FIN until the ring let go.
package final class URingLoopBackend: LoopBackend {
    package var kind: IOBackend { .uring }
    package let wakeFD: Int32
    let ring: URing
    /// Per fd: the registration's tag, its interest, and the poll in flight for it.
    private struct Slot {
        var tag: UInt64 = 0
        var interest: UInt32 = 0
        /// The bits of the poll in flight (valid while `armed`).
        var armedMask: UInt32 = 0
        var armed = false
    }
    private var slots: [Slot] = []
    /// Descriptors whose poll could not be prepared (no submission slot): retried before the wait.
    private var unarmed: [Int32] = []
    private var wakeUnarmed = false
    private static let ignoreTag = UInt64.max
    private static let wakeTag = UInt64.max - 1
    /// Reported whatever the interest (epoll does the same).
    private static let always = EPOLLERR.rawValue | EPOLLHUP.rawValue

    package init(entries: UInt32 = 1024) throws(TransportError) {
        ring = try URing(loopEntries: entries)
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
        ring.drainCompletions { _ in }
        ring.submitAndWait(timeoutMillis: 0)
        ring.drainCompletions { _ in }
    }

    // MARK: - Registration

    package func add(fd: Int32, tag: UInt64, events: UInt32) throws(TransportError) {
        let i = Int(fd)
        if i >= slots.count { slots += Array(repeating: Slot(), count: i + 1 - slots.count + 64) }
        if slots[i].tag != 0 { throw .syscall("io_uring poll(ADD)", EEXIST) }
        slots[i] = Slot(tag: tag, interest: events)
        arm(i)
    }

    package func modify(fd: Int32, tag: UInt64, events: UInt32) {
        let i = Int(fd)
        guard i < slots.count, slots[i].tag == tag else { return }
        slots[i].interest = events
        guard slots[i].armed else { return arm(i) }
        // Fewer bits: the armed poll may report one event nobody wants (filtered out). More
        // bits: the poll must hear of them now.
        let wanted = events | Self.always
        if wanted & ~slots[i].armedMask != 0,
           ring.preparePollUpdate(target: tag, mask: wanted, userData: Self.ignoreTag) {
            slots[i].armedMask = wanted
        }
    }

    package func remove(fd: Int32, tag: UInt64, closing: Bool) {
        let i = Int(fd)
        guard i < slots.count, slots[i].tag == tag else { return }
        if slots[i].armed { _ = ring.preparePollRemove(target: tag, userData: Self.ignoreTag) }
        slots[i] = Slot()
    }

    private func arm(_ i: Int) {
        let mask = slots[i].interest | Self.always
        if ring.preparePoll(fd: Int32(i), mask: mask, userData: slots[i].tag) {
            slots[i].armed = true
            slots[i].armedMask = mask
        } else {
            unarmed.append(Int32(i))
        }
    }

    // MARK: - Waiting

    package func wait(timeoutMillis: Int32, loop: EventLoop) -> Bool {
        if !unarmed.isEmpty { retryArms() }
        if wakeUnarmed { wakeUnarmed = false; armWake() }
        let rc = ring.submitAndWait(timeoutMillis: Int(timeoutMillis))
        loop.now = monotonicMillis()
        switch -rc {
        case EBADF, EBADFD, EFAULT, EINVAL, EOPNOTSUPP, EEXIST: return false
        default: break
        }
        ring.drainCompletions { complete($0, loop) }
        return true
    }

    private func retryArms() {
        let fds = unarmed
        unarmed.removeAll(keepingCapacity: true)
        for fd in fds where Int(fd) < slots.count && slots[Int(fd)].tag != 0 && !slots[Int(fd)].armed {
            arm(Int(fd))
        }
    }

    @inline(__always)
    private func complete(_ c: URing.Completion, _ loop: EventLoop) {
        let tag = c.userData
        if tag == Self.ignoreTag { return }
        if tag == Self.wakeTag {
            loop.runTasks()
            if c.result != -ECANCELED { armWake() }
            return
        }
        let i = Int(UInt32(truncatingIfNeeded: tag))
        guard i < slots.count, slots[i].tag == tag else { return } // a registration that ended
        slots[i].armed = false
        let ready: UInt32
        if c.result >= 0 {
            ready = UInt32(c.result) & (slots[i].interest | Self.always)
        } else if c.result == -ECANCELED {
            ready = 0
        } else {
            // The poll itself failed (say the fd was closed while registered): the owner hears
            // a hang-up and reads the error; no re-arm until it changes its interest.
            _ = loop.dispatch(tag: tag, events: Self.always)
            return
        }
        if ready != 0, !loop.dispatch(tag: tag, events: ready) {
            slots[i] = Slot() // the loop knows no such registration
            return
        }
        if slots[i].tag == tag && !slots[i].armed { arm(i) }
    }
}
