import WSRedis
import XCTest

/// The RESP2 reader (hiredis's, sans-IO) and command encoding.
final class RESPTests: XCTestCase {
    func testEveryReplyKindAllAtOnceAndOneByteAtATime() throws {
        let wire = Array("+OK\r\n-ERR wrong\r\n:-42\r\n$5\r\nh\0\r\nx\r\n$-1\r\n*2\r\n$7\r\nmessage\r\n*1\r\n:7\r\n*0\r\n".utf8)
        let expected: [RESPValue] = [
            .simple("OK"), .error("ERR wrong"), .integer(-42), .bulk([0x68, 0, 0x0d, 0x0a, 0x78]), .null,
            .array([.bulk(Array("message".utf8)), .array([.integer(7)])]), .array([]),
        ]
        let whole = RESPReader()
        try whole.feed(wire)
        var got: [RESPValue] = []
        while let v = try whole.next() { got.append(v) }
        XCTAssertEqual(got, expected)

        let bytewise = RESPReader()
        got = []
        for b in wire {
            try bytewise.feed([b])
            while let v = try bytewise.next() { got.append(v) }
        }
        XCTAssertEqual(got, expected)
    }

    func testIncompleteReplyWaitsForMoreBytes() throws {
        let r = RESPReader()
        try r.feed(Array("$10\r\n01234".utf8))
        XCTAssertNil(try r.next())
        try r.feed(Array("56789\r\n".utf8))
        XCTAssertEqual(try r.next(), .bulk(Array("0123456789".utf8)))
        XCTAssertNil(try r.next())
    }

    func testBytesThatAreNotRESPAreRejected() throws {
        let r = RESPReader()
        try r.feed(Array("HTTP/1.1 400 Bad Request\r\n".utf8))
        XCTAssertThrowsError(try r.next()) { error in
            XCTAssertTrue("\(error)".contains("Protocol error"), "\(error)")
        }
    }

    func testFormatIsBinarySafe() {
        XCTAssertEqual(RedisCommand.format([Array("SET".utf8), [0, 13, 10, 255]]),
                       Array("*2\r\n$3\r\nSET\r\n$4\r\n".utf8) + [0, 13, 10, 255] + Array("\r\n".utf8))
    }

    /// The direct PUBLISH encoder writes exactly what hiredis's formatter writes.
    func testDirectPublishEncoderMatchesHiredis() {
        for size in [0, 1, 9, 10, 99, 100, 65_536] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let header: [UInt8] = [1, 2, 3]
            let expected = RedisCommand.format([Array("PUBLISH".utf8), Array("wss:/chat".utf8), header + payload])
            var out: [UInt8] = [9]  // appends, keeps what was there
            Array("wss:".utf8).withUnsafeBytes { p in
                Array("/chat".utf8).withUnsafeBytes { c in
                    header.withUnsafeBytes { h in
                        payload.withUnsafeBytes { RedisCommand.appendPublish(to: &out, prefix: p, channel: c, header: h, payload: $0) }
                    }
                }
            }
            XCTAssertEqual(out, [9] + expected, "payload of \(size) bytes")
        }
    }
}
