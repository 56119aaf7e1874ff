/// The seam between one subscriber's recovered history and its live messages (one topic,
/// loop-confined), so that it sees every message once, in offset order, with no gap.
///
/// The subscriber is registered for live messages *before* the history is read, so every
/// message is in the history answer, live, or both. Live messages that arrive before the
/// answer are held; when it comes, the recovered messages go first, then the held ones whose
/// offset is past the last recovered one (the others were in the answer). Later, a live
/// message at or below the last delivered offset is a repeat and is dropped; one that skips
/// offsets (a broker outage) or comes from another epoch (the stream was lost and began
/// again) starts another recovery from the last delivered position.
///
/// A message without a position (published while the broker was away, not in the stream
/// yet) is skipped once the subscriber is in a stream: it comes back with its offset, live
/// or through the gap it leaves. Without history (no stream) everything goes through.
struct RecoverySeam<Item> {
    enum Step: Equatable {
        case deliver, drop, hold
        /// Hold it, and ask the history for what follows `since`.
        case recover(since: StreamPosition?)
    }

    enum Delivery {
        case history(RecoveredMessage, StreamPosition)
        case live(Item, StreamPosition?)
    }

    /// What a recovery answer releases: the deliveries in order, whether nothing was lost,
    /// and whether another recovery must follow (from `again`).
    struct Release {
        var deliveries: [Delivery]
        var recovered: Bool
        var again: StreamPosition??
    }

    /// Held live messages beyond this are discarded and fetched from the history again.
    static var maxHeld: Int { 10_000 }

    /// The position of the last message delivered (or the client's own, until the answer).
    private(set) var last: StreamPosition?
    private(set) var recovering = true
    private var held: [(Item, StreamPosition?)] = []
    private var overflowed = false

    init(since: StreamPosition?) { last = since }

    /// A live message: deliver it now, drop it, or hold it (maybe starting a recovery).
    mutating func live(_ item: Item, _ position: StreamPosition?) -> Step {
        if recovering { return hold(item, position) }
        guard let position else { return last == nil ? .deliver : .drop }
        guard let l = last else {
            last = position
            return .deliver
        }
        if position.epoch == l.epoch {
            if position.offset <= l.offset { return .drop }
            if position.offset == l.offset + 1 {
                last = position
                return .deliver
            }
        }
        recovering = true
        _ = hold(item, position)
        return .recover(since: l)
    }

    private mutating func hold(_ item: Item, _ position: StreamPosition?) -> Step {
        if held.count >= Self.maxHeld {
            held.removeAll()
            overflowed = true
        }
        if !overflowed { held.append((item, position)) }
        return .hold
    }

    /// The history's answer to the last recovery asked for.
    mutating func finish(_ answer: Recovery) -> Release {
        recovering = false
        var out: [Delivery] = []
        if let p = answer.position {
            let after = last?.epoch == p.epoch ? last!.offset : 0
            for m in answer.messages where m.offset > after {
                out.append(.history(m, StreamPosition(offset: m.offset, epoch: p.epoch)))
            }
            last = p
        } else {
            last = nil
        }
        var complete = answer.recovered
        if overflowed {
            overflowed = false
            held.removeAll()
            guard last == nil else {
                recovering = true
                return Release(deliveries: out, recovered: complete, again: .some(last))
            }
            complete = false  // no history to fetch them from: they are gone
        }
        let pending = held
        held = []
        for (i, (item, position)) in pending.enumerated() {
            if let position, let l = last, position.epoch != l.epoch { continue }  // older than the answer's stream
            switch live(item, position) {
            case .deliver: out.append(.live(item, position))
            case .drop, .hold: break
            case .recover(let since):
                held.append(contentsOf: pending[(i + 1)...])
                return Release(deliveries: out, recovered: complete, again: .some(since))
            }
        }
        return Release(deliveries: out, recovered: complete, again: nil)
    }
}
