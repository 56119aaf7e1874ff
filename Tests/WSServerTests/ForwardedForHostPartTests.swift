import Transport
@testable import WSServer
import XCTest

/// `String.hostPart` (the socket peer checked against trusted proxies for X-Forwarded-For):
/// the host of "host:port" / "[v6]:port", and a bare address unchanged — a bare IPv6 address
/// was cut at its last colon ("::1" → ":"), so a trusted IPv6 balancer was never recognised.
final class ForwardedForHostPartTests: XCTestCase {
    func testHostPartOfAddressesWithAndWithoutPort() {
        let cases: [(String, String)] = [
            ("1.2.3.4", "1.2.3.4"),
            ("1.2.3.4:5", "1.2.3.4"),
            ("[::1]:5", "::1"),
            ("::1", "::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:443", "2001:db8::1"),
        ]
        for (input, host) in cases {
            XCTAssertEqual(input.hostPart, host, input)
        }
    }

    func testJunkIsNoTrustedAddress() {
        for junk in ["", ":", "[", "[]", "[]:5", "[::1", "a:b:c", "1.2.3.4:", "1.2.3.4:x", "[::1]x", "?"] {
            XCTAssertNil(IPAddress(junk.hostPart), junk)
        }
    }
}

/// The notice limiter keys its lines by client host with the same parse.
final class NoticeHostPartTests: XCTestCase {
    func testTheLimiterKeyIsTheHostOfEveryAddressForm() {
        XCTAssertEqual(hostPart("203.0.113.5:4242"), "203.0.113.5")
        XCTAssertEqual(hostPart("[::1]:80"), "::1")
        XCTAssertEqual(hostPart("::1"), "::1")
        XCTAssertEqual(hostPart("2001:db8::1"), "2001:db8::1")
    }
}
