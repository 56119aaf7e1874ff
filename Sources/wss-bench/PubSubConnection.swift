#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Transport
import WSClient

// The pub/sub payload format and one subscriber connection (see PubSubWorker.swift).

/// Header bytes at the start of every pub/sub payload.
let pubSubHeaderBytes = 32

@inline(__always)
private func hexNibble(_ v: UInt64) -> UInt8 {
    let n = UInt8(truncatingIfNeeded: v & 15)
    return n < 10 ? 48 &+ n : 87 &+ n
}

/// Writes `v` as 16 hex digits, most significant first.
@inline(__always)
func putHex16(_ p: UnsafeMutablePointer<UInt8>, _ v: UInt64) {
    var v = v
    var i = 15
    while i >= 0 { p[i] = hexNibble(v); v >>= 4; i -= 1 }
}

/// Parses 16 lowercase hex digits; nil on anything else.
@inline(__always)
private func parseHex16(_ p: UnsafePointer<UInt8>) -> UInt64? {
    var v: UInt64 = 0
    for i in 0..<16 {
        let c = p[i]
        let d: UInt8
        if c &- 48 < 10 { d = c &- 48 } else if c &- 97 < 6 { d = c &- 87 } else { return nil }
        v = v << 4 | UInt64(d)
    }
    return v
}

/// Fills `p` with the deterministic body (the same in every process thread: same seed).
func fillPubSubBody(_ p: UnsafeMutablePointer<UInt8>, size: Int, binary: Bool) {
    var rng = SplitMix(state: 0x9B5B_0B0D)
    let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".utf8)
    for i in 0..<size {
        let r = rng.next()
        p[i] = binary ? UInt8(truncatingIfNeeded: r >> 24) : alphabet[Int(r % UInt64(alphabet.count))]
    }
}

/// Per-loop hot-path state, reached through a pointer (no reference counting per message).
struct PubSubShared {
    // Immutable once the window is armed.
    var size = 0
    var binary = false
    var w0: UInt64 = .max
    var w1: UInt64 = .max
    var body: UnsafeMutablePointer<UInt8>
    var latency: LatencySamples
    // Counters (subscribers of this loop).
    var deliveries: UInt64 = 0        // inside the window
    var deliveriesTotal: UInt64 = 0   // every message a subscriber received
    var gaps: UInt64 = 0              // publishes a subscriber never saw
    var duplicates: UInt64 = 0        // repeated or out-of-order sequence numbers
    var mismatches: UInt64 = 0        // wrong size, kind, header or body
    var clock = ReadClock()
    var hookQueued = false
}

/// One subscriber, or the publisher (which also receives its own messages back).
final class PubSubConn: ClientDelegate {
    typealias State = ConnState
    unowned(unsafe) let worker: PubSubWorker
    let sh: UnsafeMutablePointer<PubSubShared>
    let id: Int
    let isPublisher: Bool
    var conn: ClientConnection?
    var state: State = .connecting
    var started: UInt64 = 0
    /// Next sequence number expected.
    var expect: UInt64 = 0

    init(worker: PubSubWorker, shared: UnsafeMutablePointer<PubSubShared>, id: Int, isPublisher: Bool) {
        self.worker = worker
        self.sh = shared
        self.id = id
        self.isPublisher = isPublisher
    }

    @inline(__always)
    private func clock() -> UInt64 {
        let (now, fresh) = sh.pointee.clock.now(for: UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()))
        if fresh { worker.queueHook() }
        return now
    }

    /// Checks size, kind, header and body; returns (seq, sent) or nil.
    @inline(__always)
    private func decode(_ m: Message) -> (UInt64, UInt64)? {
        let b = m.bytes
        let size = sh.pointee.size
        guard b.count == size, m.isText != sh.pointee.binary, let base = b.baseAddress else { return nil }
        let p = base.assumingMemoryBound(to: UInt8.self)
        guard let seq = parseHex16(p), let sent = parseHex16(p + 16) else { return nil }
        if size > pubSubHeaderBytes,
           memcmp(p + pubSubHeaderBytes, sh.pointee.body + pubSubHeaderBytes, size - pubSubHeaderBytes) != 0 {
            return nil
        }
        return (seq, sent)
    }

    func clientDidOpen(_ client: ClientConnection) { worker.opened(self) }

    func client(_ client: ClientConnection, didReceive m: Message) {
        let now = clock()
        guard let (seq, sent) = decode(m) else {
            sh.pointee.mismatches &+= 1
            worker.report("\(isPublisher ? "publisher" : "subscriber \(id)"): bad message (\(m.kind), \(m.bytes.count) bytes)")
            return
        }
        if isPublisher { return worker.publisherGot(seq: seq, sent: sent, now: now) }
        if seq == expect {
            expect &+= 1
        } else if seq > expect {
            sh.pointee.gaps &+= seq &- expect
            worker.report("subscriber \(id): expected seq \(expect), got \(seq) (\(seq - expect) missing)")
            expect = seq &+ 1
        } else {
            sh.pointee.duplicates &+= 1
            worker.report("subscriber \(id): seq \(seq) again or out of order (expected \(expect))")
            return
        }
        sh.pointee.deliveriesTotal &+= 1
        if now >= sh.pointee.w0 && now < sh.pointee.w1 {
            let v = now &- sent
            sh.pointee.deliveries &+= 1
            sh.pointee.latency.record(v)
        }
    }

    func clientDidClose(_ client: ClientConnection, code: CloseCode, reason: String, error: String?) {
        worker.closed(self, code: code, error: error)
    }
}
