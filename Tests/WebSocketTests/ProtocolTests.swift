import XCTest
@testable import WebSocket

final class ProtocolTests: XCTestCase {
    /// Runs `bytes` through a fresh server protocol whole and one byte at a time; both must
    /// produce the same events and output.
    func run(_ bytes: [UInt8], limits: WebSocketProtocol.Limits = .init(),
             file: StaticString = #filePath, line: UInt = #line) -> ([Ev], WebSocketProtocol) {
        var a = WebSocketProtocol(role: .server, limits: limits)
        let e1 = feed(&a, bytes)
        var b = WebSocketProtocol(role: .server, limits: limits)
        let e2 = feed(&b, bytes, chunk: 1)
        XCTAssertEqual(e1, e2, "whole vs byte-at-a-time", file: file, line: line)
        XCTAssertEqual(a.outbound.bytes, b.outbound.bytes, "output differs", file: file, line: line)
        return (e1, a)
    }

    func expectFailure(_ bytes: [UInt8], _ error: ProtocolError, code: UInt16,
                       limits: WebSocketProtocol.Limits = .init(), file: StaticString = #filePath, line: UInt = #line) {
        var (events, p) = run(bytes, limits: limits, file: file, line: line)
        XCTAssertEqual(events.last, .failed(error), file: file, line: line)
        XCTAssertEqual(error.closeCode.rawValue, code, file: file, line: line)
        XCTAssertEqual(sentCloseCode(p.outbound), code, file: file, line: line)
        XCTAssertEqual(p.state, .failed, file: file, line: line)
    }

    func testFragmentsWithInterleavedControl() {
        let bytes = text("Hel", fin: false) + frame(0x9, [1, 2]) + frame(0x0, Array("lo".utf8), fin: false)
            + frame(0xA, []) + frame(0x0, Array(" you".utf8))
        var (events, p) = run(bytes)
        XCTAssertEqual(events, [.ping([1, 2]), .pong([]), .text("Hello you")])
        XCTAssertEqual(serverFrames(p.outbound).map(\.opcode), [0xA])  // pong
        XCTAssertEqual(serverFrames(p.outbound).first?.payload, [1, 2])
    }

    func testEmptyMessagesAndEmptyFragments() {
        let bytes = frame(0x1, []) + frame(0x2, [], fin: false) + frame(0x0, [], fin: false) + frame(0x0, [])
        XCTAssertEqual(run(bytes).0, [.text(""), .binary([])])
    }

    func testCloseEchoesCode() {
        var (events, p) = run(closeFrame(4000, "bye") + text("after"))
        XCTAssertEqual(events, [.close(4000, "bye")])
        XCTAssertEqual(sentCloseCode(p.outbound), 4000)
        XCTAssertEqual(p.state, .closed)
        var (e2, p2) = run(closeFrame(nil))
        XCTAssertEqual(e2, [.close(nil, "")])
        XCTAssertEqual(serverFrames(p2.outbound).first?.payload, [])
    }

    func testServerInitiatedClose() {
        var p = WebSocketProtocol(role: .server)
        p.close(code: .goingAway, reason: "bye")
        XCTAssertEqual(p.state, .closeSent)
        XCTAssertEqual(p.send(text: "x"), .closed)
        XCTAssertEqual(feed(&p, text("dropped") + closeFrame(1000)), [.close(1000, "")])
        XCTAssertEqual(p.state, .closed)
        XCTAssertEqual(serverFrames(p.outbound).count, 1)  // no second close
    }

