#if canImport(Glibc)
import Glibc
#endif

// Clock, /proc readers, number formatting and a latency histogram — no Foundation.

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall, no allocation).
@inline(__always)
func nowNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}

func sleepNanos(_ ns: UInt64) {
    var ts = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
    var rem = timespec()
    while nanosleep(&ts, &rem) != 0 && errno == EINTR { ts = rem }
}

func sleepUntil(_ t: UInt64) {
    while true {
        let now = nowNanos()
        if now >= t { return }
        sleepNanos(t - now)
    }
}

/// Writes a line to stderr directly (diagnostics; never on the hot path in the steady state).
func warn(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { p in _ = Glibc.write(2, p.baseAddress, p.count) }
}

/// Writes to stdout unbuffered so lines are not lost if the process is killed.
func out(_ s: String) {
    var line = s + "\n"
    line.withUTF8 { p in
        var off = 0
        while off < p.count {
            let n = Glibc.write(1, p.baseAddress! + off, p.count - off)
            if n <= 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }
}

func readSmallFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return nil }
    defer { close(fd) }
    var buf = [UInt8](repeating: 0, count: 8192)
    var total = 0
    while total < buf.count {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
        if n < 0 { if errno == EINTR { continue }; return nil }
        if n == 0 { break }
        total += n
    }
    return Array(buf[0..<total])
}

/// utime + stime of a process, in seconds, from /proc/PID/stat (fields 14 and 15).
func processCPUSeconds(pid: Int32) -> Double? {
    guard let bytes = readSmallFile("/proc/\(pid)/stat"),
          let close = bytes.lastIndex(of: UInt8(ascii: ")")) else { return nil }
    // Fields after ") ": 3 = state, 4 …; utime is field 14, stime 15.
    let fields = bytes[(close + 1)...].split(separator: UInt8(ascii: " "))
    guard fields.count > 12,
          let ut = UInt64(String(decoding: fields[11], as: UTF8.self)),
          let st = UInt64(String(decoding: fields[12], as: UTF8.self)) else { return nil }
    let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
    return Double(ut + st) / (hz > 0 ? hz : 100)
}

/// VmRSS of a process in KiB, from /proc/PID/status.
func processRSSKiB(pid: Int32) -> Int? {
    guard let bytes = readSmallFile("/proc/\(pid)/status") else { return nil }
    for line in bytes.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("VmRSS:".utf8)) {
        let digits = line.drop(while: { $0 < 48 || $0 > 57 }).prefix(while: { $0 >= 48 && $0 <= 57 })
        return Int(String(decoding: digits, as: UTF8.self))
    }
    return nil
}

/// This process's CPU (user + system) in seconds.
func selfCPUSeconds() -> Double {
    var ru = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &ru)
    return Double(ru.ru_utime.tv_sec) + Double(ru.ru_utime.tv_usec) / 1e6
         + Double(ru.ru_stime.tv_sec) + Double(ru.ru_stime.tv_usec) / 1e6
}

/// Raises the soft RLIMIT_NOFILE to at least `need` (up to the hard limit); returns the soft limit.
@discardableResult
func raiseFileLimit(need: Int) -> Int {
    var rl = rlimit()
    getrlimit(RLIMIT_NOFILE_, &rl)
    let want = rlim_t(max(need, 0))
    if rl.rlim_cur < want || rl.rlim_cur < rl.rlim_max {
        rl.rlim_cur = rl.rlim_max == rlimInfinity ? max(want, rl.rlim_cur) : rl.rlim_max
        setrlimit(RLIMIT_NOFILE_, &rl)
        getrlimit(RLIMIT_NOFILE_, &rl)
    }
    return rl.rlim_cur == rlimInfinity ? Int.max : Int(rl.rlim_cur)
}

private let rlimInfinity = rlim_t.max
private let RLIMIT_NOFILE_ = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

/// Fixed-point formatting without Foundation.
func fmt(_ x: Double, _ decimals: Int = 1) -> String {
    if !x.isFinite { return x.isNaN ? "nan" : (x < 0 ? "-inf" : "inf") }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let neg = x < 0
    let r = (abs(x) * scale).rounded()
    if r >= 9.0e18 { return (neg ? "-" : "") + String(Int64(abs(x))) }
    let v = UInt64(r)
    let s = UInt64(scale)
    var str = String(v / s)
    if decimals > 0 {
        var frac = String(v % s)
        while frac.count < decimals { frac = "0" + frac }
        str += "." + frac
    }
    return (neg && v != 0 ? "-" : "") + str
}

