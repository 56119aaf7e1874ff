import XCTest
@testable import WebSocket

final class PerMessageDeflateNegotiationTests: XCTestCase {
    func negotiate(_ headers: [String], _ options: DeflateOptions = DeflateOptions()) -> String? {
        DeflateNegotiation.negotiate(headers, options: options)?.responseHeader
    }

    func testPlainOffer() {
        let a = DeflateNegotiation.negotiate(["permessage-deflate"], options: DeflateOptions())
        XCTAssertEqual(a?.responseHeader, "permessage-deflate")
        XCTAssertEqual(a?.parameters, DeflateParameters())
    }

    func testBrowserOffer() {
        // Chrome and Firefox send this.
        let a = DeflateNegotiation.negotiate(["permessage-deflate; client_max_window_bits"], options: DeflateOptions())
        XCTAssertEqual(a?.responseHeader, "permessage-deflate")
        XCTAssertEqual(a?.parameters.clientMaxWindowBits, 15)
        // Configured smaller client window: answered.
        let b = DeflateNegotiation.negotiate(["permessage-deflate; client_max_window_bits"],
                                             options: try! DeflateOptions(clientMaxWindowBits: 12))
        XCTAssertEqual(b?.responseHeader, "permessage-deflate; client_max_window_bits=12")
        XCTAssertEqual(b?.parameters.clientMaxWindowBits, 12)
    }

    func testDisabled() {
        XCTAssertNil(negotiate(["permessage-deflate"], try! DeflateOptions(enabled: false)))
        XCTAssertNil(negotiate([]))
        XCTAssertNil(negotiate(["x-webkit-deflate-frame"]))
    }

    func testClientMaxWindowBitsWithValue() {
        XCTAssertEqual(negotiate(["permessage-deflate; client_max_window_bits=10"]),
                       "permessage-deflate; client_max_window_bits=10")
        XCTAssertEqual(negotiate(["permessage-deflate; client_max_window_bits=10"], try! DeflateOptions(clientMaxWindowBits: 12)),
                       "permessage-deflate; client_max_window_bits=10")
        XCTAssertEqual(negotiate(["permessage-deflate; client_max_window_bits=14"], try! DeflateOptions(clientMaxWindowBits: 12)),
                       "permessage-deflate; client_max_window_bits=12")
        XCTAssertEqual(negotiate(["permessage-deflate; client_max_window_bits=15"]), "permessage-deflate")
        // 8 is fine for the client's window: we only inflate with it.
        let a = DeflateNegotiation.negotiate(["permessage-deflate; client_max_window_bits=8"], options: DeflateOptions())
        XCTAssertEqual(a?.responseHeader, "permessage-deflate; client_max_window_bits=8")
        XCTAssertEqual(a?.parameters.clientMaxWindowBits, 8)
    }

    func testClientWindowConfiguredButNotAdvertised() {
        // The client did not say it can limit its window: decline that offer, take the next.
        XCTAssertNil(negotiate(["permessage-deflate"], try! DeflateOptions(clientMaxWindowBits: 12)))
        XCTAssertEqual(negotiate(["permessage-deflate, permessage-deflate; client_max_window_bits"],
                                 try! DeflateOptions(clientMaxWindowBits: 12)),
                       "permessage-deflate; client_max_window_bits=12")
    }

    func testServerMaxWindowBits() {
        let a = DeflateNegotiation.negotiate(["permessage-deflate; server_max_window_bits=10"], options: DeflateOptions())
        XCTAssertEqual(a?.responseHeader, "permessage-deflate; server_max_window_bits=10")
        XCTAssertEqual(a?.parameters.serverMaxWindowBits, 10)
        // Configured lower than offered: ours, answered.
        XCTAssertEqual(negotiate(["permessage-deflate; server_max_window_bits=13"], try! DeflateOptions(serverMaxWindowBits: 11)),
                       "permessage-deflate; server_max_window_bits=11")
        // Not offered but configured below 15: announced.
        XCTAssertEqual(negotiate(["permessage-deflate"], try! DeflateOptions(serverMaxWindowBits: 12)),
                       "permessage-deflate; server_max_window_bits=12")
        XCTAssertEqual(negotiate(["permessage-deflate; server_max_window_bits=15"]),
                       "permessage-deflate; server_max_window_bits=15")
        // Without a value it is invalid.
        XCTAssertNil(negotiate(["permessage-deflate; server_max_window_bits"]))
    }

