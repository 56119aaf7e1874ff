#if canImport(Glibc)
import Glibc
#endif

/// The loop's handlers by fd: the registered handler (a strong reference, taken by `set` and
/// handed back by `remove`: the loop owns what is registered on it) and the fd's registration
/// count. A flat buffer of plain slots, so `dispatch` is a bounds check, a compare and a call:
/// no array uniqueness check, no retain/release (even an `unowned(unsafe)` existential is
/// retained around a call, so a slot keeps the object pointer and its type, and calls through
/// `EventHandler._loopHandleEvent`).
///
/// Memory per fd (this table exists once per loop, sized by the highest fd): a slot is 16 bytes
/// (the type is an index into `kinds`, the few handler types this loop has seen, not a
/// 16-byte existential metatype: 32 bytes before), and the slots come zeroed from `calloc`, so
/// pages of fds never used are never touched (a large block is fresh mmap'd memory). It is the
/// loop's only per-fd table (an array of existentials beside it, 16 bytes per fd, held the
/// strong references before).
final class HandlerTable {
    struct Slot {
        var object: UnsafeRawPointer?
        /// Registration count, carried in each backend event: an event still queued for an fd
        /// that was closed and reused within one batch is recognised as stale and dropped.
        var generation: UInt32
        /// Index into `kinds` of the handler's type (meaningful while `object` is set).
        var kind: UInt32
    }

    private var slots: UnsafeMutablePointer<Slot>
    private var capacity: Int
    /// The handler types registered so far, in order of first use (a handful per loop).
    private var kinds: UnsafeMutablePointer<any EventHandler.Type>
    private var kindCount = 0
    private var kindCapacity = 4

    init() {
        capacity = 64
        slots = Self.zeroedSlots(capacity)
        kinds = .allocate(capacity: kindCapacity)
    }

    deinit {
        removeAll()
        free(slots)
        kinds.deinitialize(count: kindCount)
        kinds.deallocate()
    }

    /// All-zero bytes are a valid empty slot (nil object, generation 0, kind 0).
    private static func zeroedSlots(_ count: Int) -> UnsafeMutablePointer<Slot> {
        guard let raw = calloc(count, MemoryLayout<Slot>.stride) else { fatalError("HandlerTable: out of memory") }
        return raw.bindMemory(to: Slot.self, capacity: count)
    }

    /// Bumps and returns the generation of `fd` (a new registration), growing the table.
    func nextGeneration(fd: Int) -> UInt32 {
        if fd >= capacity { grow(to: fd + 1) }
        slots[fd].generation &+= 1
        return slots[fd].generation
    }

    func generation(fd: Int) -> UInt32 { fd < capacity ? slots[fd].generation : 0 }

    /// A handler is registered for `fd` now.
    func isRegistered(fd: Int) -> Bool { fd >= 0 && fd < capacity && slots[fd].object != nil }

    /// Sets the handler of an fd already passed to `nextGeneration`, retaining it (one that
    /// was there is released).
    func set<H: EventHandler>(fd: Int, _ handler: H) {
        let old = remove(fd: fd)
        slots[fd].object = UnsafeRawPointer(Unmanaged.passRetained(handler).toOpaque())
        slots[fd].kind = kind(of: H.self)
        _ = old
    }

    /// Takes the handler of `fd` out of the table, with the reference the table held.
    func remove(fd: Int) -> EventHandler? {
        guard fd >= 0, fd < capacity, let object = slots[fd].object else { return nil }
        slots[fd].object = nil
        return Self.take(kinds[Int(slots[fd].kind)], object)
    }

    /// Every handler in fd order (a handler registered meanwhile on a higher fd is included).
    func forEach(_ body: (EventHandler) -> Void) {
        var i = 0
        while i < capacity {
            if let object = slots[i].object { body(Self.borrow(kinds[Int(slots[i].kind)], object)) }
            i += 1
        }
    }

    private static func take<H: EventHandler>(_ type: H.Type, _ object: UnsafeRawPointer) -> EventHandler {
        Unmanaged<H>.fromOpaque(object).takeRetainedValue()
    }

    private static func borrow<H: EventHandler>(_ type: H.Type, _ object: UnsafeRawPointer) -> EventHandler {
        Unmanaged<H>.fromOpaque(object).takeUnretainedValue()
    }

    private func kind(of type: any EventHandler.Type) -> UInt32 {
        let id = ObjectIdentifier(type)
        for i in 0..<kindCount where ObjectIdentifier(kinds[i]) == id { return UInt32(i) }
        if kindCount == kindCapacity {
            let bigger = UnsafeMutablePointer<any EventHandler.Type>.allocate(capacity: kindCapacity * 2)
            bigger.moveInitialize(from: kinds, count: kindCount)
            kinds.deallocate()
            kinds = bigger
            kindCapacity *= 2
        }
        (kinds + kindCount).initialize(to: type)
        kindCount += 1
        return UInt32(kindCount - 1)
    }


    /// The handler of the registration (fd, generation) and its type, nil if that ended.
    @inline(__always) private func live(fd: Int, generation: UInt32) -> (object: UnsafeRawPointer, kind: any EventHandler.Type)? {
        guard fd >= 0, fd < capacity else { return nil }
        let slot = slots[fd]
        guard slot.generation == generation, let object = slot.object else { return nil }
        return (object, kinds[Int(slot.kind)])
    }

    @inline(__always) func dispatch(fd: Int, generation: UInt32, events: UInt32) -> Bool {
        guard let h = live(fd: fd, generation: generation) else { return false }
        h.kind._loopHandleEvent(h.object, IOEvents(rawValue: events))
        return true
    }

    func queuedOutput(fd: Int, generation: UInt32) -> UnsafeRawBufferPointer? {
        guard let h = live(fd: fd, generation: generation) else { return nil }
        return h.kind._loopQueuedOutput(h.object)
    }

    func queuedSendCompleted(fd: Int, generation: UInt32, _ result: QueuedSendResult) {
        guard let h = live(fd: fd, generation: generation) else { return }
        h.kind._loopQueuedSendCompleted(h.object, result)
    }

    /// Releases every handler (reads only where none is: pages of fds never used stay untouched).
    func removeAll() {
        var i = 0
        while i < capacity {
            if slots[i].object != nil { _ = remove(fd: i) }
            i += 1
        }
    }

    private func grow(to needed: Int) {
        let bigger = max(needed + 64, capacity * 2)
        let fresh = Self.zeroedSlots(bigger)
        fresh.moveInitialize(from: slots, count: capacity)
        free(slots)
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
