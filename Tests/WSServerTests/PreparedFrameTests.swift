import Dispatch
import Transport
import WebSocket
import XCTest
@testable import WSServer

/// Pub/sub frames built once: the plain frame, and the permessage-deflate one compressed once for
/// every subscriber that negotiated server_no_context_takeover (RFC 7692 §7.1.1.1).
final class PreparedFrameTests: XCTestCase {
    let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog; ", count: 40).utf8)

    func prepared(_ payload: [UInt8], _ compressor: SharedCompressor?, _ op: Opcode = .text) -> PreparedFrame {
        payload.withUnsafeBytes { PreparedFrame(opcode: op, payload: $0, compressor: compressor) }
    }

    func connection(noContext: Bool, windowBits: Int = 15) -> PerMessageDeflate {
        serverDeflate(noContext: noContext, windowBits: windowBits)
    }

    func inflate(_ body: ArraySlice<UInt8>, windowBits: Int = 15) throws -> [UInt8] {
        rawInflate(Array(body), windowBits: windowBits)
    }

    /// (header, payload) of an unmasked server frame.
    func split(_ frame: [UInt8]) throws -> (FrameHeader, ArraySlice<UInt8>) {
        let h = try XCTUnwrap(try frame.withUnsafeBytes { try FrameHeader.parse($0) })
        XCTAssertEqual(frame.count, h.headerLength + Int(h.payloadLength), "one whole frame")
        return (h, frame[h.headerLength...])
    }

    func testPlainFrameIsUnchangedAndHasNoRSV1() throws {
        let f = prepared(text, SharedCompressor(options: DeflateOptions()))
        let (h, body) = try split(f.bytes)
        XCTAssertEqual(h.rsv, 0)
        XCTAssertEqual(h.opcode, .text)
        XCTAssertTrue(h.fin)
        XCTAssertFalse(h.masked, "RFC 6455 §5.1: a server never masks")
        XCTAssertEqual(Array(body), text)
        XCTAssertEqual(f.payloadCount, text.count)
    }

    func testCompressedFrameHasRSV1AndInflatesBackWithZlib() throws {
        for op in [Opcode.text, .binary] {
            let f = prepared(text, SharedCompressor(options: DeflateOptions()), op)
            let (h, body) = try split(try XCTUnwrap(f.compressed))
            XCTAssertEqual(h.rsv, 4, "RSV1 marks a compressed message (RFC 7692 §6)")
            XCTAssertEqual(h.opcode, op)
            XCTAssertTrue(h.fin)
            XCTAssertFalse(h.masked)
            XCTAssertLessThan(body.count, text.count / 4, "repetitive text must shrink")
            XCTAssertNotEqual(Array(body.suffix(4)), [0x00, 0x00, 0xFF, 0xFF], "§7.2.1 tail stripped")
            XCTAssertEqual(try inflate(body), text)
        }
    }

    func testEveryMessageInflatesOnItsOwn() throws {
        // One compressor for many publishes: each frame must stand alone (no context kept).
        let c = try XCTUnwrap(SharedCompressor(options: try DeflateOptions(serverMaxWindowBits: 12)))
        for i in 0..<5 {
            let payload = text + Array("#\(i)".utf8)
            let (_, body) = try split(try XCTUnwrap(prepared(payload, c).compressed))
            XCTAssertEqual(try inflate(body, windowBits: 12), payload, "message \(i)")
        }
    }

    func testCompressedOnceForAllRecipients() throws {
        let c = try XCTUnwrap(SharedCompressor(options: DeflateOptions()))
        let f = prepared(text, c)
        XCTAssertEqual(c.compressions.load(ordering: .relaxed), 0, "nothing compressed before a recipient asks")
        let results = Locked<[[UInt8]]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            let b = f.bytes(for: serverDeflate(noContext: true, windowBits: 15))
            results.withLock { $0.append(b) }
        }
        XCTAssertEqual(c.compressions.load(ordering: .relaxed), 1)
        XCTAssertEqual(Set(results.withLock { $0 }).count, 1, "every recipient gets the same bytes")
        XCTAssertEqual(f.bytes(for: connection(noContext: true)), f.compressed)
    }

    func testWhoGetsTheCompressedFrame() throws {
        let c = try XCTUnwrap(SharedCompressor(options: try DeflateOptions(serverMaxWindowBits: 15)))
        let f = prepared(text, c)   // 1,800 bytes: longer than a 9-bit window
        XCTAssertEqual(f.bytes(for: nil), f.bytes, "no permessage-deflate: plain")
        XCTAssertEqual(f.bytes(for: connection(noContext: false)), f.bytes,
                       "context takeover: our own compressor's history must stay in step with the peer's")
        XCTAssertEqual(f.bytes(for: connection(noContext: true)), f.compressed)
        XCTAssertEqual(f.bytes(for: connection(noContext: true, windowBits: 9)), f.bytes,
                       "a 9-bit window cannot hold references up to 32 KiB back")
        XCTAssertEqual(f.bytes(for: connection(noContext: true, windowBits: 8)), f.bytes, "window 8: we never compress")
        XCTAssertEqual(c.compressions.load(ordering: .relaxed), 1)

        // A message no longer than the peer's window refers only inside itself: fine for it.
        let short = Array(text.prefix(400))
        let g = prepared(short, c)
        let small = connection(noContext: true, windowBits: 9)
        XCTAssertEqual(g.bytes(for: small), g.compressed)
        XCTAssertEqual(try inflate(try split(try XCTUnwrap(g.compressed)).1, windowBits: 9), short)
    }

    func testSmallMessagesAndNoCompressorStayPlain() throws {
        let c = try XCTUnwrap(SharedCompressor(options: try DeflateOptions(minSizeToCompress: 64)))
        let tiny = prepared(Array("hi there".utf8), c)
        XCTAssertNil(tiny.compressed, "below minSizeToCompress")
        XCTAssertEqual(tiny.bytes(for: connection(noContext: true)), tiny.bytes)
        let none = prepared(text, nil)
        XCTAssertNil(none.compressed)
        XCTAssertEqual(none.bytes(for: connection(noContext: true)), none.bytes)
        XCTAssertNil(SharedCompressor(options: try DeflateOptions(enabled: false)))
        XCTAssertEqual(c.compressions.load(ordering: .relaxed), 0)
    }

    func testOurClientReadsTheCompressedFrame() throws {
        // The same frame through the protocol core's client side, with deflate negotiated.
        let f = prepared(text, SharedCompressor(options: DeflateOptions()))
        var client = WebSocketProtocol(role: .client)
        client.deflate = PerMessageDeflate(role: .client, parameters: DeflateParameters(serverNoContextTakeover: true))
        var frame = try XCTUnwrap(f.compressed)
        var got: [UInt8]?
        frame.withUnsafeMutableBytes { b in
            var cursor = 0
            while let e = client.next(b, cursor: &cursor) {
                if case .text(let p) = e { got = Array(p) }
            }
        }
        XCTAssertEqual(got, text)
    }
}

/// A server connection's permessage-deflate state as negotiated.
private func serverDeflate(noContext: Bool, windowBits: Int) -> PerMessageDeflate {
    PerMessageDeflate(role: .server, parameters: DeflateParameters(serverNoContextTakeover: noContext,
                                                                   serverMaxWindowBits: windowBits))
}
