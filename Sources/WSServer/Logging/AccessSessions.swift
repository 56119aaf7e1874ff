import Transport

/// The open WebSocket sessions an access log will write a line for when they close, kept out
/// of the connections: one 40-byte `Entry` per socket in a table indexed by file descriptor
/// (no allocation per connection), and the request's text (method, path, TLS, subprotocol,
/// compression, user agent) interned with a reference count, so a thousand clients with the
/// same path and user agent share one string, and a unique one costs one string until its
/// session closes. Everything else in the line is read at close: bytes (TCP_INFO) and the
/// duration from `openedMicros`. The address is kept because the socket may no longer have a
/// peer at close (after a reset, or once both FINs are through), and an IPv4 "ip" fits in a
/// small string (no allocation). Thread-safe: upgrades and closes on every loop take one lock.
final class AccessSessions: Sendable {
    struct Entry {
        /// 0: no open session on this descriptor.
        var connection: UInt64 = 0
        var openedMicros: UInt64 = 0
        var address = ""
        var port: UInt16 = 0
        /// 0 until `closed(…)` gives one.
        var closeCode: UInt16 = 0
        var text: UInt32 = 0
    }

    /// What `finish` returns for the line.
    struct Ended {
        var entry: Entry
        var text: String
    }

    private struct State {
        var entries: [Entry] = []
        var texts = InternedTexts()
        /// Close codes given before their session was opened (a handler that closes in
        /// `onOpen`, before the upgrade's line is started): taken by `open` right after.
        var early: [Int32: (connection: UInt64, code: UInt16)] = [:]
    }

    private let state = Locked(State())

    /// A session opened on `fd`: any stale entry there (a socket closed on another path) is replaced.
    func open(fd: Int32, connection: UInt64, openedMicros: UInt64, address: String, port: Int, text: String) {
        let i = Int(fd)
        guard i >= 0, connection != 0 else { return }
        state.withLock { s in
            if i >= s.entries.count { s.entries += [Entry](repeating: Entry(), count: i + 1 - s.entries.count + 64) }
            if s.entries[i].connection != 0 { s.texts.release(s.entries[i].text) }
            var code: UInt16 = 0
            if !s.early.isEmpty, let e = s.early.removeValue(forKey: fd), e.connection == connection { code = e.code }
            s.entries[i] = Entry(connection: connection, openedMicros: openedMicros, address: address,
                                 port: UInt16(truncatingIfNeeded: port), closeCode: code, text: s.texts.retain(text))
        }
    }

    /// The close code given before the session of `connection` on `fd` was opened, taken
    /// (for a session that ended before its line was started).
    func takeEarlyCode(fd: Int32, connection: UInt64) -> UInt16? {
        state.withLock { s in
            guard !s.early.isEmpty, let e = s.early.removeValue(forKey: fd), e.connection == connection else { return nil }
            return e.code
        }
    }

    /// The session's close code, if it has none yet (the first one wins, as in `onClose`).
    func closed(fd: Int32, connection: UInt64, code: UInt16) {
        state.withLock { s in
            let i = Int(fd)
            guard i >= 0, connection != 0 else { return }
            guard i < s.entries.count, s.entries[i].connection == connection else {
                // Not opened yet: the upgrade's hook opens it next, on this call stack.
                if s.early[fd]?.connection != connection { s.early[fd] = (connection, code) }
                return
            }
            guard s.entries[i].closeCode == 0 else { return }
            s.entries[i].closeCode = code
        }
    }

    /// Removes and returns the session of `connection` on `fd` (nil if it has none).
    func finish(fd: Int32, connection: UInt64) -> Ended? {
        state.withLock { s in
            let i = Int(fd)
            guard i >= 0, i < s.entries.count, s.entries[i].connection == connection, connection != 0 else { return nil }
            let entry = s.entries[i]
            s.entries[i] = Entry()
            let text = s.texts.text(entry.text)
            s.texts.release(entry.text)
            return Ended(entry: entry, text: text)
        }
    }

    /// Open sessions and distinct texts held (for tests and memory checks).
    var counts: (sessions: Int, texts: Int) {
        state.withLock { s in (s.entries.lazy.filter { $0.connection != 0 }.count + s.early.count, s.texts.live) }
    }
}

/// Strings shared by reference count: `retain` gives an index (the same for equal strings),
/// `release` frees the slot when its last holder is gone.
struct InternedTexts {
    private var index: [String: UInt32] = [:]
    private var texts: [String] = []
    private var holders: [UInt32] = []
    private var free: [UInt32] = []

    var live: Int { index.count }

    mutating func retain(_ text: String) -> UInt32 {
        if let i = index[text] {
            holders[Int(i)] += 1
            return i
        }
        let i: UInt32
        if let slot = free.popLast() {
            i = slot
            texts[Int(i)] = text
            holders[Int(i)] = 1
        } else {
            i = UInt32(texts.count)
            texts.append(text)
            holders.append(1)
        }
        index[text] = i
        return i
    }

    func text(_ i: UInt32) -> String { Int(i) < texts.count ? texts[Int(i)] : "" }

    mutating func release(_ i: UInt32) {
        let n = Int(i)
        guard n < holders.count, holders[n] > 0 else { return }
        holders[n] -= 1
        guard holders[n] == 0 else { return }
        index[texts[n]] = nil
        texts[n] = ""
        free.append(i)
    }
}
