#if canImport(Glibc)
import Glibc
#endif

// Echo payload bodies and socket byte counters.

/// Where the 16-character sequence tag sits in a JSON body: right after `{"seq":"`.
let jsonTagOffset = 8
/// The smallest JSON body: `{"seq":"<16 hex>","rows":[]}`.
let jsonMinSize = 36

/// A JSON body of exactly `size` bytes (≥ `jsonMinSize`), like a market-data batch:
/// `{"seq":"TTTTTTTTTTTTTTTT","rows":[{"id":123,"sym":"ABCD","px":101.25,"qty":300,"side":"buy","ts":1732550000123},…]}`
/// with numbers drawn from `rng` (ids and timestamps increasing, prices walking per symbol).
/// The tag placeholder (16 `0`s at `jsonTagOffset`) is overwritten per message. What the
/// records leave short of `size` is filled with spaces before the closing brace (valid JSON).
func makeJSONBody(size: Int, rng: inout SplitMix) -> [UInt8] {
    precondition(size >= jsonMinSize)
    let symbols = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META", "TSLA", "AMD", "INTC", "ORCL",
                   "IBM", "CSCO", "ADBE", "CRM", "QCOM", "TXN", "AVGO", "MU", "NFLX", "PYPL"]
    var prices = symbols.map { _ in Int(rng.next() % 40_000) + 2_000 }  // cents
    var body = Array("{\"seq\":\"0000000000000000\",\"rows\":[".utf8)
    let tail = Array("]}".utf8)
    var id = Int(rng.next() % 900_000) + 100_000
    var ts = 1_732_550_000_000 + Int(rng.next() % 86_400_000)
    var first = true
    while true {
        let s = Int(rng.next() % UInt64(symbols.count))
        prices[s] = max(100, prices[s] + Int(rng.next() % 41) - 20)
        let px = prices[s]
        let cents = px % 100
        let qty = (Int(rng.next() % 50) + 1) * (rng.next() % 4 == 0 ? 10 : 100)
        ts += Int(rng.next() % 40)
        id += 1 + Int(rng.next() % 3)
        let rec = (first ? "" : ",") + "{\"id\":\(id),\"sym\":\"\(symbols[s])\",\"px\":\(px / 100).\(cents < 10 ? "0" : "")\(cents),"
            + "\"qty\":\(qty),\"side\":\"\(rng.next() & 1 == 0 ? "buy" : "sell")\",\"ts\":\(ts)}"
        let r = Array(rec.utf8)
        if body.count + r.count + tail.count > size { break }
        body += r
        first = false
    }
    body += Array("]".utf8)
    body += [UInt8](repeating: 32, count: size - body.count - 1)
    body += Array("}".utf8)
    precondition(body.count == size)
    return body
}

/// Bytes this process's TCP sockets sent and received, summed over every socket open now
/// (from TCP_INFO: tcpi_bytes_sent / tcpi_bytes_received, TCP payload — for wss that includes
/// the TLS records). The load generator's only TCP sockets are its connections.
struct TCPBytes {
    var sent: UInt64 = 0
    var received: UInt64 = 0
    var sockets = 0
    var available = false

    static func take() -> TCPBytes {
        var r = TCPBytes()
        guard let dir = opendir("/proc/self/fd") else { return r }
        defer { closedir(dir) }
        let dfd = dirfd(dir)
        // struct tcp_info (linux/tcp.h): tcpi_bytes_received at offset 128 (Linux 4.1+),
        // tcpi_bytes_sent at 200 (Linux 4.19+); the kernel copies min(optlen, its size).
        var info = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                    UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                    UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0),
                    UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            guard let fd = Int32(name), fd != dfd else { continue }
            var len = socklen_t(MemoryLayout.size(ofValue: info))
            let rc = withUnsafeMutableBytes(of: &info) { p -> Int32 in
                p.initializeMemory(as: UInt8.self, repeating: 0)
                return getsockopt(fd, Int32(IPPROTO_TCP), 11 /* TCP_INFO */, p.baseAddress, &len)
            }
            guard rc == 0, len >= 208 else { continue }
            withUnsafeBytes(of: &info) { p in
                r.received &+= p.load(fromByteOffset: 128, as: UInt64.self)
                r.sent &+= p.load(fromByteOffset: 200, as: UInt64.self)
            }
            r.sockets += 1
            r.available = true
        }
        return r
    }
}
