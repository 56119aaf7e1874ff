#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

// TLS 1.3 record protection after the handshake (RFC 8446 §5.2–5.5, §7.1–7.3).
//
// OpenSSL does the handshake; when it completes we take the two application traffic secrets
// (through the key-log callback), derive keys and IVs, free the SSL object and protect
// records ourselves with libcrypto's AEAD. What that buys (measured, see README):
// - an idle wss connection keeps ~0.9 KB (keys, state) instead of OpenSSL's ~14 KB
//   `SSL` (its record layer alone is 4.5 KB, fixed at compile time), because the cipher
//   contexts are freed while the connection is idle and re-created on the next record;
// - input is decrypted straight from the read into the loop's buffer (no read-ahead buffer),
//   and all records of one flush go out in one write.
// The sans-IO part is TLS13RecordLayer; TLSStream does the socket I/O.

/// A TLS 1.3 cipher suite we protect records for.
public struct TLS13Suite: Sendable, Equatable {
    /// IANA id, as `SSL_CIPHER_get_id` returns it (0x0300_13xx).
    public let id: UInt32
    let keyLength: UInt8
    /// SHA-256 (32) or SHA-384 (48): the suite's hash, and the length of its secrets.
    public let hashLength: Int

    public static let aes128GCM = TLS13Suite(id: 0x0300_1301, keyLength: 16, hashLength: 32)
    public static let aes256GCM = TLS13Suite(id: 0x0300_1302, keyLength: 32, hashLength: 48)
    public static let chacha20Poly1305 = TLS13Suite(id: 0x0300_1303, keyLength: 32, hashLength: 32)

    public static func forCipherID(_ id: UInt32) -> TLS13Suite? {
        [aes128GCM, aes256GCM, chacha20Poly1305].first { $0.id == id }
    }

    /// Fetched once per process (an implicit fetch costs a lock and a lookup every time).
    var cipher: OpaquePointer? {
        switch id {
        case Self.aes128GCM.id: return Fetched.aes128
        case Self.aes256GCM.id: return Fetched.aes256
        default: return Fetched.chacha
        }
    }

    var digest: OpaquePointer? { hashLength == 48 ? Fetched.sha384 : Fetched.sha256 }

    /// The provider's own AEAD functions behind `cipher` (see COpenSSL/aead.h), or nil if
    /// they could not be found (records then go through EVP).
    var aead: UnsafePointer<wss_aead>? {
        switch id {
        case Self.aes128GCM.id: return Fetched.aes128AEAD
        case Self.aes256GCM.id: return Fetched.aes256AEAD
        default: return Fetched.chachaAEAD
        }
    }
}

private enum Fetched {
    nonisolated(unsafe) static let aes128 = EVP_CIPHER_fetch(nil, "AES-128-GCM", nil)
    nonisolated(unsafe) static let aes256 = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)
    nonisolated(unsafe) static let chacha = EVP_CIPHER_fetch(nil, "ChaCha20-Poly1305", nil)
    nonisolated(unsafe) static let sha256 = EVP_MD_fetch(nil, "SHA256", nil)
    nonisolated(unsafe) static let sha384 = EVP_MD_fetch(nil, "SHA384", nil)
    nonisolated(unsafe) static let aes128AEAD = load(aes128)
    nonisolated(unsafe) static let aes256AEAD = load(aes256)
    nonisolated(unsafe) static let chachaAEAD = load(chacha)

    /// Loaded once per process and never freed (as the fetched ciphers it belongs to).
    private static func load(_ cipher: OpaquePointer?) -> UnsafePointer<wss_aead>? {
        let a = UnsafeMutablePointer<wss_aead>.allocate(capacity: 1)
        guard wss_aead_load(cipher, a) == 1 else { a.deallocate(); return nil }
        return UnsafePointer(a)
    }
}

/// The TLS 1.3 key schedule pieces needed after the handshake (RFC 8446 §7.1). Secrets go
/// in and out through raw pointers so that no copy lands in an array that is freed unwiped;
/// the HMAC is libcrypto's (it wipes its own pads), our one temporary is wiped here.
public enum TLS13KeySchedule {
    /// HKDF-Expand-Label(secret, label, "", length) for length ≤ the hash length (one HMAC
    /// block), written to `out`. `secret` is `suite.hashLength` bytes; `out` may alias it.
    static func expandLabel(_ suite: TLS13Suite, secret: UnsafeRawPointer, label: String, length: Int,
                            into out: UnsafeMutableRawPointer) {
        precondition(length <= suite.hashLength)
        let full = Array("tls13 ".utf8) + Array(label.utf8)
        // struct HkdfLabel { uint16 length; opaque label<7..255>; opaque context<0..255> } + counter 1
        let info = [UInt8(length >> 8), UInt8(length & 0xff), UInt8(full.count)] + full + [0, 1]
        var block = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &block) { t in
            var mdLength: UInt32 = 0
            let md = t.baseAddress!.assumingMemoryBound(to: UInt8.self)
            _ = HMAC(suite.digest, secret, Int32(suite.hashLength), info, info.count, md, &mdLength)
            out.copyMemory(from: md, byteCount: length)
            OPENSSL_cleanse(t.baseAddress, t.count)
        }
    }

    /// The same on arrays (tests and test vectors; secrets in production never take this path).
    public static func expandLabel(_ suite: TLS13Suite, secret: [UInt8], label: String, length: Int) -> [UInt8] {
        precondition(secret.count == suite.hashLength)
        var out = [UInt8](repeating: 0, count: length)
        secret.withUnsafeBytes { s in
            out.withUnsafeMutableBytes { expandLabel(suite, secret: s.baseAddress!, label: label, length: length, into: $0.baseAddress!) }
        }
        return out
    }
}

/// Overwrites an array's bytes with zeros in a way the compiler cannot drop, then empties it.
func wipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { if let p = $0.baseAddress { OPENSSL_cleanse(p, $0.count) } }
    bytes = []
}
