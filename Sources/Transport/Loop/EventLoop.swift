#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import CLinux
import COpenSSL

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
    /// Loop plumbing; conformers keep the default. `handleEvent` / `flushScheduled` on the
    /// handler at `object` without retaining it: the loop's tables store the object pointer and
    /// the conforming type, and the per-type witness calls the concrete method.
    static func _loopHandleEvent(_ object: UnsafeRawPointer, _ events: IOEvents)
    static func _loopFlushScheduled(_ object: UnsafeRawPointer)
    /// Only for owners that queue sends on the loop (`StreamDriver.queueSend(on:)`): the bytes
    /// to send now, asked for right before the loop enters the kernel (valid until the loop
    /// reports the completion, `queuedSendCompleted`). Default: none.
    func queuedOutput() -> UnsafeRawBufferPointer
    /// The loop's send of `queuedOutput()` ended: hand `result` to
    /// `StreamDriver.completeQueuedSend(_:consumed:)`. Default: nothing.
    func queuedSendCompleted(_ result: QueuedSendResult)
    static func _loopQueuedOutput(_ object: UnsafeRawPointer) -> UnsafeRawBufferPointer
    static func _loopQueuedSendCompleted(_ object: UnsafeRawPointer, _ result: QueuedSendResult)
}

/// How a send the loop made for its owner ended (read it with `StreamDriver.completeQueuedSend`).
public struct QueuedSendResult: Sendable, Equatable {
    /// Bytes taken, or -errno.
    @usableFromInline let result: Int32
    /// Bytes asked for.
    @usableFromInline let requested: Int32
    package init(result: Int32, requested: Int32) {
        self.result = result
        self.requested = requested
    }
}

extension EventHandler {
    public func loopStopped() {}

    @inlinable public static func _loopHandleEvent(_ object: UnsafeRawPointer, _ events: IOEvents) {
        Unmanaged<Self>.fromOpaque(object)._withUnsafeGuaranteedRef { $0.handleEvent(events) }
    }

    @inlinable public static func _loopFlushScheduled(_ object: UnsafeRawPointer) {
        Unmanaged<Self>.fromOpaque(object)._withUnsafeGuaranteedRef { $0.flushScheduled() }
    }

    public func queuedOutput() -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: nil, count: 0) }
    public func queuedSendCompleted(_ result: QueuedSendResult) {}

    @inlinable public static func _loopQueuedOutput(_ object: UnsafeRawPointer) -> UnsafeRawBufferPointer {
        Unmanaged<Self>.fromOpaque(object)._withUnsafeGuaranteedRef { $0.queuedOutput() }
    }

    @inlinable public static func _loopQueuedSendCompleted(_ object: UnsafeRawPointer, _ result: QueuedSendResult) {
        Unmanaged<Self>.fromOpaque(object)._withUnsafeGuaranteedRef { $0.queuedSendCompleted(result) }
    }
}

/// One event loop on one thread, on epoll or io_uring (`IOBackend`, chosen when it is made).
/// Everything registered on it is touched only by that thread; other threads talk to it
/// through `execute`, a queue woken by an eventfd.
public final class EventLoop: @unchecked Sendable {
    /// Deadline resolution. Timeouts here are seconds long; 250 ms keeps ticks cheap.
    public static let tickMillis: UInt64 = 250

