#if canImport(Glibc)
import Glibc
#endif
import Transport

/// The sockets a staged listener's multishot accept took, in order, until its owner takes
/// them; and the error that ended the accept, told once.
final class AcceptQueue {
    private var sockets: [Int32] = []
    private var head = 0
    /// errno of the failure that ended the accept (0: none to tell).
    var error: Int32 = 0

    var count: Int { sockets.count - head }
    var isEmpty: Bool { count == 0 && error == 0 }

    func push(_ fd: Int32) { sockets.append(fd) }

    func pop() -> Int32? {
        guard head < sockets.count else { return nil }
        let fd = sockets[head]
        head += 1
        if head == sockets.count { sockets.removeAll(keepingCapacity: true); head = 0 }
        return fd
    }

    /// Closes every socket not taken (the listener's registration ended).
    func closeAll() {
        while let fd = pop() { Glibc.close(fd) }
    }
}

/// Multishot accept (`stageAccept`): one request accepts every connection a listener gets,
/// each new socket a completion, with no poll and no accept4(2) per connection. The owner is
/// told "readable" once per iteration while sockets are queued, and takes them through
/// `EventLoop.accept(fd:)` as it would call accept4 (level-triggered: one that stops early
/// hears again next iteration). The accept runs while the owner asks for read interest; an
/// owner that pauses (`modify` without read: out of descriptors) has it cancelled. At most
/// `acceptQueueLimit` sockets wait: beyond, the accept is cancelled and the kernel's backlog
/// holds the rest until the owner has taken some. A failure that ends the accept (EMFILE,
/// ENFILE, ENOMEM…) is handed to the owner once, as accept4 would return it, and the accept is
/// armed again before the next wait if the owner still wants to read.
extension URingLoopBackend {
    /// Sockets accepted but not taken, per listener, before the accept is paused.
    package static let acceptQueueLimit = 128

    package func stageAccept(fd: Int32, tag: UInt64) -> Bool {
        let i = Int(fd)
        guard i < slots.count, slots[i].tag == tag, !slots[i].staged else { return false }
        if slots[i].accepting { return true }
        acceptQueues[fd] = AcceptQueue()
        slots[i].accepting = true
        sync(i)
        return true
    }

    package func accept(fd: Int32, tag: UInt64) -> Int32 {
        let i = Int(fd)
        guard i < slots.count, slots[i].tag == tag, slots[i].accepting, let queue = acceptQueues[fd] else {
            return Listener.acceptSocket(fd)
        }
        if let socket = queue.pop() {
            // Paused at the limit: accept again once the owner has made room (before the wait).
            if slots[i].accept == .idle && queue.count < Self.acceptQueueLimit { unarmed.append(fd) }
            return socket
        }
        if queue.error != 0 {
            let e = queue.error
            queue.error = 0
            // Armed again before the wait, unless the owner pauses first (no read interest).
            unarmed.append(fd)
            return -e
        }
        return -EAGAIN
    }

    /// The accept runs while the owner wants to read, no error waits to be told and the
    /// queue has room; otherwise it is cancelled.
    func syncAccept(_ i: Int) {
        let fd = Int32(i)
        guard let queue = acceptQueues[fd] else { return }
        let wanted = slots[i].interest & Self.readBit != 0 && queue.error == 0 && queue.count < Self.acceptQueueLimit
        if wanted && slots[i].accept == .idle {
            if ring.prepareMultishotAccept(listener: fd, userData: slots[i].tag | Self.acceptBit) {
                slots[i].accept = .armed
                acceptsArmed += 1
            } else {
                unarmed.append(fd)
            }
        } else if !wanted && slots[i].accept == .armed {
            cancel(slots[i].tag | Self.acceptBit)
            slots[i].accept = .cancelling
        }
    }

    /// The listener's registration ends: its accept is cancelled and the sockets its owner
    /// never took are closed (their peers see the connection end at once, not at exit).
    func endAccepting(_ i: Int) {
        if slots[i].accept == .armed { cancel(slots[i].tag | Self.acceptBit) }
        acceptQueues.removeValue(forKey: Int32(i))?.closeAll()
    }

    /// A completion of a staged listener's accept: a new socket for the owner (told after the
    /// batch), or the end of the accept (cancelled, paused at the limit, or failed).
    func accepted(_ c: URing.Completion, tag: UInt64) {
        let i = Int(UInt32(truncatingIfNeeded: tag))
        guard i < slots.count, slots[i].tag == tag, slots[i].accepting, let queue = acceptQueues[Int32(i)] else {
            // The listener's registration ended: nobody will serve this connection.
            if c.result >= 0 { Glibc.close(c.result) }
            return
        }
        if c.result >= 0 {
            queue.push(c.result)
            socketsAccepted += 1
            markReady(i)
            // Full: stop accepting until the owner takes some (the backlog holds the rest).
            if c.hasMore && queue.count >= Self.acceptQueueLimit { syncAccept(i) }
        }
        if c.hasMore { return }
        slots[i].accept = .idle
        switch -c.result {
        case ...0, ECANCELED, EINTR, EAGAIN, ECONNABORTED:
            break  // armed again below if still wanted
        case EINVAL where socketsAccepted == 0:
            // This kernel cannot accept multishot on it: the owner accepts itself after a poll.
            acceptQueues.removeValue(forKey: Int32(i))?.closeAll()
            slots[i].accepting = false
        default:
            queue.error = -c.result
            markReady(i)
        }
        sync(i)
    }

    /// A completion seen after the loop stopped: a socket accepted for a listener that is
    /// gone is closed.
    static func discard(_ c: URing.Completion) {
        let tag = c.userData
        if tag != ignoreTag, tag != wakeTag, tag & acceptBit != 0, c.result >= 0 { Glibc.close(c.result) }
    }
}
