#if canImport(Glibc)
import Glibc
#endif
import Transport
import WSServer
import XCTest

/// `proxyProtocol` / `trustedProxies` on a running server: the address the upgrade hook sees.
final class ProxyProtocolServerTests: XCTestCase {
    final class AddressRecorder: WebSocketHandler, @unchecked Sendable {
        let seen = Locked<[String]>([])
        func shouldUpgrade(_ request: UpgradeRequest) -> UpgradeDecision {
            seen.withLock { $0.append(request.remoteAddress) }
            return .accept()
        }
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {}
    }

    func makeServer(_ configure: (inout ServerConfiguration) -> Void) throws -> (Server, AddressRecorder) {
        let recorder = AddressRecorder()
        let server = try startTestServer(routes: [("/", recorder)]) {
            $0.handshakeTimeout = 2
            configure(&$0)
        }
        return (server, recorder)
    }

    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    func testV1AndV2HeadersGiveTheClientAddressToTheUpgradeHookAndTheConnection() throws {
        let (server, recorder) = try makeServer { $0.proxyProtocol = [try! IPAddressRange("127.0.0.0/8")] }
        defer { server.stop(); server.wait() }
        let v1 = try RawClient(port: server.port)
        try v1.sendAll(Array("PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n".utf8))
        XCTAssertTrue(try v1.upgrade().hasPrefix("HTTP/1.1 101"))
        let v2 = try RawClient(port: server.port)
        // v2 PROXY, TCP over IPv6, 2001:db8::9 port 4242 -> ::1 port 443, then the request in the same segment.
        let src: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [9]
        let dst: [UInt8] = [UInt8](repeating: 0, count: 15) + [1]
        try v2.sendAll(Self.v2Signature + [0x21, 0x21, 0, 36] + src + dst + [0x10, 0x92, 0x01, 0xBB])
        XCTAssertTrue(try v2.upgrade().hasPrefix("HTTP/1.1 101"))
        XCTAssertEqual(recorder.seen.withLock { $0 }, ["203.0.113.7:5555", "[2001:db8::9]:4242"])
    }

    func testUntrustedPeersAndMalformedHeadersAreRefusedAtOnce() throws {
        let (server, recorder) = try makeServer { $0.proxyProtocol = [try! IPAddressRange("10.0.0.0/8")] }
        defer { server.stop(); server.wait() }
        let untrusted = try RawClient(port: server.port)
        try? untrusted.sendAll(Array("PROXY TCP4 203.0.113.7 127.0.0.1 5555 443\r\n".utf8))
        XCTAssertEqual(try untrusted.readUntilClosed(), [], "closed without a byte")

        let (trustedServer, recorder2) = try makeServer { $0.proxyProtocol = [try! IPAddressRange("127.0.0.1/32")] }
        defer { trustedServer.stop(); trustedServer.wait() }
        for bad in ["GET / HTTP/1.1\r\n\r\n", "PROXY TCP4 203.0.113.7 127.0.0.1 5555 99999\r\n", "PROXY TCP4 1.2.3.4\n"] {
            let c = try RawClient(port: trustedServer.port)
            try? c.sendAll(Array(bad.utf8))
            XCTAssertEqual(try c.readUntilClosed(), [], "\(bad.debugDescription) must be refused")
        }
        XCTAssertEqual(recorder.seen.withLock { $0 } + recorder2.seen.withLock { $0 }, [])
    }

    func testXForwardedForFromATrustedProxyNamesTheClient() throws {
        let (server, recorder) = try makeServer { $0.trustedProxies = [try! IPAddressRange("127.0.0.1/32")] }
        defer { server.stop(); server.wait() }
        let c = try RawClient(port: server.port)
        // Leftmost entries are client-written (forgeable): the rightmost untrusted one counts.
        XCTAssertTrue(try c.upgrade(extraHeaders: "X-Forwarded-For: 6.6.6.6, 198.51.100.4, 127.0.0.1\r\n").hasPrefix("HTTP/1.1 101"))
        XCTAssertEqual(recorder.seen.withLock { $0 }, ["198.51.100.4"])

        let (plain, recorder2) = try makeServer { _ in }  // no trusted proxy: header ignored
        defer { plain.stop(); plain.wait() }
        let d = try RawClient(port: plain.port)
        XCTAssertTrue(try d.upgrade(extraHeaders: "X-Forwarded-For: 198.51.100.4\r\n").hasPrefix("HTTP/1.1 101"))
        XCTAssertTrue(recorder2.seen.withLock { $0 }.first?.hasPrefix("127.0.0.1:") ?? false)
    }
}

extension RawClient {
    /// Everything the server sends until it closes (fails after the 5 s receive timeout).
    func readUntilClosed() throws -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buf, buf.count, 0)
            if n == 0 { return out }
            if n < 0 { if errno == ECONNRESET { return out }; throw RawClientError.io("no close: errno \(errno)") }
            out += buf[0..<n]
        }
    }
}
