import CZlib

/// One zlib stream (deflate or inflate) with its allocations counted.
///
/// zlib allocates through `zalloc`/`zfree`, routed here to Swift's allocator with a 16-byte
/// size header, so `allocatedBytes` is exact.
final class ZStream {
    enum Kind { case deflate, inflate }
    let kind: Kind
    let strm: UnsafeMutablePointer<z_stream>
    /// Bytes zlib currently holds (excluding the z_stream itself).
    let counter: UnsafeMutablePointer<Int>

    private init(kind: Kind) {
        self.kind = kind
        strm = .allocate(capacity: 1)
        strm.initialize(to: z_stream())
        counter = .allocate(capacity: 1)
        counter.initialize(to: 0)
        strm.pointee.opaque = UnsafeMutableRawPointer(counter)
        strm.pointee.zalloc = { opaque, items, size in
            let n = Int(items) * Int(size)
            let raw = UnsafeMutableRawPointer.allocate(byteCount: n + 16, alignment: 16)
            raw.storeBytes(of: n, as: Int.self)
            opaque!.assumingMemoryBound(to: Int.self).pointee += n
            return raw + 16
        }
        strm.pointee.zfree = { opaque, address in
            guard let address else { return }
            let raw = address - 16
            opaque!.assumingMemoryBound(to: Int.self).pointee -= raw.load(as: Int.self)
            raw.deallocate()
        }
    }

    /// A raw deflate compressor (negative window bits: no zlib header or trailer).
    static func deflater(level: Int, windowBits: Int, memLevel: Int) -> ZStream {
        let z = ZStream(kind: .deflate)
        let rc = wss_deflateInit2(z.strm, Int32(level), -Int32(windowBits), Int32(memLevel))
        // Parameters are validated before we get here; only a zlib header/library mismatch
        // (Z_VERSION_ERROR) could fail, which is a broken installation.
        precondition(rc == Z_OK, "deflateInit2 failed: \(rc)")
        return z
    }

    /// A raw inflater, nil if zlib refuses (out of memory).
    static func inflater(windowBits: Int) -> ZStream? {
        let z = ZStream(kind: .inflate)
        guard wss_inflateInit2(z.strm, -Int32(windowBits)) == Z_OK else { return nil }
        return z
    }

    var allocatedBytes: Int { counter.pointee + MemoryLayout<z_stream>.size }

    deinit {
        switch kind {
        case .deflate: deflateEnd(strm)
        case .inflate: inflateEnd(strm)
        }
        strm.deinitialize(count: 1)
        strm.deallocate()
        counter.deallocate()
    }
}
