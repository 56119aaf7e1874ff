#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Transport
import WebSocket
import WSSBuildInfo

/// Per-message counters of one loop. Plain integers, touched only by that loop's thread (no
/// atomics on the message path); the loop publishes a copy every tick for `/metrics`.
final class LoopCounters: @unchecked Sendable {
    @exclusivity(unchecked) var messagesIn = 0
    @exclusivity(unchecked) var bytesIn = 0
    @exclusivity(unchecked) var messagesOut = 0
    @exclusivity(unchecked) var bytesOut = 0
    let published = Locked<Snapshot>(Snapshot())

    struct Snapshot: Sendable {
        var messagesIn = 0, bytesIn = 0, messagesOut = 0, bytesOut = 0, connections = 0
    }

    func publish(connections: Int) {
        let s = Snapshot(messagesIn: messagesIn, bytesIn: bytesIn, messagesOut: messagesOut,
                         bytesOut: bytesOut, connections: connections)
        published.withLock { $0 = s }
    }
}

/// Counts per close code: those of RFC 6455 §7.4.1 (1000–1015) in relaxed atomics, so the
/// close of every connection takes no lock (the locked dictionary cost ~400 instructions per
/// count, two counts per connection; callgrind), any other code in a locked table.
final class CloseCodeCounts: @unchecked Sendable {
    private let common: UnsafeMutablePointer<Atomic<Int>>
    private let others = Locked<[UInt16: Int]>([:])
    private static let first: UInt16 = 1000, count = 16

    init() {
        common = .allocate(capacity: Self.count)
        for i in 0..<Self.count { (common + i).initialize(to: Atomic(0)) }
    }

    deinit {
        common.deinitialize(count: Self.count)
        common.deallocate()
    }

    func add(_ code: UInt16) {
        if code >= Self.first && code < Self.first + UInt16(Self.count) {
            common[Int(code - Self.first)].add(1)
        } else {
            others.withLock { $0[code, default: 0] += 1 }
        }
    }

    /// Every code counted at least once, with its count.
    var snapshot: [UInt16: Int] {
        var all = others.withLock { $0 }
        for i in 0..<Self.count {
            let n = common[i].load(ordering: .relaxed)
            if n > 0 { all[Self.first + UInt16(i)] = n }
        }
        return all
    }
}

/// Every counter of a server, the one place they live, and their rendering for `/metrics`
/// (Prometheus text format, version 0.0.4). Per-message counters are per loop (plain integers,
/// see `LoopCounters`); per-connection events are relaxed atomics; labelled ones are locked
/// dictionaries (touched per handshake or close, never per message).
final class ServerMetrics: Sendable {
    let loops: [LoopCounters]
    /// Connections holding a slot against --max-connections (accepted and not yet closed).
    let openConnections = Atomic<Int>(0)
    let acceptedConnections = Atomic<Int>(0)
    let rejectedConnections = Atomic<Int>(0)
    let upgrades = Atomic<Int>(0)
    let tlsHandshakeFailures = Atomic<Int>(0)
    let httpErrors = Atomic<Int>(0)
    let backpressureDrops = Atomic<Int>(0)
    let closeCodesSent = CloseCodeCounts()
    let closeCodesReceived = CloseCodeCounts()
    let handshakeFailures = Locked<[String: Int]>([:])
    /// TLS handshake durations: upper bounds in seconds, cumulative counts, sum.
    static let tlsBuckets: [Double] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    let tlsHistogram = Locked<(counts: [Int], sum: Double, total: Int)>(([Int](repeating: 0, count: 12), 0, 0))

    /// The backplane's own counters are appended to every rendering.
    let backplane: Backplane?

    init(loopCount: Int, backplane: Backplane? = nil) {
        loops = (0..<loopCount).map { _ in LoopCounters() }
        self.backplane = backplane
    }

    func closeSent(_ code: CloseCode) { closeCodesSent.add(code.rawValue) }
    func closeReceived(_ code: CloseCode) { closeCodesReceived.add(code.rawValue) }
    func handshakeFailed(_ reason: String) { handshakeFailures.withLock { $0[reason, default: 0] += 1 } }

