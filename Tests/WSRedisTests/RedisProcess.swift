import Foundation
import Logging
import Transport
import WSClient
@testable import WSRedis
import WSServer
import XCTest
import TestSupport

/// A real redis-server for one test, on 127.0.0.1 and a port free at run time.
final class RedisProcess {
    let port: Int
    private var process: Process?

    /// A free port: bound to 0 by the kernel, then released for redis-server to take.
    static func freePort() throws -> Int {
        let l = try Listener(host: "127.0.0.1", port: 0, reusePort: false)
        defer { l.close() }
        return l.port
    }

    init(port: Int? = nil, extra: [String] = []) throws {
        self.port = try port ?? Self.freePort()
        try start(extra: extra)
    }

    func start(extra: [String] = []) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        p.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"] + extra
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        for _ in 0..<200 {
            if Self.accepts(port) { return }
            usleep(20_000)
        }
        throw NSError(domain: "redis-server did not listen on \(port)", code: 1)
    }

    func kill() {
        guard let p = process else { return }
        Foundation.kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        process = nil
    }

    /// Stops (SIGSTOP) or resumes (SIGCONT) redis-server: stopped, the kernel still completes
    /// TCP handshakes from its backlog and nothing answers, as with a hung or paused host.
    func pause() { process.map { _ = Foundation.kill($0.processIdentifier, SIGSTOP) } }
    func resume() { process.map { _ = Foundation.kill($0.processIdentifier, SIGCONT) } }

    deinit { kill() }

    /// One redis-cli command; its output without the trailing newline.
    func cli(_ args: String...) -> String {
        let p = Process(), out = Pipe()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/redis-cli")
        p.arguments = ["-p", "\(port)"] + args
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return "" }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func accepts(_ port: Int) -> Bool {
        let (fd, rc) = connectLoopback(port: port)
        defer { close(fd) }
        return rc == 0
    }
}

/// Client-side helpers shared by the Redis tests.
extension XCTestCase {
    func makeServer(redisPort: Int, threads: Int = 2) throws -> (Server, RedisBackplane) {
        try makeServer(RedisEndpoint(host: "127.0.0.1", port: redisPort), threads: threads)
    }

    /// A started server on 127.0.0.1 and a free port with `/chat` (the chat app) and a
    /// RedisBackplane on `endpoint`; `options` adjusts the backplane's before it is made.
    func makeServer(_ endpoint: RedisEndpoint, threads: Int = 2, logger: Logger = Logger(label: "wss-server"),
                    options adjust: (inout RedisBackplane.Options) -> Void = { _ in }) throws -> (Server, RedisBackplane) {
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.threads = threads
        var options = RedisBackplane.Options(endpoint: endpoint)
        adjust(&options)
        let backplane = try RedisBackplane(options: options, logger: logger)
        let server = try Server(configuration: config, logger: logger, backplane: backplane)
        server.route("/chat", ChatApp())
        try server.start()
        return (server, backplane)
    }

    func connect(_ server: Server, _ path: String = "/chat") async throws -> WebSocketClient {
        try await WebSocketClient.connect(to: "ws://127.0.0.1:\(server.port)\(path)")
    }

    func next(_ client: WebSocketClient, timeout: Double = 5) async throws -> OwnedMessage? {
        try await within(timeout) { var it = client.messages.makeAsyncIterator(); return await it.next() }
    }

    /// Waits (at most `timeout` seconds) until both of the backplane's Redis connections are up
    /// and the publish connection has its scripts: a server is started before its backplane
    /// has reached Redis, and until then it behaves as in an outage (local delivery without
    /// stream positions, recoveries answered incomplete), which is not what these tests are
    /// about. Fails the test if Redis is not reached in time.
    func waitUntilConnected(_ backplane: RedisBackplane, timeout: Double = 10,
                            file: StaticString = #filePath, line: UInt = #line) async throws {
        try await waitFor("the backplane reaching Redis", backplane, timeout: timeout, file: file, line: line) {
            $0.commands.state == .ready && $0.subscriber.state == .ready && $0.redisUp.load(ordering: .relaxed)
        }
    }

    /// Waits (at most `timeout` seconds) until `topic` is SUBSCRIBEd on the backplane's
    /// subscription connection and Redis has confirmed it (from then on messages published
    /// anywhere reach this instance). Fails the test otherwise.
    func waitUntilSubscribed(_ backplane: RedisBackplane, _ topic: String = "/chat", timeout: Double = 10,
                             file: StaticString = #filePath, line: UInt = #line) async throws {
        try await waitFor("the backplane's SUBSCRIBE of \(topic) confirmed", backplane, timeout: timeout, file: file, line: line) {
            $0.subscriber.state == .ready && $0.subscribed.contains(topic) && $0.awaitingAck[topic] == nil
        }
    }

    /// Waits (at most `timeout` seconds) until the backplane's publish connection is down.
    func waitUntilDisconnected(_ backplane: RedisBackplane, timeout: Double = 10,
                               file: StaticString = #filePath, line: UInt = #line) async throws {
        try await waitFor("the backplane noticed the outage", backplane, timeout: timeout, file: file, line: line) {
            $0.commands.state != .ready
        }
    }

    /// Polls `condition` on the backplane's loop (whose state it reads) every 10 ms.
    func waitFor(_ what: String, _ backplane: RedisBackplane, timeout: Double, file: StaticString, line: UInt,
                 _ condition: @escaping @Sendable (RedisBackplane) -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let met = await withCheckedContinuation { k in backplane.loop.execute { k.resume(returning: condition(backplane)) } }
            if met { return }
            try await Task.sleep(for: .milliseconds(10))
        }
        XCTFail("\(what): not within \(timeout) s", file: file, line: line)
        struct NotMet: Error {}
        throw NotMet()
    }

    func metric(_ backplane: RedisBackplane, _ name: String) -> Int {
        for line in backplane.metricsText().split(separator: "\n") where line.hasPrefix(name + " ") {
            return Int(line.split(separator: " ")[1]) ?? -1
        }
        return -1
    }

}
