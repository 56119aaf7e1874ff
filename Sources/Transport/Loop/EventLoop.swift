#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CLinux

/// Something registered on a loop for one file descriptor.
public protocol EventHandler: AnyObject {
    /// The descriptor is ready (readable, writable, hung up).
    func handleEvent(_ events: IOEvents)
    /// Called about every `EventLoop.tickMillis` with the loop's clock, for deadlines.
    func tick(now: UInt64)
    /// Called at the end of a loop iteration if the handler asked with `scheduleFlush`.
    func flushScheduled()
    /// The loop stopped: close the descriptor, drop references.
    func loopStopped()
}

extension EventHandler {
    public func loopStopped() {}
}

/// One epoll loop on one thread. Everything registered on it is touched only by that thread;
/// other threads talk to it through `execute`, a queue woken by an eventfd.
public final class EventLoop: @unchecked Sendable {
    /// Deadline resolution. Timeouts here are seconds long; 250 ms keeps ticks cheap.
    public static let tickMillis: UInt64 = 250

    public let index: Int
    let epfd: Int32
    let wakeFD: Int32
    /// Handlers by fd.
    @exclusivity(unchecked) private var handlers: [EventHandler?] = []
    /// Registration count per fd, carried in each epoll event: an event still queued for an
    /// fd that was closed and reused within one batch is recognised as stale and dropped.
    @exclusivity(unchecked) private var generations: [UInt32] = []
    @exclusivity(unchecked) private var pendingFlush: [EventHandler] = []
    private let tasks = Locked<[@Sendable () -> Void]>([])
    private let stopped = Atomic<Bool>(false)
    /// The loop's clock, updated once per iteration.
    @exclusivity(unchecked) public private(set) var now: UInt64 = monotonicMillis()
    @exclusivity(unchecked) private var nextTick: UInt64 = 0
    /// One receive buffer for every connection on this loop: a connection keeps only the
    /// unconsumed tail of a partial frame. 256 KiB fits 16 TLS records or a large TCP burst.
    public let readBuffer: UnsafeMutableRawBufferPointer
    /// Second buffer of the same size for TLS ciphertext (read before opening, sealed before
    /// sending); free again whenever a stream call returns.
    public let scratchBuffer: UnsafeMutableRawBufferPointer
    /// Number of registered handlers.
    public private(set) var registeredCount = 0
    private var thread: pthread_t?
    private let ownerThread = Atomic<UInt>(0)

    /// True on this loop's own thread.
    public var isCurrent: Bool {
        let owner = ownerThread.load(ordering: .relaxed)
        return owner != 0 && owner == UInt(pthread_self())
    }

