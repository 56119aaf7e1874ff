#if canImport(Glibc)
import Glibc
#endif

/// Bytes a completion backend (io_uring's multishot recv) received for a descriptor before
/// its owner read them: per fd, a queue of the provided buffers they landed in, then how the
/// stream ended (EOF or an error) if it did. The owner's read (`StreamDriver.receive(on:)`,
/// `read(into:on:)`, `discardInput(on:)`) takes them first, in order, and reads the socket
/// itself only while no receive request is in flight for it (`direct`): then nothing can be
/// received behind its back out of order.
///
/// A buffer's bytes are handed out in place (no copy); a buffer whose bytes were handed out is
/// given back to the backend (`takeReleased`) before it next enters the kernel, so they stay
/// valid for the rest of the owner's call, as the loop's read buffer does.
///
/// Loop-confined (one per io_uring loop; epoll loops have none).
public final class StagedInput {
    /// No buffer (end of a queue).
    @usableFromInline static let none: UInt16 = .max

    @usableFromInline struct Queue {
        @usableFromInline var head: UInt16 = StagedInput.none
        @usableFromInline var tail: UInt16 = StagedInput.none
        /// Bytes of the head buffer already handed out (`read(into:)` takes buffers in pieces).
        @usableFromInline var offset: Int32 = 0
        /// 0: open; 1: EOF; < 0: -errno. Reported after every queued byte.
        @usableFromInline var end: Int32 = 0
        @usableFromInline var endReported = false
        /// The descriptor's input comes through this queue (a completion backend receives for it).
        @usableFromInline var staged = false
        /// No receive request is in flight: the socket may be read directly after the queue.
        @usableFromInline var direct = false
        /// The owner reads large pieces straight into its own buffer (`read(into:)` with at
        /// least `directReadMinimum` bytes): the backend stops receiving for it until it reads
        /// with `receive` again, so those bytes skip the provided buffers and their copy.
        @usableFromInline var wantsDirect = false
        @usableFromInline init() {}
    }

    @usableFromInline let base: UnsafeMutableRawPointer
    @usableFromInline let bufferSize: Int
    public let bufferCount: Int
    /// Per buffer id: its length and the next buffer of the same queue.
    @usableFromInline let lengths: UnsafeMutablePointer<Int32>
    @usableFromInline let next: UnsafeMutablePointer<UInt16>
    @usableFromInline @exclusivity(unchecked) var queues: UnsafeMutablePointer<Queue>
    @usableFromInline @exclusivity(unchecked) var capacity: Int
    /// Buffers whose bytes were handed out (or dropped), for the backend to recycle.
    @usableFromInline @exclusivity(unchecked) var released: [UInt16] = []
    /// Buffers held in queues or released and not yet taken back.
    public private(set) var held = 0
    /// Descriptors whose `wantsDirect` changed (the backend re-arms or cancels before it waits).
    @usableFromInline @exclusivity(unchecked) var modeChanges: [Int32] = []
    /// A `read(into:)` of at least this many bytes asks for direct reads (a large frame's payload).
    public static let directReadMinimum = 64 << 10

    /// `base`: `bufferCount` buffers of `bufferSize` bytes, buffer id i at `base + i * bufferSize`.
    package init(base: UnsafeMutableRawPointer, bufferSize: Int, bufferCount: Int) {
        self.base = base
        self.bufferSize = bufferSize
        self.bufferCount = bufferCount
        lengths = .allocate(capacity: bufferCount)
        lengths.initialize(repeating: 0, count: bufferCount)
        next = .allocate(capacity: bufferCount)
        next.initialize(repeating: Self.none, count: bufferCount)
        capacity = 64
        queues = .allocate(capacity: capacity)
        queues.initialize(repeating: Queue(), count: capacity)
        released.reserveCapacity(bufferCount)
    }

    deinit {
        lengths.deallocate()
        next.deallocate()
        queues.deallocate()
    }

