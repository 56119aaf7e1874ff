import XCTest
@testable import WebSocket

/// Large buffer blocks are reused on the same thread (no fresh mapping, no page faults per
/// large message), within the cache's bounds.
final class LargeBlockCacheTests: XCTestCase {
    override func setUp() { LargeBlockCache.releaseAll() }
    override func tearDown() { LargeBlockCache.releaseAll() }

    func testAFreedLargeBufferBlockIsReusedForTheNextOfItsSize() {
        var first: UnsafeMutableRawPointer?
        do {
            let b = ByteBuffer(capacity: 1 << 20)
            first = b.reserveWritable(1)
        }
        XCTAssertEqual(LargeBlockCache.cachedBytes, 1 << 20)
        let again = ByteBuffer(capacity: 1 << 20)
        XCTAssertEqual(again.reserveWritable(1), first)
        XCTAssertEqual(LargeBlockCache.cachedBytes, 0)
    }

    func testReleasedAndRegrownStorageComesFromTheCache() {
        let b = ByteBuffer()
        b.append([UInt8](repeating: 7, count: 300 << 10))
        b.consume(b.readableCount)
        let block = b.reserveWritable(1)
        b.releaseIfEmpty()
        XCTAssertEqual(LargeBlockCache.cachedBytes, 512 << 10)
        XCTAssertEqual(b.allocatedBytes, 0)
        b.append([UInt8](repeating: 1, count: 400 << 10))
        XCTAssertEqual(b.readableBytes.baseAddress, UnsafeRawPointer(block))
        XCTAssertEqual(b.readableBytes.count, 400 << 10)
        XCTAssertTrue(b.readableBytes.allSatisfy { $0 == 1 })
    }

    func testLargeBlocksStartHalfAPageIn() {
        for size in [256 << 10, 1 << 20, 8 << 20] {
            let b = ByteBuffer(capacity: size)
            XCTAssertEqual(Int(bitPattern: b.reserveWritable(1)) & 4095, LargeBlockCache.pageOffset, "\(size)")
        }
        XCTAssertEqual(LargeBlockCache.pageOffset, 2048)
    }

    func testSmallAndHugeBlocksAreNotKept() {
        do { _ = ByteBuffer(capacity: 64 << 10) }
        do { _ = ByteBuffer(capacity: 8 << 20) }
        XCTAssertEqual(LargeBlockCache.cachedBytes, 0)
    }

    func testTheCacheIsBounded() {
        do {
            let buffers = (0..<10).map { _ in ByteBuffer(capacity: 1 << 20) }
            XCTAssertEqual(buffers.count, 10)
        }
        XCTAssertEqual(LargeBlockCache.cachedBytes, LargeBlockCache.maxBytes)
        do {
            let buffers = (0..<10).map { _ in ByteBuffer(capacity: 256 << 10) }
            XCTAssertEqual(buffers.count, 10)
        }
        XCTAssertLessThanOrEqual(LargeBlockCache.cachedBytes, LargeBlockCache.maxBytes)
    }

    func testEachThreadHasItsOwn() {
        do { _ = ByteBuffer(capacity: 1 << 20) }
        XCTAssertEqual(LargeBlockCache.cachedBytes, 1 << 20)
        final class Seen: @unchecked Sendable { var bytes = -1 }
        let seen = Seen()
        let done = expectation(description: "thread")
        Thread {
            seen.bytes = LargeBlockCache.cachedBytes
            _ = ByteBuffer(capacity: 1 << 20)  // cached on that thread, freed when it exits
            done.fulfill()
        }.start()
        wait(for: [done], timeout: 10)
        XCTAssertEqual(seen.bytes, 0)
        XCTAssertEqual(LargeBlockCache.cachedBytes, 1 << 20)
    }
}