/// HDR-like log-bucket histogram: values below 64 exact, then 32 sub-buckets per power of two
/// (≤ 3 % bucket error), the same layout as wsload. Fixed storage; `add` never allocates.
final class Histogram {
    static let bucketCount = 64 + 58 * 32
    let buckets: UnsafeMutablePointer<UInt64>
    private(set) var count: UInt64 = 0
    private(set) var max: UInt64 = 0
    private(set) var min: UInt64 = .max
    private(set) var sum: Double = 0

    init() {
        buckets = .allocate(capacity: Self.bucketCount)
        buckets.initialize(repeating: 0, count: Self.bucketCount)
    }

    deinit { buckets.deallocate() }

    @inline(__always)
    static func index(_ v: UInt64) -> Int {
        if v < 64 { return Int(v) }
        let msb = 63 - v.leadingZeroBitCount
        let shift = msb - 5
        return 64 + (msb - 6) * 32 + Int(truncatingIfNeeded: v >> UInt64(shift)) - 32
    }

    static func value(_ i: Int) -> UInt64 {
        if i < 64 { return UInt64(i) }
        let k = i - 64, msb = k / 32 + 6, sub = UInt64(k % 32 + 32), shift = UInt64(msb - 5)
        return (sub << shift) + ((1 << shift) - 1) / 2
    }

    @inline(__always)
    func add(_ v: UInt64) {
        buckets[Self.index(v)] &+= 1
        count &+= 1
        sum += Double(v)
        if v > max { max = v }
        if v < min { min = v }
    }

    func absorb(_ l: LatencySamples) { combine(l.buckets, count: l.count, max: l.max, min: l.min, sum: l.sum) }

    func merge(_ o: Histogram) { combine(o.buckets, count: o.count, max: o.max, min: o.min, sum: o.sum) }

    private func combine(_ b: UnsafeMutablePointer<UInt64>, count c: UInt64, max mx: UInt64, min mn: UInt64, sum s: Double) {
        for i in 0..<Self.bucketCount { buckets[i] &+= b[i] }
        if c > 0 {
            if mx > max { max = mx }
            if mn < min { min = mn }
        }
        count &+= c
        sum += s
    }

    func percentile(_ q: Double) -> UInt64 {
        if count == 0 { return 0 }
        var target = UInt64((q * Double(count)).rounded(.up))
        if target < 1 { target = 1 }
        var acc: UInt64 = 0
        for i in 0..<Self.bucketCount {
            acc &+= buckets[i]
            if acc >= target {
                var v = Self.value(i)
                if v > max { v = max }
                if v < min { v = min }
                return v
            }
        }
        return max
    }
}

/// Small deterministic PRNG (splitmix64) for payload bodies.
struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Rate-limited diagnostics (a flood of identical errors helps nobody).
/// Where a benchmark connection is in its life.
enum ConnState: UInt8 { case connecting, open, closing, done }

/// How a worker's connections ended badly, summed over workers for the report.
struct EndCounts {
    /// The connection or its upgrade failed.
    var connErrors: UInt64 = 0
    /// The server broke the protocol (or sent what the mode does not expect).
    var protoErrors: UInt64 = 0
    /// The server closed a connection during the run.
    var closedByServer: UInt64 = 0
    /// Our close handshake failed.
    var closeErrors: UInt64 = 0

    var total: UInt64 { connErrors + protoErrors + closedByServer + closeErrors }

    static func += (a: inout EndCounts, b: EndCounts) {
        a.connErrors += b.connErrors
        a.protoErrors += b.protoErrors
        a.closedByServer += b.closedByServer
        a.closeErrors += b.closeErrors
    }
}

final class ErrorLog {
    private var printed = 0
    let limit: Int
    let quiet: Bool
    init(limit: Int = 10, quiet: Bool) { self.limit = limit; self.quiet = quiet }
    func report(_ s: @autoclosure () -> String) {
        if quiet { return }
        printed += 1
        if printed <= limit { warn("wss-bench: " + s()) }
        else if printed == limit + 1 { warn("wss-bench: (further errors on this thread not shown)") }
    }
}

