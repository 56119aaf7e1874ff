import XCTest
@testable import WebSocket

final class UTF8ValidatorTests: XCTestCase {
    func testValid() {
        for s in ["", "hello", "κόσμε", "你好 🚀", String(repeating: "ascii-long-", count: 20) + "€"] {
            XCTAssertTrue(UTF8Validator.isValid(Array(s.utf8)), s)
        }
        XCTAssertTrue(UTF8Validator.isValid([0xF4, 0x8F, 0xBF, 0xBF]))  // U+10FFFF
        XCTAssertTrue(UTF8Validator.isValid([0xEF, 0xBF, 0xBF]))        // U+FFFF
    }

    func testInvalid() {
        let cases: [[UInt8]] = [
            [0x80], [0xBF], [0xC0, 0x80], [0xC1, 0xBF], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80],
            [0xF0, 0x80, 0x80, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xF5, 0x80, 0x80, 0x80], [0xFF],
            [0xC2], [0xE2, 0x82], Array("abcdefgh".utf8) + [0xFE] + Array("abcdefgh".utf8),
        ]
        for c in cases { XCTAssertFalse(UTF8Validator.isValid(c), "\(c)") }
    }

    func testIncrementalMatchesWhole() {
        let bytes = Array("añ€𝄞 mixed ascii text and more €€€".utf8)
        for split in 1..<bytes.count {
            var v = UTF8Validator()
            XCTAssertTrue(bytes[..<split].withUnsafeBytes { v.validate($0) })
            XCTAssertTrue(bytes[split...].withUnsafeBytes { v.validate($0) })
            XCTAssertTrue(v.isComplete)
        }
    }

    func testFailsAtFirstBadByte() {
        var v = UTF8Validator()
        let start: [UInt8] = [0xF0, 0x90], letterA: [UInt8] = [0x41]
        XCTAssertTrue(start.withUnsafeBytes { v.validate($0) })   // fine so far
        XCTAssertFalse(v.isComplete)
        XCTAssertFalse(letterA.withUnsafeBytes { v.validate($0) })  // 'A' cannot continue
    }
}
