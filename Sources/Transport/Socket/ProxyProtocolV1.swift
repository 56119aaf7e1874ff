/// PROXY protocol version 1: one text line,
/// `PROXY TCP4|TCP6 <src> <dst> <srcport> <dstport>\r\n` or `PROXY UNKNOWN …\r\n`.
extension ProxyProtocolParser {
    static func parseV1(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        for i in 0..<min(bytes.count, v1Prefix.count) where bytes[i] != v1Prefix[i] { return .invalid(.noSignature) }
        // Find CRLF within the 107-byte limit; a bare LF or CR elsewhere is malformed.
        var end = -1
        for i in 0..<min(bytes.count, v1MaxLine) {
            if bytes[i] == 0x0A { return .invalid(.v1Malformed("LF without CR")) }
            if bytes[i] == 0x0D {
                guard i + 1 < bytes.count else { return .needMore }
                guard bytes[i + 1] == 0x0A else { return .invalid(.v1Malformed("CR without LF")) }
                end = i
                break
            }
        }
        if end < 0 { return bytes.count >= v1MaxLine ? .invalid(.v1LineTooLong) : .needMore }
        let line = Array(bytes[v1Prefix.count..<end])
        for b in line where b < 0x20 || b > 0x7E { return .invalid(.v1Malformed("non-printable byte 0x\(String(b, radix: 16))")) }
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        let length = end + 2
        if fields.first == "UNKNOWN" {
            // "the receiver must ignore anything presented before the CRLF is found"
            return .header(ProxyHeader(version: 1, source: nil, destination: nil, length: length))
        }
        guard fields.count == 5 else { return .invalid(.v1Malformed("expected 5 fields after 'PROXY', got \(fields.count) (single spaces only)")) }
        let v6: Bool
        switch fields[0] {
        case "TCP4": v6 = false
        case "TCP6": v6 = true
        default: return .invalid(.v1Malformed("protocol '\(fields[0])' is not TCP4, TCP6 or UNKNOWN"))
        }
        guard let src = address(fields[1], v6: v6) else { return .invalid(.v1Malformed("bad \(fields[0]) source address '\(fields[1])'")) }
        guard let dst = address(fields[2], v6: v6) else { return .invalid(.v1Malformed("bad \(fields[0]) destination address '\(fields[2])'")) }
        guard let sport = port(fields[3]) else { return .invalid(.v1Malformed("bad source port '\(fields[3])'")) }
        guard let dport = port(fields[4]) else { return .invalid(.v1Malformed("bad destination port '\(fields[4])'")) }
        return .header(ProxyHeader(version: 1, source: ProxyEndpoint(address: src, port: sport),
                                   destination: ProxyEndpoint(address: dst, port: dport), length: length))
    }

    private static func address(_ text: String, v6: Bool) -> IPAddress? {
        guard text.contains(":") == v6, let a = IPAddress(text) else { return nil }
        return a
    }

    /// Decimal 0–65535, no sign, no leading zeros (the spec's "decimal" and HAProxy's output).
    private static func port(_ text: String) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
              text == "0" || !text.hasPrefix("0"), let n = Int(text), n <= 65535 else { return nil }
        return n
    }
}
