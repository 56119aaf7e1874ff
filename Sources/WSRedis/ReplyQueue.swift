import WSServer

/// What the replies on the publish connection answer, in order (Redis answers commands in
/// the order sent), and since when the oldest is awaited. Backplane-loop only.
struct ReplyQueue {
    struct RecoveryRequest {
        let topic: String
        let since: StreamPosition?
        let completion: @Sendable (Recovery) -> Void
    }

    enum Entry {
        /// Replies nobody waits for (SCRIPT LOAD).
        case ignore(Int)
        /// One reply per publish of a batch.
        case publishes(Int)
        case recovery(RecoveryRequest)
        /// HGETALL of a topic's presence hash: add the other instances to `local`.
        case presence(local: Int, completion: @Sendable (Int) -> Void)
    }

    private var entries: [Entry] = []
    private var head = 0
    /// Loop time (ms) the front entry has been waiting since: when it was queued onto an
    /// empty queue, or the last reply, whichever is later (a long batch being answered is
    /// progress, not a stall).
    private(set) var waitingSince: UInt64 = 0

    var isEmpty: Bool { head == entries.count }

    /// Something is awaited and nothing has come for `limit` ms.
    func overdue(now: UInt64, limit: UInt64) -> Bool { !isEmpty && now >= waitingSince + limit }

    mutating func push(_ e: Entry, now: UInt64) {
        if isEmpty { waitingSince = now }
        entries.append(e)
    }

    /// Takes one reply's worth off the front; returns the entry it belonged to.
    mutating func pop(now: UInt64) -> Entry? {
        guard head < entries.count else { return nil }
        waitingSince = now
        let e = entries[head]
        switch e {
        case .ignore(let n) where n > 1: entries[head] = .ignore(n - 1)
        case .publishes(let n) where n > 1: entries[head] = .publishes(n - 1)
        default:
            head += 1
            if head == entries.count { entries.removeAll(keepingCapacity: true); head = 0 }
        }
        return e
    }

    /// Everything still waiting (the connection dropped): publishes without a reply and the
    /// recoveries to answer.
    mutating func drain() -> (Int, [RecoveryRequest]) {
        var publishes = 0
        var recoveries: [RecoveryRequest] = []
        for e in entries[head...] {
            switch e {
            case .publishes(let n): publishes += n
            case .recovery(let r): recoveries.append(r)
            case .presence(let local, let completion): completion(local)  // Redis gone: what we know
            case .ignore: break
            }
        }
        entries.removeAll(keepingCapacity: true)
        head = 0
        return (publishes, recoveries)
    }
}
