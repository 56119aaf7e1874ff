import CMallocCounter
import COpenSSL
import Glibc
@testable import Transport
import XCTest
import TestSupport

/// Our TLS 1.3 record layer (RFC 8446 §5, §4.6.3, §6, §7): the key schedule against RFC 8448's
/// trace, record protection both ways, every rejection, and interop with OpenSSL's own record
/// layer over a socket pair (data, KeyUpdate both ways, close_notify).
final class TLSRecordTests: XCTestCase {
    func hex(_ s: String) -> [UInt8] {
        let u = Array(s.replacingOccurrences(of: " ", with: "").utf8)
        func nib(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
        return stride(from: 0, to: u.count, by: 2).map { nib(u[$0]) << 4 | nib(u[$0 + 1]) }
    }

    /// RFC 8448 §3 ("Simple 1-RTT Handshake"): the server's application traffic secret and the
    /// write key and IV derived from it.
    func testKeyScheduleMatchesRFC8448() {
        let secret = hex("a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43")
        XCTAssertEqual(TLS13KeySchedule.expandLabel(.aes128GCM, secret: secret, label: "key", length: 16),
                       hex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56"))
        XCTAssertEqual(TLS13KeySchedule.expandLabel(.aes128GCM, secret: secret, label: "iv", length: 12),
                       hex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84"))
    }

    /// A connected pair: what `client` seals, `server` opens, and the other way round.
    func pair(_ suite: TLS13Suite = .aes128GCM) -> (client: TLS13RecordLayer, server: TLS13RecordLayer) {
        let c2s = [UInt8](repeating: 0x11, count: suite.hashLength)
        let s2c = [UInt8](repeating: 0x22, count: c2s.count)
        return (TLS13RecordLayer(role: .client, suite: suite, readSecret: s2c, writeSecret: c2s),
                TLS13RecordLayer(role: .server, suite: suite, readSecret: c2s, writeSecret: s2c))
    }

    func seal(_ layer: TLS13RecordLayer, _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: TLS13RecordLayer.sealedSize(data.count))
        let (used, n) = data.withUnsafeBytes { d in out.withUnsafeMutableBytes { layer.seal(d, into: $0) } }
        XCTAssertEqual(used, data.count)
        return Array(out[0..<n])
    }

    func open(_ layer: TLS13RecordLayer, _ records: [UInt8]) throws -> (consumed: Int, data: [UInt8]) {
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: max(records.count, 1), alignment: 16)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: max(records.count, 1), alignment: 16)
        defer { input.deallocate(); out.deallocate() }
        records.withUnsafeBytes { if $0.count > 0 { input.copyMemory(from: $0) } }
        let r = try layer.open(UnsafeRawBufferPointer(rebasing: input[0..<records.count]), into: out)
        return (r.consumed, Array(out[0..<r.produced]))
    }

    func testRoundTripEverySuiteAndRecordSplitting() throws {
        for suite in [TLS13Suite.aes128GCM, .aes256GCM, .chacha20Poly1305] {
            let (c, s) = pair(suite)
            let big = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let records = seal(c, big)
            // §5.1: at most 2^14 bytes of plaintext per record → 3 records, 22 bytes each on top.
            XCTAssertEqual(records.count, big.count + 3 * 22)
            XCTAssertEqual(c.writeSequence, 3)
            let (used, data) = try open(s, records)
            XCTAssertEqual(used, records.count)
            XCTAssertEqual(data, big, "\(suite.id)")
            XCTAssertEqual(s.readSequence, 3)
            // And back, an empty-plaintext-free small message.
            XCTAssertEqual(try open(c, seal(s, [1, 2, 3])).data, [1, 2, 3])
        }
    }

    /// An idle connection drops its cipher contexts and keeps working after (contexts are
    /// re-created from the stored keys, sequence numbers continue).
    func testIdleReleaseKeepsTheSession() throws {
        let (c, s) = pair()
        XCTAssertEqual(try open(s, seal(c, [1, 2])).data, [1, 2])
        XCTAssertTrue(c.holdsCipherContexts && s.holdsCipherContexts)
        c.releaseIdleState()
        s.releaseIdleState()
        XCTAssertFalse(c.holdsCipherContexts || s.holdsCipherContexts)
        XCTAssertEqual(try open(s, seal(c, [3, 4])).data, [3, 4])
        XCTAssertEqual(s.readSequence, 2)
    }

