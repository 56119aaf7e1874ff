#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

/// One direction's traffic protection: secret, key, IV, sequence number, and a cipher
/// context that exists only while the connection is busy.
///
/// Secret, key and IV live in one small heap block of our own (not arrays, which copy and
/// free without wiping); it is wiped with OPENSSL_cleanse on every KeyUpdate (the old secret
/// is overwritten in place) and on deinit. The cipher context wipes its key schedule when
/// OpenSSL frees it.
final class TLS13Direction {
    let suite: TLS13Suite
    let encrypting: Bool
    /// secret (≤ 48) at 0, key (≤ 32) at 48, iv (12) at 80.
    fileprivate let material: UnsafeMutableRawPointer
    fileprivate static let materialSize = 92, keyOffset = 48, ivOffset = 80
    var seq: UInt64 = 0
    /// Records sealed or opened under the current key (what the AEAD limits of §5.5 count).
    var recordsUnderKey: UInt64 { seq }
    /// The provider's AEAD functions (nil: through EVP, as when they cannot be found).
    let aead: UnsafePointer<wss_aead>?
    /// The provider's cipher context, or an EVP_CIPHER_CTX when `aead` is nil.
    private var ctx: UnsafeMutableRawPointer?

    /// `throughEVP`: use EVP even when the provider's functions are there (tests compare both).
    init(suite: TLS13Suite, secret: UnsafeRawBufferPointer, encrypting: Bool, throughEVP: Bool = false) {
        precondition(secret.count == suite.hashLength)
        self.suite = suite
        self.encrypting = encrypting
        aead = throughEVP ? nil : suite.aead
        material = UnsafeMutableRawPointer.allocate(byteCount: Self.materialSize, alignment: 16)
        material.initializeMemory(as: UInt8.self, repeating: 0, count: Self.materialSize)
        material.copyMemory(from: secret.baseAddress!, byteCount: secret.count)
        derive()
    }

    deinit {
        releaseContext()
        OPENSSL_cleanse(material, Self.materialSize)
        material.deallocate()
    }

    /// The current traffic secret (tests compare it with the peer's).
    var secret: [UInt8] { Array(UnsafeRawBufferPointer(start: material, count: suite.hashLength)) }

    private func derive() {
        TLS13KeySchedule.expandLabel(suite, secret: material, label: "key", length: Int(suite.keyLength),
                                     into: material + Self.keyOffset)
        TLS13KeySchedule.expandLabel(suite, secret: material, label: "iv", length: 12, into: material + Self.ivOffset)
        seq = 0
        releaseContext()
    }

    /// RFC 8446 §7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length).
    /// The old secret, key and IV are overwritten in place.
    func update() {
        TLS13KeySchedule.expandLabel(suite, secret: material, label: "traffic upd", length: suite.hashLength, into: material)
        OPENSSL_cleanse(material + Self.keyOffset, Self.materialSize - Self.keyOffset)
        derive()
    }

    var hasContext: Bool { ctx != nil }

    func releaseContext() {
        guard let c = ctx else { return }
        if let aead { wss_aead_free(aead, c) } else { EVP_CIPHER_CTX_free(OpaquePointer(c)) }
        ctx = nil
    }

    private var key: UnsafePointer<UInt8> { UnsafePointer(material.assumingMemoryBound(to: UInt8.self) + Self.keyOffset) }
    private var iv: UnsafePointer<UInt8> { UnsafePointer(material.assumingMemoryBound(to: UInt8.self) + Self.ivOffset) }

    /// The keyed context, created on first use after an idle release.
    private func context() -> UnsafeMutableRawPointer? {
        if let c = ctx { return c }
        if let aead {
            ctx = wss_aead_new(aead, key, Int(suite.keyLength), encrypting ? 1 : 0)
            return ctx
        }
        guard let c = EVP_CIPHER_CTX_new() else { return nil }
        let ok = encrypting ? EVP_EncryptInit_ex(c, suite.cipher, nil, key, nil)
                            : EVP_DecryptInit_ex(c, suite.cipher, nil, key, nil)
        guard ok == 1 else { EVP_CIPHER_CTX_free(c); return nil }
        ctx = UnsafeMutableRawPointer(c)
        return ctx
    }

    // The four steps of a record (§5.2, §5.3): nonce = IV XOR seq and the header as additional
    // data; the body; the tag. Each through the provider's functions, or through EVP.

    private func start(_ c: UnsafeMutableRawPointer, header: UnsafePointer<UInt8>) -> Bool {
        if let aead { return wss_aead_start(aead, c, encrypting ? 1 : 0, iv, seq, header) == 1 }
        var nonce = (UInt64(0), UInt32(0))
        return withUnsafeMutableBytes(of: &nonce) { np in
            let n = np.baseAddress!.assumingMemoryBound(to: UInt8.self)
            wss_tls13_nonce(iv, seq, n)
            var outl: Int32 = 0
            return EVP_CipherInit_ex(OpaquePointer(c), nil, nil, nil, n, -1) == 1  // -1: keep the direction
                && EVP_CipherUpdate(OpaquePointer(c), nil, &outl, header, 5) == 1
        }
    }

