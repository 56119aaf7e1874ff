#if canImport(Glibc)
import Glibc
#endif
import WebSocket

/// A blocking raw-socket WebSocket client for tests: no library code on the client side,
/// preallocated buffers, so it neither hides server bugs nor allocates per message.
final class RawClient {
    let fd: Int32
    var readBuffer = [UInt8](repeating: 0, count: 1 << 20)

    init(port: Int, host: String = "127.0.0.1") throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, host, &addr.sin_addr)
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 && errno != EINTR { throw RawClientError.io("connect: \(errno)") }
    }

    deinit { close(fd) }

    func sendAll(_ bytes: UnsafeRawBufferPointer) throws {
        var off = 0
        while off < bytes.count {
            let n = send(fd, bytes.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL))
            if n < 0 && errno == EINTR { continue }  // a signal (e.g. SIGCHLD of another test's child)
            if n <= 0 { throw RawClientError.io("send: \(errno)") }
            off += n
        }
    }

    func sendAll(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try sendAll($0) } }

    /// Reads exactly `count` bytes into the read buffer.
    func readExactly(_ count: Int) throws {
        var got = 0
        try readBuffer.withUnsafeMutableBytes { b in
            while got < count {
                let n = recv(fd, b.baseAddress! + got, count - got, 0)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { throw RawClientError.io("recv: \(n) errno \(errno)") }
                got += n
            }
        }
    }

    /// Sends an upgrade request for `path` and reads the response head.
    func upgrade(path: String = "/", extraHeaders: String = "") throws -> String {
        try sendAll(Array(("GET \(path) HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(extraHeaders)\r\n").utf8))
        var head: [UInt8] = []
        var byte: UInt8 = 0
        while !(head.count >= 4 && head.suffix(4) == [13, 10, 13, 10]) {
            let n = recv(fd, &byte, 1, 0)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw RawClientError.io("recv head") }
            head.append(byte)
        }
        return String(decoding: head, as: UTF8.self)
    }
}

enum RawClientError: Error { case io(String) }

/// A masked client frame.
func maskedFrame(_ opcode: UInt8, _ payload: [UInt8], mask: [UInt8] = [1, 2, 3, 4]) -> [UInt8] {
    var out: [UInt8] = [0x80 | opcode]
    let n = payload.count
    if n < 126 { out.append(0x80 | UInt8(n)) }
    else if n <= 0xFFFF { out += [0x80 | 126, UInt8(n >> 8), UInt8(n & 0xFF)] }
    else { out.append(0x80 | 127); for i in (0..<8).reversed() { out.append(UInt8((n >> (i * 8)) & 0xFF)) } }
    out += mask
    out += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    return out
}