    func testPartialRecordIsLeftForLater() throws {
        let (c, s) = pair()
        let records = seal(c, Array(repeating: 9, count: 100)) + seal(c, [7])
        let first = try open(s, Array(records[0..<60]))
        XCTAssertEqual(first.consumed, 0)
        XCTAssertEqual(first.data, [])
        let whole = try open(s, Array(records[0..<(122 + 10)]))  // one record and a piece
        XCTAssertEqual(whole.consumed, 122)
        XCTAssertEqual(whole.data.count, 100)
        XCTAssertEqual(try open(s, Array(records[122...])).data, [7])
    }

    func testTamperedRecordIsBadRecordMAC() {
        let (c, s) = pair()
        var records = seal(c, Array("hello".utf8))
        records[records.count - 3] ^= 1
        XCTAssertThrowsError(try open(s, records)) { XCTAssertEqual($0 as? TLSRecordError, .badRecordMAC) }
        // A replayed record (sequence number moved on) fails too.
        let (c2, s2) = pair()
        let one = seal(c2, [1])
        XCTAssertNoThrow(try open(s2, one))
        XCTAssertThrowsError(try open(s2, one)) { XCTAssertEqual($0 as? TLSRecordError, .badRecordMAC) }
    }

    /// Good records and then a bad one in one input: the good bytes come back with the error
    /// (not lost with it), and the layer opens nothing more (RFC 8446 §6.2).
    func testGoodRecordsBeforeABadOneAreKept() throws {
        let (c, s) = pair()
        let good = seal(c, Array("one ".utf8)) + seal(c, Array("two".utf8))
        var tampered = seal(c, Array("bad".utf8))
        tampered[tampered.count - 1] ^= 1
        let input = good + tampered + seal(c, Array("after".utf8))
        let inBuf = UnsafeMutableRawBufferPointer.allocate(byteCount: input.count, alignment: 16)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: input.count, alignment: 16)
        defer { inBuf.deallocate(); out.deallocate() }
        input.withUnsafeBytes { inBuf.copyMemory(from: $0) }
        let r = try s.open(UnsafeRawBufferPointer(inBuf), into: out)
        XCTAssertEqual(r.error, .badRecordMAC)
        XCTAssertEqual(Array(out[0..<r.produced]), Array("one two".utf8))
        XCTAssertEqual(s.failure, .badRecordMAC)
        XCTAssertThrowsError(try open(s, seal(c, [1]))) { XCTAssertEqual($0 as? TLSRecordError, .badRecordMAC) }
    }

    func testOversizedAndUnprotectedRecordsAreRejected() {
        let (_, s) = pair()
        // §5.2: ciphertext longer than 2^14 + 256 → record_overflow, decided at the header.
        XCTAssertThrowsError(try open(s, [23, 3, 3, 0x41, 0x01] + [UInt8](repeating: 0, count: 8))) {
            XCTAssertEqual($0 as? TLSRecordError, .recordOverflow)
        }
        // After the handshake every record has outer type application_data (a fresh layer:
        // nothing is opened after a fatal error).
        XCTAssertThrowsError(try open(pair().server, [22, 3, 3, 0, 1, 0])) {
            guard case .unexpectedMessage = $0 as? TLSRecordError else { return XCTFail("\($0)") }
        }
    }

    func testKeyUpdateBothWays() throws {
        let (c, s) = pair()
        // The client updates its keys and asks the server to update too (§4.6.3).
        var ku = [UInt8](repeating: 0, count: 64)
        let n = ku.withUnsafeMutableBytes { c.sealKeyUpdate(requestPeer: true, into: $0.baseAddress!) }
        let afterUpdate = seal(c, Array("new keys".utf8))
        XCTAssertEqual(c.writeSequence, 1, "sequence restarts with the new key")
        let opened = try open(s, Array(ku[0..<n]) + afterUpdate)
        XCTAssertEqual(String(decoding: opened.data, as: UTF8.self), "new keys")
        XCTAssertTrue(s.keyUpdateOwed)
        // The server's next records start with its own KeyUpdate, then use the new key.
        let reply = seal(s, Array("ok".utf8))
        XCTAssertFalse(s.keyUpdateOwed)
        XCTAssertEqual(try open(c, reply).data, Array("ok".utf8))
        XCTAssertFalse(c.keyUpdateOwed, "update_not_requested must not ask for another")
    }

    /// Records that carry no application data (empty ones, KeyUpdates) cost work and give
    /// nothing: 32 in a row are fine, the 33rd fails the connection.
    func testRunsOfRecordsWithoutDataAreBounded() throws {
        let (c, s) = pair()
        var rec = [UInt8](repeating: 0, count: 64)
        func empty() -> [UInt8] {
            let n = rec.withUnsafeMutableBytes { c.write.seal(type: 23, UnsafeRawBufferPointer(start: nil, count: 0), into: $0.baseAddress!) }
            return Array(rec[0..<n])
        }
        func keyUpdate() -> [UInt8] {
            let n = rec.withUnsafeMutableBytes { c.sealKeyUpdate(requestPeer: false, into: $0.baseAddress!) }
            return Array(rec[0..<n])
        }
        var run: [UInt8] = []
        for i in 0..<32 { run += i % 2 == 0 ? empty() : keyUpdate() }
        XCTAssertEqual(try open(s, run + seal(c, [7])).data, [7], "32 in a row, then data: fine")
        run = []
        for _ in 0..<33 { run += empty() }
        XCTAssertThrowsError(try open(s, run)) {
            guard case .unexpectedMessage = $0 as? TLSRecordError else { return XCTFail("\($0)") }
        }
    }

    func testAlerts() throws {
        let (c, s) = pair()
        var rec = [UInt8](repeating: 0, count: 64)
        var n = rec.withUnsafeMutableBytes { c.sealAlert(0, into: $0.baseAddress!) }
        let r = try open(s, Array(rec[0..<n]) + seal(c, [1]))
        XCTAssertTrue(s.receivedCloseNotify)
        XCTAssertEqual(r.data, [], "nothing after close_notify is delivered")
        let (c2, s2) = pair()
        n = rec.withUnsafeMutableBytes { c2.sealAlert(40, into: $0.baseAddress!) }  // handshake_failure
        XCTAssertThrowsError(try open(s2, Array(rec[0..<n]))) { XCTAssertEqual($0 as? TLSRecordError, .peerAlert(40)) }
    }

    // MARK: - Interop with OpenSSL's record layer

    func testInteropWithOpenSSLClientIncludingKeyUpdate() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        defer { close(fds[0]); close(fds[1]) }
        let dir = TestCertificates.dir
        let context = try TLSContext(certificateFile: dir + "/cert.pem", keyFile: dir + "/key.pem")
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 64)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 64)
        defer { scratch.deallocate(); buffer.deallocate() }
        let server = try XCTUnwrap(context.makeStream(fd: fds[0], scratch: scratch))

        let cctx = try XCTUnwrap(SSL_CTX_new(TLS_client_method()))
        defer { SSL_CTX_free(cctx) }
        let client = try XCTUnwrap(SSL_new(cctx))
        defer { SSL_free(client) }
        SSL_set_fd(client, fds[1])
        SSL_set_connect_state(client)

        var serverDone = false, clientDone = false
        for _ in 0..<1000 where !(serverDone && clientDone) {
            if !clientDone { clientDone = SSL_do_handshake(client) == 1 }
            if !serverDone {
                switch server.handshake() {
                case .done: serverDone = true
                case .error(let e): return XCTFail(e)
                default: break
                }
            }
        }
        XCTAssertTrue(serverDone && clientDone)
        XCTAssertEqual(server.protocolVersion, "TLSv1.3")
        XCTAssertNotNil(server.records, "TLS 1.3 must switch to our record layer")

        func serverRead() -> [UInt8] {
            var got: [UInt8] = []
            for _ in 0..<100 {
                if case .done(let n) = server.read(into: buffer) { got += buffer[0..<n] } else if !got.isEmpty { break }
            }
            return got
        }
        func clientRead(_ count: Int) -> [UInt8] {
            var got = [UInt8](repeating: 0, count: count), have = 0
            for _ in 0..<10_000 where have < count {
                let n = got.withUnsafeMutableBytes { SSL_read(client, $0.baseAddress! + have, Int32(count - have)) }
                if n > 0 { have += Int(n) }
            }
            return Array(got[0..<have])
        }
        func clientWrite(_ bytes: [UInt8]) { XCTAssertEqual(SSL_write(client, bytes, Int32(bytes.count)), Int32(bytes.count)) }
        func serverWrite(_ bytes: [UInt8]) {
            XCTAssertEqual(bytes.withUnsafeBytes { server.write($0) }, .done(bytes.count))
        }

        clientWrite(Array("hello".utf8))
        XCTAssertEqual(serverRead(), Array("hello".utf8))
        let big = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        serverWrite(big)
        XCTAssertEqual(clientRead(big.count), big)

        // The client rekeys and asks us to (SSL_KEY_UPDATE_REQUESTED = 1).
        XCTAssertEqual(SSL_key_update(client, 1), 1)
        clientWrite(Array("after update".utf8))
        XCTAssertEqual(serverRead(), Array("after update".utf8))
        serverWrite(Array("our keys moved too".utf8))
        XCTAssertEqual(clientRead(18), Array("our keys moved too".utf8))
        XCTAssertEqual(server.records?.writeSequence, 1, "KeyUpdate then one record under the new key")

        // close_notify from the client is end of stream.
        _ = SSL_shutdown(client)
        var sawEOF = false
        for _ in 0..<100 where !sawEOF { if case .eof = server.read(into: buffer) { sawEOF = true } }
        XCTAssertTrue(sawEOF)
    }

    /// Heap bytes an idle server session keeps after its handshake (and one record each way),
    /// ours vs OpenSSL's record layer: the reason the record layer exists.
    func testIdleSessionHeapBytes() throws {
        try XCTSkipIf(wss_malloc_counter_available() == 0, "heap accounting is off under sanitizers")
        let dir = TestCertificates.dir
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 64)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 64)
        defer { scratch.deallocate(); buffer.deallocate() }
        let cctx = try XCTUnwrap(SSL_CTX_new(TLS_client_method()))
        defer { SSL_CTX_free(cctx) }

        func perSession(native: Bool) throws -> Int {
            let context = try TLSContext(certificateFile: dir + "/cert.pem", keyFile: dir + "/key.pem", nativeRecords: native)
            let n = 64
            var kept: [TLSStream] = []
            var fdsToClose: [Int32] = []
            defer { for fd in fdsToClose { close(fd) } }
            // One session first so lazily created process-wide state is not counted.
            for round in 0...1 {
                let count = round == 0 ? 1 : n
                let before = wss_heap_in_use()
                for _ in 0..<count {
                    var fds: [Int32] = [0, 0]
                    XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
                    for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
                    fdsToClose += fds
                    let server = try XCTUnwrap(context.makeStream(fd: fds[0], scratch: scratch))
                    let client = try XCTUnwrap(SSL_new(cctx))
                    SSL_set_fd(client, fds[1])
                    SSL_set_connect_state(client)
                    var done = (false, false)
                    for _ in 0..<1000 where !(done.0 && done.1) {
                        if !done.1 { done.1 = SSL_do_handshake(client) == 1 }
                        if !done.0, case .done = server.handshake() { done.0 = true }
                    }
                    XCTAssertTrue(done.0 && done.1)
                    XCTAssertEqual(SSL_write(client, "ping", 4), 4)
                    for _ in 0..<100 { if case .done = server.read(into: buffer) { break } }
                    XCTAssertEqual("pong".withCString { server.write(UnsafeRawBufferPointer(start: $0, count: 4)) }, .done(4))
                    var tmp = [UInt8](repeating: 0, count: 16)
                    _ = SSL_read(client, &tmp, 16)
                    SSL_free(client)
                    server.releaseIdleState()
                    kept.append(server)
                }
                if round == 1 { return (Int(wss_heap_in_use()) - Int(before)) / n }
            }
            return 0
        }
        let ours = try perSession(native: true)
        let openssl = try perSession(native: false)
        print("idle TLS session heap: native records \(ours) B, OpenSSL records \(openssl) B")
        XCTAssertLessThan(ours, 1200, "an idle native session keeps only keys and small state")
        XCTAssertGreaterThan(openssl, 8000, "sanity: OpenSSL's SSL object is what we avoid")
    }
}
