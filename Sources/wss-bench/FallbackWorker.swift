import Synchronization
import Transport
import WSClient

/// The fallback sessions of one client loop (`--fallback sse|longpoll`): opens them (at most
/// `maxInProgress` at a time), counts what they measure. Everything but the atomics is touched
/// only on the loop's thread; main reads the plain counters after the loop has stopped.
final class FallbackWorker: @unchecked Sendable {
    let loop: EventLoop
    let settings: RunSettings
    let transport: FallbackBenchSession.Transport
    let echo: Bool
    let path: String
    let hostHeader: String
    let maxInProgress: Int
    let log: ErrorLog
    private var pendingUIDs: [UInt32] = []
    private(set) var sessions: [FallbackBenchSession] = []
    private var inProgress = 0
    var sending = true
    var stopping = false
    /// Echo payload bodies start with a 16-hex-digit tag (uid, sequence); the rest is letters.
    private let filler: [UInt8]

    // Counters (loop thread; read by main after the loop stopped).
    var msgs: UInt64 = 0
    var txMsgs: UInt64 = 0
    var mismatches: UInt64 = 0
    var ends = EndCounts()
    let latency = Histogram()
    let setup = Histogram()

    /// Read by main while running.
    let up = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let outstanding = Atomic<Int>(0)

    init(loop: EventLoop, settings: RunSettings, transport: FallbackBenchSession.Transport, echo: Bool, maxInProgress: Int) {
        self.loop = loop
        self.settings = settings
        self.transport = transport
        self.echo = echo
        self.maxInProgress = max(1, maxInProgress)
        log = ErrorLog(quiet: settings.quiet)
        path = settings.options.path
        let host = settings.options.host
        hostHeader = (host.contains(":") ? "[\(host)]" : host) + ":\(settings.options.port)"
        var rng = SplitMix(state: 0xFA11_BAC4)
        filler = (0..<max(settings.size - 16, 0)).map { _ in UInt8(ascii: "a") + UInt8(rng.next() % 26) }
    }

    /// Opens sessions for these ids (on the loop thread).
    func open(_ uids: [UInt32]) {
        pendingUIDs += uids
        refill()
    }

    private func refill() {
        while inProgress < maxInProgress, !pendingUIDs.isEmpty, !stopping {
            let s = FallbackBenchSession(worker: self, transport: transport, uid: pendingUIDs.removeFirst(), echo: echo)
            sessions.append(s)
            do {
                try s.start()
                inProgress += 1
            } catch {
                ends.connErrors += 1
                failed.wrappingAdd(1, ordering: .relaxed)
                log.report("connect: \(error)")
                s.close()
            }
        }
    }

    func sessionUp(_ s: FallbackBenchSession, afterNanos: UInt64) {
        setup.add(afterNanos)
        up.wrappingAdd(1, ordering: .relaxed)
        inProgress -= 1
        refill()
    }

    func sessionEnded(_ s: FallbackBenchSession, wasUp: Bool) {
        if wasUp {
            up.wrappingSubtract(1, ordering: .relaxed)
        } else {
            inProgress -= 1
            failed.wrappingAdd(1, ordering: .relaxed)
            refill()
        }
        let owed = Int(s.sendSeq &- s.recvSeq)
        if owed > 0 { outstanding.wrappingSubtract(owed, ordering: .relaxed) }
    }

    func stopSending() { sending = false }

    func closeAll() {
        stopping = true
        for s in sessions { s.close() }
    }

    // MARK: - Echo payloads

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    private func tag(uid: UInt32, seq: UInt64) -> [UInt8] {
        var v = (UInt64(uid) << 40) ^ (seq & ((1 << 40) - 1))
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { out[i] = Self.hex[Int(v & 15)]; v >>= 4 }
        return out
    }

    /// The POST body of one message: a one-record batch `t<size>:<tag><letters>`.
    func batch(uid: UInt32, seq: UInt64) -> [UInt8] {
        outstanding.wrappingAdd(1, ordering: .relaxed)
        let body = tag(uid: uid, seq: seq).prefix(settings.size) + filler
        return Array("t\(body.count):".utf8) + body
    }

    /// The echo of message `seq` of session `uid`, byte for byte.
    func matches(_ payload: ArraySlice<UInt8>, uid: UInt32, seq: UInt64) -> Bool {
        outstanding.wrappingSubtract(1, ordering: .relaxed)
        let t = tag(uid: uid, seq: seq).prefix(settings.size)
        return payload.count == t.count + filler.count && payload.starts(with: t) && payload.dropFirst(t.count).elementsEqual(filler)
    }
}