/// Seconds all threads of a process spent runnable but waiting for a CPU, summed, from
/// /proc/PID/task/*/schedstat (second field). nil if unavailable. "self" for this process.
func processRunQueueSeconds(pid: String) -> Double? {
    guard let dir = opendir("/proc/\(pid)/task") else { return nil }
    defer { closedir(dir) }
    var total: UInt64 = 0
    var found = false
    while let entry = readdir(dir) {
        let name = withUnsafePointer(to: &entry.pointee.d_name) {
            $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
        }
        if name.hasPrefix(".") { continue }
        guard let bytes = readSmallFile("/proc/\(pid)/task/\(name)/schedstat") else { continue }
        let fields = bytes.split(whereSeparator: { $0 == 32 || $0 == 10 })
        if fields.count >= 2, let w = UInt64(String(decoding: fields[1], as: UTF8.self)) {
            total += w
            found = true
        }
    }
    return found ? Double(total) / 1e9 : nil
}

/// CPU and run-queue counters of the server (optional) and of this process at one instant.
struct UsageSample {
    var serverCPU: Double?
    var serverRunq: Double?
    var selfCPU: Double
    var selfRunq: Double?

    static func take(serverPid: Int32?) -> UsageSample {
        UsageSample(serverCPU: serverPid.flatMap { processCPUSeconds(pid: $0) },
                    serverRunq: serverPid.flatMap { processRunQueueSeconds(pid: String($0)) },
                    selfCPU: selfCPUSeconds(),
                    selfRunq: processRunQueueSeconds(pid: "self"))
    }
}

/// Use over a window, in cores (CPU) and share of the window (run queue); -1 when unknown.
struct Usage {
    var serverCPU = -1.0, serverRunq = -1.0, clientCPU = -1.0, clientRunq = -1.0
    /// Server CPU seconds in the window (for efficiency), -1 when unknown.
    var serverCPUSeconds = -1.0

    init(_ a: UsageSample, _ b: UsageSample, seconds: Double) {
        if let x = a.serverCPU, let y = b.serverCPU { serverCPUSeconds = y - x; serverCPU = (y - x) / seconds }
        if let x = a.serverRunq, let y = b.serverRunq { serverRunq = (y - x) / seconds }
        clientCPU = (b.selfCPU - a.selfCPU) / seconds
        if let x = a.selfRunq, let y = b.selfRunq { clientRunq = (y - x) / seconds }
    }

    func efficiency(_ count: UInt64) -> Double { serverCPUSeconds > 0 ? Double(count) / serverCPUSeconds : -1 }

    var keys: String {
        "server_cpu=\(fmt(serverCPU, 3)) server_cpu_pct=\(serverCPU >= 0 ? fmt(serverCPU * 100, 1) : "-1") "
            + "client_cpu=\(fmt(clientCPU, 3)) server_runq=\(fmt(serverRunq, 3)) client_runq=\(fmt(clientRunq, 3))"
    }

    var runqNote: String {
        let worst = Swift.max(serverRunq, clientRunq)
        if worst <= 0.05 { return "" }
        let server = serverRunq >= 0 ? "server \(fmt(serverRunq, 2)), " : ""
        return "  (run queue: \(server)client \(fmt(clientRunq, 2)) — other work competed for the cores; numbers are noisy)"
    }
}

/// Latency samples of one loop inside the measurement window, as plain fields of a worker's
/// shared block (no allocation, no reference counting on the message path); merged into a
/// `Histogram` at the end.
struct LatencySamples {
    let buckets: UnsafeMutablePointer<UInt64>
    var count: UInt64 = 0
    var max: UInt64 = 0
    var min: UInt64 = .max
    var sum: Double = 0

    /// Zeroed buckets; free with `deallocate()`.
    static func make() -> LatencySamples {
        let b = UnsafeMutablePointer<UInt64>.allocate(capacity: Histogram.bucketCount)
        b.initialize(repeating: 0, count: Histogram.bucketCount)
        return LatencySamples(buckets: b)
    }

    func deallocate() { buckets.deallocate() }

    @inline(__always)
    mutating func record(_ v: UInt64) {
        buckets[Histogram.index(v)] &+= 1
        count &+= 1
        sum += Double(v)
        if v > max { max = v }
        if v < min { min = v }
    }
}

/// One clock read per connection read event, as wsload: the messages one read delivers share a
/// timestamp; another connection, or the next loop iteration (`reset`), reads the clock again.
struct ReadClock {
    private var owner: UInt = 0
    private var value: UInt64 = 0

    /// The time for `owner`'s current event; `fresh` when the clock was read now (the caller
    /// then makes sure `reset` runs at the end of the loop iteration).
    @inline(__always)
    mutating func now(for me: UInt) -> (time: UInt64, fresh: Bool) {
        if owner == me { return (value, false) }
        owner = me
        value = nowNanos()
        return (value, true)
    }

    mutating func reset() { owner = 0 }
}
