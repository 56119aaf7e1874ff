import Glibc
import Transport
import XCTest

final class IPAddressRangeTests: XCTestCase {
    private func range(_ text: String) throws -> IPAddressRange { try IPAddressRange(text) }

    func testIPv4HostAndNetworks() throws {
        let host = try range("127.0.0.1/32")
        XCTAssertTrue(host.contains("127.0.0.1"))
        XCTAssertFalse(host.contains("127.0.0.5"))
        let eight = try range("10.0.0.0/8")
        XCTAssertTrue(eight.contains("10.255.1.2"))
        XCTAssertFalse(eight.contains("11.0.0.0"))
        let odd = try range("192.168.4.0/22")
        XCTAssertTrue(odd.contains("192.168.7.255"))
        XCTAssertFalse(odd.contains("192.168.8.0"))
        XCTAssertFalse(odd.contains("192.168.3.255"))
        let all = try range("0.0.0.0/0")
        XCTAssertTrue(all.contains("255.255.255.255"))
        XCTAssertFalse(all.contains("::1"), "an IPv4 range never holds a plain IPv6 address")
    }

    func testBareAddressIsSingleHost() throws {
        XCTAssertEqual(try range("192.0.2.7").prefixLength, 32)
        XCTAssertEqual(try range("::1").prefixLength, 128)
        XCTAssertEqual(try range("192.0.2.7").description, "192.0.2.7/32")
    }

    func testIPv6() throws {
        let loop = try range("::1/128")
        XCTAssertTrue(loop.contains("::1"))
        XCTAssertTrue(loop.contains("0:0:0:0:0:0:0:1"))
        XCTAssertFalse(loop.contains("::2"))
        XCTAssertFalse(loop.contains("127.0.0.1"))
        let ula = try range("fd00::/8")
        XCTAssertTrue(ula.contains("fdab:cd::1"))
        XCTAssertFalse(ula.contains("fe80::1"))
        // Prefixes on both sides of the 64-bit halves.
        let p60 = try range("2001:db8:0:10::/60")
        XCTAssertTrue(p60.contains("2001:db8:0:1f:ffff::1"))
        XCTAssertFalse(p60.contains("2001:db8:0:20::"))
        let p100 = try range("2001:db8::1:0:0/100")
        XCTAssertTrue(p100.contains("2001:db8::1:fff:ffff"))
        XCTAssertFalse(p100.contains("2001:db8::1:1000:0"))
        XCTAssertTrue(try range("::/0").contains("ffff::"))
        XCTAssertEqual(try range("2001:DB8:0:0::/32").description, "2001:db8::/32")
    }

    /// A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d (RFC 4291 §2.5.5.2); an
    /// IPv4 allow-list must still match them.
    func testMappedIPv4MatchesIPv4Range() throws {
        XCTAssertTrue(try range("127.0.0.1/32").contains("::ffff:127.0.0.1"))
        XCTAssertFalse(try range("127.0.0.1/32").contains("::ffff:127.0.0.5"))
        XCTAssertEqual(IPAddress("::ffff:10.1.2.3")?.unmapped, IPAddress("10.1.2.3"))
        XCTAssertEqual(IPAddress("::1")?.unmapped, IPAddress("::1"))
    }

    func testStrictParsingRefusesWithClearErrors() {
        let cases: [(String, String)] = [
            ("10.0.0.1/8", "did you mean 10.0.0.0/8?"),
            ("fd00::1/8", "did you mean fd00::/8?"),
            ("10.0.0.0/33", "prefix length must be 0...32"),
            ("::/129", "prefix length must be 0...128"),
            ("10.0.0.0/", "prefix length"),
            ("10.0.0.0/+8", "prefix length"),
            ("10.0.0.0/08", "prefix length"),
            ("10.0.0.0/ 8", "prefix length"),
            ("10.0.0.0/8/8", "more than one '/'"),
            ("010.0.0.0/8", "is not an IPv4 or IPv6 address"),
            ("10.0.0/8", "is not an IPv4 or IPv6 address"),
            ("256.0.0.0/8", "is not an IPv4 or IPv6 address"),
            ("localhost", "is not an IPv4 or IPv6 address"),
            ("[::1]/128", "is not an IPv4 or IPv6 address"),
            ("fe80::1%eth0", "is not an IPv4 or IPv6 address"),
            ("", "is not an IPv4 or IPv6 address"),
        ]
        for (text, expected) in cases {
            XCTAssertThrowsError(try IPAddressRange(text), text) { error in
                let message = String(describing: error)
                XCTAssertTrue(message.contains(expected), "\(text): \(message)")
                XCTAssertTrue(message.contains("'\(text)'"), "error names the input: \(message)")
                XCTAssertFalse(message.contains("\n"))
            }
        }
    }

    func testAddressFromSockaddr() throws {
        var v4 = sockaddr_in()
        v4.sin_family = sa_family_t(AF_INET)
        v4.sin_addr.s_addr = inet_addr("127.0.0.5")
        let a4 = withUnsafePointer(to: &v4) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { IPAddress(sockaddr: $0) }
        }
        XCTAssertEqual(a4, IPAddress("127.0.0.5"))
        XCTAssertEqual(a4?.description, "127.0.0.5")
        var v6 = sockaddr_in6()
        v6.sin6_family = sa_family_t(AF_INET6)
        _ = inet_pton(AF_INET6, "2001:db8::42", &v6.sin6_addr)
        let a6 = withUnsafePointer(to: &v6) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { IPAddress(sockaddr: $0) }
        }
        XCTAssertEqual(a6, IPAddress("2001:db8::42"))
        XCTAssertEqual(a6?.description, "2001:db8::42")
    }

    func testListContains() throws {
        let allow = try ["127.0.0.1/32", "::1/128"].map(IPAddressRange.init)
        XCTAssertTrue(allow.contains(address: IPAddress("::1")!))
        XCTAssertTrue(allow.contains(address: IPAddress("127.0.0.1")!))
        XCTAssertFalse(allow.contains(address: IPAddress("127.0.0.5")!))
    }
}
