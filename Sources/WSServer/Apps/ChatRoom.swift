#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// What a chat client asked for in its URL: `?room=NAME` (the page always sends it) and, to
/// resume, `since=OFFSET&epoch=EPOCH` (the position of the last message it saw). Strict:
/// anything malformed is refused at the upgrade with 400 and the reason.
final class ChatRoom {
    /// The pub/sub topic: "<path>#<room>" (a fragment never reaches a server in a path, so
    /// no path can collide with a room).
    let topic: String
    let since: StreamPosition?

    init(topic: String, since: StreamPosition?) {
        self.topic = topic
        self.since = since
    }

    static let maxRoomBytes = 64
    static let maxEpochBytes = 64

    /// nil: no room and no position asked for (the classic raw relay on the path).
    static func parse(path: String, query: String?) -> Result<ChatRoom?, ChatQueryError> {
        guard let query, !query.isEmpty else { return .success(nil) }
        var room: String?, since: String?, epoch: String?
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0]), raw = parts.count > 1 ? parts[1] : ""
            guard ["room", "since", "epoch"].contains(key) else { continue }  // transport=, sid=, … are not ours
            guard let value = PercentEncoding.decoded(raw) else { return .failure(.badEncoding(key)) }
            switch key {
            case "room": room = value
            case "since": since = value
            default: epoch = value
            }
        }
        guard room != nil || since != nil || epoch != nil else { return .success(nil) }
        let name = room ?? ""
        guard name.utf8.count <= maxRoomBytes, !name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            return .failure(.badRoom)
        }
        let topic = name.isEmpty ? path : path + "#" + name
        switch (since, epoch) {
        case (nil, nil): return .success(ChatRoom(topic: topic, since: nil))
        case (let s?, let e?):
            guard let offset = UInt64(s), !s.hasPrefix("+") else { return .failure(.badSince) }
            guard (1...maxEpochBytes).contains(e.utf8.count),
                  e.utf8.allSatisfy({ $0 == 0x2D || (0x30...0x39).contains($0) || (0x61...0x7A).contains($0) || (0x41...0x5A).contains($0) }) else {
                return .failure(.badEpoch)
            }
            return .success(ChatRoom(topic: topic, since: StreamPosition(offset: offset, epoch: e)))
        default: return .failure(.sinceWithoutEpoch)
        }
    }
}

enum ChatQueryError: Error, Equatable, CustomStringConvertible {
    case badEncoding(String), badRoom, badSince, badEpoch, sinceWithoutEpoch
    var description: String {
        switch self {
        case .badEncoding(let key): return "query parameter '\(key)' is not valid percent-encoded UTF-8"
        case .badRoom: return "room must be at most \(ChatRoom.maxRoomBytes) bytes of UTF-8 without control characters"
        case .badSince: return "since must be a decimal stream offset (0 to 2^64-1)"
        case .badEpoch: return "epoch must be 1-\(ChatRoom.maxEpochBytes) letters, digits or '-'"
        case .sinceWithoutEpoch: return "since and epoch go together (the position of the last message seen)"
        }
    }
}

/// The JSON the chat app sends in a room (text messages; binary goes as it came):
///
///     {"type":"message","offset":12,"epoch":"9f…-3","data":"<the text as published>"}
///     {"type":"recovery","recovered":true,"count":3,"offset":12,"epoch":"9f…-3","resync":false}
///
/// `offset`/`epoch` are null without history. `recovery` comes once after the subscribe
/// (after the recovered messages, before live ones) and again after a re-synchronisation.
enum ChatEnvelope {
    /// Message envelopes built (for tests: once per publication per loop, not per recipient).
    static let builds = Atomic<Int>(0)

    static func message(_ p: Publication) -> String {
        builds.add(1, ordering: .relaxed)
        return "{\"type\":\"message\",\(position(p.position)),\"data\":\(JSONText.quoted(p.message.text))}"
    }

    static func recovery(_ r: SubscriptionRecovery) -> String {
        "{\"type\":\"recovery\",\"recovered\":\(r.recovered),\"count\":\(r.count),\(position(r.position)),\"resync\":\(r.isResync)}"
    }

    /// Sends `p`'s envelope to `c`, built once per publication on this loop: a room's
    /// subscribers on one loop get one publication after the other (the fan-out), so the
    /// last envelope built on this thread is reused while the publication is the same.
    static func send(_ p: Publication, to c: WebSocketConnection) {
        let cache = EnvelopeCache.current
        if !cache.holds(p) {
            var text = message(p)
            text.withUTF8 { cache.keep(p, envelope: $0) }
            if !cache.holds(p) {  // too large to keep: sent as built
                _ = c.send(text: text)
                return
            }
        }
        cache.envelope.withUnsafeBytes { _ = c.send(utf8Text: $0) }
    }

    private static func position(_ p: StreamPosition?) -> String {
        guard let p else { return "\"offset\":null,\"epoch\":null" }
        return "\"offset\":\(p.offset),\"epoch\":\(JSONText.quoted(p.epoch))"
    }
}

/// The last chat envelope built on this thread (each loop is a thread) and what it was built
/// from. A publication is the same when its topic and stream position are (a position names
/// one message of its topic), or, without history, when its text is: the envelope depends on
/// nothing else. Texts over `maxBytes` are not kept (built per recipient, as before), so a
/// loop keeps at most one small envelope and its text.
final class EnvelopeCache {
    static let maxBytes = 64 << 10

    private(set) var envelope: [UInt8] = []
    private var valid = false
    private var topic = ""
    private var position: StreamPosition?
    private var text: [UInt8] = []

    func holds(_ p: Publication) -> Bool {
        guard valid, position == p.position else { return false }
        if position != nil { return topic == p.topic }
        return text.count == p.message.bytes.count
            && text.withUnsafeBytes { $0.elementsEqual(p.message.bytes) }
    }

    func keep(_ p: Publication, envelope built: UnsafeBufferPointer<UInt8>) {
        valid = p.message.bytes.count <= Self.maxBytes
        guard valid else {
            envelope = []
            text = []
            return
        }
        envelope.removeAll(keepingCapacity: true)
        envelope.append(contentsOf: built)
        position = p.position
        topic = p.position == nil ? "" : p.topic
        text.removeAll(keepingCapacity: true)
        if p.position == nil { text.append(contentsOf: p.message.bytes) }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { if let p = $0 { Unmanaged<EnvelopeCache>.fromOpaque(p).release() } }
        return key
    }()

    /// This thread's cache.
    static var current: EnvelopeCache {
        if let p = pthread_getspecific(key) { return Unmanaged<EnvelopeCache>.fromOpaque(p).takeUnretainedValue() }
        let cache = EnvelopeCache()
        pthread_setspecific(key, Unmanaged.passRetained(cache).toOpaque())
        return cache
    }
}
