import Glibc

/// An IPv4 or IPv6 address, as numbers (no string kept).
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// IPv4, host byte order.
    case v4(UInt32)
    /// IPv6, the 128 bits as two host-order halves.
    case v6(high: UInt64, low: UInt64)

    /// Parses a literal address, strictly: dotted-quad IPv4 (four decimal parts, no leading
    /// zeros) or RFC 4291 §2.2 IPv6 text. Brackets, zone ids ("%eth0") and ports are refused.
    public init?(_ text: String) {
        if text.contains(":") {
            var a6 = in6_addr()
            guard inet_pton(AF_INET6, text, &a6) == 1 else { return nil }
            self = IPAddress(in6: a6)
        } else {
            var a4 = in_addr()
            // glibc's inet_pton(AF_INET) takes exactly four decimal parts and refuses leading
            // zeros (unlike inet_aton, which reads "010" as octal).
            guard inet_pton(AF_INET, text, &a4) == 1 else { return nil }
            self = .v4(UInt32(bigEndian: a4.s_addr))
        }
    }

    /// The address in a socket address (AF_INET or AF_INET6); nil for any other family.
    public init?(sockaddr sa: UnsafePointer<sockaddr>) {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            let a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            self = .v4(UInt32(bigEndian: a.s_addr))
        case AF_INET6:
            let a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
            self = IPAddress(in6: a)
        default:
            return nil
        }
    }

    private init(in6 a: in6_addr) {
        let bytes = withUnsafeBytes(of: a) { Array($0) }
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<8 { high = high << 8 | UInt64(bytes[i]) }
        for i in 8..<16 { low = low << 8 | UInt64(bytes[i]) }
        self = .v6(high: high, low: low)
    }

    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2, what a dual-stack
    /// listener reports for IPv4 clients) as plain IPv4; any other address unchanged.
    public var unmapped: IPAddress {
        if case .v6(0, let low) = self, low >> 32 == 0xffff { return .v4(UInt32(truncatingIfNeeded: low)) }
        return self
    }

    /// The address in its canonical text form (inet_ntop).
    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch self {
        case .v4(let bits):
            var a = in_addr(s_addr: bits.bigEndian)
            inet_ntop(AF_INET, &a, &buffer, socklen_t(buffer.count))
        case .v6(let high, let low):
            var a = in6_addr()
            withUnsafeMutableBytes(of: &a) { raw in
                for i in 0..<8 { raw[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i))) }
                for i in 0..<8 { raw[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i))) }
            }
            inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
        }
        return String(cString: buffer)
    }
}

/// Why a CIDR range was refused; `description` is one line naming the input.
public struct IPAddressRangeError: Error, CustomStringConvertible, Equatable {
    public let description: String
}

/// An IPv4 or IPv6 network in CIDR notation ("127.0.0.1/32", "10.0.0.0/8", "::1/128",
/// "fd00::/8"), as used by `--metrics-allow` and `--trusted-proxy`.
///
/// Parsing is strict so a typo cannot silently widen or narrow what is allowed: the prefix is
/// decimal within 0...32 (IPv4) or 0...128 (IPv6) with no sign or leading zero, and the address
/// may not have bits set after the prefix ("10.0.0.1/8" is refused: did you mean 10.0.0.0/8?).
/// A bare address is the single-host range (/32 or /128).
public struct IPAddressRange: Hashable, Sendable, CustomStringConvertible {
    /// The network address (host bits zero).
    public let network: IPAddress
    /// Leading bits that must match.
    public let prefixLength: Int

    public init(_ text: String) throws {
        let parts = text.split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count <= 2 else { throw Self.error(text, "more than one '/'") }
        guard let address = IPAddress(String(parts[0])) else {
            throw Self.error(text, "'\(parts[0])' is not an IPv4 or IPv6 address")
        }
        let maxLength = address.bitWidth
        var length = maxLength
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  digits == "0" || !digits.hasPrefix("0"), digits.count <= 3,
                  let n = Int(digits), n <= maxLength
            else { throw Self.error(text, "prefix length must be 0...\(maxLength)") }
            length = n
        }
        guard address.masked(to: length) == address else {
            throw Self.error(text, "address has bits set after the /\(length) prefix "
                + "(did you mean \(address.masked(to: length))/\(length)?)")
        }
        network = address
        prefixLength = length
    }

    /// Whether `address` is in this range. IPv4-mapped IPv6 clients match IPv4 ranges; IPv4
    /// never matches an IPv6 range (except through the mapped form) and vice versa.
    public func contains(_ address: IPAddress) -> Bool {
        let candidate: IPAddress
        switch (network, address) {
        case (.v4, .v6): candidate = address.unmapped
        default: candidate = address
        }
        guard candidate.bitWidth == network.bitWidth else { return false }
        return candidate.masked(to: prefixLength) == network
    }

    /// `contains` for a literal address; false when `text` is not an address.
    public func contains(_ text: String) -> Bool {
        IPAddress(text).map(contains) ?? false
    }

    public var description: String { "\(network)/\(prefixLength)" }

    private static func error(_ text: String, _ why: String) -> IPAddressRangeError {
        IPAddressRangeError(description: "invalid CIDR range '\(text)': \(why)")
    }
}

extension Sequence where Element == IPAddressRange {
    /// Whether any range in the list contains `address`.
    public func contains(address: IPAddress) -> Bool {
        contains { $0.contains(address) }
    }
}

extension IPAddress {
    var bitWidth: Int {
        if case .v4 = self { return 32 }
        return 128
    }

    /// The address with every bit after the first `length` cleared.
    func masked(to length: Int) -> IPAddress {
        switch self {
        case .v4(let bits):
            let mask: UInt32 = length == 0 ? 0 : ~0 << (32 - length)
            return .v4(bits & mask)
        case .v6(let high, let low):
            let highMask: UInt64 = length >= 64 ? ~0 : (length == 0 ? 0 : ~0 << (64 - length))
            let lowMask: UInt64 = length <= 64 ? 0 : (length == 128 ? ~0 : ~0 << (128 - length))
            return .v6(high: high & highMask, low: low & lowMask)
        }
    }
}
