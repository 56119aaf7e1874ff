import Foundation
import TestSupport
import Transport
import WebSocket
import XCTest
import WSClient
import WSServer

/// The client dials each address of a host in turn, and the async client looks names up off
/// its shared loop.
final class ClientAddressTests: XCTestCase {
    final class Outcome: ClientDelegate, @unchecked Sendable {
        let result = Locked<String?>(nil)
        let done: XCTestExpectation
        init(_ done: XCTestExpectation) { self.done = done }
        func clientDidOpen(_ client: ClientConnection) {
            result.withLock { $0 = "open" }
            done.fulfill()
            client.close(code: .normal, reason: "")
        }
        func client(_ client: ClientConnection, didReceive message: Message) {}
        func clientDidClose(_ client: ClientConnection, code: CloseCode, reason: String, error: String?) {
            guard result.withLock({ $0 == nil }) else { return }
            result.withLock { $0 = "closed: \(error ?? "")" }
            done.fulfill()
        }
    }

    func freePort() throws -> Int {
        let l = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
        defer { l.close() }
        return l.port
    }

    /// Connects a `ClientConnection` to `addresses` and says how it ended.
    func dial(_ addresses: [SocketAddress]) throws -> String? {
        let loop = try EventLoop(index: 0)
        loop.start(name: "client-address-test")
        defer { loop.stop(); loop.join() }
        let outcome = Outcome(expectation(description: "opened or closed"))
        var options = ClientOptions(host: "localhost", port: 1, path: "/")
        options.addresses = addresses
        let opts = options
        loop.execute {
            do { _ = try ClientConnection(loop: loop, options: opts, delegate: outcome) } catch {
                outcome.result.withLock { $0 = "threw: \(error)" }
                outcome.done.fulfill()
            }
        }
        wait(for: [outcome.done], timeout: 10)
        return outcome.result.withLock { $0 }
    }

    func startServer() throws -> Server { try startTestServer(routes: [("/", EchoApp())]) }

    /// The first address refuses (nothing listens there), the second is the server: open
    /// (before, the refusal ended the connection).
    func testARefusedAddressIsFollowedByTheNext() throws {
        let server = try startServer()
        defer { server.stop(); server.wait() }
        let closed = try freePort()
        let result = try dial([HostResolver.numeric("127.0.0.1", port: closed)!, HostResolver.numeric("127.0.0.1", port: server.port)!])
        XCTAssertEqual(result, "open")
    }

    /// Every address refuses: the connection ends with the refusal.
    func testEveryAddressRefusingEndsWithTheRefusal() throws {
        let a = try freePort(), b = try freePort()
        let result = try dial([HostResolver.numeric("127.0.0.1", port: a)!, HostResolver.numeric("127.0.0.1", port: b)!])
        XCTAssertEqual(result, "closed: connect: Connection refused")
    }

    /// A name that does not resolve fails the async connect with the resolver's reason.
    func testAnUnresolvableHostFailsWithTheResolversReason() async throws {
        do {
            _ = try await WebSocketClient.connect(to: "ws://no-such-host.invalid:80/")
            XCTFail("connected to a name that cannot exist")
        } catch {
            XCTAssertTrue("\(error)".contains("cannot resolve 'no-such-host.invalid'"), "\(error)")
        }
    }

    /// A name that resolves (`localhost`, from /etc/hosts) is looked up off the loop and dialled.
    func testANameIsLookedUpAndDialled() async throws {
        let server = try startServer()
        defer { server.stop(); server.wait() }
        let client = try await WebSocketClient.connect(to: "ws://localhost:\(server.port)/")
        client.send(text: "hi")
        let m = try await within(5) { var it = client.messages.makeAsyncIterator(); return await it.next() }
        XCTAssertEqual(m?.text, "hi")
    }
}
