import CMallocCounter
@testable import WSServer
import XCTest

/// The access log's table of open WebSocket sessions: what an idle connection costs with the
/// log on (one fixed-size entry, texts shared), and that every line still gets its fields.
final class AccessSessionsTests: XCTestCase {
    let text = AccessLogRecord(kind: .websocket, method: "GET", path: "/chatsocket?room=a", tlsVersion: "TLSv1.3",
                               tlsCipher: "TLS_AES_128_GCM_SHA256", subprotocol: "chat.v1", compression: true,
                               userAgent: "Python/3.11 websockets/13.1 \u{0}tail").sessionText

    func testSessionTextRoundTripsEveryField() {
        let r = AccessLogRecord(sessionText: text)
        XCTAssertEqual(r.kind, .websocket)
        XCTAssertEqual(r.status, 101)
        XCTAssertEqual([r.method, r.path, r.tlsVersion, r.tlsCipher, r.subprotocol, r.userAgent],
                       ["GET", "/chatsocket?room=a", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "chat.v1",
                        "Python/3.11 websockets/13.1 \u{0}tail"])
        XCTAssertTrue(r.compression)
        let empty = AccessLogRecord(sessionText: AccessLogRecord(kind: .websocket, method: "GET", path: "/").sessionText)
        XCTAssertEqual([empty.tlsVersion, empty.tlsCipher, empty.subprotocol, empty.userAgent], ["", "", "", ""])
        XCTAssertFalse(empty.compression)
    }

    /// 1,000 sessions with the same request hold one text; each closes with its own fields,
    /// and the text is freed with the last one.
    func testSameTextIsSharedAndFreedWithTheLastSession() {
        let s = AccessSessions()
        for fd in 10..<1010 {
            s.open(fd: Int32(fd), connection: UInt64(fd), openedMicros: UInt64(fd), address: "127.0.0.\(fd % 200)",
                   port: 40000 + fd, text: text)
        }
        XCTAssertTrue(s.counts == (1000, 1), "\(s.counts)")
        s.closed(fd: 20, connection: 20, code: 1000)
        s.closed(fd: 20, connection: 20, code: 1001)  // the first code wins
        let ended = s.finish(fd: 20, connection: 20)
        XCTAssertEqual(ended?.entry.closeCode, 1000)
        XCTAssertEqual(ended?.entry.address, "127.0.0.20")
        XCTAssertEqual(ended?.entry.port, 40020)
        XCTAssertEqual(ended?.entry.openedMicros, 20)
        XCTAssertEqual(ended?.text, text)
        XCTAssertNil(s.finish(fd: 20, connection: 20), "a session is written once")
        for fd in 10..<1010 where fd != 20 { XCTAssertNotNil(s.finish(fd: Int32(fd), connection: UInt64(fd))) }
        XCTAssertTrue(s.counts == (0, 0), "\(s.counts)")
    }

    /// Unique texts (a token in the query) cost one string each while open, none after.
    func testUniqueTextsAreReleased() {
        let s = AccessSessions()
        for fd in 0..<100 { s.open(fd: Int32(fd), connection: 1 + UInt64(fd), openedMicros: 0, address: "", port: 0, text: "t\(fd)") }
        XCTAssertTrue(s.counts == (100, 100), "\(s.counts)")
        for fd in 0..<100 { _ = s.finish(fd: Int32(fd), connection: 1 + UInt64(fd)) }
        XCTAssertTrue(s.counts == (0, 0), "\(s.counts)")
        s.open(fd: 3, connection: 500, openedMicros: 0, address: "", port: 0, text: "again")
        XCTAssertEqual(s.finish(fd: 3, connection: 500)?.text, "again", "a freed slot is reused")
    }

    /// Another connection on a reused descriptor never gets a stale session's line, and a new
    /// session on it replaces (and releases) the stale one.
    func testStaleEntryIsNeitherWrittenNorLeaked() {
        let s = AccessSessions()
        s.open(fd: 5, connection: 1, openedMicros: 0, address: "", port: 0, text: "old")
        XCTAssertNil(s.finish(fd: 5, connection: 2))
        s.closed(fd: 5, connection: 2, code: 1000)
        s.open(fd: 5, connection: 3, openedMicros: 0, address: "", port: 0, text: "new")
        XCTAssertTrue(s.counts == (1, 1), "\(s.counts)")
        let ended = s.finish(fd: 5, connection: 3)
        XCTAssertEqual(ended?.text, "new")
        XCTAssertEqual(ended?.entry.closeCode, 0)
    }

    /// The memory an open session costs with the log on: one entry in a table that only
    /// grows, and (its text shared, an IPv4 address being a small string) no allocation.
    func testOpenSessionAllocatesNothing() throws {
        print("access session entry: \(MemoryLayout<AccessSessions.Entry>.stride) bytes")
        XCTAssertLessThanOrEqual(MemoryLayout<AccessSessions.Entry>.stride, 40)
        try XCTSkipIf(wss_malloc_counter_available() == 0, "malloc counting is off under sanitizers")
        let s = AccessSessions()
        let address = "255.255.255.255"
        s.open(fd: 1, connection: 1, openedMicros: 0, address: address, port: 1, text: text)  // the shared text
        for fd in 2..<300 { s.open(fd: Int32(fd), connection: UInt64(fd), openedMicros: 0, address: address, port: 1, text: text) }
        for fd in 2..<300 { _ = s.finish(fd: Int32(fd), connection: UInt64(fd)) }
        wss_malloc_count_this_thread()
        let before = wss_malloc_count()
        wss_malloc_counting(1)
        for fd in 2..<300 { s.open(fd: Int32(fd), connection: UInt64(fd), openedMicros: 0, address: address, port: 1, text: text) }
        wss_malloc_counting(0)
        XCTAssertEqual(Int(wss_malloc_count() - before), 0, "allocations for 298 sessions")
    }
}