    func tlsHandshake(seconds: Double) {
        tlsHistogram.withLock { h in
            for (i, bound) in Self.tlsBuckets.enumerated() where seconds <= bound { h.counts[i] += 1 }
            h.sum += seconds
            h.total += 1
        }
    }

    func render() -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ lines: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in lines { out += "\(name)\(labels) \(value)\n" }
        }
        metric("wss_build_info", "gauge", "Version and git commit of this build (value always 1).",
               [("{version=\"\(BuildInfo.version)\",commit=\"\(BuildInfo.describe)\"}", "1")])
        let snaps = loops.map { $0.published.withLock { $0 } }
        metric("wss_connections_open", "gauge", "Open connections per event loop (updated every 250 ms).",
               snaps.enumerated().map { ("{loop=\"\($0.offset)\"}", "\($0.element.connections)") })
        metric("wss_connections_accepted_total", "counter", "Accepted TCP connections.",
               [("", "\(self.acceptedConnections.load(ordering: .relaxed))")])
        metric("wss_connections_rejected_total", "counter", "Connections closed at once over --max-connections.",
               [("", "\(self.rejectedConnections.load(ordering: .relaxed))")])
        metric("wss_handshakes_total", "counter", "Completed WebSocket upgrades.",
               [("{result=\"ok\"}", "\(self.upgrades.load(ordering: .relaxed))")]
               + handshakeFailures.withLock { $0 }.sorted { $0.key < $1.key }
                   .map { ("{result=\"failed\",reason=\"\($0.key)\"}", "\($0.value)") })
        metric("wss_messages_received_total", "counter", "WebSocket messages received.",
               [("", "\(snaps.reduce(0) { $0 + $1.messagesIn })")])
        metric("wss_messages_sent_total", "counter", "WebSocket messages sent.",
               [("", "\(snaps.reduce(0) { $0 + $1.messagesOut })")])
        metric("wss_payload_bytes_received_total", "counter", "Message payload bytes received.",
               [("", "\(snaps.reduce(0) { $0 + $1.bytesIn })")])
        metric("wss_payload_bytes_sent_total", "counter", "Message payload bytes sent.",
               [("", "\(snaps.reduce(0) { $0 + $1.bytesOut })")])
        metric("wss_close_codes_sent_total", "counter", "Close frames sent, by code.",
               closeCodesSent.snapshot.sorted { $0.key < $1.key }.map { ("{code=\"\($0.key)\"}", "\($0.value)") })
        metric("wss_close_codes_received_total", "counter", "Close frames received, by code (1005: none given).",
               closeCodesReceived.snapshot.sorted { $0.key < $1.key }.map { ("{code=\"\($0.key)\"}", "\($0.value)") })
        metric("wss_backpressure_drops_total", "counter", "Sends dropped (or connections closed) over --max-backpressure.",
               [("", "\(self.backpressureDrops.load(ordering: .relaxed))")])
        metric("wss_http_errors_total", "counter", "HTTP error answers (4xx).",
               [("", "\(self.httpErrors.load(ordering: .relaxed))")])
        let h = tlsHistogram.withLock { $0 }
        var lines = zip(Self.tlsBuckets, h.counts).map { ("{le=\"\($0.0)\"}", "\($0.1)") }
        lines.append(("{le=\"+Inf\"}", "\(h.total)"))
        out += "# HELP wss_tls_handshake_seconds TLS handshake duration, first byte to finished.\n"
        out += "# TYPE wss_tls_handshake_seconds histogram\n"
        for (l, v) in lines { out += "wss_tls_handshake_seconds_bucket\(l) \(v)\n" }
        out += "wss_tls_handshake_seconds_sum \(h.sum)\nwss_tls_handshake_seconds_count \(h.total)\n"
        metric("wss_tls_handshake_failures_total", "counter", "Failed TLS handshakes (garbage, plain HTTP, bad clients).",
               [("", "\(self.tlsHandshakeFailures.load(ordering: .relaxed))")])
        metric("wss_tls_handshakes_total", "counter", "Completed TLS handshakes, full or resumed (session ticket).", [("{kind=\"full\"}", "\(TLSContext.handshakes.full)"), ("{kind=\"resumed\"}", "\(TLSContext.handshakes.resumed)")])
        out += backplane?.metricsText() ?? ""
        return out
    }
}
