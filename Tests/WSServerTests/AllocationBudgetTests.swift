import CMallocCounter
import XCTest
import WSServer

/// The hot path must not allocate per message: a regression shows up here as a count, with
/// no timing involved.
final class AllocationBudgetTests: XCTestCase {
    func testEchoingMessagesDoesNotAllocatePerMessage() throws {
        try XCTSkipIf(wss_malloc_counter_available() == 0, "malloc counting is off under sanitizers")
        let server = try startTestServer(routes: [("/", CountedEchoApp())])
        defer { server.stop(); server.wait() }

        let client = try RawClient(port: server.port)
        XCTAssertTrue(try client.upgrade().hasPrefix("HTTP/1.1 101"))
        let payload = (0..<64).map { UInt8(ascii: "a") + UInt8($0 % 26) }
        let frame = maskedFrame(0x1, payload)
        let echoLength = 2 + payload.count

        func roundTrips(_ n: Int) throws {
            for _ in 0..<n {
                try client.sendAll(frame)
                try client.readExactly(echoLength)
            }
        }
        try roundTrips(200)  // warm-up: buffers reach their steady size
        XCTAssertEqual(Array(client.readBuffer[2..<echoLength]), payload)

        let messages = 1000
        wss_malloc_count_this_thread()  // the loop thread opted in at onOpen
        let before = wss_malloc_count()
        wss_malloc_counting(1)
        try roundTrips(messages)
        wss_malloc_counting(0)
        let allocations = Int(wss_malloc_count() - before)
        print("allocations for \(messages) echoed messages: \(allocations)")
        // Ticks, epoll bookkeeping and the like may allocate a few times; per-message work must not.
        XCTAssertLessThanOrEqual(allocations, 10, "\(allocations) allocations for \(messages) messages")
    }
}

/// EchoApp whose loop thread opts in to allocation counting when a connection opens (the
/// counter counts only opted-in threads: the server's loop and the test's own thread).
final class CountedEchoApp: WebSocketHandler {
    func onOpen(_ connection: WebSocketConnection) { wss_malloc_count_this_thread() }
    func onMessage(_ connection: WebSocketConnection, _ message: Message) { connection.send(message) }
}
