import WSServer
import XCTest

/// POST bodies of the fallback transports (RFC 9112 §6): Content-Length and chunked, limits,
/// framing errors, fed whole and one byte at a time.
final class FallbackBodyReaderTests: XCTestCase {
    func head(_ headers: [(String, String)]) -> HTTPRequestHead {
        HTTPRequestHead(method: "POST", target: "/chatsocket?transport=sse", headers: headers.map { (name: $0.0, value: $0.1) })
    }

    func read(_ headers: [(String, String)], _ wire: String, limit: Int = 1000, byteAtATime: Bool = false) throws -> ([UInt8], Int) {
        var reader = try HTTPBodyReader(head: head(headers), limit: limit)
        let bytes = Array(wire.utf8)
        if reader.isComplete { return ([], 0) }
        if !byteAtATime {
            guard case .complete(let body, let used) = try bytes.withUnsafeBytes({ try reader.feed($0) }) else {
                XCTFail("incomplete"); return ([], 0)
            }
            return (body, used)
        }
        for (i, b) in bytes.enumerated() {
            if case .complete(let body, let used) = try [b].withUnsafeBytes({ try reader.feed($0) }) {
                XCTAssertEqual(used, 1)
                return (body, i + 1)
            }
        }
        XCTFail("incomplete")
        return ([], 0)
    }

    func testContentLengthLeavesPipelinedBytes() throws {
        let (body, used) = try read([("Content-Length", "5")], "t1:aGET / HTTP/1.1\r\n")
        XCTAssertEqual(String(decoding: body, as: UTF8.self), "t1:aG")
        XCTAssertEqual(used, 5)
        let (one, n) = try read([("Content-Length", "4")], "t1:a", byteAtATime: true)
        XCTAssertEqual(one, Array("t1:a".utf8))
        XCTAssertEqual(n, 4)
        XCTAssertTrue(try HTTPBodyReader(head: head([("Content-Length", "0")]), limit: 10).isComplete)
    }

    func testChunkedWithExtensionAndTrailer() throws {
        let wire = "4;ext=1\r\nt1:a\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\nNEXT"
        for split in [false, true] {
            let (body, used) = try read([("Transfer-Encoding", "chunked")], wire, byteAtATime: split)
            XCTAssertEqual(String(decoding: body, as: UTF8.self), "t1:a0123456789")
            XCTAssertEqual(used, wire.utf8.count - 4)
        }
    }

    func testFramingErrors() {
        func error(_ headers: [(String, String)], _ wire: String = "", limit: Int = 10) -> HTTPBodyError? {
            do { _ = try read(headers, wire, limit: limit); return nil } catch { return error as? HTTPBodyError }
        }
        XCTAssertEqual(error([]), .lengthRequired)
        XCTAssertEqual(error([("Content-Length", "11")]), .tooLarge(limit: 10))
        XCTAssertEqual(HTTPBodyError.tooLarge(limit: 1).status, 413)
        XCTAssertEqual(error([("Content-Length", "+5")]), .malformed("invalid Content-Length"))
        XCTAssertEqual(error([("Content-Length", "5"), ("Content-Length", "6")]), .malformed("invalid Content-Length"))
        XCTAssertEqual(error([("Content-Length", "5"), ("Transfer-Encoding", "chunked")]),
                       .malformed("both Content-Length and Transfer-Encoding"), "request smuggling shape (RFC 9112 §6.3)")
        XCTAssertEqual(error([("Transfer-Encoding", "gzip, chunked")]), .unsupportedCoding)
        XCTAssertEqual(HTTPBodyError.unsupportedCoding.status, 501)
        let chunked = [("Transfer-Encoding", "chunked")]
        XCTAssertEqual(error(chunked, "B\r\n"), .tooLarge(limit: 10), "refused at the size line, before the data")
        XCTAssertEqual(error(chunked, "6\r\nabcdef\r\n6\r\n"), .tooLarge(limit: 10), "the sum of chunks counts")
        XCTAssertEqual(error(chunked, "g\r\n"), .malformed("bad chunk size"))
        XCTAssertEqual(error(chunked, "\r\n"), .malformed("missing chunk size"))
        XCTAssertEqual(error(chunked, "2\r\nabX"), .malformed("chunk data not followed by CRLF"))
        XCTAssertEqual(error(chunked, "2\rX"), .malformed("chunk size line not ended by CRLF"))
        XCTAssertEqual(error(chunked, "000000001\r\n", limit: 1 << 30), .tooLarge(limit: 1 << 30), "at most 8 hex digits")
    }
}
