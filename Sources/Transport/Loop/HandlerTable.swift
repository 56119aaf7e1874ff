/// The loop's per-event lookup: by fd, the registered handler (unowned: `EventLoop.handlers`
/// owns it) and the fd's registration count. A flat buffer of plain slots, so `dispatch` is a
/// bounds check, a compare and a call: no array uniqueness check, no retain/release (even an
/// `unowned(unsafe)` existential is retained around a call, so a slot keeps the object pointer
/// and its type, and calls through `EventHandler._loopHandleEvent`).
final class HandlerTable {
    struct Slot {
        var object: UnsafeRawPointer?
        var type: (any EventHandler.Type)?
        /// Registration count, carried in each backend event: an event still queued for an fd
        /// that was closed and reused within one batch is recognised as stale and dropped.
        var generation: UInt32
    }

    private var slots: UnsafeMutablePointer<Slot>
    private var capacity: Int

    init() {
        capacity = 64
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(object: nil, type: nil, generation: 0), count: capacity)
    }

    deinit { slots.deallocate() }

    /// Bumps and returns the generation of `fd` (a new registration), growing the table.
    func nextGeneration(fd: Int) -> UInt32 {
        if fd >= capacity { grow(to: fd + 1) }
        slots[fd].generation &+= 1
        return slots[fd].generation
    }

    func generation(fd: Int) -> UInt32 { fd < capacity ? slots[fd].generation : 0 }

    /// Sets the handler of an fd already passed to `nextGeneration`.
    func set<H: EventHandler>(fd: Int, _ handler: H) {
        slots[fd].object = UnsafeRawPointer(Unmanaged.passUnretained(handler).toOpaque())
        slots[fd].type = H.self
    }

    func clear(fd: Int) {
        slots[fd].object = nil
        slots[fd].type = nil
    }

    @inline(__always) func dispatch(fd: Int, generation: UInt32, events: UInt32) -> Bool {
        guard fd >= 0, fd < capacity else { return false }
        let slot = slots[fd]
        guard slot.generation == generation, let object = slot.object, let type = slot.type else { return false }
        type._loopHandleEvent(object, IOEvents(rawValue: events))
        return true
    }

    func removeAll() {
        for i in 0..<capacity { clear(fd: i) }
    }

    private func grow(to needed: Int) {
        let bigger = max(needed + 64, capacity * 2)
        let fresh = UnsafeMutablePointer<Slot>.allocate(capacity: bigger)
        fresh.moveInitialize(from: slots, count: capacity)
        (fresh + capacity).initialize(repeating: Slot(object: nil, type: nil, generation: 0), count: bigger - capacity)
        slots.deallocate()
        slots = fresh
        capacity = bigger
    }
}

/// Handlers waiting for `flushScheduled()` at the end of the iteration, unowned: the loop
/// keeps registered and just-unregistered handlers alive until the iteration ends. Grows by
/// doubling and never shrinks, so steady state allocates nothing.
final class FlushQueue {
    struct Entry {
        let object: UnsafeRawPointer
        let type: any EventHandler.Type
    }

    private var entries: UnsafeMutablePointer<Entry>
    private var capacity = 64
    private var count = 0

    init() { entries = .allocate(capacity: capacity) }
    deinit { entries.deallocate() }

    @inline(__always) func append<H: EventHandler>(_ handler: H) {
        if count == capacity { grow() }
        let object = UnsafeRawPointer(Unmanaged.passUnretained(handler).toOpaque())
        (entries + count).initialize(to: Entry(object: object, type: H.self))
        count += 1
    }

    /// Calls every queued handler in order, including ones queued while draining.
    func drain() {
        var i = 0
        while i < count {
            let e = entries[i]
            e.type._loopFlushScheduled(e.object)
            i += 1
        }
        count = 0
    }

    func removeAll() { count = 0 }

    private func grow() {
        let bigger = capacity * 2
        let fresh = UnsafeMutablePointer<Entry>.allocate(capacity: bigger)
        fresh.moveInitialize(from: entries, count: count)
        entries.deallocate()
        entries = fresh
        capacity = bigger
    }
}
