import COpenSSL

/// Where a client's frame masking keys come from (RFC 6455 §5.3: "MUST be derived from a strong
/// source of entropy"; §10.3: an attacker who can predict the keys can make masked data look
/// like a request to an intermediary).
///
/// Keys are drawn from the CSPRNG in blocks of `batchSize` (one `RAND_bytes` call — OpenSSL's
/// DRBG, seeded and reseeded from getrandom(2) — per 64 frames), so masking a frame costs a
/// load and an index increment and allocates nothing. One source per client connection; the
/// server never masks and has none.
final class MaskKeySource {
    /// Keys per refill: 256 bytes, so a refill is rare and the block small.
    static let batchSize = 64

    /// Fills the buffer with random bytes; false if the generator failed.
    typealias Fill = (UnsafeMutableRawBufferPointer) -> Bool

    private let keys: UnsafeMutableRawBufferPointer
    private var next: Int
    private let fill: Fill
    /// How many times the block was filled (for tests).
    private(set) var refills = 0

    init(fill: @escaping Fill = MaskKeySource.systemRandom) {
        keys = .allocate(byteCount: Self.batchSize * 4, alignment: 4)
        next = Self.batchSize  // filled on first use
        self.fill = fill
    }

    deinit {
        OPENSSL_cleanse(keys.baseAddress, keys.count)  // unused keys would predict the next frames
        keys.deallocate()
    }

    /// The next key; refills the block when it is used up.
    @inline(__always)
    func nextKey() -> UInt32 {
        if next == Self.batchSize { refill() }
        let key = keys.load(fromByteOffset: next &* 4, as: UInt32.self)
        next &+= 1
        return key
    }

    private func refill() {
        // No fallback: a masking key from a weak source is what §10.3 forbids. A failing
        // CSPRNG (which OpenSSL reports only if the OS cannot seed it) stops the process.
        precondition(fill(keys), "the CSPRNG failed: cannot mask frames safely (RFC 6455 §10.3)")
        next = 0
        refills += 1
    }

    /// OpenSSL's CSPRNG (seeded from getrandom(2)).
    static func systemRandom(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
        RAND_bytes(buffer.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) == 1
    }
}