    public init(index: Int, readBufferSize: Int = 256 << 10) throws(TransportError) {
        self.index = index
        epfd = epoll_create1(Int32(EPOLL_CLOEXEC))
        if epfd < 0 { throw .syscall("epoll_create1", errno) }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        if wakeFD < 0 { throw .syscall("eventfd", errno) }
        readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readBufferSize, alignment: 64)
        scratchBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readBufferSize, alignment: 64)
        var ev = epoll_event()
        ev.events = EPOLLIN.rawValue
        ev.data.u64 = Self.tag(wakeFD, UInt32.max)
        epoll_ctl(epfd, EPOLL_CTL_ADD, wakeFD, &ev)
    }

    deinit {
        readBuffer.deallocate()
        scratchBuffer.deallocate()
        Glibc.close(epfd)
        Glibc.close(wakeFD)
    }

    // MARK: - Registration (loop thread only)

    public func register(fd: Int32, handler: EventHandler, interest: Interest) throws(TransportError) {
        assertInLoop()
        try register(fd: fd, handler: handler, events: interest.epollBits)
    }

    /// Changes what the loop reports for `fd`.
    public func modify(fd: Int32, interest: Interest) {
        assertInLoop()
        modify(fd: fd, events: interest.epollBits)
    }

    /// Debug builds: traps when a loop-only call comes from another thread (before the loop
    /// runs, e.g. in tests that build connections by hand, any thread may set things up).
    @inline(__always) public func assertInLoop(_ file: StaticString = #file, _ line: UInt = #line) {
        assert(ownerThread.load(ordering: .relaxed) == 0 || isCurrent, "loop-only call off loop \(index)", file: file, line: line)
    }

    /// Registers `fd` with a raw epoll mask (the listener and the benchmark's timers).
    public func register(fd: Int32, handler: EventHandler, events: UInt32) throws(TransportError) {
        let i = Int(fd)
        if i >= handlers.count {
            let more = i + 1 - handlers.count + 64
            handlers += Array(repeating: nil, count: more)
            generations += Array(repeating: 0, count: more)
        }
        generations[i] &+= 1
        var ev = epoll_event()
        ev.events = events
        ev.data.u64 = Self.tag(fd, generations[i])
        if epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0 { throw .syscall("epoll_ctl(ADD)", errno) }
        handlers[i] = handler
        registeredCount += 1
    }

    @inline(__always) static func tag(_ fd: Int32, _ generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    public func modify(fd: Int32, events: UInt32) {
        var ev = epoll_event()
        ev.events = events
        let i = Int(fd)
        ev.data.u64 = Self.tag(fd, i < generations.count ? generations[i] : 0)
        epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev)
    }

    /// Removes the handler; call before closing the fd.
    public func unregister(fd: Int32) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nil)
        forget(fd: fd)
    }

    /// Removes the handler of an fd the caller closes right away and never duplicated: closing
    /// its only file reference takes it out of the epoll set, so no EPOLL_CTL_DEL (one syscall
    /// less per connection). Events already fetched for it carry the old generation and are
    /// dropped.
    public func unregisterClosing(fd: Int32) {
        forget(fd: fd)
    }

    private func forget(fd: Int32) {
        let i = Int(fd)
        if i < handlers.count, handlers[i] != nil {
            handlers[i] = nil
            registeredCount -= 1
        }
    }

    /// Asks for `flushScheduled()` at the end of this iteration (write coalescing: many
    /// sends, one write).
    public func scheduleFlush(_ handler: EventHandler) {
        pendingFlush.append(handler)
    }

    /// Every registered handler (loop thread only).
    public func forEachHandler(_ body: (EventHandler) -> Void) {
        for case let h? in handlers { body(h) }
    }

    // MARK: - Cross-thread

    /// Runs `task` on this loop's thread, soon. Safe from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        let wasEmpty = tasks.withLock { q in
            q.append(task)
            return q.count == 1
        }
        if wasEmpty { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, 8)
    }

    public func stop() {
        stopped.store(true, ordering: .releasing)
        wake()
    }

    public var isStopped: Bool { stopped.load(ordering: .acquiring) }

    // MARK: - Running

    /// Runs the loop on the calling thread until `stop()`.
    public func run() {
        let maxEvents = 256
        var events = [epoll_event](repeating: epoll_event(), count: maxEvents)
        ownerThread.store(UInt(pthread_self()), ordering: .relaxed)
        nextTick = monotonicMillis() + Self.tickMillis
        while !isStopped {
            let timeout = Int32(clamping: nextTick > now ? nextTick - now : 0)
            let n = events.withUnsafeMutableBufferPointer { epoll_wait(epfd, $0.baseAddress, Int32(maxEvents), timeout) }
            now = monotonicMillis()
            if n < 0 && errno != EINTR { break }
            for i in 0..<max(0, Int(n)) {
                let tag = events[i].data.u64
                let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: tag))
                if fd == wakeFD {
                    var v: UInt64 = 0
                    _ = Glibc.read(wakeFD, &v, 8)
                    runTasks()
                    continue
                }
                let idx = Int(fd)
                if idx < handlers.count, generations[idx] == UInt32(truncatingIfNeeded: tag >> 32),
                   let h = handlers[idx] {
                    h.handleEvent(IOEvents(rawValue: events[i].events))
                }
            }
            if now >= nextTick {
                nextTick = now + Self.tickMillis
                for case let h? in handlers { h.tick(now: now) }
            }
            flushPending()
        }
        // Close whatever is still registered and break reference cycles (handler ↔ loop).
        runTasks()
        let remaining = handlers
        for case let h? in remaining { h.loopStopped() }
        handlers.removeAll()
        generations.removeAll()
        pendingFlush.removeAll()
        flushing.removeAll()
        registeredCount = 0
    }

    private func runTasks() {
        let batch = tasks.withLock { q -> [@Sendable () -> Void] in
            let b = q
            q.removeAll(keepingCapacity: true)
            return b
        }
        for t in batch { t() }
    }

    /// Spare array swapped with `pendingFlush`, so neither is ever copied (no allocation per
    /// iteration).
    @exclusivity(unchecked) private var flushing: [EventHandler] = []

    private func flushPending() {
        while !pendingFlush.isEmpty {
            swap(&pendingFlush, &flushing)
            // Indexed loop: no iterator, no copy of the array.
            var i = 0
            while i < flushing.count { flushing[i].flushScheduled(); i += 1 }
            flushing.removeAll(keepingCapacity: true)
        }
    }

    /// Starts the loop on a new thread.
    public func start(name: String) {
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        pthread_create(&t, nil, { arg in
            let loop = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
            loop.run()
            return nil
        }, box.toOpaque())
        thread = t
        _ = name
    }

    /// Waits for the loop's thread to end (after `stop()`).
    public func join() {
        if let t = thread { pthread_join(t, nil); thread = nil }
    }
}

/// Socket-level failures: bind, listen, resolve, syscalls.
public enum TransportError: Error, CustomStringConvertible, Sendable {
    case syscall(String, Int32)
    case addressInUse(host: String, port: Int)
    case badAddress(String)
    case bind(host: String, port: Int, String)

    public var description: String {
        switch self {
        case .syscall(let call, let e): return "\(call) failed: \(errnoDescription(e))"
        case .addressInUse(let host, let port): return "cannot listen on \(formatHostPort(host, port)): address already in use"
        case .badAddress(let h): return "cannot use address '\(h)': not an IPv4/IPv6 address or resolvable name"
        case .bind(let host, let port, let why): return "cannot listen on \(formatHostPort(host, port)): \(why)"
        }
    }
}

public func formatHostPort(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}
