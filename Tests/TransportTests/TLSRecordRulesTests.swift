@testable import Transport
import XCTest

/// The strictness rules of our record layer that tlsfuzzer checks against OpenSSL's
/// (issue 12): KeyUpdate values (RFC 8446 §4.6.3), handshake fragments (§5.1), alert
/// lengths (§6), AEAD limits and sequence numbers (§5.3, §5.5), max_fragment_length
/// (RFC 6066 §4), and secrets wiped on KeyUpdate.
final class TLSRecordRulesTests: XCTestCase {
    func pair(limit: Int = TLS13RecordLayer.maxPlaintext) -> (client: TLS13RecordLayer, server: TLS13RecordLayer) {
        let c2s = [UInt8](repeating: 0x11, count: 32), s2c = [UInt8](repeating: 0x22, count: 32)
        return (TLS13RecordLayer(role: .client, suite: .aes128GCM, readSecret: s2c, writeSecret: c2s, plaintextLimit: limit),
                TLS13RecordLayer(role: .server, suite: .aes128GCM, readSecret: c2s, writeSecret: s2c, plaintextLimit: limit))
    }

    /// One record of inner `type` holding `content`, sealed by `layer`'s write direction.
    func record(_ layer: TLS13RecordLayer, type: UInt8, _ content: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: content.count + 64)
        let n = content.withUnsafeBytes { c in out.withUnsafeMutableBytes { layer.write.seal(type: type, c, into: $0.baseAddress!) } }
        return Array(out[0..<n])
    }

    func open(_ layer: TLS13RecordLayer, _ records: [UInt8]) throws -> (consumed: Int, data: [UInt8]) {
        var out = [UInt8](repeating: 0, count: max(records.count, 1))
        let r = try records.withUnsafeBytes { i in try out.withUnsafeMutableBytes { try layer.open(i, into: $0) } }
        return (r.consumed, Array(out[0..<r.produced]))
    }

    func assertError(_ layer: TLS13RecordLayer, _ records: [UInt8], alert: UInt8, _ line: UInt = #line) {
        XCTAssertThrowsError(try open(layer, records), line: line) {
            XCTAssertEqual(($0 as? TLSRecordError)?.alert, alert, "\($0)", line: line)
        }
    }

    /// §4.6.3: request_update other than 0 or 1 → illegal_parameter; a KeyUpdate that is not
    /// exactly one byte → decode_error.
    func testKeyUpdateValues() {
        for value: UInt8 in [2, 3, 0x80, 0xff] {
            let (c, s) = pair()
            assertError(s, record(c, type: 22, [24, 0, 0, 1, value]), alert: 47)
        }
        var (c, s) = pair()
        assertError(s, record(c, type: 22, [24, 0, 0, 0]), alert: 50)
        (c, s) = pair()
        assertError(s, record(c, type: 22, [24, 0, 0, 2, 0, 0]), alert: 50)
    }

    /// §5.1: no other record type between the fragments of a handshake message.
    func testNothingBetweenHandshakeFragments() throws {
        var (c, s) = pair()
        // Fragmented KeyUpdate without anything in between: fine.
        let fragments = record(c, type: 22, [24, 0]) + record(c, type: 22, [0, 1, 0])
        c.write.update()  // the client's own keys move after its KeyUpdate
        let whole = try open(s, fragments + record(c, type: 23, [7]))
        XCTAssertEqual(whole.data, [7])
        XCTAssertEqual(s.readSequence, 1, "the KeyUpdate took effect")
        for between: (UInt8, [UInt8]) in [(23, Array("GET /".utf8)), (23, []), (21, [1, 0])] {
            (c, s) = pair()
            assertError(s, record(c, type: 22, [24, 0, 0]) + record(c, type: between.0, between.1)
                        + record(c, type: 22, [1, 1]), alert: 10)
        }
    }

    /// §5.1: zero-length handshake fragments are not allowed.
    func testEmptyHandshakeRecord() {
        let (c, s) = pair()
        assertError(s, record(c, type: 22, []), alert: 10)
    }

    /// A message that can never be valid is refused at its header, not buffered.
    func testImpossibleMessagesFailAtTheHeader() {
        var (c, s) = pair()
        // A server receives no NewSessionTicket / ClientHello / Finished after the handshake:
        // the first byte is enough.
        for type: UInt8 in [4, 1, 20, 13, 0xff] {
            (c, s) = pair()
            assertError(s, record(c, type: 22, [type]), alert: 10)
        }
        // A KeyUpdate claiming 64 KiB: refused at its 4-byte header.
        (c, s) = pair()
        assertError(s, record(c, type: 22, [24, 0, 0xff, 0xff]), alert: 50)
        XCTAssertTrue(s.handshakeBytes.isEmpty || s.handshakeBytes.count == 4)
    }

    /// §6: an alert is two bytes. Empty, short or long alert records → unexpected_message
    /// (what OpenSSL sends, and tlsfuzzer's test-tls13-empty-alert expects).
    func testAlertLengths() {
        for content: [UInt8] in [[], [2], [2, 40, 0], [1, 0, 1, 0]] {
            let (c, s) = pair()
            assertError(s, record(c, type: 21, content), alert: 10)
        }
    }

    /// §5.5: after `keyUpdateInterval` records under one key we send a KeyUpdate first; the
    /// peer follows and every record still opens.
    func testOwnKeyUpdateAfterTheBound() throws {
        let (c, s) = pair()
        s.keyUpdateInterval = 3
        var wire: [UInt8] = []
        for i in 0..<7 {
            var out = [UInt8](repeating: 0, count: 128)
            let (_, n) = [UInt8(i)].withUnsafeBytes { p in out.withUnsafeMutableBytes { s.seal(p, into: $0) } }
            wire += out[0..<n]
        }
        XCTAssertEqual(s.keyUpdatesSent, 2, "records 4 and 7 are preceded by a KeyUpdate")
        XCTAssertEqual(s.writeSequence, 1)
        XCTAssertEqual(try open(c, wire).data, [0, 1, 2, 3, 4, 5, 6])
        XCTAssertFalse(c.keyUpdateOwed, "our read key was fresh: no update requested")
    }

    /// §5.3: a sequence number never wraps. Ours rekeys first; the peer's is refused.
    func testSequenceNumbersNeverWrap() {
        let (c, s) = pair()
        s.write.seq = UInt64.max - 1
        var out = [UInt8](repeating: 0, count: 128)
        _ = [UInt8(1)].withUnsafeBytes { p in out.withUnsafeMutableBytes { s.seal(p, into: $0) } }
        XCTAssertEqual(s.keyUpdatesSent, 1)
        XCTAssertEqual(s.writeSequence, 1)
        c.write.seq = UInt64.max
        let (_, s2) = pair()
        s2.read.seq = UInt64.max
        var rec = [UInt8](repeating: 0, count: 64)
        // A record "sealed" with any key: the layer must refuse before trying to open it.
        rec[0] = 23; rec[1] = 3; rec[2] = 3; rec[4] = 20
        assertError(s2, Array(rec[0..<25]), alert: 10)
    }

    /// RFC 6066 §4: with max_fragment_length 512 agreed, we send records of at most 512
    /// bytes of plaintext and refuse longer ones.
    func testMaxFragmentLength() throws {
        let (c, s) = pair(limit: 512)
        let data = [UInt8](repeating: 5, count: 2000)
        var out = [UInt8](repeating: 0, count: TLS13RecordLayer.sealedSize(2000, plaintextLimit: 512))
        let (used, n) = data.withUnsafeBytes { p in out.withUnsafeMutableBytes { s.seal(p, into: $0) } }
        XCTAssertEqual(used, 2000)
        XCTAssertEqual(n, 2000 + 4 * 22, "four records of at most 512 bytes")
        XCTAssertEqual(try open(c, Array(out[0..<n])).data, data)
        let (c2, s2) = pair(limit: 512)
        _ = c2
        let full = pair().client
        assertError(s2, record(full, type: 23, [UInt8](repeating: 1, count: 513)), alert: 22)
    }

    /// A KeyUpdate overwrites secret, key and IV in place: no byte of the old ones is left.
    func testKeyUpdateLeavesNoOldKeyMaterial() {
        let (c, _) = pair()
        let before = c.write.materialBytes
        c.write.update()
        let after = c.write.materialBytes
        for (offset, length) in [(0, 32), (48, 16), (80, 12)] {
            let old = Array(before[offset..<(offset + length)])
            XCTAssertNotEqual(Array(after[offset..<(offset + length)]), old)
            XCTAssertFalse(contains(after, old), "old bytes at \(offset) survive somewhere")
        }
        XCTAssertEqual(c.write.secret, TLS13KeySchedule.expandLabel(.aes128GCM, secret: Array(before[0..<32]), label: "traffic upd", length: 32))
    }

    /// Two KeyUpdates with update_requested get two KeyUpdates back, before any data (as
    /// OpenSSL does; tlsfuzzer's "multiple KeyUpdate messages").
    func testOneKeyUpdateAnswerPerRequest() throws {
        let (c, s) = pair()
        var wire: [UInt8] = []
        for _ in 0..<2 { wire += record(c, type: 22, [24, 0, 0, 1, 1]); c.write.update() }
        _ = try open(s, wire)
        var out = [UInt8](repeating: 0, count: 256)
        let (_, n) = [UInt8(9)].withUnsafeBytes { p in out.withUnsafeMutableBytes { s.seal(p, into: $0) } }
        XCTAssertEqual(s.keyUpdatesSent, 2)
        XCTAssertEqual(n, 2 * 27 + 23)
        XCTAssertEqual(try open(c, Array(out[0..<n])).data, [9])
        XCTAssertEqual(c.readSequence, 1, "the client followed both updates")
    }

    /// §5.4: content + type + padding may not exceed 2^14 + 1 bytes (tlsfuzzer's "too big
    /// plaintext, 2**14 - 8 with 9 bytes of padding": OpenSSL accepts it, we do not).
    func testInnerPlaintextLimitCountsPadding() throws {
        var (c, s) = pair()
        var out = [UInt8](repeating: 0, count: 1 << 15)
        var n = [UInt8](repeating: 1, count: (1 << 14) - 8).withUnsafeBytes { p in
            out.withUnsafeMutableBytes { c.write.seal(type: 23, p, into: $0.baseAddress!, padding: 9) }
        }
        assertError(s, Array(out[0..<n]), alert: 22)
        (c, s) = pair()
        n = [UInt8](repeating: 1, count: (1 << 14) - 8).withUnsafeBytes { p in
            out.withUnsafeMutableBytes { c.write.seal(type: 23, p, into: $0.baseAddress!, padding: 8) }
        }
        XCTAssertEqual(try open(s, Array(out[0..<n])).data.count, (1 << 14) - 8, "exactly 2^14 + 1: fine")
    }

    func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= hay.count else { return false }
        return (0...(hay.count - needle.count)).contains { Array(hay[$0..<($0 + needle.count)]) == needle }
    }
}
