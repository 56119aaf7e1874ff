/// One event loop's fallback sessions, keyed by id, each with an expiry deadline. Sans-IO:
/// the caller passes the loop's clock (milliseconds) and acts on what `expire` returns.
/// Confined to its loop (no lock); a request for a session on another loop is routed there by
/// `SessionID.loop`.
///
/// A session with a request attached (an open SSE stream, a held poll) is `pinned`: it does
/// not expire while pinned; when the request ends the caller `touch`es it and the timeout
/// (`--session-timeout`, default 60 s) starts again.
public struct SessionTable<Session> {
    struct Entry {
        var session: Session
        var deadline: UInt64   // UInt64.max while pinned
    }

    /// Why a session could not be added.
    public enum InsertError: Error, Equatable {
        /// The table is full (the request is answered 503).
        case full(limit: Int)
        /// The id is already present (a CSPRNG collision: 2^-64 at 2^32 sessions).
        case duplicate
    }

    public let capacity: Int
    public let timeoutMillis: UInt64
    private var entries: [SessionID: Entry] = [:]
    /// Earliest deadline among unpinned entries, so `expire` returns at once most ticks.
    private var nextDeadline: UInt64 = .max

    public init(capacity: Int, timeoutMillis: UInt64) {
        self.capacity = capacity
        self.timeoutMillis = timeoutMillis
    }

    public var count: Int { entries.count }

    public mutating func insert(_ id: SessionID, _ session: Session, now: UInt64) throws(InsertError) {
        guard entries[id] == nil else { throw .duplicate }
        guard entries.count < capacity else { throw .full(limit: capacity) }
        let deadline = now + timeoutMillis
        entries[id] = Entry(session: session, deadline: deadline)
        nextDeadline = min(nextDeadline, deadline)
    }

    /// The session, if present and not past its deadline (an expired one is not returned even
    /// before `expire` has run: its id is dead from the deadline on).
    public func lookup(_ id: SessionID, now: UInt64) -> Session? {
        guard let e = entries[id], e.deadline > now else { return nil }
        return e.session
    }

    /// A request for the session arrived or ended: its timeout starts again from `now`.
    public mutating func touch(_ id: SessionID, now: UInt64) {
        guard entries[id] != nil else { return }
        let deadline = now + timeoutMillis
        entries[id]!.deadline = deadline
        nextDeadline = min(nextDeadline, deadline)
    }

    /// A request is attached: the session does not expire until the next `touch`.
    public mutating func pin(_ id: SessionID) {
        entries[id]?.deadline = .max
    }

    @discardableResult
    public mutating func remove(_ id: SessionID) -> Session? {
        entries.removeValue(forKey: id)?.session
    }

    /// Removes and returns the sessions whose deadline is at or before `now` (the caller closes
    /// each with 1001). Scans only when the earliest deadline has passed.
    public mutating func expire(now: UInt64) -> [(SessionID, Session)] {
        guard now >= nextDeadline else { return [] }
        var gone: [(SessionID, Session)] = []
        var next: UInt64 = .max
        for (id, e) in entries {
            if e.deadline <= now { gone.append((id, e.session)) } else if e.deadline != .max { next = min(next, e.deadline) }
        }
        for (id, _) in gone { entries.removeValue(forKey: id) }
        nextDeadline = next
        return gone
    }

    /// Every session, left in the table (a graceful shutdown closes each; they remove
    /// themselves as they end).
    public var allSessions: [Session] { entries.values.map(\.session) }

    /// Every session, removed.
    public mutating func removeAll() -> [Session] {
        let all = entries.values.map(\.session)
        entries.removeAll()
        nextDeadline = .max
        return all
    }
}
