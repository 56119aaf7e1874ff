import Glibc
import Transport
import XCTest
import TestSupport

final class ListenerTests: XCTestCase {
    /// The listener sets TCP_NODELAY once and accepted sockets inherit it (Linux); the server
    /// relies on that instead of a setsockopt per connection. Small frames must not wait for
    /// Nagle's algorithm.
    func testAcceptedSocketsInheritNoDelay() throws {
        let listener = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
        defer { listener.close() }
        let (client, rc) = connectLoopback(port: listener.port)
        XCTAssertGreaterThanOrEqual(client, 0)
        defer { close(client) }
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
