#if canImport(Glibc)
import Glibc
#endif
import Transport

/// Batched sends: a staged owner's output goes to the kernel in the iteration's one
/// io_uring_enter (see `queueSend`).
extension URingLoopBackend {
    /// Batched sends (staged descriptors only: the owner reads and writes through the loop).
    /// The bytes are asked for only right before the wait, so an owner's queue may grow and
    /// move until then; the send is MSG_DONTWAIT, which the kernel issues inline while
    /// submitting and completes there (count or -EAGAIN, no internal poll), so the iteration's
    /// one io_uring_enter both sends and waits, and once it returns the bytes are the owner's
    /// again. At most one per descriptor (order).
    package func queueSend(fd: Int32, tag: UInt64) -> Bool {
        let i = Int(fd)
        guard batchSends, i < slots.count, slots[i].tag == tag, slots[i].staged else { return false }
        switch slots[i].send {
        case .queued: return true
        case .inFlight: return false
        case .idle:
            slots[i].send = .queued
            sends.append(fd)
            return true
        }
    }

    package func withdrawSend(fd: Int32, tag: UInt64) -> Bool {
        let i = Int(fd)
        guard i < slots.count, slots[i].tag == tag else { return true }
        switch slots[i].send {
        case .idle: return true
        case .queued:
            slots[i].send = .idle  // its entry in `sends` is skipped
            return true
        case .inFlight: return false
        }
    }

    /// Prepares the queued sends (their owners' bytes as they are now); returns how many.
    func prepareSends(_ loop: EventLoop) -> UInt32 {
        var prepared: UInt32 = 0
        // By index: an owner told of a failure here may queue again (appended, seen below).
        var k = 0
        while k < sends.count {
            let i = Int(sends[k])
            k += 1
            guard i < slots.count, slots[i].send == .queued else { continue }
            let tag = slots[i].tag
            let bytes = loop.queuedOutput(tag: tag) ?? UnsafeRawBufferPointer(start: nil, count: 0)
            // A gigabyte at most in one request (the result is an Int32).
            let count = Int32(min(bytes.count, 1 << 30))
            if count > 0, ring.prepareSendNoWait(fd: Int32(i), UnsafeRawBufferPointer(rebasing: bytes[0..<Int(count)]),
                                                 userData: tag | Self.sendBit) {
                slots[i].send = .inFlight
                slots[i].sendLength = count
                prepared += 1
            } else {
                // Nothing to send (told "all went"), or no submission slot (told "would
                // block": the owner waits for writability and writes itself).
                slots[i].send = .idle
                loop.queuedSendCompleted(tag: tag, QueuedSendResult(result: count > 0 ? -EAGAIN : 0, requested: count))
            }
        }
        sends.removeAll(keepingCapacity: true)
        sendsInFlight += Int(prepared)
        sendsSubmitted += Int(prepared)
        return prepared
    }

    func sent(_ c: URing.Completion, tag: UInt64, _ loop: EventLoop) {
        sendsInFlight -= 1
        let i = Int(UInt32(truncatingIfNeeded: tag))
        guard i < slots.count, slots[i].tag == tag, slots[i].send == .inFlight else { return } // ended
        slots[i].send = .idle
        loop.queuedSendCompleted(tag: tag, QueuedSendResult(result: c.result, requested: slots[i].sendLength))
    }

    /// A send still in flight after the drain reads its owner's bytes, which may move or be
    /// freed as soon as this wait returns (the owner appends, a closed owner is released at the
    /// end of the iteration). Batched sends are on only where the kernel completes them while
    /// submitting (`batchSends`), but a submission the kernel deferred (it could not take every
    /// entry) would still be pending: wait for those completions here. A MSG_DONTWAIT send ends
    /// at once wherever it runs (a count or -EAGAIN), so this is one more enter, never a wait
    /// on the peer. Bounded (10 s): a ring that stops completing anything is beyond saving.
    func settleSends(_ loop: EventLoop) {
        sendsSettled += 1
        var rounds = 0
        while sendsInFlight > 0 && rounds < 1000 {
            rounds += 1
            ring.submitAndWait(count: 1, timeoutMillis: 10)
            ring.drainCompletions { complete($0, loop) }
        }
    }
}
