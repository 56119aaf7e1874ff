import Foundation
import TestSupport
import Transport
import XCTest
import WSClient
import WSServer

/// Every public call of the library, over real sockets, with the library's own client.
final class LibraryAPITests: XCTestCase {
    static let certDir = TestCertificates.dir

    func makeServer(tls: Bool = false, threads: Int = 1, configure: (inout ServerConfiguration) -> Void = { _ in },
                    backplane: Backplane = InProcessBackplane(),
                    routes: [(String, WebSocketHandler)]) throws -> Server {
        try startTestServer(threads: threads, tls: tls, backplane: backplane, routes: routes, configure: configure)
    }

    func url(_ server: Server, _ path: String = "/", tls: Bool = false) -> String {
        "\(tls ? "wss" : "ws")://\(tls ? "localhost" : "127.0.0.1"):\(server.port)\(path)"
    }

    func next(_ client: WebSocketClient, timeout: Double = 5) async throws -> OwnedMessage? {
        try await within(timeout) { var it = client.messages.makeAsyncIterator(); return await it.next() }
    }

    // MARK: -

    func testEchoOverWsAndWssWithVerifiedCertificate() async throws {
        for tls in [false, true] {
            let server = try makeServer(tls: tls, routes: [("/echo", EchoApp())])
            defer { server.stop(); server.wait() }
            let client = try await WebSocketClient.connect(to: url(server, "/echo", tls: tls), caFile: Self.certDir + "/ca.pem")
            client.send(text: "héllo")
            let m = try await next(client)
            XCTAssertEqual(m, OwnedMessage(kind: .text, data: Array("héllo".utf8)), "tls=\(tls)")
            let blob = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            client.send(binary: blob)
            let b = try await next(client)
            XCTAssertEqual(b?.data, blob)
            XCTAssertEqual(b?.kind, .binary)
            client.close(code: CloseCode(4001), reason: "done")
            _ = try await next(client)  // stream ends
            XCTAssertEqual(client.closeCode, CloseCode(4001))
        }
    }

    func testClientNegotiatesDeflateAndRoundTrips() async throws {
        for tls in [false, true] {
            let server = try makeServer(tls: tls, routes: [("/", EchoApp())])
            defer { server.stop(); server.wait() }
            let client = try await WebSocketClient.connect(to: url(server, tls: tls), caFile: Self.certDir + "/ca.pem",
                                                           compression: true)
            XCTAssertTrue(client.isCompressing)
            let json = String(repeating: "{\"sym\": \"ABC\", \"px\": 101.5} ", count: 200)
            for _ in 0..<3 {
                client.send(text: json)
                let m = try await next(client)
                XCTAssertEqual(m?.text, json)
            }
            let plain = try await WebSocketClient.connect(to: url(server, tls: tls), caFile: Self.certDir + "/ca.pem")
            XCTAssertFalse(plain.isCompressing)
        }
    }

    func testWrongCAIsRefused() async throws {
        let server = try makeServer(tls: true, routes: [("/", EchoApp())])
        defer { server.stop(); server.wait() }
        do {
            _ = try await WebSocketClient.connect(to: url(server, tls: true), caFile: nil)  // system store
            XCTFail("connected without trusting the CA")
        } catch {
            XCTAssertTrue("\(error)".contains("certificate verify failed"), "\(error)")
        }
    }

    final class HookApp: WebSocketHandler {
        final class User { let name: String; init(_ n: String) { name = n } }
        func shouldUpgrade(_ request: UpgradeRequest) -> UpgradeDecision {
            guard request.query == "token=secret" else { return .reject(status: 401, reason: "bad token") }
            XCTAssertEqual(request.path, "/room")
            XCTAssertTrue(request.remoteAddress.hasPrefix("127.0.0.1:"))
            let wanted = request.subprotocols.first { $0 == "chat.v2" }
            return .accept(subprotocol: wanted, userData: User("ann"))
        }
        func onOpen(_ connection: WebSocketConnection) {
            connection.send(text: "hi \((connection.userData as? User)?.name ?? "?") via \(connection.subprotocol ?? "none")")
        }
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {}
    }

    func testUpgradeHookRejectsAcceptsAndAttachesUserData() async throws {
        let server = try makeServer(routes: [("/room", HookApp())])
        defer { server.stop(); server.wait() }
        do {
            _ = try await WebSocketClient.connect(to: url(server, "/room?token=wrong"))
            XCTFail("accepted a bad token")
        } catch {
            XCTAssertTrue("\(error)".contains("401"), "\(error)")
        }
        let client = try await WebSocketClient.connect(to: url(server, "/room?token=secret"), subprotocols: ["chat.v1", "chat.v2"])
        XCTAssertEqual(client.subprotocol, "chat.v2")
        let m = try await next(client)
        XCTAssertEqual(m?.text, "hi ann via chat.v2")
    }

