import Glibc
import Transport
import XCTest

/// TCPStream's read/write go through raw syscalls (CLinux's wss_recv/wss_send): the results
/// must stay those of recv(2)/send(2), errno included.
final class TCPStreamTests: XCTestCase {
    func testReadWriteResultsMatchTheSyscalls() {
        var sv: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, &sv), 0)
        defer { close(sv[1]) }
        var buf = [UInt8](repeating: 0, count: 16)
        buf.withUnsafeMutableBytes { b in
            XCTAssertEqual(TCPStream.read(fd: sv[0], into: b), .wantRead, "EAGAIN on an empty socket")
        }
        let hello: [UInt8] = Array("hello".utf8)
        hello.withUnsafeBytes { XCTAssertEqual(TCPStream.write(fd: sv[1], $0), .done(5)) }
        buf.withUnsafeMutableBytes { b in
            XCTAssertEqual(TCPStream.read(fd: sv[0], into: b), .done(5))
        }
        XCTAssertEqual(Array(buf[0..<5]), hello)
        close(sv[0])
        buf.withUnsafeMutableBytes { b in
            XCTAssertEqual(TCPStream.read(fd: sv[1], into: b), .eof, "peer closed")
        }
        hello.withUnsafeBytes { XCTAssertEqual(TCPStream.write(fd: sv[1], $0), .eof, "EPIPE, no SIGPIPE") }
        var bad = [UInt8](repeating: 0, count: 4)
        bad.withUnsafeMutableBytes { b in
            guard case .error = TCPStream.read(fd: -1, into: b) else { return XCTFail("EBADF is an error") }
        }
    }
}