    public let index: Int
    /// What this loop waits on (one final class per backend; see `LoopBackend`).
    let backend: any LoopBackend
    let wakeFD: Int32
    /// The backend this loop runs on.
    public var io: IOBackend { backend.kind }
    /// Handlers by fd: the loop owns what is registered on it (a connection lives as long as
    /// its registration), and `dispatch` reads it per event without retain/release, with the
    /// registration count per fd (see `HandlerTable`; 16 bytes per fd).
    private let table = HandlerTable()
    /// Handlers unregistered during this iteration, kept alive until it ends: a handler may
    /// unregister itself inside `handleEvent` or after `scheduleFlush`, and both `dispatch`
    /// and the flush queue hold it unowned.
    @exclusivity(unchecked) private var retired: [EventHandler] = []
    @exclusivity(unchecked) private var retiredSpare: [EventHandler] = []
    /// Handlers that asked for `flushScheduled()` this iteration, unowned.
    private let pendingFlush = FlushQueue()
    private let tasks = Locked<[@Sendable () -> Void]>([])
    private let stopped = Atomic<Bool>(false)
    /// The loop's clock in milliseconds, updated once per iteration. Read on every receive by
    /// other modules: a `let` pointer read through an inlinable getter compiles to one load
    /// (a stored `var` costs a dynamic exclusivity check per read across modules).
    @inlinable public var now: UInt64 { clock.pointee }
    @usableFromInline let clock: UnsafeMutablePointer<UInt64>
    @exclusivity(unchecked) private var nextTick: UInt64 = 0
    /// One receive buffer for every connection on this loop: a connection keeps only the
    /// unconsumed tail of a partial frame. 256 KiB fits 16 TLS records or a large TCP burst.
    public let readBuffer: UnsafeMutableRawBufferPointer
    /// Second buffer of the same size for TLS ciphertext (read before opening, sealed before
    /// sending); free again whenever a stream call returns.
    public let scratchBuffer: UnsafeMutableRawBufferPointer
    /// Bytes an io_uring loop received for its owners (nil on epoll; see `StagedInput`).
    public let staged: StagedInput?
    /// Number of registered handlers.
    public private(set) var registeredCount = 0
    private var thread: pthread_t?
    private let ownerThread = Atomic<UInt>(0)

    /// True on this loop's own thread.
    public var isCurrent: Bool {
        let owner = ownerThread.load(ordering: .relaxed)
        return owner != 0 && owner == UInt(pthread_self())
    }

    /// Why this loop, asked for io_uring, runs on epoll: its ring could not be set up after
    /// the probe passed (nil otherwise). The loop's owner logs it.
    public private(set) var uringSetupFailure: String?

    /// `io`: the backend (nil: `IOBackend.selected`, i.e. `WSS_IO` or epoll). A loop asked
    /// for io_uring runs on epoll if its ring cannot be set up (`uringSetupFailure` says why;
    /// the caller resolved the probe and logged already; see `IOBackend.resolve`).
    public convenience init(index: Int, readBufferSize: Int = 256 << 10, io: IOBackend? = nil) throws(TransportError) {
        var failure: String?
        let backend: any LoopBackend
        if (io ?? IOBackend.selected) == .uring, let make = URingRegistration.current?.makeBackend {
            do { backend = try make() } catch {
                backend = try EpollBackend()
                failure = "\(error)"
            }
        } else {
            backend = try EpollBackend()
        }
        self.init(index: index, readBufferSize: readBufferSize, backend: backend)
        uringSetupFailure = failure
    }

