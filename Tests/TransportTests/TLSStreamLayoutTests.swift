import CMallocCounter
import Glibc
@testable import Transport
import XCTest
import TestSupport

/// Every wss connection keeps its `TLSStream` for life, so its size is part of the idle
/// per-connection budget (the record layer's objects are budgeted in `TLSRecordTests`).
final class TLSStreamLayoutTests: XCTestCase {
    func testStreamObjectFitsA192ByteChunk() throws {
        try XCTSkipIf(wss_malloc_counter_available() == 0, "heap accounting is off under sanitizers")
        let dir = TestCertificates.dir
        let context = try TLSContext(certificateFile: dir + "/cert.pem", keyFile: dir + "/key.pem", nativeRecords: true)
        let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 64)
        defer { scratch.deallocate() }
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        defer { for fd in fds { close(fd) } }
        let stream = try XCTUnwrap(context.makeStream(fd: fds[0], scratch: scratch))
        let usable = Int(wss_heap_size(Unmanaged.passUnretained(stream).toOpaque()))
        print("TLSStream object: \(usable) usable bytes")
        // 216 (a 224-byte chunk) with the one-byte fields declared between the pointers.
        XCTAssertLessThanOrEqual(usable, 184)
    }
}
