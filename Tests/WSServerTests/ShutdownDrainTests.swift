import Foundation
import Glibc
import TestSupport
import Transport
@testable import WSServer
import XCTest

/// A graceful shutdown keeps the listeners open during its drain (a request gets a 503); a
/// connection accepted then that sends nothing must not hold the drain for its handshake
/// timeout. (Seen on io_uring under load: the accept completion was handled after the
/// drain's pass over the connections, and SIGTERM took the whole shutdown timeout.)
final class ShutdownDrainTests: XCTestCase {
    func testASilentConnectionAcceptedDuringTheDrainDoesNotHoldIt() throws {
        let server = try startTestServer(routes: [("/", EchoApp())]) {
            $0.handshakeTimeout = 30
            $0.closeTimeout = 1.5
        }
        // An open WebSocket that never answers the 1001 keeps the drain going for the close timeout.
        let open = try RawClient(port: server.port)
        XCTAssertTrue(try open.upgrade().hasPrefix("HTTP/1.1 101"))

        let took = Locked<Double?>(nil)
        let left = Locked<Int?>(nil)
        let done = expectation(description: "shutdown returned")
        Thread.detachNewThread {
            let began = monotonicMillis()
            let n = server.shutdown(timeout: 6)
            took.withLock { $0 = Double(monotonicMillis() - began) / 1000 }
            left.withLock { $0 = n }
            done.fulfill()
        }
        // Once the drain has begun (the 1001 is the sign): a connection that sends nothing.
        try open.readExactly(2)
        XCTAssertEqual(open.readBuffer[0], 0x88, "close frame")
        let late = try RawClient(port: server.port)
        wait(for: [done], timeout: 10)
        _ = late
        XCTAssertEqual(left.withLock { $0 }, 0, "every connection ended within the drain")
        let seconds = try XCTUnwrap(took.withLock { $0 })
        XCTAssertLessThan(seconds, 3.5, "the late silent connection was dropped after a second, not held for 30 s")
    }
}
