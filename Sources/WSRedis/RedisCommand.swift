#if canImport(Glibc)
import Glibc
#endif
import CHiredis

/// RESP command encoding. `format` is hiredis's `redisFormatCommandArgv` (binary-safe
/// arguments); `appendPublish` writes the same bytes for PUBLISH straight into an output
/// buffer, with no argument arrays and no temporary copy, for the per-message path. A test
/// checks both produce identical bytes.
public enum RedisCommand {
    /// One command as RESP bytes: `*<argc>` then `$<len>` + bytes per argument.
    public static func format(_ args: [[UInt8]]) -> [UInt8] {
        let pointers = args.map { a -> UnsafeMutablePointer<CChar> in
            let p = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, a.count))
            a.withUnsafeBytes { b in
                if let base = b.baseAddress { UnsafeMutableRawPointer(p).copyMemory(from: base, byteCount: b.count) }
            }
            return p
        }
        defer { pointers.forEach { $0.deallocate() } }
        var argv = pointers.map { UnsafePointer<CChar>?(UnsafePointer($0)) }
        var lengths = args.map { $0.count }
        var target: UnsafeMutablePointer<CChar>?
        let n = redisFormatCommandArgv(&target, Int32(args.count), &argv, &lengths)
        guard n > 0, let target else { return [] }
        defer { redisFreeCommand(target) }
        return Array(UnsafeRawBufferPointer(start: target, count: Int(n)))
    }

    /// The keepalive (`*1 $4 PING`), encoded once.
    static let ping = format("PING")

    /// `format` with string arguments (UTF-8).
    public static func format(_ args: String...) -> [UInt8] {
        format(args.map { Array($0.utf8) })
    }

    /// Appends `PUBLISH <prefix><channel> <header><payload>` to `out`: each argument is the
    /// concatenation of two parts, so neither the channel name nor an envelope needs a buffer
    /// of its own.
    public static func appendPublish(to out: inout [UInt8], prefix: UnsafeRawBufferPointer, channel: UnsafeRawBufferPointer,
                                     header: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) {
        appendArrayHeader(&out, 3)
        appendASCII(&out, "$7\r\nPUBLISH\r\n")
        appendBulk(&out, prefix, channel)
        appendBulk(&out, header, payload)
    }

    /// `*<n>\r\n`: a command of `n` arguments follows.
    public static func appendArrayHeader(_ out: inout [UInt8], _ n: Int) {
        out.append(UInt8(ascii: "*"))
        appendDecimal(&out, n)
        appendASCII(&out, "\r\n")
    }

    /// One bulk-string argument made of up to three parts laid end to end.
    public static func appendBulk(_ out: inout [UInt8], _ a: UnsafeRawBufferPointer,
                                  _ b: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                                  _ c: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        out.append(UInt8(ascii: "$"))
        appendDecimal(&out, a.count + b.count + c.count)
        appendASCII(&out, "\r\n")
        out.append(contentsOf: a)
        out.append(contentsOf: b)
        out.append(contentsOf: c)
        appendASCII(&out, "\r\n")
    }

    @inline(__always)
    static func appendASCII(_ out: inout [UInt8], _ s: StaticString) {
        s.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    static func appendDecimal(_ out: inout [UInt8], _ value: Int) {
        if value < 0 { out.append(UInt8(ascii: "-")); appendDecimal(&out, -value); return }
        if value == 0 { out.append(UInt8(ascii: "0")); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = value, count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while n > 0 { d[count] = UInt8(ascii: "0") + UInt8(n % 10); n /= 10; count += 1 }
            for i in stride(from: count - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }
}