    func testServerWindowBits8MeansNoCompressionAndIsTheLastChoice() {
        // zlib cannot compress raw deflate with an 8-bit window: such an offer is taken only if
        // nothing else is acceptable, and then the server never compresses.
        let a = DeflateNegotiation.negotiate(["permessage-deflate; server_max_window_bits=8"], options: DeflateOptions())
        XCTAssertEqual(a?.responseHeader, "permessage-deflate; server_max_window_bits=8")
        XCTAssertEqual(a?.parameters.serverMaxWindowBits, 8)
        XCTAssertEqual(negotiate(["permessage-deflate; server_max_window_bits=8; client_max_window_bits, permessage-deflate; client_max_window_bits"]),
                       "permessage-deflate")
        // Autobahn 13.7.x: [(no_context_takeover, 8), (no_context_takeover, -), (-, -)].
        XCTAssertEqual(negotiate(["permessage-deflate; server_no_context_takeover; server_max_window_bits=8, "
                                  + "permessage-deflate; server_no_context_takeover, permessage-deflate"]),
                       "permessage-deflate; server_no_context_takeover")
        XCTAssertEqual(negotiate(["permessage-deflate; server_max_window_bits=8, permessage-deflate; foo"]),
                       "permessage-deflate; server_max_window_bits=8")
        XCTAssertEqual(negotiate(["permessage-deflate; server_max_window_bits=9"]),
                       "permessage-deflate; server_max_window_bits=9")
        // Configuration cannot ask for 8 (rejected, not raised to 9).
        XCTAssertThrowsError(try DeflateOptions(serverMaxWindowBits: 8)) {
            XCTAssertEqual(($0 as? ConfigurationError)?.setting, "serverMaxWindowBits")
        }
    }

    func testServerWindowBits8Connection() throws {
        let a = try XCTUnwrap(DeflateNegotiation.negotiate(["permessage-deflate; server_max_window_bits=8"],
                                                           options: DeflateOptions()))
        let s = PerMessageDeflate(role: .server, parameters: a.parameters)
        XCTAssertFalse(s.canCompress)
        XCTAssertFalse(s.shouldCompress(size: 1 << 20))
        // The client's messages are still inflated.
        let c = PerMessageDeflate(role: .client, parameters: a.parameters)
        XCTAssertTrue(c.canCompress)
        let m = Array(String(repeating: "eight bits ", count: 300).utf8)
        XCTAssertEqual(try s.decompress(c.compress(m), limit: m.count), m)
        XCTAssertEqual(s.allocatedBytes, PerMessageDeflate.inflateMemory(windowBits: 15))  // no deflater
    }

