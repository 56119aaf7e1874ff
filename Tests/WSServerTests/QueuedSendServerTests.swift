#if canImport(Glibc)
import Glibc
#endif
import Transport
@testable import WSServer
import XCTest

/// A plain-TCP WebSocket on io_uring hands the answers of each read to the loop, which sends
/// them in the iteration's one io_uring_enter (`flushEndOfRead`). On both backends: every echo
/// arrives, in order, and a close that follows a message goes out after it, then the FIN.
extension LibraryAPITests {
    /// Echoes; "bye" is echoed, then the connection closes (1000).
    final class EchoThenClose: WebSocketHandler, @unchecked Sendable {
        func onMessage(_ connection: WebSocketConnection, _ message: Message) {
            connection.send(message)
            if String(decoding: message.bytes, as: UTF8.self) == "bye" { connection.close(code: .normal, reason: "") }
        }
    }

    /// Reads one unmasked server frame; returns (opcode, payload).
    func readFrame(_ c: RawClient) throws -> (UInt8, [UInt8]) {
        try c.readExactly(2)
        let op = c.readBuffer[0] & 0x0F
        var n = Int(c.readBuffer[1] & 0x7F)
        if n == 126 {
            try c.readExactly(2)
            n = Int(c.readBuffer[0]) << 8 | Int(c.readBuffer[1])
        }
        try c.readExactly(n)
        return (op, Array(c.readBuffer[0..<n]))
    }

    func testEchoesInOrderThenCloseAfterTheLastMessageOnBothBackends() throws {
        for io in [IOBackend.epoll, .uring] {
            let server = try makeServer(configure: { $0.io = io }, routes: [("/", EchoThenClose())])
            defer { server.stop(); server.wait() }
            if io == .uring && server.loops[0].io != .uring { continue }  // no io_uring here
            let c = try RawClient(port: server.port)
            _ = try c.upgrade()
            for i in 0..<500 {
                let payload = (0..<(1 + (i * 97) % 2000)).map { UInt8(truncatingIfNeeded: $0 &+ i) }
                try c.sendAll(maskedFrame(0x2, payload))
                let (op, back) = try readFrame(c)
                XCTAssertEqual(op, 0x2)
                XCTAssertTrue(back == payload, "\(io): echo \(i)")
            }
            // Pipelined: ten at once, then the one that closes.
            var expected: [[UInt8]] = []
            var burst: [UInt8] = []
            for i in 0..<10 {
                let payload = [UInt8](repeating: UInt8(i), count: 100 + i)
                expected.append(payload)
                burst += maskedFrame(0x2, payload)
            }
            burst += maskedFrame(0x1, Array("bye".utf8))
            try c.sendAll(burst)
            for e in expected { XCTAssertEqual(try readFrame(c).1, e, "\(io): pipelined echo") }
            XCTAssertEqual(try readFrame(c).1, Array("bye".utf8), "\(io): the last message")
            let (op, _) = try readFrame(c)
            XCTAssertEqual(op, 0x8, "\(io): then the close frame")
            try c.sendAll(maskedFrame(0x8, [0x03, 0xE8]))
            var byte: UInt8 = 0
            XCTAssertEqual(recv(c.fd, &byte, 1, 0), 0, "\(io): then the FIN")
        }
    }
}