    // MARK: - The backend's side

    /// `fd`'s input comes through its queue from now on (empty, open, nothing in flight yet).
    package func begin(fd: Int32) {
        let i = Int(fd)
        if i >= capacity { grow(to: i + 1) }
        queues[i] = Queue()
        queues[i].staged = true
        queues[i].direct = true
    }

    /// The registration ended: its queued buffers are released, the fd reads the socket again.
    package func reset(fd: Int32) {
        let i = Int(fd)
        guard i < capacity, queues[i].staged else { return }
        var b = queues[i].head
        while b != Self.none {
            released.append(b)
            b = next[Int(b)]
        }
        queues[i] = Queue()
    }

    /// A completion put `length` bytes into buffer `id` for `fd`.
    package func append(fd: Int32, buffer id: UInt16, length: Int) {
        let i = Int(fd)
        precondition(i < capacity && queues[i].staged && Int(id) < bufferCount && length > 0 && length <= bufferSize)
        held += 1
        lengths[Int(id)] = Int32(length)
        next[Int(id)] = Self.none
        if queues[i].tail == Self.none {
            queues[i].head = id
            queues[i].offset = 0
        } else {
            next[Int(queues[i].tail)] = id
        }
        queues[i].tail = id
    }

    /// The stream ended after what is queued: `code` 1 = EOF, < 0 = -errno. The first end wins.
    package func end(fd: Int32, code: Int32) {
        let i = Int(fd)
        guard i < capacity, queues[i].staged, queues[i].end == 0 else { return }
        queues[i].end = code
    }

    /// Whether the socket may be read directly (no receive request in flight).
    package func setDirect(fd: Int32, _ direct: Bool) {
        let i = Int(fd)
        if i < capacity && queues[i].staged { queues[i].direct = direct }
    }

    /// Bytes or an end the owner has not been told of yet.
    package func hasPending(fd: Int32) -> Bool {
        let i = Int(fd)
        guard i < capacity else { return false }
        let q = queues[i]
        return q.head != Self.none || (q.end != 0 && !q.endReported)
    }

    /// The stream ended (reported or not): no receive is armed for it again.
    package func hasEnded(fd: Int32) -> Bool {
        let i = Int(fd)
        return i < capacity && queues[i].end != 0
    }

    /// The owner wants its bytes read straight into its buffer (no recv should be armed).
    package func wantsDirect(fd: Int32) -> Bool {
        let i = Int(fd)
        return i < capacity && queues[i].wantsDirect
    }

    /// Hands every descriptor whose `wantsDirect` changed to `body`, once.
    package func takeModeChanges(_ body: (Int32) -> Void) {
        // By index: a for-in iterator would share the buffer, and `removeAll(keepingCapacity:)`
        // on a shared buffer allocates a new one (every iteration, in debug builds).
        var k = 0
        while k < modeChanges.count { body(modeChanges[k]); k += 1 }
        modeChanges.removeAll(keepingCapacity: true)
    }

    /// Hands every released buffer to `body` (to recycle into the kernel's ring).
    package func takeReleased(_ body: (UInt16) -> Void) {
        var k = 0 // by index, as in `takeModeChanges`
        while k < released.count { body(released[k]); k += 1 }
        held -= released.count
        released.removeAll(keepingCapacity: true)
    }

    // MARK: - The owner's side (through StreamDriver)

    /// True if `fd`'s input comes through its queue.
    @inlinable public func isStaged(_ fd: Int32) -> Bool {
        let i = Int(fd)
        return i >= 0 && i < capacity && queues[i].staged
    }

    /// True if bytes are queued for `fd` (the next read returns them without the socket).
    @inlinable public func hasQueuedBytes(_ fd: Int32) -> Bool {
        let i = Int(fd)
        return i >= 0 && i < capacity && queues[i].head != Self.none
    }

