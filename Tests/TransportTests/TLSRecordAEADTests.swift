import COpenSSL
@testable import Transport
import XCTest

/// Records sealed and opened through the provider's own AEAD functions (COpenSSL/aead.h) are
/// the same bytes as through EVP, for every suite, size and padding, and a changed byte
/// anywhere fails the tag the same way.
final class TLSRecordAEADTests: XCTestCase {
    let suites: [TLS13Suite] = [.aes128GCM, .aes256GCM, .chacha20Poly1305]
    let sizes = [0, 1, 15, 16, 17, 64, 511, 512, 513, 4096, 16384]

    func direction(_ suite: TLS13Suite, encrypting: Bool, evp: Bool, seq: UInt64 = 0) -> TLS13Direction {
        let secret = (0..<suite.hashLength).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 5) }
        let d = secret.withUnsafeBytes { TLS13Direction(suite: suite, secret: $0, encrypting: encrypting, throughEVP: evp) }
        d.seq = seq
        return d
    }

    func seal(_ d: TLS13Direction, type: UInt8 = 23, _ plaintext: [UInt8], padding: Int = 0) -> [UInt8] {
        var out = [UInt8](repeating: 0xee, count: plaintext.count + 22 + padding)
        let n = plaintext.withUnsafeBytes { p in out.withUnsafeMutableBytes { d.seal(type: type, p, into: $0.baseAddress!, padding: padding) } }
        XCTAssertEqual(n, out.count)
        return out
    }

    func open(_ d: TLS13Direction, _ record: [UInt8]) throws -> (type: UInt8, data: [UInt8]) {
        let rec = UnsafeMutableRawBufferPointer.allocate(byteCount: record.count, alignment: 16)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: record.count, alignment: 16)
        defer { rec.deallocate(); out.deallocate() }
        record.withUnsafeBytes { rec.copyMemory(from: $0) }
        let r = try d.open(header: rec.baseAddress!, body: UnsafeRawBufferPointer(rebasing: rec[5...]), into: out.baseAddress!)
        return (r.type, Array(out[0..<r.length]))
    }

    func testEverySuiteHasTheProviderFunctions() {
        for suite in suites {
            XCTAssertNotNil(suite.aead, "suite \(suite.id)")
            XCTAssertNotNil(direction(suite, encrypting: true, evp: false).aead)
            XCTAssertNil(direction(suite, encrypting: true, evp: true).aead)
        }
    }

    func testSameRecordsAsEVPBothWays() throws {
        for suite in suites {
            // A sequence number with every byte set checks the nonce's XOR over all 8 bytes.
            for seq: UInt64 in [0, 1, 0x0102_0304_0506_0708] {
                let direct = direction(suite, encrypting: true, evp: false, seq: seq)
                let evp = direction(suite, encrypting: true, evp: true, seq: seq)
                let openDirect = direction(suite, encrypting: false, evp: false, seq: seq)
                let openEVP = direction(suite, encrypting: false, evp: true, seq: seq)
                for size in sizes {
                    for padding in [0, 9] {
                        let plaintext = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ size) }
                        let a = seal(direct, plaintext, padding: padding)
                        let b = seal(evp, plaintext, padding: padding)
                        XCTAssertEqual(a, b, "suite \(suite.id) seq \(seq) size \(size) padding \(padding)")
                        let x = try open(openEVP, a), y = try open(openDirect, b)
                        XCTAssertEqual(x.data, plaintext)
                        XCTAssertEqual(y.data, plaintext)
                        XCTAssertEqual(x.type, 23)
                        XCTAssertEqual(y.type, 23)
                    }
                }
                // Both sides moved on by one record per seal/open.
                XCTAssertEqual(direct.seq, seq + UInt64(sizes.count * 2))
                XCTAssertEqual(openDirect.seq, direct.seq)
            }
        }
    }

    func testAnyChangedByteFailsTheTag() {
        for suite in suites {
            let record = seal(direction(suite, encrypting: true, evp: false), [UInt8](repeating: 0x41, count: 40))
            // header (the additional data), body and tag
            for i in [3, 4, 5, 20, record.count - 17, record.count - 16, record.count - 1] {
                var bad = record
                bad[i] ^= 0x01
                let reader = direction(suite, encrypting: false, evp: false)
                // (bytes 3 and 4 are the header's length: authenticated as additional data)
                XCTAssertThrowsError(try open(reader, bad), "suite \(suite.id) byte \(i)") { error in
                    XCTAssertEqual(error as? TLSRecordError, .badRecordMAC)
                }
                XCTAssertEqual(reader.seq, 0, "a failed record does not count")
                XCTAssertEqual(ERR_peek_error(), 0, "no error left on OpenSSL's queue")
            }
            // The right record under the wrong sequence number (nonce) fails too.
            XCTAssertThrowsError(try open(direction(suite, encrypting: false, evp: false, seq: 1), record))
            XCTAssertNoThrow(try open(direction(suite, encrypting: false, evp: false), record))
        }
    }

    func testIdleReleaseAndReuseOfTheProviderContext() throws {
        let w = direction(.aes128GCM, encrypting: true, evp: false)
        let r = direction(.aes128GCM, encrypting: false, evp: false)
        for round in 0..<3 {
            let record = seal(w, Array("round \(round)".utf8))
            XCTAssertTrue(w.hasContext)
            XCTAssertEqual(try open(r, record).data, Array("round \(round)".utf8))
            w.releaseContext(); r.releaseContext()
            XCTAssertFalse(w.hasContext || r.hasContext)
        }
    }
}