    func testCloseCodeValidity() {
        for ok: UInt16 in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999] {
            XCTAssertEqual(run(closeFrame(ok)).0, [.close(ok, "")], "\(ok)")
        }
        for bad: UInt16 in [0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000, 65535] {
            expectFailure(closeFrame(bad), .invalidCloseCode(bad), code: 1002)
        }
    }

    func testCloseRules() {
        expectFailure(frame(0x8, [0x03]), .closePayloadOneByte, code: 1002)
        expectFailure(frame(0x8, [0x03, 0xE8, 0xFF]), .invalidCloseReason, code: 1007)
    }

    func testFrameRejections() {
        expectFailure(frame(0x3, []), .reservedOpcode(3), code: 1002)
        expectFailure(frame(0xB, []), .reservedOpcode(11), code: 1002)
        expectFailure(frame(0x1, Array("x".utf8), rsv: 4), .reservedBitsSet, code: 1002)
        expectFailure(frame(0x1, Array("x".utf8), rsv: 1), .reservedBitsSet, code: 1002)
        expectFailure(frame(0x1, Array("x".utf8), mask: nil), .unmaskedClientFrame, code: 1002)
        expectFailure(frame(0x9, [UInt8](repeating: 0, count: 126)), .controlFrameTooLong, code: 1002)
        expectFailure(frame(0x9, [], fin: false), .fragmentedControlFrame, code: 1002)
        expectFailure(frame(0x0, Array("x".utf8)), .unexpectedContinuation, code: 1002)
        expectFailure(text("a", fin: false) + text("b"), .expectedContinuation, code: 1002)
        // 64-bit length with the MSB set.
        expectFailure([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], .lengthMSBSet, code: 1002)
    }

    func testServerRejectsMaskedFramesAsClient() {
        var p = WebSocketProtocol(role: .client)
        XCTAssertEqual(feed(&p, text("x")), [.failed(.maskedServerFrame)])
    }

    func testSizeLimitsDecidedAtHeader() {
        let limits = try! WebSocketProtocol.Limits(maxMessageSize: 100)
        // Only the header of a huge frame: rejected without any payload.
        let header: [UInt8] = [0x82, 0xFF, 0, 0, 0, 0x40, 0, 0, 0, 0, 1, 2, 3, 4]
        expectFailure(header, .frameTooLarge(limit: 100), code: 1009, limits: limits)
        // Fragments adding up past the message limit.
        let parts = frame(0x2, [UInt8](repeating: 1, count: 60), fin: false) + frame(0x0, [UInt8](repeating: 1, count: 60))
        expectFailure(parts, .messageTooLarge(limit: 100), code: 1009, limits: limits)
        XCTAssertEqual(run(frame(0x2, [UInt8](repeating: 1, count: 100)), limits: limits).0,
                       [.binary([UInt8](repeating: 1, count: 100))])
        let few = try! WebSocketProtocol.Limits(maxMessageSize: 100, maxFragments: 2)
        expectFailure(frame(0x2, [], fin: false) + frame(0x0, [], fin: false) + frame(0x0, []),
                      .tooManyFragments(limit: 2), code: 1009, limits: few)
    }

    func testInvalidUTF8FailsFastMidFragment() {
        // The first fragment is valid, the second has an invalid byte followed by more frames
        // that never arrive: the failure must come as soon as the bad byte is read.
        var p = WebSocketProtocol(role: .server)
        let first = text("κόσμε", fin: false)
        let bad = frame(0x0, [0xCE, 0xBA, 0xF5, 0x80, 0x80], fin: false)
        // Feed only part of the bad frame: header + 3 payload bytes.
        let partial = Array(bad.prefix(2 + 4 + 3))
        XCTAssertEqual(feed(&p, first + partial, chunk: 1), [.failed(.invalidUTF8)])
        XCTAssertEqual(sentCloseCode(p.outbound), 1007)

        expectFailure(frame(0x1, [0xC0, 0xAF]), .invalidUTF8, code: 1007)        // overlong
        expectFailure(frame(0x1, [0xED, 0xA0, 0x80]), .invalidUTF8, code: 1007)  // surrogate
        expectFailure(frame(0x1, [0xE2, 0x82]), .invalidUTF8, code: 1007)        // truncated at end
        // A code point split across fragments is fine.
        let euro: [UInt8] = [0xE2, 0x82, 0xAC]
        XCTAssertEqual(run(frame(0x1, [euro[0]], fin: false) + frame(0x0, [euro[1]], fin: false)
                           + frame(0x0, [euro[2]])).0, [.text("€")])
    }

    func testNothingAfterFailure() {
        var p = WebSocketProtocol(role: .server)
        XCTAssertEqual(feed(&p, frame(0x3, []) + text("ignored")), [.failed(.reservedOpcode(3))])
        XCTAssertEqual(feed(&p, text("still ignored")), [])
        XCTAssertEqual(serverFrames(p.outbound).count, 1)
    }

    func testClientRoundTrip() {
        var client = WebSocketProtocol(role: .client)
        var server = WebSocketProtocol(role: .server)
        client.send(text: "héllo")
        client.send(binary: [1, 2, 3])
        client.ping([9])
        client.close(code: .normal, reason: "done")
        let wire = client.outbound.bytes
        XCTAssertEqual(wire[1] & 0x80, 0x80)  // masked
        XCTAssertEqual(feed(&server, wire, chunk: 3),
                       [.text("héllo"), .binary([1, 2, 3]), .ping([9]), .close(1000, "done")])
        var back = server.outbound.bytes
        var cursor = 0
        var events: [String] = []
        back.withUnsafeMutableBytes { b in
            while let e = client.next(b, cursor: &cursor) {
                if case .pong(let p) = e { events.append("pong \(Array(p))") }
                if case .close(let c, _) = e { events.append("close \(c?.rawValue ?? 0)") }
            }
        }
        XCTAssertEqual(events, ["pong [9]", "close 1000"])
        XCTAssertEqual(client.state, .closed)
    }
}