    private func update(_ c: UnsafeMutableRawPointer, _ input: UnsafePointer<UInt8>, _ n: Int, into out: UnsafeMutablePointer<UInt8>) -> Bool {
        if let aead { return wss_aead_update(aead, c, input, n, out) == 1 }
        var outl: Int32 = 0
        return n == 0 || EVP_CipherUpdate(OpaquePointer(c), out, &outl, input, Int32(n)) == 1
    }

    private func sealTag(_ c: UnsafeMutableRawPointer, end: UnsafeMutablePointer<UInt8>) -> Bool {
        if let aead { return wss_aead_seal_tag(aead, c, end, end) == 1 }
        var outl: Int32 = 0
        return EVP_EncryptFinal_ex(OpaquePointer(c), end, &outl) == 1
            && EVP_CIPHER_CTX_ctrl(OpaquePointer(c), EVP_CTRL_AEAD_GET_TAG, 16, end) == 1
    }

    private func openTag(_ c: UnsafeMutableRawPointer, end: UnsafeMutablePointer<UInt8>, tag: UnsafePointer<UInt8>) -> Bool {
        if let aead { return wss_aead_open_tag(aead, c, end, tag) == 1 }
        var outl: Int32 = 0
        return EVP_CIPHER_CTX_ctrl(OpaquePointer(c), EVP_CTRL_AEAD_SET_TAG, 16, UnsafeMutableRawPointer(mutating: tag)) == 1
            && EVP_DecryptFinal_ex(OpaquePointer(c), end, &outl) == 1
    }

    /// Up to this many plaintext bytes are copied beside their content type and encrypted in
    /// place with one call; longer ones are encrypted straight from the caller's buffer.
    static let copyLimit = 512

    /// Writes one protected record (header, ciphertext of `plaintext ‖ type`, tag) at `out`;
    /// returns its length (plaintext.count + 22). `plaintext` is at most 2^14 bytes.
    /// `padding` zero bytes follow the content type (§5.4; we never pad, tests and fuzzing do).
    /// The caller keeps `seq` below 2^64 - 1 (TLS13RecordLayer rekeys long before, §5.3).
    func seal(type: UInt8, _ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer, padding: Int = 0) -> Int {
        precondition(seq < UInt64.max, "TLS write sequence number would wrap")
        let n = plaintext.count
        let inner = n + 1 + padding
        let length = inner + 16
        let header = out.assumingMemoryBound(to: UInt8.self)
        header[0] = 23; header[1] = 3; header[2] = 3
        header[3] = UInt8(length >> 8); header[4] = UInt8(length & 0xff)
        guard let c = context() else { fatalError("cipher context for TLS records: out of memory") }
        let body = header + 5
        // The inner plaintext's tail (content type, zero padding) is written in place first.
        body[n] = type
        if padding > 0 { (body + n + 1).initialize(repeating: 0, count: padding) }
        var ok = start(c, header: header)
        if n <= Self.copyLimit {
            if n > 0 { body.update(from: plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), count: n) }
            ok = ok && update(c, body, inner, into: body)
        } else {
            ok = ok && update(c, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), n, into: body)
                && update(c, body + n, inner - n, into: body + n)
        }
        ok = ok && sealTag(c, end: body + inner)
        // Sealing fails only on a broken library; sending such a record would be worse.
        guard ok else { fatalError("TLS record sealing failed in libcrypto") }
        seq += 1
        return 5 + length
    }

    /// Authenticates and decrypts one record (`header` is its 5 bytes, `body` the rest) into
    /// `out` (room for body.count - 16 bytes). Returns the inner content type and the length
    /// of the content before it (padding removed). Nothing in `out` is looked at before the
    /// tag has been checked.
    func open(header: UnsafeRawPointer, body: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) throws(TLSRecordError) -> (type: UInt8, length: Int) {
        guard body.count >= 17 else { throw .decodeError("record shorter than its tag") }
        // §5.3: a sequence number must never wrap; the peer must have rekeyed long before.
        guard seq < UInt64.max else { throw .unexpectedMessage("peer's sequence number would wrap (no KeyUpdate)") }
        guard let c = context() else { throw .badRecordMAC }
        let cipherLength = body.count - 16
        let o = out.assumingMemoryBound(to: UInt8.self)
        let b = body.baseAddress!.assumingMemoryBound(to: UInt8.self)
        guard start(c, header: header.assumingMemoryBound(to: UInt8.self)),
              update(c, b, cipherLength, into: o),
              openTag(c, end: o + cipherLength, tag: b + cipherLength) else {
            ERR_clear_error()
            throw .badRecordMAC
        }
        seq += 1
        // §5.4: strip zero padding; the last non-zero byte is the real content type.
        var i = cipherLength - 1
        while i >= 0 && o[i] == 0 { i -= 1 }
        guard i >= 0 else { throw .unexpectedMessage("record with no content type") }
        return (o[i], i)
    }
}

extension TLS13Direction {
    /// All bytes of the secret/key/IV block (tests check that a KeyUpdate leaves no old key behind).
    var materialBytes: [UInt8] { Array(UnsafeRawBufferPointer(start: material, count: Self.materialSize)) }
}
