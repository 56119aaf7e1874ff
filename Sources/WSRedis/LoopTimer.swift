#if canImport(Glibc)
import Glibc
#endif
import CLinux
import Transport

/// Gets the loop's 250 ms ticks for connections that are not registered (a Redis connection
/// waiting to retry has no socket). It watches an eventfd nobody writes.
final class LoopTimer: EventHandler {
    let loop: EventLoop
    private var fd: Int32
    var onTick: ((UInt64) -> Void)?

    init(loop: EventLoop) throws(TransportError) {
        self.loop = loop
        fd = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        if fd < 0 { throw .syscall("eventfd", errno) }
    }

    func register() {
        try? loop.register(fd: fd, handler: self, interest: .read)
    }

    func close() {
        guard fd >= 0 else { return }
        loop.unregister(fd: fd)
        Glibc.close(fd)
        fd = -1
        onTick = nil
    }

    func handleEvent(_ events: IOEvents) {}
    func tick(now: UInt64) { onTick?(now) }
    func flushScheduled() {}
    func loopStopped() { close() }
}
