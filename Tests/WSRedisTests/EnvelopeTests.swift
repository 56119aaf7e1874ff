import WSRedis
import WebSocket
import XCTest

final class EnvelopeTests: XCTestCase {
    func testRoundTripKeepsEveryByte() throws {
        let id = InstanceID(high: 0x0102030405060708, low: 0x1112131415161718)
        for kind in [Message.Kind.text, .binary] {
            let e = BackplaneEnvelope(kind: kind, instance: id, sequence: 0xA1B2C3D4E5F60718)
            var bytes = [UInt8](repeating: 0, count: BackplaneEnvelope.headerSize)
            bytes.withUnsafeMutableBytes { e.writeHeader(into: $0) }
            XCTAssertEqual(Array(bytes[0..<3]), [0x57, 1, kind == .text ? 1 : 2])
            XCTAssertEqual(Array(bytes[3..<11]), [1, 2, 3, 4, 5, 6, 7, 8])
            XCTAssertEqual(Array(bytes[19..<27]), [0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6, 0x07, 0x18])
            bytes += [0, 0xFF, 0x0D, 0x0A]
            try bytes.withUnsafeBytes { raw in
                let (got, payload) = try BackplaneEnvelope.parse(raw).get()
                XCTAssertEqual(got, e)
                XCTAssertEqual(Array(payload), [0, 0xFF, 0x0D, 0x0A])
            }
        }
    }

    func testFlagsTravelInTheKindByte() throws {
        let e = BackplaneEnvelope(kind: .binary, instance: InstanceID(high: 1, low: 2), sequence: 7, isStreamOffset: true, deliveredAtOrigin: true)
        var bytes = [UInt8](repeating: 0, count: BackplaneEnvelope.headerSize)
        bytes.withUnsafeMutableBytes { e.writeHeader(into: $0) }
        XCTAssertEqual(bytes[2], 0xC2)
        try bytes.withUnsafeBytes { XCTAssertEqual(try BackplaneEnvelope.parse($0).get().0, e) }
    }

    func testTheEpochTheHistoryScriptInsertsIsReadAndSkipped() throws {
        // What the publish script writes: flag 0x20, then a length byte and the epoch.
        let e = BackplaneEnvelope(kind: .text, instance: InstanceID(high: 1, low: 2), sequence: 9, isStreamOffset: true)
        var bytes = [UInt8](repeating: 0, count: BackplaneEnvelope.headerSize)
        bytes.withUnsafeMutableBytes { e.writeHeader(into: $0) }
        bytes[2] |= 0x20
        bytes += [5] + Array("ab-12".utf8) + Array("hi".utf8)
        try bytes.withUnsafeBytes { raw in
            let (got, payload) = try BackplaneEnvelope.parse(raw).get()
            XCTAssertEqual(got.epoch, "ab-12")
            XCTAssertEqual(got.kind, .text)
            XCTAssertEqual(got.sequence, 9)
            XCTAssertEqual(Array(payload), Array("hi".utf8))
        }
        // A length byte of 0, or one past the end, is refused.
        for tail in [[0] + Array("hi".utf8), [9, 0x61]] as [[UInt8]] {
            let cut = Array(bytes[0..<BackplaneEnvelope.headerSize]) + tail
            cut.withUnsafeBytes { raw in
                if case .failure(let why) = BackplaneEnvelope.parse(raw) { XCTAssertEqual(why, .badEpoch) } else { XCTFail("accepted \(tail)") }
            }
        }
    }

    func testForeignOrDamagedMessagesAreRejectedWithAReason() {
        var good = [UInt8](repeating: 0, count: 27)
        good[0] = 0x57; good[1] = 1; good[2] = 1
        var badVersion = good; badVersion[1] = 2
        var badKind = good; badKind[2] = 9
        let cases: [([UInt8], EnvelopeError)] = [
            (Array(good[0..<26]), .tooShort(26)), (Array("hello from redis-cli, long enough".utf8), .notAnEnvelope),
            (badVersion, .unknownVersion(2)), (badKind, .unknownKind(9)),
        ]
        for (bytes, error) in cases {
            bytes.withUnsafeBytes { raw in
                if case .failure(let got) = BackplaneEnvelope.parse(raw) { XCTAssertEqual(got, error) } else { XCTFail("accepted \(bytes)") }
            }
        }
    }

    func testInstanceIDsComeFromTheCSPRNG() {
        let ids = Set((0..<1000).map { _ in InstanceID.random() })
        XCTAssertEqual(ids.count, 1000)
    }
}