    /// A loop on a backend made by the caller (tests: an io_uring backend with a tiny buffer ring).
    package init(index: Int, readBufferSize: Int = 256 << 10, backend: any LoopBackend) {
        self.index = index
        self.backend = backend
        wakeFD = backend.wakeFD
        staged = backend.staged
        clock = UnsafeMutablePointer<UInt64>.allocate(capacity: 1)
        clock.initialize(to: monotonicMillis())
        readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readBufferSize, alignment: 64)
        scratchBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readBufferSize, alignment: 64)
    }

    deinit {
        readBuffer.deallocate()
        scratchBuffer.deallocate()
        clock.deallocate()
    }

    /// Reads the clock (backends, once per iteration).
    @inline(__always) package func updateClock() { clock.pointee = monotonicMillis() }

    // MARK: - Registration (loop thread only)

    public func register<H: EventHandler>(fd: Int32, handler: H, interest: Interest) throws(TransportError) {
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

    /// Registers `fd` with a raw epoll mask (EPOLLIN/EPOLLOUT: the benchmark's timers).
    public func register<H: EventHandler>(fd: Int32, handler: H, events: UInt32) throws(TransportError) {
        let i = Int(fd)
        let generation = table.nextGeneration(fd: i)
        try backend.add(fd: fd, tag: Self.tag(fd, generation), events: events)
        table.set(fd: i, handler)
        registeredCount += 1
    }

    /// A registration's identity as the backends carry it: fd in the low half, generation in
    /// the high one.
    @inline(__always) static func tag(_ fd: Int32, _ generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// The fd (as a table index) and generation a tag carries.
    @inline(__always) static func parts(_ tag: UInt64) -> (fd: Int, generation: UInt32) {
        (Int(Int32(bitPattern: UInt32(truncatingIfNeeded: tag))), UInt32(truncatingIfNeeded: tag >> 32))
    }

    /// The tag of `fd`'s current registration, nil if it has none.
    @inline(__always) private func currentTag(_ fd: Int32) -> UInt64? {
        let i = Int(fd)
        guard table.isRegistered(fd: i) else { return nil }
        return Self.tag(fd, table.generation(fd: i))
    }

    public func modify(fd: Int32, events: UInt32) {
        backend.modify(fd: fd, tag: Self.tag(fd, table.generation(fd: Int(fd))), events: events)
    }

    /// Asks the backend to receive for `fd`'s registration itself (io_uring: a multishot recv
    /// into the loop's provided buffers) and to leave the bytes in `staged`, where the owner's
    /// loop-aware driver calls find them. The owner must read `fd` only through those from
    /// now on, and never hand the fd to another owner (staged bytes stay with this
    /// registration). False: the backend does not (epoll), nothing changes.
    @discardableResult
    public func stageReceive(fd: Int32) -> Bool {
        assertInLoop()
        guard let tag = currentTag(fd) else { return false }
        return backend.stageReceive(fd: fd, tag: tag)
    }

    /// Asks the backend to accept on the listening socket `fd` itself (io_uring: one multishot
    /// accept for every connection) and queue the new sockets; the owner, told "readable",
    /// takes them with `accept(fd:)` either way. False: the backend does not (epoll), and
    /// `accept(fd:)` calls accept4(2).
    @discardableResult
    public func stageAccept(fd: Int32) -> Bool {
        assertInLoop()
        guard let tag = currentTag(fd) else { return false }
        return backend.stageAccept(fd: fd, tag: tag)
    }

    /// The next new socket of the registered listener `fd` (non-blocking, close-on-exec), or
    /// nil with `errno` set: EAGAIN when none is waiting, EMFILE/ENFILE and the like when the
    /// accept failed (retry later; a staged accept is armed again when read interest is asked).
    public func accept(fd: Int32) -> Int32? {
        assertInLoop()
        let c = currentTag(fd).map { backend.accept(fd: fd, tag: $0) } ?? Listener.acceptSocket(fd)
        if c >= 0 { return c }
        errno = -c
        return nil
    }

    /// Asks the backend to send `fd`'s output itself with its next wait (io_uring, staged
    /// registrations: one SEND in the iteration's one io_uring_enter; see `StreamDriver.queueSend`).
    /// False: the owner writes itself.
    public func queueSend(fd: Int32) -> Bool {
        guard let tag = currentTag(fd) else { return false }
        return backend.queueSend(fd: fd, tag: tag)
    }

    /// Takes back a `queueSend` not yet handed to the kernel (true), or says one is in flight
    /// (false: its completion comes first).
    public func withdrawSend(fd: Int32) -> Bool {
        guard let tag = currentTag(fd) else { return true }
        return backend.withdrawSend(fd: fd, tag: tag)
    }

    /// The bytes the owner of `tag` wants sent now (nil: that registration ended).
    @inline(__always) package func queuedOutput(tag: UInt64) -> UnsafeRawBufferPointer? {
        let (fd, generation) = Self.parts(tag)
        return table.queuedOutput(fd: fd, generation: generation)
    }

    /// Tells the owner of `tag` how its queued send ended (nothing if the registration ended).
    @inline(__always) package func queuedSendCompleted(tag: UInt64, _ result: QueuedSendResult) {
        let (fd, generation) = Self.parts(tag)
        table.queuedSendCompleted(fd: fd, generation: generation, result)
    }

    /// Removes the handler; call before closing the fd.
    public func unregister(fd: Int32) {
        forget(fd: fd, closing: false)
    }

    /// Removes the handler of an fd the caller closes right away and never duplicated: closing
    /// its only file reference takes it out of the epoll set, so no EPOLL_CTL_DEL (one syscall
    /// less per connection; io_uring cancels the fd's poll in the iteration's one submit).
    /// Events already fetched for it carry the old generation and are dropped.
    public func unregisterClosing(fd: Int32) {
        forget(fd: fd, closing: true)
    }

    private func forget(fd: Int32, closing: Bool) {
        let i = Int(fd)
        if let h = table.remove(fd: i) {
            backend.remove(fd: fd, tag: Self.tag(fd, table.generation(fd: i)), closing: closing)
            retired.append(h)
            registeredCount -= 1
        }
    }

    /// Hands `events` to the handler registered under `tag` (fd + generation); false if that
    /// registration ended. Called by the backend for each ready descriptor.
    @inline(__always) package func dispatch(tag: UInt64, events: UInt32) -> Bool {
        let (fd, generation) = Self.parts(tag)
        return table.dispatch(fd: fd, generation: generation, events: events)
    }

    /// Asks for `flushScheduled()` at the end of this iteration (write coalescing: many
    /// sends, one write).
    /// The handler must stay alive until the iteration ends: registered handlers do (an
    /// unregistered one is kept in `retired` until then); others must be owned elsewhere.
    public func scheduleFlush<H: EventHandler>(_ handler: H) {
        pendingFlush.append(handler)
    }

    /// Every registered handler (loop thread only).
    public func forEachHandler(_ body: (EventHandler) -> Void) {
        table.forEach(body)
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
        ownerThread.store(UInt(pthread_self()), ordering: .relaxed)
        backend.start()
        nextTick = monotonicMillis() + Self.tickMillis
        while !isStopped {
            let timeout = Int32(clamping: nextTick > now ? nextTick - now : 0)
            if !backend.wait(timeoutMillis: timeout, loop: self) { break }
            if now >= nextTick {
                nextTick = now + Self.tickMillis
                let now = now
                table.forEach { $0.tick(now: now) }
            }
            flushPending()
            if !retired.isEmpty { releaseRetired() }
        }
        // Close whatever is still registered and break reference cycles (handler ↔ loop).
        runTasks()
        var remaining: [EventHandler] = []
        table.forEach { remaining.append($0) }
        for h in remaining { h.loopStopped() }
        remaining = []
        backend.finish()
        table.removeAll()
        pendingFlush.removeAll()
        releaseRetired()
        registeredCount = 0
    }

    package func runTasks() {
        let batch = tasks.withLock { q -> [@Sendable () -> Void] in
            let b = q
            q.removeAll(keepingCapacity: true)
            return b
        }
        for t in batch { t() }
    }

    /// Flushes in order of scheduling; handlers scheduled by a flush run in the same pass.
    @inline(__always) private func flushPending() {
        pendingFlush.drain()
    }

    /// Drops the handlers unregistered this iteration. Swapped out first: a deinit that
    /// unregisters something else appends to the other array.
    private func releaseRetired() {
        swap(&retired, &retiredSpare)
        retiredSpare.removeAll(keepingCapacity: true)
    }

    /// Starts the loop on a new thread.
    public func start(name: String) {
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        pthread_create(&t, nil, { arg in
            let loop = Unmanaged<EventLoop>.fromOpaque(arg!).takeRetainedValue()
            loop.run()
            // Free this thread's libcrypto state (error queue, DRBG) when the loop ends, not in
            // libcrypto's thread-exit destructor: that one no longer runs once libcrypto's atexit
            // cleanup has (a loop ending while the process exits would lose its state).
            OPENSSL_thread_stop()
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
    /// A host name that did not resolve (`getaddrinfo`'s reason, or the lookup's own).
    case lookup(host: String, String)

    public var description: String {
        switch self {
        case .syscall(let call, let e): return "\(call) failed: \(errnoDescription(e))"
        case .addressInUse(let host, let port): return "cannot listen on \(formatHostPort(host, port)): address already in use"
        case .badAddress(let h): return "cannot use address '\(h)': not an IPv4/IPv6 address or resolvable name"
        case .bind(let host, let port, let why): return "cannot listen on \(formatHostPort(host, port)): \(why)"
        case .lookup(let host, let why): return "cannot resolve '\(host)': \(why)"
        }
    }
}

public func formatHostPort(_ host: String, _ port: Int) -> String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
}
