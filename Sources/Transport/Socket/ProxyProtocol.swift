/// What a PROXY protocol header says about the connection (HAProxy's "PROXY protocol",
/// versions 1 and 2: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt).
public struct ProxyHeader: Equatable, Sendable {
    public var version: Int
    /// The client as the balancer saw it; nil for v1 UNKNOWN and v2 LOCAL / unspecified
    /// families (a balancer's own health check): keep the socket's peer address then.
    public var source: ProxyEndpoint?
    public var destination: ProxyEndpoint?
    /// Bytes the header occupied; what follows is the client's first byte (TLS or HTTP).
    public var length: Int

    public init(version: Int, source: ProxyEndpoint?, destination: ProxyEndpoint?, length: Int) {
        self.version = version
        self.source = source
        self.destination = destination
        self.length = length
    }
}

public struct ProxyEndpoint: Equatable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: Int
    public init(address: IPAddress, port: Int) {
        self.address = address
        self.port = port
    }
    public var description: String {
        if case .v6 = address { return "[\(address)]:\(port)" }
        return "\(address):\(port)"
    }
}

/// Why a PROXY header was refused (each becomes one log line; the connection is closed).
public enum ProxyProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    case noSignature
    case v1LineTooLong
    case v1Malformed(String)
    case v2UnsupportedVersion(UInt8)
    case v2UnknownCommand(UInt8)
    case v2UnsupportedFamily(UInt8)
    case v2AddressesTruncated(needed: Int, got: Int)
    case v2BadTLV
    case tooLong(Int)

    public var description: String {
        switch self {
        case .noSignature: return "no PROXY protocol header (neither 'PROXY ' nor the v2 signature)"
        case .v1LineTooLong: return "PROXY v1 line longer than 107 bytes"
        case .v1Malformed(let why): return "malformed PROXY v1 line: \(why)"
        case .v2UnsupportedVersion(let v): return "PROXY v2 header with version \(v), not 2"
        case .v2UnknownCommand(let c): return "PROXY v2 command \(c) is neither LOCAL (0) nor PROXY (1)"
        case .v2UnsupportedFamily(let f): return "PROXY v2 family/transport 0x\(String(f, radix: 16)) is not TCP over IPv4/IPv6"
        case .v2AddressesTruncated(let n, let g): return "PROXY v2 address block needs \(n) bytes, header holds \(g)"
        case .v2BadTLV: return "PROXY v2 TLV runs past the end of the header"
        case .tooLong(let n): return "PROXY v2 header of \(n) bytes is over the limit"
        }
    }
}

/// Sans-IO parser for the header a balancer sends first on every connection. Feed it the
/// bytes received so far (from the start of the connection); it says "need more", the
/// header, or why the bytes are not a valid header. It rejects as early as the bytes allow:
/// a connection that starts with anything but a PROXY signature fails on its first byte.
public enum ProxyProtocolParser {
    public enum Outcome: Equatable, Sendable {
        case needMore
        case header(ProxyHeader)
        case invalid(ProxyProtocolError)
    }

    static let v1Prefix: [UInt8] = Array("PROXY ".utf8)
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
    /// v1: "the maximum line length is 107 characters including the CRLF".
    static let v1MaxLine = 107
    /// v2: 16-byte fixed part + addresses (≤ 216) + TLVs. HAProxy's own TLVs (ALPN, SSL
    /// info, unique id) stay well under 1 KiB; 2 KiB leaves room and bounds the buffer.
    public static let v2MaxLength = 2048

    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        guard let first = bytes.first else { return .needMore }
        if first == v1Prefix[0] { return parseV1(bytes) }
        if first == v2Signature[0] { return parseV2(bytes) }
        return .invalid(.noSignature)
    }

    public static func parse(_ bytes: [UInt8]) -> Outcome {
        bytes.withUnsafeBytes { parse($0) }
    }
}
