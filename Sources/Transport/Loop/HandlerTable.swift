/// The loop's per-event lookup: by fd, the registered handler (unowned: `EventLoop.handlers`
/// owns it) and the fd's registration count. A flat buffer of plain slots, so `dispatch` is a
/// bounds check, a compare and a call: no array uniqueness check, no retain/release.
final class HandlerTable {
    struct Slot {
        unowned(unsafe) var handler: EventHandler?
        /// Registration count, carried in each backend event: an event still queued for an fd
        /// that was closed and reused within one batch is recognised as stale and dropped.
        var generation: UInt32
    }

    private var slots: UnsafeMutablePointer<Slot>
    private var capacity: Int

    init() {
        capacity = 64
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Slot(handler: nil, generation: 0), count: capacity)
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
    func set(fd: Int, _ handler: EventHandler?) { slots[fd].handler = handler }

    @inline(__always) func dispatch(fd: Int, generation: UInt32, events: UInt32) -> Bool {
        guard fd >= 0, fd < capacity else { return false }
        let slot = slots[fd]
        guard slot.generation == generation, let h = slot.handler else { return false }
        h.handleEvent(IOEvents(rawValue: events))
        return true
    }

    func removeAll() {
        for i in 0..<capacity { slots[i].handler = nil }
    }

    private func grow(to needed: Int) {
        let bigger = max(needed + 64, capacity * 2)
        let fresh = UnsafeMutablePointer<Slot>.allocate(capacity: bigger)
        fresh.moveInitialize(from: slots, count: capacity)
        (fresh + capacity).initialize(repeating: Slot(handler: nil, generation: 0), count: bigger - capacity)
        slots.deallocate()
        slots = fresh
        capacity = bigger
    }
}

/// Handlers waiting for `flushScheduled()` at the end of the iteration, unowned: the loop
/// keeps registered and just-unregistered handlers alive until the iteration ends. Grows by
/// doubling and never shrinks, so steady state allocates nothing.
final class FlushQueue {
    struct Entry { unowned(unsafe) let handler: EventHandler }

    private var entries: UnsafeMutablePointer<Entry>
    private var capacity = 64
    private var count = 0

    init() { entries = .allocate(capacity: capacity) }
    deinit { entries.deallocate() }

    @inline(__always) func append(_ handler: EventHandler) {
        if count == capacity { grow() }
        (entries + count).initialize(to: Entry(handler: handler))
        count += 1
    }

    /// Calls every queued handler in order, including ones queued while draining.
    func drain() {
        var i = 0
        while i < count {
            let h = entries[i].handler
            h.flushScheduled()
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
