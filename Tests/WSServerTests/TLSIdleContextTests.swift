import Foundation
import TestSupport
import Transport
import WSClient
@testable import WSServer
import XCTest

/// An upgraded wss connection gives its two cipher contexts (~920 bytes each in OpenSSL 3.0's
/// AES-GCM) back right after the 101, not a second later: each connection set up within that
/// second left them behind as holes between live objects, 1.5 KB of RSS per idle wss
/// connection at 10,000 (bench-peers' idle row; 1.0 KB with this).
final class TLSIdleContextTests: XCTestCase {
    final class Keeper: WebSocketHandler, @unchecked Sendable {
        private let lock = NSLock()
        private var connection: WebSocketConnection?
        var opened: WebSocketConnection? { lock.withLock { connection } }
        func onOpen(_ connection: WebSocketConnection) { lock.withLock { self.connection = connection } }
        func onMessage(_ connection: WebSocketConnection, _ message: Message) { connection.send(message) }
    }

    /// Whether the server's side of `c` holds cipher contexts, read on its loop.
    func holdsContexts(_ c: WebSocketConnection) async -> Bool? {
        struct Ref: @unchecked Sendable { let c: WebSocketConnection }  // read on its own loop only
        let ref = Ref(c: c)
        return await withCheckedContinuation { k in
            c.loop.execute { k.resume(returning: ref.c.driver.tls?.records?.holdsCipherContexts) }
        }
    }

    func testContextsGoRightAfterTheUpgradeAndComeBackForTheNextRecord() async throws {
        let keeper = Keeper()
        let server = try startTestServer(tls: true, routes: [("/", keeper)])
        defer { server.stop(); server.wait() }
        let began = Date()
        let client = try await WebSocketClient.connect(to: "wss://localhost:\(server.port)/", caFile: TestCertificates.dir + "/ca.pem")
        defer { client.close() }
        var connection: WebSocketConnection?
        for _ in 0..<200 where connection == nil {
            connection = keeper.opened
            if connection == nil { try await Task.sleep(for: .milliseconds(5)) }
        }
        guard let connection else { return XCTFail("no connection opened") }
        let held = await holdsContexts(connection)
        XCTAssertEqual(held, false, "released after the 101, before the idle tick")
        XCTAssertLessThan(Date().timeIntervalSince(began), 0.9, "checked within the quiet second")
        // The next records make them again: an echo in both directions still works.
        client.send(text: "after the release")
        let echo = try await within(5) { var it = client.messages.makeAsyncIterator(); return await it.next() }
        XCTAssertEqual(echo?.text, "after the release")
        let again = await holdsContexts(connection)
        XCTAssertEqual(again, true, "made again for the echo (the idle tick frees them a second later)")
    }
}
