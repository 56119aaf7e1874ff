#if canImport(Glibc)
import Glibc
#endif
@testable import WSServer
import WebSocket
import XCTest

/// Every way a WebSocket ends releases its entry in the access log's session table and writes
/// its line: a normal close, a protocol error, the idle timeout, a peer reset, a handler that
/// closes at once, and the server's shutdown (graceful and abrupt). And the request target is
/// logged with its query, sensitive values redacted.
final class AccessLogCloseTests: XCTestCase {
    final class Echo: WebSocketHandler {
        func onMessage(_ connection: WebSocketConnection, _ message: Message) { _ = connection.send(message) }
    }

    final class CloseAtOnce: WebSocketHandler {
        func onOpen(_ connection: WebSocketConnection) { connection.close(code: CloseCode(4000), reason: "bye") }
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {}
    }

    var logPath = ""

    override func setUp() {
        logPath = "/tmp/wss-accesslog-close-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
    }

    override func tearDown() { unlink(logPath) }

    func makeServer(idleTimeout: Double = 120, closeTimeout: Double = 5) throws -> (Server, AccessLog) {
        let log = try AccessLog(.file(logPath), format: .json)
        let server = try startTestServer(routes: [("/", Echo()), ("/closer", CloseAtOnce())]) {
            $0.idleTimeout = idleTimeout
            $0.closeTimeout = closeTimeout
            $0.accessLog = log
        }
        return (server, log)
    }

    /// Waits until the table is empty (the close runs on the loop thread).
    func assertTableEmpties(_ log: AccessLog, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let deadline = Date().addingTimeInterval(5)
        while log.sessions.counts != (0, 0) && Date() < deadline { usleep(10_000) }
        XCTAssertTrue(log.sessions.counts == (0, 0), "\(what): \(log.sessions.counts) left", file: file, line: line)
    }

    func lines() -> [String] {
        guard let f = fopen(logPath, "r") else { return [] }
        defer { fclose(f) }
        var out = [UInt8](), buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    func websocketLine(_ what: String) -> String? {
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if let l = lines().last(where: { $0.contains(#""kind":"websocket""#) }) { return l }
            usleep(10_000)
        }
        XCTFail("\(what): no websocket line in \(lines())")
        return nil
    }

    func open(_ server: Server, _ log: AccessLog, path: String = "/") throws -> RawClient {
        let c = try RawClient(port: server.port)
        let head = try c.upgrade(path: path)
        XCTAssertTrue(head.hasPrefix("HTTP/1.1 101"), head)
        return c
    }

    func testNormalClose() throws {
        let (server, log) = try makeServer()
        defer { server.stop(); server.wait() }
        let c = try open(server, log)
        XCTAssertEqual(log.sessions.counts.sessions, 1)
        try c.sendAll(maskedFrame(0x8, [0x03, 0xE8]))
        try c.readExactly(4)  // the server's close frame
        assertTableEmpties(log, "normal close")
        XCTAssertTrue(websocketLine("normal close")?.contains(#""close_code":1000"#) == true, lines().joined())
    }

    func testProtocolError() throws {
        let (server, log) = try makeServer()
        defer { server.stop(); server.wait() }
        let c = try open(server, log)
        try c.sendAll([0x83, 0x80, 1, 2, 3, 4])  // reserved opcode 3
        assertTableEmpties(log, "protocol error")
        XCTAssertTrue(websocketLine("protocol error")?.contains(#""close_code":1002"#) == true, lines().joined())
        _ = c
    }

    func testIdleTimeout() throws {
        let (server, log) = try makeServer(idleTimeout: 0.2, closeTimeout: 0.2)
        defer { server.stop(); server.wait() }
        let c = try open(server, log)  // never answers the ping nor the close
        assertTableEmpties(log, "idle timeout")
        XCTAssertNotNil(websocketLine("idle timeout"))
        _ = c
    }

    func testPeerReset() throws {
        let (server, log) = try makeServer()
        defer { server.stop(); server.wait() }
        let c = try open(server, log)
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        shutdown(c.fd, Int32(SHUT_RDWR))  // with SO_LINGER 0 the close sends RST
        let dup = dup(c.fd)
        close(dup)
        assertTableEmpties(log, "peer reset")
        XCTAssertTrue(websocketLine("peer reset")?.contains(#""close_code":1006"#) == true, lines().joined())
    }

    func testHandlerClosesInOnOpen() throws {
        let (server, log) = try makeServer()
        defer { server.stop(); server.wait() }
        let c = try open(server, log, path: "/closer")
        try c.readExactly(7)  // close 4000 "bye"
        try c.sendAll(maskedFrame(0x8, [0x0F, 0xA0]))
        assertTableEmpties(log, "handler closed in onOpen")
        XCTAssertTrue(websocketLine("handler closed in onOpen")?.contains(#""close_code":4000"#) == true, lines().joined())
    }

    func testGracefulShutdown() throws {
        let (server, log) = try makeServer()
        let c = try open(server, log)
        XCTAssertEqual(log.sessions.counts.sessions, 1)
        _ = server.shutdown(timeout: 0.3)  // the client never answers the 1001
        server.wait()
        assertTableEmpties(log, "graceful shutdown")
        XCTAssertNotNil(websocketLine("graceful shutdown"))
        _ = c
    }

    func testAbruptStop() throws {
        let (server, log) = try makeServer()
        let c = try open(server, log)
        XCTAssertEqual(log.sessions.counts.sessions, 1)
        server.stop()
        server.wait()
        assertTableEmpties(log, "stop")
        XCTAssertNotNil(websocketLine("stop"))
        _ = c
    }

    /// The request target as sent, with the values of sensitive parameters replaced.
    func testQueryIsLoggedWithSecretsRedacted() throws {
        let (server, log) = try makeServer()
        defer { server.stop(); server.wait() }
        let c = try open(server, log, path: "/?room=lobby&token=abc123&Access_Token=xyz&sig=s1&x=")
        try c.sendAll(maskedFrame(0x8, [0x03, 0xE8]))
        try c.readExactly(4)
        let line = websocketLine("query") ?? ""
        XCTAssertTrue(line.contains(#""path":"/?room=lobby&token=***&Access_Token=***&sig=***&x=""#), line)
        XCTAssertFalse(line.contains("abc123") || line.contains("xyz") || line.contains("s1&"), line)
    }
}