    func testOriginAllowList() async throws {
        let server = try makeServer(configure: { $0.allowedOrigins = ["https://good.example"] }, routes: [("/", EchoApp())])
        defer { server.stop(); server.wait() }
        _ = try await WebSocketClient.connect(to: url(server), origin: "https://good.example")
        do {
            _ = try await WebSocketClient.connect(to: url(server), origin: "https://evil.example")
            XCTFail("evil origin accepted")
        } catch {
            XCTAssertTrue("\(error)".contains("403"), "\(error)")
        }
        // Default: same origin or none.
        let plain = try makeServer(routes: [("/", EchoApp())])
        defer { plain.stop(); plain.wait() }
        _ = try await WebSocketClient.connect(to: url(plain), origin: "http://127.0.0.1:\(plain.port)")
        _ = try await WebSocketClient.connect(to: url(plain))
        do {
            _ = try await WebSocketClient.connect(to: url(plain), origin: "http://other:1")
            XCTFail("cross origin accepted by default")
        } catch {}
    }

    func testPublishFromAnyThreadReachesSubscribersOnEveryLoop() async throws {
        let server = try makeServer(threads: 2, routes: [("/chat", ChatApp())])
        defer { server.stop(); server.wait() }
        var clients: [WebSocketClient] = []
        for _ in 0..<6 { clients.append(try await WebSocketClient.connect(to: url(server, "/chat"))) }
        try await Task.sleep(for: .milliseconds(100))  // onOpen subscriptions run on the loops
        server.topics.publish("/chat", text: "news")  // ChatApp: the topic is the path
        for c in clients {
            let m = try await next(c)
            XCTAssertEqual(m?.text, "news")
        }
        clients[0].send(text: "from client 0")
        for c in clients {
            let m = try await next(c)
            XCTAssertEqual(m?.text, "from client 0")
        }
    }

    func testAsyncHandler() async throws {
        let handler = AsyncHandler { ws in
            for await message in ws.messages {
                ws.send(text: message.text.uppercased())
                if message.text == "bye" { break }
            }
        }
        let server = try makeServer(routes: [("/", handler)])
        defer { server.stop(); server.wait() }
        let client = try await WebSocketClient.connect(to: url(server))
        client.send(text: "abc")
        let m1 = try await next(client)
        XCTAssertEqual(m1?.text, "ABC")
        client.send(text: "bye")
        let m2 = try await next(client)
        XCTAssertEqual(m2?.text, "BYE")
        let end = try await next(client)  // handler returned: server closes 1000
        XCTAssertNil(end)
        XCTAssertEqual(client.closeCode, .normal)
    }

    /// An application object in `userData` that holds its connection (a cycle, as
    /// AsyncHandler's): both must be freed once the connection closes, while the server runs.
    final class CycleApp: WebSocketHandler {
        final class Session { let connection: WebSocketConnection; init(_ c: WebSocketConnection) { connection = c } }
        final class WeakRef: @unchecked Sendable { weak var value: WebSocketConnection? }
        let seen = Locked<[WeakRef]>([])
        func onOpen(_ connection: WebSocketConnection) {
            connection.userData = Session(connection)
            let w = WeakRef()
            w.value = connection
            seen.withLock { $0.append(w) }
        }
        func onMessage(_ connection: WebSocketConnection, _ message: Message) { connection.send(message) }
        func alive() -> Int { seen.withLock { $0.filter { $0.value != nil }.count } }
    }

    func testClosedConnectionIsFreedDespiteACycleThroughUserData() async throws {
        let app = CycleApp()
        let server = try makeServer(routes: [("/", app)])
        defer { server.stop(); server.wait() }
        for _ in 0..<3 {
            let client = try await WebSocketClient.connect(to: url(server))
            client.send(text: "x")
            _ = try await next(client)
            client.close()
            _ = try await next(client)  // nil: closed
        }
        XCTAssertEqual(app.seen.withLock { $0.count }, 3)
        var alive = app.alive()
        for _ in 0..<100 where alive > 0 {
            try await Task.sleep(for: .milliseconds(20))
            alive = app.alive()
        }
        XCTAssertEqual(alive, 0, "closed connections kept alive by userData")
    }

    /// Records SendStatus values and drain callbacks for a connection whose peer never reads.
    final class FloodApp: WebSocketHandler {
        let statuses = Locked<[SendStatus]>([])
        let drained = Locked(0)
        let buffered = Locked(0)
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {
            let chunk = [UInt8](repeating: 0x42, count: 64 << 10)
            // 16 MiB into a socket nobody reads: large sends go straight to the kernel while it
            // takes them (a few MiB on loopback), the rest queues, past 2 MiB sends drop.
            for _ in 0..<256 {
                let s = connection.send(binary: chunk)
                statuses.withLock { $0.append(s) }
            }
            buffered.withLock { $0 = connection.bufferedAmount }
        }
        func onDrain(_ connection: WebSocketConnection) { drained.withLock { $0 += 1 } }
    }

