import CZlib
import XCTest

/// Inflates one permessage-deflate message body with zlib itself (not our code): a fresh raw
/// stream, after appending the 00 00 FF FF that RFC 7692 §7.2.1 strips. A body that leaned on an
/// earlier message (context takeover) fails here.
func rawInflate(_ body: [UInt8], windowBits: Int = 15, file: StaticString = #filePath, line: UInt = #line) -> [UInt8] {
    var s = z_stream()
    XCTAssertEqual(wss_inflateInit2(&s, -Int32(windowBits)), Z_OK, file: file, line: line)
    defer { inflateEnd(&s) }
    var input = body + [0x00, 0x00, 0xFF, 0xFF]
    var out = [UInt8](repeating: 0, count: 1 << 20)
    let produced = input.withUnsafeMutableBufferPointer { i in
        out.withUnsafeMutableBufferPointer { o -> Int in
            s.next_in = i.baseAddress; s.avail_in = uInt(i.count)
            s.next_out = o.baseAddress; s.avail_out = uInt(o.count)
            let rc = inflate(&s, Z_SYNC_FLUSH)
            XCTAssertTrue(rc == Z_OK || rc == Z_STREAM_END, "inflate: \(rc)", file: file, line: line)
            XCTAssertEqual(s.avail_in, 0, "input left over", file: file, line: line)
            return o.count - Int(s.avail_out)
        }
    }
    return Array(out[0..<produced])
}