/// permessage-deflate inside the protocol machine (RFC 7692 §6–7).
final class ProtocolDeflateTests: XCTestCase {
    func deflated(_ text: String, client: PerMessageDeflate) -> [UInt8] {
        client.compress(Array(text.utf8))
    }

    func makeServer() -> WebSocketProtocol {
        var p = WebSocketProtocol(role: .server)
        p.deflate = PerMessageDeflate(role: .server, parameters: DeflateParameters())
        return p
    }

    func testCompressedMessagesWholeFragmentedAndByteAtATime() {
        let client = PerMessageDeflate(role: .client, parameters: DeflateParameters())
        let c1 = deflated("Hello, Hello, Hello!", client: client)
        let c2 = deflated("κόσμε κόσμε κόσμε", client: client)  // uses the shared window
        let half = c2.count / 2
        let bytes = frame(0x1, c1, rsv: 4) + frame(0x1, Array(c2[..<half]), fin: false, rsv: 4)
            + frame(0x9, [1]) + frame(0x0, Array(c2[half...]))
        for chunk in [0, 1, 3] {
            var p = makeServer()
            XCTAssertEqual(feed(&p, bytes, chunk: chunk), [.text("Hello, Hello, Hello!"), .ping([1]), .text("κόσμε κόσμε κόσμε")], "chunk \(chunk)")
        }
    }

    func testRSV1RulesWithDeflate() {
        var p = makeServer()
        XCTAssertEqual(feed(&p, frame(0x1, [], fin: false) + frame(0x0, [0], rsv: 4)), [.failed(.reservedBitsSet)])
        var q = makeServer()
        XCTAssertEqual(feed(&q, frame(0x9, [], rsv: 4)), [.failed(.reservedBitsSet)])
        var r = makeServer()
        XCTAssertEqual(feed(&r, frame(0x1, [], rsv: 2)), [.failed(.reservedBitsSet)])
        var withoutDeflate = WebSocketProtocol(role: .server)
        XCTAssertEqual(feed(&withoutDeflate, frame(0x1, [0], rsv: 4)), [.failed(.reservedBitsSet)])
    }

    func testCorruptAndBombAndInvalidUTF8() {
        var p = makeServer()
        XCTAssertEqual(feed(&p, frame(0x2, [0xFF, 0xFF, 0xFF, 0xFF], rsv: 4)), [.failed(.invalidCompressedData)])
        XCTAssertEqual(sentCloseCode(p.outbound), 1007)

        let client = PerMessageDeflate(role: .client, parameters: DeflateParameters())
        let bomb = client.compress([UInt8](repeating: 0, count: 1 << 20))
        var q = WebSocketProtocol(role: .server, limits: try! .init(maxMessageSize: 64 << 10))
        q.deflate = PerMessageDeflate(role: .server, parameters: DeflateParameters())
        XCTAssertLessThan(bomb.count, 64 << 10)  // small on the wire…
        XCTAssertEqual(feed(&q, frame(0x2, bomb, rsv: 4)), [.failed(.messageTooLarge(limit: 64 << 10))])  // …too big inflated
        XCTAssertEqual(sentCloseCode(q.outbound), 1009)

        let c2 = PerMessageDeflate(role: .client, parameters: DeflateParameters())
        var r = makeServer()
        XCTAssertEqual(feed(&r, frame(0x1, c2.compress([0x61, 0xC0, 0xAF]), rsv: 4)), [.failed(.invalidUTF8)])
    }

