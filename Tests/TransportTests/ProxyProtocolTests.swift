import Transport
import XCTest

/// PROXY protocol v1 and v2 (haproxy.org/download/2.6/doc/proxy-protocol.txt), sans-IO.
final class ProxyProtocolTests: XCTestCase {
    func ep(_ a: String, _ p: Int) -> ProxyEndpoint { ProxyEndpoint(address: IPAddress(a)!, port: p) }

    /// Every prefix of `bytes` shorter than the header asks for more; the whole gives `expected`.
    func assertHeader(_ bytes: [UInt8], _ expected: ProxyHeader, file: StaticString = #filePath, line: UInt = #line) {
        for n in 0..<expected.length {
            XCTAssertEqual(ProxyProtocolParser.parse(Array(bytes[0..<n])), .needMore, "prefix of \(n) bytes", file: file, line: line)
        }
        XCTAssertEqual(ProxyProtocolParser.parse(bytes), .header(expected), file: file, line: line)
    }

    func assertInvalid(_ bytes: [UInt8], _ error: ProxyProtocolError, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ProxyProtocolParser.parse(bytes), .invalid(error), file: file, line: line)
    }

    // MARK: v1

    func testV1TCP4AndTCP6OneByteAtATimeAndAllAtOnce() {
        let line4 = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
        assertHeader(Array((line4 + "GET / HTTP/1.1\r\n").utf8),
                     ProxyHeader(version: 1, source: ep("192.168.0.1", 56324), destination: ep("192.168.0.11", 443), length: line4.utf8.count))
        let line6 = "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n"
        assertHeader(Array((line6 + "\u{16}\u{03}\u{01}").utf8),
                     ProxyHeader(version: 1, source: ep("2001:db8::1", 0), destination: ep("::1", 65535), length: line6.utf8.count))
    }

    func testV1UnknownIgnoresTheRestOfTheLine() {
        for line in ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff:f...f:ffff 1 2\r\n"] {
            XCTAssertEqual(ProxyProtocolParser.parse(Array(line.utf8)),
                           .header(ProxyHeader(version: 1, source: nil, destination: nil, length: line.utf8.count)))
        }
    }

    func testV1MalformedLinesAreRejectedWithTheirReason() {
        let cases: [(String, ProxyProtocolError)] = [
            ("GET / HTTP/1.1\r\n", .noSignature),
            ("PROXX TCP4", .noSignature),
            ("\u{16}\u{03}\u{01}", .noSignature),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", .v1Malformed("LF without CR")),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", .v1Malformed("CR without LF")),
            ("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", .v1Malformed("expected 5 fields after 'PROXY', got 6 (single spaces only)")),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", .v1Malformed("expected 5 fields after 'PROXY', got 4 (single spaces only)")),
            ("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", .v1Malformed("protocol 'TCP5' is not TCP4, TCP6 or UNKNOWN")),
            ("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", .v1Malformed("bad TCP4 source address '::1'")),
            ("PROXY TCP6 ::1 5.6.7.8 1 2\r\n", .v1Malformed("bad TCP6 destination address '5.6.7.8'")),
            ("PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n", .v1Malformed("bad TCP4 source address '1.2.3.04'")),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", .v1Malformed("bad source port '65536'")),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", .v1Malformed("bad source port '01'")),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", .v1Malformed("bad destination port '-2'")),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n", .v1Malformed("bad destination port ''")),
            ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\u{7F}\r\n", .v1Malformed("non-printable byte 0x7f")),
            ("PROXY UNKNOWN " + String(repeating: "x", count: 100), .v1LineTooLong),
        ]
        for (text, error) in cases { assertInvalid(Array(text.utf8), error) }
    }

    // MARK: v2

    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    func v2(_ verCmd: UInt8, _ family: UInt8, _ body: [UInt8], declared: Int? = nil) -> [UInt8] {
        let n = declared ?? body.count
        return Self.signature + [verCmd, family, UInt8(n >> 8), UInt8(n & 0xFF)] + body
    }

    func testV2ProxyTCP4WithTLVsAndTCP6() {
        let tlvs: [UInt8] = [0x01, 0x00, 0x02, 0x68, 0x32, 0x04, 0x00, 0x00]  // ALPN "h2", NOOP empty
        let v4 = v2(0x21, 0x11, [127, 0, 0, 2, 127, 0, 0, 1, 0xDB, 0xEF, 0x20, 0xFB] + tlvs)
        assertHeader(v4 + Array("GET".utf8),
                     ProxyHeader(version: 2, source: ep("127.0.0.2", 0xDBEF), destination: ep("127.0.0.1", 0x20FB), length: 16 + 12 + 8))
        let src6: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
        let dst6: [UInt8] = [UInt8](repeating: 0, count: 15) + [1]
        assertHeader(v2(0x21, 0x21, src6 + dst6 + [0, 80, 1, 187]),
                     ProxyHeader(version: 2, source: ep("2001:db8::1", 80), destination: ep("::1", 443), length: 16 + 36))
    }

    func testV2LocalKeepsTheSocketAddress() {
        XCTAssertEqual(ProxyProtocolParser.parse(v2(0x20, 0x00, [])), .header(ProxyHeader(version: 2, source: nil, destination: nil, length: 16)))
        // LOCAL with addresses present: the spec says they are ignored.
        XCTAssertEqual(ProxyProtocolParser.parse(v2(0x20, 0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2])),
                       .header(ProxyHeader(version: 2, source: nil, destination: nil, length: 28)))
    }

    func testV2MalformedHeadersAreRejectedAsEarlyAsPossible() {
        assertInvalid(Array(Self.signature[0..<5]) + [0x41], .noSignature)
        assertInvalid(Self.signature + [0x11], .v2UnsupportedVersion(1))           // at byte 13
        assertInvalid(Self.signature + [0x22], .v2UnknownCommand(2))
        assertInvalid(v2(0x21, 0x12, [UInt8](repeating: 0, count: 12)), .v2UnsupportedFamily(0x12))  // UDP
        assertInvalid(v2(0x21, 0x31, [UInt8](repeating: 0, count: 216)), .v2UnsupportedFamily(0x31))  // unix
        assertInvalid(v2(0x21, 0x11, [1, 2, 3, 4]), .v2AddressesTruncated(needed: 12, got: 4))
        assertInvalid(v2(0x21, 0x21, [UInt8](repeating: 0, count: 12)), .v2AddressesTruncated(needed: 36, got: 12))
        assertInvalid(v2(0x21, 0x11, [UInt8](repeating: 0, count: 12) + [0x01, 0x00, 0x05, 0x68]), .v2BadTLV)
        assertInvalid(v2(0x21, 0x11, [UInt8](repeating: 0, count: 12) + [0x01, 0x00]), .v2BadTLV)
        assertInvalid(v2(0x21, 0x11, [], declared: 0xFFFF), .tooLong(16 + 0xFFFF))  // before any body byte
    }

    func testEveryErrorHasAReadableReason() {
        XCTAssertEqual("\(ProxyProtocolError.v2UnsupportedFamily(0x12))", "PROXY v2 family/transport 0x12 is not TCP over IPv4/IPv6")
        XCTAssertTrue("\(ProxyProtocolError.noSignature)".contains("no PROXY protocol header"))
    }
}
