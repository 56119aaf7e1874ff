/// PROXY protocol version 2: a binary header,
///     12-byte signature | ver_cmd | fam | len (big-endian) | addresses | TLVs
extension ProxyProtocolParser {
    static func parseV2(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        for i in 0..<min(bytes.count, v2Signature.count) where bytes[i] != v2Signature[i] { return .invalid(.noSignature) }
        guard bytes.count >= 16 else {
            // Reject a bad version/command byte as soon as it is there.
            if bytes.count > 12, let e = checkVersionCommand(bytes[12]) { return .invalid(e) }
            return .needMore
        }
        if let e = checkVersionCommand(bytes[12]) { return .invalid(e) }
        let local = bytes[12] & 0x0F == 0
        let family = bytes[13]
        let rest = Int(bytes[14]) << 8 | Int(bytes[15])
        let length = 16 + rest
        if length > v2MaxLength { return .invalid(.tooLong(length)) }
        let addressBytes: Int
        switch family {
        case 0x11: addressBytes = 12    // TCP over IPv4
        case 0x21: addressBytes = 36    // TCP over IPv6
        case 0x00: addressBytes = 0     // UNSPEC (LOCAL health checks)
        default:
            // UDP and unix sockets are not what a TCP listener serves — unless LOCAL, where
            // the spec says the receiver ignores the addresses.
            guard local else { return .invalid(.v2UnsupportedFamily(family)) }
            addressBytes = 0
        }
        if rest < addressBytes { return .invalid(.v2AddressesTruncated(needed: addressBytes, got: rest)) }
        guard bytes.count >= length else { return .needMore }
        if !tlvsWellFormed(UnsafeRawBufferPointer(rebasing: bytes[(16 + addressBytes)..<length])) { return .invalid(.v2BadTLV) }
        if local || addressBytes == 0 {
            return .header(ProxyHeader(version: 2, source: nil, destination: nil, length: length))
        }
        let a = UnsafeRawBufferPointer(rebasing: bytes[16..<(16 + addressBytes)])
        let (src, dst, ports): (IPAddress, IPAddress, Int)
        if addressBytes == 12 {
            (src, dst, ports) = (.v4(UInt32(be(a, 0, 4))), .v4(UInt32(be(a, 4, 4))), 8)
        } else {
            (src, dst, ports) = (.v6(high: be(a, 0, 8), low: be(a, 8, 8)), .v6(high: be(a, 16, 8), low: be(a, 24, 8)), 32)
        }
        return .header(ProxyHeader(version: 2,
                                   source: ProxyEndpoint(address: src, port: Int(be(a, ports, 2))),
                                   destination: ProxyEndpoint(address: dst, port: Int(be(a, ports + 2, 2))),
                                   length: length))
    }

    private static func checkVersionCommand(_ b: UInt8) -> ProxyProtocolError? {
        if b >> 4 != 2 { return .v2UnsupportedVersion(b >> 4) }
        if b & 0x0F > 1 { return .v2UnknownCommand(b & 0x0F) }
        return nil
    }

    /// Each TLV is type (1), length (2, big-endian), value; together they fill the rest exactly.
    private static func tlvsWellFormed(_ t: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        while i < t.count {
            guard i + 3 <= t.count else { return false }
            i += 3 + (Int(t[i + 1]) << 8 | Int(t[i + 2]))
            if i > t.count { return false }
        }
        return true
    }

    private static func be(_ b: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> UInt64 {
        b[at..<at + n].reduce(0) { $0 << 8 | UInt64($1) }
    }
}
