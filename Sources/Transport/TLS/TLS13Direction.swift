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
    private var ctx: OpaquePointer?

    init(suite: TLS13Suite, secret: UnsafeRawBufferPointer, encrypting: Bool) {
        precondition(secret.count == suite.hashLength)
        self.suite = suite
        self.encrypting = encrypting
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
        if let c = ctx { EVP_CIPHER_CTX_free(c); ctx = nil }
    }

    /// The keyed context, created on first use after an idle release.
    private func context() -> OpaquePointer? {
        if let c = ctx { return c }
        guard let c = EVP_CIPHER_CTX_new() else { return nil }
        let key = UnsafePointer(material.assumingMemoryBound(to: UInt8.self) + Self.keyOffset)
        let ok = encrypting ? EVP_EncryptInit_ex(c, suite.cipher, nil, key, nil)
                            : EVP_DecryptInit_ex(c, suite.cipher, nil, key, nil)
        guard ok == 1 else { EVP_CIPHER_CTX_free(c); return nil }
        ctx = c
        return c
    }

    /// §5.3: the per-record nonce is the IV XOR the 64-bit sequence number, left-padded.
    /// Sets it on `c` and feeds the record header as additional data (§5.2).
    private func startRecord(_ c: OpaquePointer, header: UnsafePointer<UInt8>) {
        var nonce = (UInt64(0), UInt32(0))
        withUnsafeMutableBytes(of: &nonce) { np in
            let out = np.baseAddress!.assumingMemoryBound(to: UInt8.self)
            let iv = material.assumingMemoryBound(to: UInt8.self) + Self.ivOffset
            for i in 0..<4 { out[i] = iv[i] }
            for i in 0..<8 { out[4 + i] = iv[4 + i] ^ UInt8(truncatingIfNeeded: seq >> (56 - 8 * UInt64(i))) }
            _ = EVP_CipherInit_ex(c, nil, nil, nil, out, -1)  // -1: keep the direction
        }
        var outl: Int32 = 0
        _ = EVP_CipherUpdate(c, nil, &outl, header, 5)
    }

    /// Writes one protected record (header, ciphertext of `plaintext ‖ type`, tag) at `out`;
    /// returns its length (plaintext.count + 22). `plaintext` is at most 2^14 bytes.
    /// `padding` zero bytes follow the content type (§5.4; we never pad, tests and fuzzing do).
    /// The caller keeps `seq` below 2^64 - 1 (TLS13RecordLayer rekeys long before, §5.3).
    func seal(type: UInt8, _ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer, padding: Int = 0) -> Int {
        precondition(seq < UInt64.max, "TLS write sequence number would wrap")
        let n = plaintext.count
        let length = n + 1 + padding + 16
        let header = out.assumingMemoryBound(to: UInt8.self)
        header[0] = 23; header[1] = 3; header[2] = 3
        header[3] = UInt8(length >> 8); header[4] = UInt8(length & 0xff)
        guard let c = context() else { fatalError("EVP_CIPHER_CTX for TLS records: out of memory") }
        startRecord(c, header: header)
        var outl: Int32 = 0
        let body = header + 5
        if n > 0 { _ = EVP_EncryptUpdate(c, body, &outl, plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(n)) }
        var t = type
        _ = EVP_EncryptUpdate(c, body + n, &outl, &t, 1)
        if padding > 0 {
            let zeros = [UInt8](repeating: 0, count: padding)
            _ = EVP_EncryptUpdate(c, body + n + 1, &outl, zeros, Int32(padding))
        }
        _ = EVP_EncryptFinal_ex(c, body + n + 1 + padding, &outl)
        _ = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, body + n + 1 + padding)
        seq += 1
        return 5 + length
    }

    /// Authenticates and decrypts one record (`header` is its 5 bytes, `body` the rest) into
    /// `out` (room for body.count - 16 bytes). Returns the inner content type and the length
    /// of the content before it (padding removed).
    func open(header: UnsafeRawPointer, body: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) throws(TLSRecordError) -> (type: UInt8, length: Int) {
        guard body.count >= 17 else { throw .decodeError("record shorter than its tag") }
        // §5.3: a sequence number must never wrap; the peer must have rekeyed long before.
        guard seq < UInt64.max else { throw .unexpectedMessage("peer's sequence number would wrap (no KeyUpdate)") }
        guard let c = context() else { throw .badRecordMAC }
        let cipherLength = body.count - 16
        startRecord(c, header: header.assumingMemoryBound(to: UInt8.self))
        var outl: Int32 = 0
        let o = out.assumingMemoryBound(to: UInt8.self)
        let b = body.baseAddress!.assumingMemoryBound(to: UInt8.self)
        _ = EVP_DecryptUpdate(c, o, &outl, b, Int32(cipherLength))
        _ = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, UnsafeMutableRawPointer(mutating: b + cipherLength))
        var finl: Int32 = 0
        guard EVP_DecryptFinal_ex(c, o + cipherLength, &finl) == 1 else {
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
