#if canImport(Glibc)
import Glibc
#endif

/// Large `ByteBuffer` blocks freed on this thread, kept for the next large buffer.
///
/// glibc hands blocks this large back to the kernel when they are freed (munmap, or
/// madvise when its heap shrinks), so every fresh 1 MiB message buffer cost 256 page faults
/// and the kernel zeroing 1 MiB: perf on a 1 MiB wss echo showed ~15 % of the server's time
/// there, more than the reassembly copy itself. A block taken from here is already mapped.
///
/// Per thread (one per event loop), not per connection: an idle connection holds none of it.
/// Bounded: at most `maxBlocks` blocks and `maxBytes` bytes per thread, blocks of
/// `minimumSize`...`maximumSize` bytes only; a thread's blocks are freed when it exits.
///
/// Every block of `minimumSize` or more (cached or not) starts `pageOffset` bytes into a
/// page. This CPU's `rep movsb` (glibc's memcpy and the kernel's copies to and from user
/// memory) runs up to 20× slower when destination − source is 1–15 mod 4096 and is slower
/// for many multiples of 16 and 64 too (Tests/bench: 1.5 GB/s instead of 27–47); glibc's
/// own large blocks start 16 bytes into a page, the loop's buffers 64. Measured on the 1 MiB
/// echo (wss-bench, medians of 5 runs, same run): wss 687 → 871 MiB per server CPU-s with
/// the offset, ws 1,152 → 1,403 (page offset 16 and 0 were the slow ones).
package enum LargeBlockCache {
    package static let minimumSize = 256 << 10
    package static let maximumSize = 4 << 20
    package static let maxBytes = 4 << 20
    package static let maxBlocks = 4
    package static let pageOffset = 2048

    /// One thread's cache: `count` blocks at `blocks[0..<count]` with their sizes.
    private struct Slots {
        var count = 0
        var bytes = 0
        var blocks: (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?)
            = (nil, nil, nil, nil)
        var sizes: (Int, Int, Int, Int) = (0, 0, 0, 0)
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        let rc = pthread_key_create(&k) { raw in
            guard let raw else { return }
            let slots = raw.assumingMemoryBound(to: Slots.self)
            LargeBlockCache.freeAll(slots)
            slots.deinitialize(count: 1)
            slots.deallocate()
        }
        precondition(rc == 0, "pthread_key_create failed")
        return k
    }()

    private static func slots(creating: Bool) -> UnsafeMutablePointer<Slots>? {
        if let raw = pthread_getspecific(key) { return raw.assumingMemoryBound(to: Slots.self) }
        guard creating else { return nil }
        let p = UnsafeMutablePointer<Slots>.allocate(capacity: 1)
        p.initialize(to: Slots())
        pthread_setspecific(key, p)
        return p
    }

    private static func freeAll(_ s: UnsafeMutablePointer<Slots>) {
        withUnsafeMutableBytes(of: &s.pointee.blocks) { b in
            for i in 0..<s.pointee.count { Glibc.free(b.load(fromByteOffset: i * 8, as: UnsafeMutableRawPointer.self) - pageOffset) }
        }
        s.pointee.count = 0
        s.pointee.bytes = 0
    }

    /// A block of exactly `size` bytes (16-byte aligned; from `minimumSize` on, `pageOffset`
    /// into a page), from the cache when it has one. Give it back with `deallocate(_:size:)`.
    package static func allocate(_ size: Int) -> UnsafeMutableRawPointer {
        if size >= minimumSize && size <= maximumSize, let s = slots(creating: false), s.pointee.count > 0 {
            let taken: UnsafeMutableRawPointer? = withUnsafeMutableBytes(of: &s.pointee.sizes) { sizes in
                withUnsafeMutableBytes(of: &s.pointee.blocks) { blocks in
                    let n = s.pointee.count
                    for i in 0..<n where sizes.load(fromByteOffset: i * 8, as: Int.self) == size {
                        let p = blocks.load(fromByteOffset: i * 8, as: UnsafeMutableRawPointer.self)
                        // The last slot fills the hole.
                        blocks.storeBytes(of: blocks.load(fromByteOffset: (n - 1) * 8, as: UnsafeMutableRawPointer.self),
                                          toByteOffset: i * 8, as: UnsafeMutableRawPointer.self)
                        sizes.storeBytes(of: sizes.load(fromByteOffset: (n - 1) * 8, as: Int.self),
                                         toByteOffset: i * 8, as: Int.self)
                        return p
                    }
                    return nil
                }
            }
            if let taken {
                s.pointee.count -= 1
                s.pointee.bytes -= size
                return taken
            }
        }
        return fresh(size)
    }

    private static func fresh(_ size: Int) -> UnsafeMutableRawPointer {
        guard size >= minimumSize else { return UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16) }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 4096, size + 4096) == 0, let raw else {
            fatalError("out of memory allocating a \(size)-byte buffer")
        }
        return raw + pageOffset
    }

    private static func free(_ p: UnsafeMutableRawPointer, size: Int) {
        if size >= minimumSize { Glibc.free(p - pageOffset) } else { p.deallocate() }
    }

    /// Gives back a block `allocate(size)` returned (same `size`): kept if it fits, else freed.
    package static func deallocate(_ p: UnsafeMutableRawPointer, size: Int) {
        guard size >= minimumSize && size <= maximumSize, let s = slots(creating: true) else {
            free(p, size: size)
            return
        }
        if s.pointee.count == maxBlocks || s.pointee.bytes + size > maxBytes {
            free(p, size: size)
            return
        }
        let i = s.pointee.count
        withUnsafeMutableBytes(of: &s.pointee.blocks) { $0.storeBytes(of: p, toByteOffset: i * 8, as: UnsafeMutableRawPointer.self) }
        withUnsafeMutableBytes(of: &s.pointee.sizes) { $0.storeBytes(of: size, toByteOffset: i * 8, as: Int.self) }
        s.pointee.count += 1
        s.pointee.bytes += size
    }

    /// Bytes this thread's cache holds (tests, diagnostics).
    package static var cachedBytes: Int { slots(creating: false)?.pointee.bytes ?? 0 }

    /// Frees this thread's cached blocks.
    package static func releaseAll() {
        if let s = slots(creating: false) { freeAll(s) }
    }
}