    func testQuotedValues() {
        XCTAssertEqual(negotiate([#"permessage-deflate; server_max_window_bits="10""#]),
                       "permessage-deflate; server_max_window_bits=10")
        XCTAssertEqual(negotiate([#"permessage-deflate; client_max_window_bits="9""#]),
                       "permessage-deflate; client_max_window_bits=9")
        XCTAssertEqual(negotiate([#"permessage-deflate; server_max_window_bits="1\0""#]),
                       "permessage-deflate; server_max_window_bits=10")
        // A quoted empty string is still a value on a flag.
        XCTAssertNil(negotiate([#"permessage-deflate; server_no_context_takeover="""#]))
        XCTAssertNil(negotiate([#"permessage-deflate; server_max_window_bits=" 10""#]))
    }

    func testBadWindowValues() {
        for v in ["7", "16", "0", "08", "010", "+9", "-9", "9.0", "1O", "a", "\"\"", "99999999999999999999"] {
            XCTAssertNil(negotiate(["permessage-deflate; server_max_window_bits=\(v)"]), v)
            XCTAssertNil(negotiate(["permessage-deflate; client_max_window_bits=\(v)"]), v)
        }
        for v in 8...15 {
            XCTAssertNotNil(negotiate(["permessage-deflate; client_max_window_bits=\(v)"]))
        }
    }

    func testNoContextTakeover() {
        let a = DeflateNegotiation.negotiate(["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
                                             options: DeflateOptions())
        XCTAssertEqual(a?.responseHeader, "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        XCTAssertEqual(a?.parameters, DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true))
        XCTAssertEqual(negotiate(["permessage-deflate; client_no_context_takeover"]),
                       "permessage-deflate; client_no_context_takeover")
        // Configured: always answered.
        XCTAssertEqual(negotiate(["permessage-deflate"], try! DeflateOptions(serverNoContextTakeover: true, clientNoContextTakeover: true)),
                       "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        // A value on a flag declines the offer.
        XCTAssertNil(negotiate(["permessage-deflate; server_no_context_takeover=1"]))
        XCTAssertNil(negotiate(["permessage-deflate; client_no_context_takeover=true"]))
    }

    func testEverythingAtOnceExactResponse() {
        let header = "permessage-deflate; client_max_window_bits=11; server_max_window_bits=12; "
            + "client_no_context_takeover; server_no_context_takeover"
        let a = DeflateNegotiation.negotiate([header], options: try! DeflateOptions(serverMaxWindowBits: 14, clientMaxWindowBits: 13))
        XCTAssertEqual(a?.responseHeader,
                       "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                       + "server_max_window_bits=12; client_max_window_bits=11")
        XCTAssertEqual(a?.parameters, DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true,
                                                        serverMaxWindowBits: 12, clientMaxWindowBits: 11))
    }

    func testUnknownOrDuplicateParameterFallsBackToNextOffer() {
        XCTAssertNil(negotiate(["permessage-deflate; foo"]))
        XCTAssertNil(negotiate(["permessage-deflate; foo=bar"]))
        XCTAssertEqual(negotiate(["permessage-deflate; foo, permessage-deflate; server_max_window_bits=10"]),
                       "permessage-deflate; server_max_window_bits=10")
        XCTAssertNil(negotiate(["permessage-deflate; server_no_context_takeover; server_no_context_takeover"]))
        XCTAssertNil(negotiate(["permessage-deflate; client_max_window_bits; client_max_window_bits=10"]))
        XCTAssertEqual(negotiate(["permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
                                  "permessage-deflate; client_no_context_takeover"]),
                       "permessage-deflate; client_no_context_takeover")
    }

    func testSeveralOffersAndHeadersInOrder() {
        // The first acceptable one wins, across headers, skipping other extensions.
        XCTAssertEqual(negotiate(["x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=11",
                                  "permessage-deflate"]),
                       "permessage-deflate; server_max_window_bits=11")
        XCTAssertEqual(negotiate(["foo; bar=1", "permessage-deflate; server_max_window_bits=7",
                                  "permessage-deflate; client_max_window_bits=9, permessage-deflate"]),
                       "permessage-deflate; client_max_window_bits=9")
        // Case-insensitive names, free whitespace, empty list elements.
        XCTAssertEqual(negotiate([" , Permessage-Deflate ;\tServer_Max_Window_Bits = 10 ,, "]),
                       "permessage-deflate; server_max_window_bits=10")
    }

    func testMalformedHeadersDecline() {
        for h in [
            "permessage-deflate;",
            "permessage-deflate; ;",
            "permessage-deflate; =10",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; server_max_window_bits=\"10",
            "permessage-deflate; server_max_window_bits=10 11",
            "permessage-deflate server_max_window_bits",
            "permessage-deflate; server_max_window_bits=1\"0\"",
            ";permessage-deflate",
            "permessage-deflate, ;",
            "\"permessage-deflate\"",
            "permessage-deflate; a=b=c",
            "permessage-deflate;\u{1}",
            "permessage-défl",
        ] {
            XCTAssertNil(DeflateNegotiation.parse([h]), h)
            XCTAssertNil(negotiate([h]), h)
        }
        // One malformed header declines even a good offer in another.
        XCTAssertNil(negotiate(["permessage-deflate", "permessage-deflate; \"x"]))
    }

    func testParser() {
        let offers = DeflateNegotiation.parse([#"a; b; c="d, e\"f", g"#, "", "h;i=j"])
        XCTAssertEqual(offers, [
            DeflateNegotiation.Offer(name: "a", parameters: [("b", nil), ("c", #"d, e"f"#)]),
            DeflateNegotiation.Offer(name: "g", parameters: []),
            DeflateNegotiation.Offer(name: "h", parameters: [("i", "j")]),
        ])
    }

    func testNegotiatedParametersBuildAWorkingPair() throws {
        // What the server negotiates drives both ends consistently.
        let a = try XCTUnwrap(DeflateNegotiation.negotiate(
            ["permessage-deflate; client_max_window_bits; server_max_window_bits=10; client_no_context_takeover"],
            options: try! DeflateOptions(clientMaxWindowBits: 11)))
        let s = PerMessageDeflate(role: .server, parameters: a.parameters)
        let c = PerMessageDeflate(role: .client, parameters: a.parameters)
        XCTAssertEqual(s.compressWindowBits, 10)
        XCTAssertEqual(s.decompressWindowBits, 11)
        XCTAssertTrue(s.decompressNoContextTakeover)
        XCTAssertFalse(s.compressNoContextTakeover)
        let m = Array(String(repeating: "negotiated ", count: 500).utf8)
        for _ in 0..<3 {
            XCTAssertEqual(try s.decompress(c.compress(m), limit: m.count), m)
            XCTAssertEqual(try c.decompress(s.compress(m), limit: m.count), m)
        }
    }
}
