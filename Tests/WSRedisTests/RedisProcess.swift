import Foundation
import Transport
import WSClient
import WSRedis
import WSServer
import XCTest

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
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(port).bigEndian)
        a.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}

/// Client-side helpers shared by the Redis tests.
extension XCTestCase {
    func makeServer(redisPort: Int, threads: Int = 2) throws -> (Server, RedisBackplane) {
        var config = ServerConfiguration()
        config.host = "127.0.0.1"
        config.port = 0
        config.threads = threads
        let backplane = try RedisBackplane(options: .init(endpoint: RedisEndpoint(host: "127.0.0.1", port: redisPort)))
        let server = try Server(configuration: config, backplane: backplane)
        server.route("/chat", ChatApp())
        try server.start()
        return (server, backplane)
    }

    func connect(_ server: Server, _ path: String = "/chat") async throws -> WebSocketClient {
        try await WebSocketClient.connect(to: "ws://127.0.0.1:\(server.port)\(path)")
    }

    func next(_ client: WebSocketClient, timeout: Double = 5) async throws -> OwnedMessage? {
        try await withThrowingTaskGroup(of: Optional<OwnedMessage>.self) { group in
            group.addTask { var it = client.messages.makeAsyncIterator(); return await it.next() }
            group.addTask { try await Task.sleep(for: .seconds(timeout)); throw CancellationError() }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
    }

    func metric(_ backplane: RedisBackplane, _ name: String) -> Int {
        for line in backplane.metricsText().split(separator: "\n") where line.hasPrefix(name + " ") {
            return Int(line.split(separator: " ")[1]) ?? -1
        }
        return -1
    }

}
