import WSServer
import XCTest

/// The fallback transports' wire formats (README "Fallback transports"): SSE events and the
/// length-prefixed batch of long polling and upstream POSTs.
final class FallbackEncodingTests: XCTestCase {
    func sse(_ build: (inout [UInt8]) -> Void) -> String {
        var out: [UInt8] = []
        build(&out)
        return String(decoding: out, as: UTF8.self)
    }

    func testSSETextIsDataLinesSplitAtLF() {
        let s = sse { out in Array("你好\n🚀\n\nend".utf8).withUnsafeBytes { SSEEncoder.appendText($0, to: &out) } }
        XCTAssertEqual(s, "data: 你好\ndata: 🚀\ndata: \ndata: end\n\n")
    }

    func testSSEEmptyTextIsOneEmptyDataLine() {
        XCTAssertEqual(sse { out in [UInt8]().withUnsafeBytes { SSEEncoder.appendText($0, to: &out) } }, "data: \n\n")
    }

    func testSSETextWithCRGoesAsBase64SoItArrivesExact() {
        // EventSource treats CR, LF and CRLF alike as line ends: a CR could not survive data lines.
        let s = sse { out in Array("a\r\nb".utf8).withUnsafeBytes { SSEEncoder.appendText($0, to: &out) } }
        XCTAssertEqual(s, "event: text64\ndata: YQ0KYg==\n\n")
    }

    func testSSEBinaryCloseHeartbeatAndSession() {
        let s = sse { out in [UInt8]([0, 255, 7]).withUnsafeBytes { SSEEncoder.appendBinary($0, to: &out) } }
        XCTAssertEqual(s, "event: binary\ndata: AP8H\n\n")
        XCTAssertEqual(sse { SSEEncoder.appendClose(code: 1001, reason: "going\naway", to: &$0) },
                       "event: close\ndata: 1001 going\n\n", "a reason never breaks the event")
        XCTAssertEqual(sse { SSEEncoder.appendHeartbeat(to: &$0) }, ": hb\n\n")
        let id = SessionID(high: 1, low: 2, loop: 3)
        XCTAssertEqual(sse { SSEEncoder.appendSession(id, to: &$0) }, "event: session\ndata: \(id)\n\n")
    }

    func batch(_ records: [BatchRecord]) -> [UInt8] {
        var out: [UInt8] = []
        for r in records { LongPollBatch.append(r, to: &out) }
        return out
    }

    func testBatchEncodesLengthInBytes() {
        let body = batch([.text(Array("你好 🚀".utf8)), .binary([0, 58, 10]), .close(code: 1000, reason: "bye")])
        XCTAssertEqual(body, Array("t11:你好 🚀".utf8) + Array("b3:".utf8) + [0, 58, 10] + Array("c8:1000 bye".utf8))
        XCTAssertEqual(batch([.session("abc")]), Array("s3:abc".utf8))
        XCTAssertEqual(batch([]), [], "an empty answer is an empty batch")
    }

    func testBatchRoundTripsInOrder() throws {
        let records: [BatchRecord] = [.text(Array("你好 🚀".utf8)), .binary(Array(0...255)), .text([]),
                                      .text(Array("t3:x".utf8)), .close(code: 4000, reason: "")]
        XCTAssertEqual(try LongPollBatch.decode(batch(records), maxMessages: 10, maxMessageSize: 1000), records)
    }

    func testBatchRejections() {
        func reject(_ body: String, _ maxMessages: Int = 10, _ maxSize: Int = 100) -> BatchError? {
            do { _ = try LongPollBatch.decode(Array(body.utf8), maxMessages: maxMessages, maxMessageSize: maxSize); return nil }
            catch { return error }
        }
        XCTAssertEqual(reject("t5:abc"), .malformed("record cut short"))
        XCTAssertEqual(reject("t:abc"), .malformed("missing length"))
        XCTAssertEqual(reject("t03:abc"), .malformed("leading zero in length"))
        XCTAssertEqual(reject("t-3:abc"), .malformed("length is not decimal"))
        XCTAssertEqual(reject("t12345678901:"), .malformed("length too long"))
        XCTAssertEqual(reject("t3"), .malformed("missing length"))
        XCTAssertEqual(reject("x1:a"), .malformed("unknown record kind"))
        XCTAssertEqual(reject("s1:a"), .malformed("unknown record kind"), "clients do not send session records")
        XCTAssertEqual(reject("t1:at1:bt1:c", 2), .tooManyMessages(limit: 2))
        XCTAssertEqual(reject("t101:" + String(repeating: "a", count: 101)), .messageTooLarge(limit: 100))
        XCTAssertEqual(BatchError.messageTooLarge(limit: 1).status, 413)
        XCTAssertEqual(BatchError.tooManyMessages(limit: 1).status, 413)
        XCTAssertEqual(BatchError.invalidUTF8.status, 400)
        XCTAssertEqual(reject("c4:1005"), .malformed("bad close code"), "1005 is never sent (RFC 6455 §7.4.1)")
        XCTAssertEqual(reject("c3:100"), .malformed("bad close code"))
        var bad = Array("t2:".utf8) + [0xC3, 0x28]
        XCTAssertThrowsError(try LongPollBatch.decode(bad, maxMessages: 5, maxMessageSize: 10)) {
            XCTAssertEqual($0 as? BatchError, .invalidUTF8)
        }
        bad = Array("b2:".utf8) + [0xC3, 0x28]
        XCTAssertNoThrow(try LongPollBatch.decode(bad, maxMessages: 5, maxMessageSize: 10), "binary is not UTF-8 checked")
    }

    func testBatchDecodesOneByteAtATimeBoundaries() throws {
        // Every prefix of a valid batch is either valid (ends on a record boundary) or cut short.
        let body = batch([.text(Array("ab".utf8)), .binary([1, 2, 3])])
        for n in 0...body.count {
            let prefix = Array(body[0..<n])
            if n == 0 || n == 5 || n == body.count {
                XCTAssertNoThrow(try LongPollBatch.decode(prefix, maxMessages: 5, maxMessageSize: 10), "prefix \(n)")
            } else {
                XCTAssertThrowsError(try LongPollBatch.decode(prefix, maxMessages: 5, maxMessageSize: 10), "prefix \(n)")
            }
        }
    }
}