    func testServerCompressesAndClientInflates() {
        var server = makeServer()
        let text = String(repeating: "{\"price\": 42, \"sym\": \"ABC\"} ", count: 20)
        server.send(text: text)
        server.send(binary: [1, 2, 3])                     // under the minimum size: plain
        var t = text
        t.withUTF8 { _ = server.send(.text, UnsafeRawBufferPointer($0), compress: false) }  // app's choice
        let wire = server.outbound.bytes
        XCTAssertEqual(wire[0], 0xC1)  // FIN + RSV1 + text
        XCTAssertLessThan(wire.count, text.utf8.count * 2)
        var client = WebSocketProtocol(role: .client)
        client.deflate = PerMessageDeflate(role: .client, parameters: DeflateParameters())
        var bytes = wire
        var cursor = 0
        var got: [String] = []
        bytes.withUnsafeMutableBytes { b in
            while let e = client.next(b, cursor: &cursor) {
                if case .text(let p) = e { got.append(String(decoding: p, as: UTF8.self)) }
                if case .binary(let p) = e { got.append("bin \(Array(p))") }
            }
        }
        XCTAssertEqual(got, [text, "bin [1, 2, 3]", text])
    }
}

final class PingFloodTests: XCTestCase {
    func testQueuedPongsAreBoundedUntilOutputDrains() {
        var p = WebSocketProtocol(role: .server, limits: try! .init(maxQueuedPongs: 4))
        var flood: [UInt8] = []
        for i in 0..<10 { flood += frame(0x9, [UInt8(i)]) }
        let events = feed(&p, flood)
        XCTAssertEqual(events.count, 10)  // every ping is reported to the application
        XCTAssertEqual(serverFrames(p.outbound).map(\.payload), [[0], [1], [2], [3]])  // 4 pongs only
        p.outbound.clear()
        p.outboundDrained()
        _ = feed(&p, frame(0x9, [42]))
        XCTAssertEqual(serverFrames(p.outbound).map(\.payload), [[42]])
    }
}

final class StreamingTests: XCTestCase {
    func testFragmentsAreDeliveredAsTheyArrive() {
        var p = WebSocketProtocol(role: .server)
        p.streamsMessages = true
        let bytes = text("Hel", fin: false) + frame(0x9, [7]) + frame(0x0, Array("lo".utf8))
            + frame(0x2, [1, 2, 3])
        XCTAssertEqual(feed(&p, bytes), [
            .fragment(1, Array("Hel".utf8), true, false), .ping([7]), .fragment(1, Array("lo".utf8), false, true),
            .fragment(2, [1, 2, 3], true, true)])
        // Byte at a time: pieces of one byte each, same boundaries for first/last.
        var q = WebSocketProtocol(role: .server)
        q.streamsMessages = true
        let pieces = feed(&q, frame(0x2, [9, 8, 7]), chunk: 1)
        XCTAssertEqual(pieces, [.fragment(2, [9], true, false), .fragment(2, [8], false, false), .fragment(2, [7], false, true)])
    }

    func testStreamingStillEnforcesLimitsAndUTF8() {
        var p = WebSocketProtocol(role: .server, limits: try! .init(maxMessageSize: 4))
        p.streamsMessages = true
        XCTAssertEqual(feed(&p, frame(0x2, [1, 2, 3], fin: false) + frame(0x0, [4, 5])),
                       [.fragment(2, [1, 2, 3], true, false), .failed(.messageTooLarge(limit: 4))])
        var q = WebSocketProtocol(role: .server)
        q.streamsMessages = true
        XCTAssertEqual(feed(&q, frame(0x1, [0x61, 0xFF])), [.failed(.invalidUTF8)])
    }
}
