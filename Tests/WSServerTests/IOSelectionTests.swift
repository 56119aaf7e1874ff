#if canImport(Glibc)
import Glibc
#endif
import Logging
@testable import Transport
@testable import WSServer
import WSClient
import XCTest
import TestSupport

/// The library says what it does with the event-loop backend: a `WSS_IO` that names no
/// backend is an error (not silently epoll), and a loop whose io_uring ring cannot be set up
/// after the probe passed runs on epoll with one warning.
final class IOSelectionTests: XCTestCase {
    func config(_ io: IOBackend) -> ServerConfiguration {
        var c = ServerConfiguration()
        c.host = "127.0.0.1"
        c.port = 0
        c.threads = 2
        c.io = io
        return c
    }

    func testBadWSSIOIsAnError() throws {
        let saved = getenv("WSS_IO").map { String(cString: $0) }  // make test-uring sets it
        defer { if let saved { setenv("WSS_IO", saved, 1) } else { unsetenv("WSS_IO") } }
        setenv("WSS_IO", "epol", 1)
        XCTAssertThrowsError(try Server(configuration: config(.epoll))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("WSS_IO") && text.contains("epol") && !text.contains("\n"), text)
        }
        setenv("WSS_IO", "epoll", 1)
        XCTAssertNoThrow(try Server(configuration: config(.epoll)))
    }

    func testBadWSSIOIsAnErrorForTheAsyncClient() async throws {
        let saved = getenv("WSS_IO").map { String(cString: $0) }
        defer { if let saved { setenv("WSS_IO", saved, 1) } else { unsetenv("WSS_IO") } }
        setenv("WSS_IO", "urin", 1)
        do {
            _ = try await WebSocketClient.connect(to: "ws://127.0.0.1:9/")
            XCTFail("connect ran with WSS_IO=urin")
        } catch {
            XCTAssertTrue("\(error)".contains("WSS_IO") && "\(error)".contains("urin"), "\(error)")
        }
    }

    func testRingSetupFailureAfterTheProbeIsOneWarning() throws {
        // A probe that passes (this target does not link TransportURing, so nothing else
        // registered one) and a ring that cannot be set up.
        let saved = URingRegistration.current
        defer { URingRegistration.current = saved }
        URingRegistration.current = URingRegistration(
            probe: { .available },
            makeBackend: { () throws(TransportError) -> any LoopBackend in throw TransportError.syscall("io_uring_setup", ENOMEM) })
        try XCTSkipUnless(IOBackend.resolve(.uring).backend == .uring, "the probe's outcome was cached before this test")
        let lines = LogLines()
        let logger = lines.logger
        let server = try Server(configuration: config(.uring), logger: logger)
        XCTAssertEqual(server.loops.map(\.io), [.epoll, .epoll])
        let warnings = lines.all.filter { $0.0 == .warning }.map(\.1)
        XCTAssertEqual(warnings.count, 1, "\(lines.all)")
        XCTAssertTrue(warnings.first?.contains("epoll") == true && warnings.first?.contains("io_uring_setup") == true,
                      "\(warnings)")
    }
}
