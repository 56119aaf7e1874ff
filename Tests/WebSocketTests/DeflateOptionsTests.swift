import XCTest
@testable import WebSocket

final class DeflateOptionsTests: XCTestCase {
    func rejected(_ make: () throws -> DeflateOptions) -> ConfigurationError? {
        do { _ = try make(); return nil } catch { return error as? ConfigurationError }
    }

    func testDefaultsAndValidValuesAreKept() throws {
        let d = DeflateOptions()
        XCTAssertEqual([d.serverMaxWindowBits, d.clientMaxWindowBits, d.memLevel, d.compressionLevel, d.minSizeToCompress],
                       [15, 15, 8, 6, 64])
        XCTAssertTrue(d.enabled)
        XCTAssertEqual(try DeflateOptions(), d)
        let o = try DeflateOptions(serverMaxWindowBits: 9, clientMaxWindowBits: 8, memLevel: 1, compressionLevel: 0,
                                   minSizeToCompress: 0)
        XCTAssertEqual([o.serverMaxWindowBits, o.clientMaxWindowBits, o.memLevel, o.compressionLevel, o.minSizeToCompress],
                       [9, 8, 1, 0, 0])
        var s = DeflateOptions()
        s.serverMaxWindowBits = 10
        s.memLevel = 9
        XCTAssertEqual([s.serverMaxWindowBits, s.memLevel], [10, 9])
    }

    // The trap: out-of-range values were clamped silently.
    func testEveryRangeIsCheckedWithAClearError() {
        let cases: [(String, Int, () throws -> DeflateOptions)] = [
            ("serverMaxWindowBits", 8, { try DeflateOptions(serverMaxWindowBits: 8) }),
            ("serverMaxWindowBits", 16, { try DeflateOptions(serverMaxWindowBits: 16) }),
            ("clientMaxWindowBits", 7, { try DeflateOptions(clientMaxWindowBits: 7) }),
            ("clientMaxWindowBits", 16, { try DeflateOptions(clientMaxWindowBits: 16) }),
            ("memLevel", 0, { try DeflateOptions(memLevel: 0) }),
            ("memLevel", 10, { try DeflateOptions(memLevel: 10) }),
            ("compressionLevel", -1, { try DeflateOptions(compressionLevel: -1) }),
            ("compressionLevel", 10, { try DeflateOptions(compressionLevel: 10) }),
            ("minSizeToCompress", -1, { try DeflateOptions(minSizeToCompress: -1) }),
        ]
        for (setting, value, make) in cases {
            let e = rejected(make)
            XCTAssertEqual(e?.setting, setting, "\(setting) \(value)")
            XCTAssertEqual(e?.value, value)
        }
        XCTAssertEqual(rejected { try DeflateOptions(serverMaxWindowBits: 8) }?.description,
                       "serverMaxWindowBits must be 9–15 (zlib cannot compress raw deflate with 8), got 8")
    }

    // One parser for window bits on both sides of the handshake (RFC 7692 §7.1.2.1 grammar).
    func testWindowBitsParser() {
        for (text, bits) in [("8", 8), ("9", 9), ("10", 10), ("15", 15)] {
            XCTAssertEqual(DeflateParameters.windowBits(text), bits)
        }
        for text in ["7", "16", "08", "+9", " 9", "9 ", "", "1", "-8", "0x9", "١٠"] {
            XCTAssertNil(DeflateParameters.windowBits(text), text)
        }
        // The client's check of the server's answer uses the same rule (it took Int(_:) before,
        // which accepted "09" and "+9").
        XCTAssertNil(ClientHandshake.deflateResponse(["permessage-deflate; server_max_window_bits=09"]))
        XCTAssertNil(ClientHandshake.deflateResponse(["permessage-deflate; client_max_window_bits=+9"]))
        XCTAssertEqual(ClientHandshake.deflateResponse(["permessage-deflate; server_max_window_bits=\"10\"; client_no_context_takeover"]),
                       DeflateParameters(clientNoContextTakeover: true, serverMaxWindowBits: 10))
    }

    func testParametersPerSide() {
        let p = DeflateParameters(serverNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 12)
        XCTAssertEqual(p.maxWindowBits(of: .server), 10)
        XCTAssertEqual(p.maxWindowBits(of: .client), 12)
        XCTAssertTrue(p.noContextTakeover(of: .server))
        XCTAssertFalse(p.noContextTakeover(of: .client))
        let s = PerMessageDeflate(role: .server, parameters: p)
        XCTAssertEqual([s.compressWindowBits, s.decompressWindowBits], [10, 12])
        let c = PerMessageDeflate(role: .client, parameters: DeflateParameters(serverMaxWindowBits: 8))
        XCTAssertEqual([c.compressWindowBits, c.decompressWindowBits], [15, 9])  // inflate 8 with 9 bits
        XCTAssertTrue(c.canCompress)
        XCTAssertFalse(PerMessageDeflate(role: .server, parameters: DeflateParameters(serverMaxWindowBits: 8)).canCompress)
    }
}