    func testBackpressureStatusesAndDrain() async throws {
        let app = FloodApp()
        let server = try makeServer(configure: { $0.highWaterMark = 256 << 10; $0.maxBackpressure = 2 << 20 },
                                    routes: [("/", app)])
        defer { server.stop(); server.wait() }
        let client = try RawClient(port: server.port)
        XCTAssertTrue(try client.upgrade().hasPrefix("HTTP/1.1 101"))
        try client.sendAll(maskedFrame(0x2, [1]))
        try await Task.sleep(for: .milliseconds(300))
        let statuses = app.statuses.withLock { $0 }
        XCTAssertEqual(statuses.count, 256)
        XCTAssertEqual(statuses.first, .written)
        XCTAssertTrue(statuses.contains(.buffered), "\(statuses)")
        XCTAssertEqual(statuses.last, .dropped)  // past 2 MiB
        XCTAssertGreaterThan(app.buffered.withLock { $0 }, 256 << 10)
        // Read everything that was queued: exactly the non-dropped frames (64 KiB + 10-byte
        // header each), nothing of the dropped ones; the output then drains (onDrain once).
        let queued = statuses.filter { $0 != .dropped }.count
        var remaining = queued * ((64 << 10) + 10)
        while remaining > 0 {
            let step = min(remaining, client.readBuffer.count)
            try client.readExactly(step)
            remaining -= step
        }
        var tv = timeval(tv_sec: 0, tv_usec: 300_000)
        setsockopt(client.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let extra = client.readBuffer.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, $0.count, 0) }
        XCTAssertLessThan(extra, 0, "bytes beyond the queued frames: dropped sends went out")
        XCTAssertEqual(app.drained.withLock { $0 }, 1)
    }

    /// A streaming handler: counts pieces and bytes of each message without any reassembly.
    final class StreamingApp: WebSocketHandler {
        final class Tally { var pieces = 0; var bytes = 0 }
        var receivesFragments: Bool { true }
        func onOpen(_ connection: WebSocketConnection) { connection.userData = Tally() }
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {
            connection.send(text: "onMessage must not be called")
        }
        func onFragment(_ connection: WebSocketConnection, _ fragment: Fragment) {
            let t = connection.userData as! Tally
            if fragment.isFirst { t.pieces = 0; t.bytes = 0 }
            t.pieces += 1
            t.bytes += fragment.bytes.count
            if fragment.isLast { connection.send(text: "\(t.bytes) bytes") }
        }
    }

    func testStreamingHandlerGetsFragments() async throws {
        let server = try makeServer(routes: [("/", StreamingApp())])
        defer { server.stop(); server.wait() }
        let client = try RawClient(port: server.port)
        XCTAssertTrue(try client.upgrade().hasPrefix("HTTP/1.1 101"))
        var first = maskedFrame(0x2, [UInt8](repeating: 1, count: 1000))
        first[0] &= 0x7F  // not FIN
        try client.sendAll(first + maskedFrame(0x0, [UInt8](repeating: 2, count: 3000)))
        try client.readExactly(2 + "4000 bytes".utf8.count)
        XCTAssertEqual(String(decoding: client.readBuffer[2..<12], as: UTF8.self), "4000 bytes")
    }

    func testMetricsEndpointCountsTraffic() async throws {
        let server = try makeServer(routes: [("/", EchoApp())])
        defer { server.stop(); server.wait() }
        let client = try await WebSocketClient.connect(to: url(server))
        for i in 0..<5 { client.send(text: "m\(i)") }
        for _ in 0..<5 { _ = try await next(client) }
        client.close(code: .normal)
        _ = try await next(client)
        try await Task.sleep(for: .milliseconds(400))  // counters are published every 250 ms
        let raw = try RawClient(port: server.port)
        try raw.sendAll(Array("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
        var text = ""
        while true {
            let n = raw.readBuffer.withUnsafeMutableBytes { recv(raw.fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            text += String(decoding: raw.readBuffer[0..<n], as: UTF8.self)
        }
        XCTAssertTrue(text.hasPrefix("HTTP/1.1 200"), text)
        XCTAssertTrue(text.contains("wss_messages_received_total 5\n"), text)
        XCTAssertTrue(text.contains("wss_messages_sent_total 5\n"), text)
        XCTAssertTrue(text.contains("wss_handshakes_total{result=\"ok\"} 1\n"), text)
        XCTAssertTrue(text.contains("wss_close_codes_received_total{code=\"1000\"} 1\n"), text)
    }

    func testServerCloseAndPing() async throws {
        final class App: WebSocketHandler {
            let pongs = Locked(0)
            func onMessage(_ connection: WebSocketConnection, _ message: Message) {
                if message.text == "ping me" { connection.ping([7]) }
                if message.text == "close me" { connection.close(code: CloseCode(4100), reason: "asked") }
            }
            func onPong(_ connection: WebSocketConnection, _ payload: UnsafeRawBufferPointer) {
                if Array(payload) == [7] { pongs.withLock { $0 += 1 } }
            }
        }
        let app = App()
        let server = try makeServer(routes: [("/", app)])
        defer { server.stop(); server.wait() }
        let client = try await WebSocketClient.connect(to: url(server))
        client.send(text: "ping me")
        try await Task.sleep(for: .milliseconds(200))
        XCTAssertEqual(app.pongs.withLock { $0 }, 1)
        client.send(text: "close me")
        let end = try await next(client)
        XCTAssertNil(end)
        XCTAssertEqual(client.closeCode, CloseCode(4100))
        XCTAssertEqual(client.closeReason, "asked")
    }
}