    /// Hands the queued bytes to `deliver` in order (each buffer in place, valid until the
    /// loop next waits), then the end of the stream, then — only while no receive is in
    /// flight — what the socket holds, read into `scratch`.
    public func receive(fd: Int32, scratch: UnsafeMutableRawBufferPointer,
                        _ deliver: (UnsafeMutableRawBufferPointer) -> Bool) -> StreamDriver.ReceiveEnd {
        let i = Int(fd)
        if queues[i].wantsDirect { setWantsDirect(i, false) }
        while true {
            let q = queues[i]
            if !q.staged { return .drained } // the registration ended inside `deliver`
            if q.head != Self.none {
                let id = q.head
                let start = base + Int(id) * bufferSize + Int(q.offset)
                let count = Int(lengths[Int(id)] - q.offset)
                pop(i)
                guard deliver(UnsafeMutableRawBufferPointer(start: start, count: count)) else { return .stopped }
                continue
            }
            if q.end != 0 {
                queues[i].endReported = true
                return q.end == 1 ? .eof : .error(errnoDescription(-q.end))
            }
            guard q.direct else { return .drained }
            while true {
                switch TCPStream.read(fd: fd, into: scratch) {
                case .done(let n):
                    guard deliver(UnsafeMutableRawBufferPointer(rebasing: scratch[0..<n])) else { return .stopped }
                    if n < scratch.count { return .drained }
                    if !queues[i].staged || !queues[i].direct { return .drained }
                case .wantRead, .wantWrite: return .drained
                case .eof: return .eof
                case .error(let why): return .error(why)
                }
            }
        }
    }

    /// One read into `buffer`: from the head of the queue (copied), else the end of the
    /// stream, else the socket while no receive is in flight, else `.wantRead`.
    public func read(fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        let i = Int(fd)
        if buffer.count >= Self.directReadMinimum && !queues[i].wantsDirect { setWantsDirect(i, true) }
        let q = queues[i]
        if q.head != Self.none {
            let id = q.head
            let available = Int(lengths[Int(id)] - q.offset)
            let n = min(available, buffer.count)
            buffer.baseAddress!.copyMemory(from: base + Int(id) * bufferSize + Int(q.offset), byteCount: n)
            if n == available { pop(i) } else { queues[i].offset += Int32(n) }
            return .done(n)
        }
        if q.end != 0 {
            queues[i].endReported = true
            return q.end == 1 ? .eof : .error(errnoDescription(-q.end))
        }
        return q.direct ? TCPStream.read(fd: fd, into: buffer) : .wantRead
    }

    /// Drops what is queued; true once the stream ended (or the socket, read directly, says so).
    public func discard(fd: Int32, scratch: UnsafeMutableRawBufferPointer) -> Bool {
        let i = Int(fd)
        while queues[i].head != Self.none { pop(i) }
        if queues[i].end != 0 {
            queues[i].endReported = true
            return true
        }
        guard queues[i].direct else { return false }
        while true {
            switch TCPStream.read(fd: fd, into: scratch) {
            case .done: continue
            case .wantRead, .wantWrite: return false
            case .eof, .error: return true
            }
        }
    }

    @usableFromInline func setWantsDirect(_ i: Int, _ on: Bool) {
        queues[i].wantsDirect = on
        modeChanges.append(Int32(i))
    }

    @usableFromInline func pop(_ i: Int) {
        let id = queues[i].head
        released.append(id)
        queues[i].head = next[Int(id)]
        queues[i].offset = 0
        if queues[i].head == Self.none { queues[i].tail = Self.none }
    }

    private func grow(to needed: Int) {
        let bigger = max(needed + 64, capacity * 2)
        let fresh = UnsafeMutablePointer<Queue>.allocate(capacity: bigger)
        fresh.moveInitialize(from: queues, count: capacity)
        (fresh + capacity).initialize(repeating: Queue(), count: bigger - capacity)
        queues.deallocate()
        queues = fresh
        capacity = bigger
    }
}
