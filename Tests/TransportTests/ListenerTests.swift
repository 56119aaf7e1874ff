import Glibc
import Transport
import XCTest

final class ListenerTests: XCTestCase {
    /// The listener sets TCP_NODELAY once and accepted sockets inherit it (Linux); the server
    /// relies on that instead of a setsockopt per connection. Small frames must not wait for
    /// Nagle's algorithm.
    func testAcceptedSocketsInheritNoDelay() throws {
        let listener = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
        defer { listener.close() }
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(client, 0)
        defer { close(client) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(listener.port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(client, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        XCTAssertEqual(rc, 0)
        var accepted: Int32?
        for _ in 0..<200 where accepted == nil {
            accepted = listener.accept()
            if accepted == nil { usleep(5_000) }
        }
        guard let fd = accepted else { return XCTFail("nothing accepted") }
        defer { close(fd) }
        var flag: Int32 = 0
        var len = socklen_t(4)
        XCTAssertEqual(getsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &flag, &len), 0)
        XCTAssertEqual(flag, 1, "accepted socket lacks TCP_NODELAY")
    }
}
