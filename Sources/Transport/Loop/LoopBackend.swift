#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// The seam between an `EventLoop` and the kernel interface it waits on. The loop keeps the
/// handler table (by fd, with a generation per registration); a backend only arms descriptors
/// and reports what became ready, through `EventLoop.dispatch(tag:events:)`, with the loop's
/// tasks run on a wake-up through `EventLoop.runTasks()`. One final class per backend, chosen
/// when the loop is made: a loop iteration makes one call through this protocol (`wait`), and
/// the per-event work inside it is direct.
///
/// Semantics both keep: level-triggered (a descriptor still ready after its handler ran is
/// reported again), hang-up and error reported whatever the interest, events of a registration
/// that ended never reach a later one of the same fd. `tag` is the registration's identity.
/// Event bits are epoll's, which are poll(2)'s.
package protocol LoopBackend: AnyObject {
    var kind: IOBackend { get }
    /// The eventfd other threads write to wake the loop.
    var wakeFD: Int32 { get }
    func add(fd: Int32, tag: UInt64, events: UInt32) throws(TransportError)
    func modify(fd: Int32, tag: UInt64, events: UInt32)
    /// The registration ends. `closing`: the caller closes the fd right away and holds no
    /// duplicate (epoll needs no call then).
    func remove(fd: Int32, tag: UInt64, closing: Bool)
    /// On the loop's thread, before the first `wait`.
    func start()
    /// Waits at most `timeoutMillis`, updates the loop's clock, dispatches what is ready.
    /// False: the backend cannot go on (the loop stops).
    func wait(timeoutMillis: Int32, loop: EventLoop) -> Bool
    /// The loop stopped and its handlers closed their descriptors: hand the kernel what is
    /// still prepared.
    func finish()
    /// Where a completion backend leaves received bytes for their owners (nil: readiness only).
    var staged: StagedInput? { get }
    /// From now on the backend receives for the registration `tag` itself and leaves the bytes
    /// in `staged` (the owner reads them through `StreamDriver`'s loop-aware calls). False if
    /// it does not (epoll: the owner goes on reading the socket).
    func stageReceive(fd: Int32, tag: UInt64) -> Bool
    /// The owner of the staged registration `tag` has output for the backend to send with its
    /// next wait (the bytes are asked for then: `EventLoop.queuedOutput(tag:)`; the result goes
    /// back through `EventLoop.queuedSendCompleted(tag:_:)`). False: send it yourself (epoll,
    /// not staged, or a send of this registration is still in flight).
    func queueSend(fd: Int32, tag: UInt64) -> Bool
    /// Takes back a send `queueSend` accepted: true if it had not gone to the kernel yet (it
    /// will not; the owner writes itself now), false while one is in flight (its completion
    /// comes; the owner must not write before it).
    func withdrawSend(fd: Int32, tag: UInt64) -> Bool
    /// From now on the backend accepts on the listening socket of the registration `tag`
    /// itself (io_uring: one multishot accept) and queues the new sockets; the owner, told
    /// "readable" while any are queued, takes them with `accept`. False: it does not (epoll).
    func stageAccept(fd: Int32, tag: UInt64) -> Bool
    /// The next new socket of the listening registration `tag` (non-blocking, close-on-exec),
    /// or -errno: -EAGAIN none now, -EMFILE/-ENFILE and the like the accept failed (a staged
    /// accept is armed again when the owner next asks for read interest). A registration not
    /// staged accepts with accept4(2).
    func accept(fd: Int32, tag: UInt64) -> Int32
}

/// epoll_wait with a level-triggered interest set; the wake eventfd is one more descriptor in it.
package final class EpollBackend: LoopBackend {
    package var kind: IOBackend { .epoll }
    let epfd: Int32
    package let wakeFD: Int32
    private var events: UnsafeMutableBufferPointer<epoll_event>
    private static let wakeTag = UInt64.max

    package init() throws(TransportError) {
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if epfd < 0 { throw .syscall("epoll_create1", errno) }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        if wakeFD < 0 { Glibc.close(epfd); throw .syscall("eventfd", errno) }
        events = .allocate(capacity: 256)
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = Self.wakeTag
        epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &ev)
    }

    deinit {
        events.deallocate()
        Glibc.close(epfd)
        Glibc.close(wakeFD)
    }

    package func add(fd: Int32, tag: UInt64, events: UInt32) throws(TransportError) {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = tag
        if epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0 { throw .syscall("epoll_ctl(ADD)", errno) }
    }

    package func modify(fd: Int32, tag: UInt64, events: UInt32) {
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = tag
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev)
    }

    /// Closing the only file reference takes the fd out of the epoll set: no EPOLL_CTL_DEL.
    package func remove(fd: Int32, tag: UInt64, closing: Bool) {
        if !closing { epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil) }
    }

    package func start() {}
    package func finish() {}
    package var staged: StagedInput? { nil }
    package func stageReceive(fd: Int32, tag: UInt64) -> Bool { false }
    package func queueSend(fd: Int32, tag: UInt64) -> Bool { false }
    package func withdrawSend(fd: Int32, tag: UInt64) -> Bool { true }
    package func stageAccept(fd: Int32, tag: UInt64) -> Bool { false }
    package func accept(fd: Int32, tag: UInt64) -> Int32 { Listener.acceptSocket(fd) }

    package func wait(timeoutMillis: Int32, loop: EventLoop) -> Bool {
        let n = wss_epoll_wait(epfd, events.baseAddress, Int32(events.count), timeoutMillis)
        loop.updateClock()
        if n < 0 { return errno == EINTR }
        for i in 0..<Int(n) {
            let tag = events[i].data.u64
            if tag == Self.wakeTag {
                var v: UInt64 = 0
                _ = Glibc.read(wakeFD, &v, 8)
                loop.runTasks()
                continue
            }
            _ = loop.dispatch(tag: tag, events: events[i].events)
        }
        return true
    }
}
