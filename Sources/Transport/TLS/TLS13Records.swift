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
// The sans-IO part lives here; TLSStream does the socket I/O.

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
}

private enum Fetched {
    nonisolated(unsafe) static let aes128 = EVP_CIPHER_fetch(nil, "AES-128-GCM", nil)
    nonisolated(unsafe) static let aes256 = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)
    nonisolated(unsafe) static let chacha = EVP_CIPHER_fetch(nil, "ChaCha20-Poly1305", nil)
    nonisolated(unsafe) static let sha256 = EVP_MD_fetch(nil, "SHA256", nil)
    nonisolated(unsafe) static let sha384 = EVP_MD_fetch(nil, "SHA384", nil)
}

/// The TLS 1.3 key schedule pieces needed after the handshake (RFC 8446 §7.1).
public enum TLS13KeySchedule {
    /// HMAC (RFC 2104) over a fetched digest; `key` is never longer than the block size here.
    static func hmac(_ suite: TLS13Suite, key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        let block = suite.hashLength == 48 ? 128 : 64
        precondition(key.count <= block)
        var ipad = [UInt8](repeating: 0x36, count: block), opad = [UInt8](repeating: 0x5c, count: block)
        for i in 0..<key.count { ipad[i] ^= key[i]; opad[i] ^= key[i] }
        let inner = digest(suite, ipad + message)
        return digest(suite, opad + inner)
    }

    static func digest(_ suite: TLS13Suite, _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var len: UInt32 = 0
        _ = EVP_Digest(data, data.count, &out, &len, suite.digest, nil)
        return Array(out[0..<Int(len)])
    }

    /// HKDF-Expand-Label(secret, label, "", length) for length ≤ the hash length (one HMAC block).
    public static func expandLabel(_ suite: TLS13Suite, secret: [UInt8], label: String, length: Int) -> [UInt8] {
        precondition(length <= suite.hashLength)
        let full = Array("tls13 ".utf8) + Array(label.utf8)
        // struct HkdfLabel { uint16 length; opaque label<7..255>; opaque context<0..255> } + counter 1
        let info = [UInt8(length >> 8), UInt8(length & 0xff), UInt8(full.count)] + full + [0, 1]
        return Array(hmac(suite, key: secret, info).prefix(length))
    }
}

/// Why record processing stopped the connection, with the alert we send (RFC 8446 §6.2).
public enum TLSRecordError: Error, Equatable, Sendable {
    case badRecordMAC
    case recordOverflow
    case unexpectedMessage(String)
    case decodeError(String)
    /// The peer sent a fatal alert (its description code).
    case peerAlert(UInt8)

    /// The alert description to send, or nil when the peer's alert already ended the session.
    var alert: UInt8? {
        switch self {
        case .badRecordMAC: return 20
        case .recordOverflow: return 22
        case .unexpectedMessage: return 10
        case .decodeError: return 50
        case .peerAlert: return nil
        }
    }

    public var description: String {
        switch self {
        case .badRecordMAC: return "TLS record failed authentication (bad_record_mac)"
        case .recordOverflow: return "TLS record too long (record_overflow)"
        case .unexpectedMessage(let what): return "unexpected TLS message: \(what)"
        case .decodeError(let what): return "malformed TLS message: \(what)"
        case .peerAlert(let code): return "peer sent TLS alert \(code)"
        }
    }
}

/// One direction's traffic protection: secret, key, IV, sequence number, and a cipher
/// context that exists only while the connection is busy.
final class TLS13Direction {
    let suite: TLS13Suite
    let encrypting: Bool
    private(set) var secret: [UInt8]
    /// key ‖ iv (iv is the last 12 bytes).
    private var keyIV: [UInt8]
    var seq: UInt64 = 0
    private var ctx: OpaquePointer?

    init(suite: TLS13Suite, secret: [UInt8], encrypting: Bool) {
        self.suite = suite
        self.encrypting = encrypting
        self.secret = secret
        self.keyIV = []
        derive()
    }

    deinit { releaseContext() }

    private func derive() {
        keyIV = TLS13KeySchedule.expandLabel(suite, secret: secret, label: "key", length: Int(suite.keyLength))
            + TLS13KeySchedule.expandLabel(suite, secret: secret, label: "iv", length: 12)
        seq = 0
        releaseContext()
    }

    /// RFC 8446 §7.2: application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length).
    func update() {
        secret = TLS13KeySchedule.expandLabel(suite, secret: secret, label: "traffic upd", length: suite.hashLength)
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
        let ok = keyIV.withUnsafeBufferPointer { k in
            encrypting ? EVP_EncryptInit_ex(c, suite.cipher, nil, k.baseAddress, nil)
                       : EVP_DecryptInit_ex(c, suite.cipher, nil, k.baseAddress, nil)
        }
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
            keyIV.withUnsafeBufferPointer { k in
                let iv = k.baseAddress! + Int(suite.keyLength)
                for i in 0..<4 { out[i] = iv[i] }
                for i in 0..<8 { out[4 + i] = iv[4 + i] ^ UInt8(truncatingIfNeeded: seq >> (56 - 8 * UInt64(i))) }
            }
            _ = EVP_CipherInit_ex(c, nil, nil, nil, out, -1)  // -1: keep the direction
        }
        var outl: Int32 = 0
        _ = EVP_CipherUpdate(c, nil, &outl, header, 5)
    }

    /// Writes one protected record (header, ciphertext of `plaintext ‖ type`, tag) at `out`;
    /// returns its length (plaintext.count + 22). `plaintext` is at most 2^14 bytes.
    /// `padding` zero bytes follow the content type (§5.4; we never pad, tests and fuzzing do).
    func seal(type: UInt8, _ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer, padding: Int = 0) -> Int {
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
        seq &+= 1
        return 5 + length
    }

    /// Authenticates and decrypts one record (`header` is its 5 bytes, `body` the rest) into
    /// `out` (room for body.count - 16 bytes). Returns the inner content type and the length
    /// of the content before it (padding removed).
    func open(header: UnsafeRawPointer, body: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) throws(TLSRecordError) -> (type: UInt8, length: Int) {
        guard body.count >= 17 else { throw .decodeError("record shorter than its tag") }
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
        seq &+= 1
        // §5.4: strip zero padding; the last non-zero byte is the real content type.
        var i = cipherLength - 1
        while i >= 0 && o[i] == 0 { i -= 1 }
        guard i >= 0 else { throw .unexpectedMessage("record with no content type") }
        return (o[i], i)
    }
}

/// Both directions of a TLS 1.3 connection after its handshake, sans I/O: turns received
/// records into application bytes and application bytes into records, and handles the
/// post-handshake messages (KeyUpdate; NewSessionTicket on the client) and alerts.
public final class TLS13RecordLayer {
    public enum Role: Sendable { case server, client }

    /// Largest plaintext per record (§5.1) and largest ciphertext body we accept (§5.2).
    public static let maxPlaintext = 1 << 14
    public static let maxCiphertext = (1 << 14) + 256
    /// Bytes a record adds to its plaintext: header 5, content type 1, tag 16.
    public static let overhead = 22

    let role: Role
    let read: TLS13Direction
    let write: TLS13Direction
    /// The negotiated cipher suite (for logs).
    public var suite: TLS13Suite { read.suite }
    /// The peer asked for our KeyUpdate (§4.6.3): sent before our next application record.
    public private(set) var keyUpdateOwed = false
    /// Bytes of a handshake message split across records (post-handshake messages are small).
    private var handshakeBytes: [UInt8] = []
    /// close_notify received.
    public private(set) var receivedCloseNotify = false
    /// Records in a row that carried no application data.
    private var recordsWithoutData = 0
    public static let maxRecordsWithoutData = 32

    public init(role: Role, suite: TLS13Suite, readSecret: [UInt8], writeSecret: [UInt8]) {
        self.role = role
        self.read = TLS13Direction(suite: suite, secret: readSecret, encrypting: false)
        self.write = TLS13Direction(suite: suite, secret: writeSecret, encrypting: true)
    }

    /// Frees both cipher contexts (an idle connection keeps only its secrets, keys and
    /// sequence numbers); they are re-created on the next record.
    public func releaseIdleState() {
        read.releaseContext()
        write.releaseContext()
        if handshakeBytes.isEmpty { handshakeBytes = [] }
    }

    public var holdsCipherContexts: Bool { read.hasContext || write.hasContext }

    /// Sequence numbers (for tests and diagnostics).
    public var readSequence: UInt64 { read.seq }
    public var writeSequence: UInt64 { write.seq }

    // MARK: - Receiving

    /// What `open` did with the input.
    public struct Opened: Equatable, Sendable {
        /// Input bytes used (whole records only).
        public var consumed: Int
        /// Application bytes written to `out`.
        public var produced: Int
    }

    /// Opens every complete record in `input`, writing application data to `out` (which must
    /// have room for `input.count` bytes: plaintext is always shorter than its record).
    /// Stops after a close_notify. A partial record at the end is left unconsumed.
    public func open(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws(TLSRecordError) -> Opened {
        var off = 0, produced = 0
        while input.count - off >= 5 && !receivedCloseNotify {
            let type = input[off]
            let length = Int(input[off + 3]) << 8 | Int(input[off + 4])
            // §5.2: after the handshake every record is protected, with outer type application_data.
            guard type == 23 else { throw .unexpectedMessage("unprotected record of type \(type) after the handshake") }
            guard length <= Self.maxCiphertext else { throw .recordOverflow }
            guard input.count - off >= 5 + length else { break }
            let header = input.baseAddress! + off
            let body = UnsafeRawBufferPointer(start: header + 5, count: length)
            let dest = out.baseAddress! + produced
            let (inner, n) = try read.open(header: header, body: body, into: dest)
            off += 5 + length
            guard n <= Self.maxPlaintext else { throw .recordOverflow }
            // A peer that sends only records without application data (empty ones, KeyUpdates,
            // warnings, tickets) makes us work for nothing: at most 32 in a row, as BoringSSL.
            if inner == 23 && n > 0 {
                recordsWithoutData = 0
            } else {
                recordsWithoutData += 1
                guard recordsWithoutData <= Self.maxRecordsWithoutData else {
                    throw .unexpectedMessage("\(recordsWithoutData) records in a row without application data")
                }
            }
            switch inner {
            case 23:  // application_data
                produced += n
            case 21:  // alert
                try receivedAlert(UnsafeRawBufferPointer(start: dest, count: n))
            case 22:  // handshake
                try receivedHandshake(UnsafeRawBufferPointer(start: dest, count: n))
            default:
                throw .unexpectedMessage("content type \(inner)")
            }
        }
        return Opened(consumed: off, produced: produced)
    }

    private func receivedAlert(_ bytes: UnsafeRawBufferPointer) throws(TLSRecordError) {
        guard bytes.count == 2 else { throw .decodeError("alert of \(bytes.count) bytes") }
        // §6.1: close_notify ends the peer's writing; every other alert is fatal in TLS 1.3
        // (user_canceled is followed by close_notify).
        switch bytes[1] {
        case 0: receivedCloseNotify = true
        case 90: break
        default: throw .peerAlert(bytes[1])
        }
    }

    private func receivedHandshake(_ bytes: UnsafeRawBufferPointer) throws(TLSRecordError) {
        handshakeBytes.append(contentsOf: bytes)
        while handshakeBytes.count >= 4 {
            let type = handshakeBytes[0]
            let length = Int(handshakeBytes[1]) << 16 | Int(handshakeBytes[2]) << 8 | Int(handshakeBytes[3])
            guard length <= 64 << 10 else { throw .decodeError("handshake message of \(length) bytes") }
            guard handshakeBytes.count >= 4 + length else { return }
            let body = Array(handshakeBytes[4..<(4 + length)])
            handshakeBytes.removeFirst(4 + length)
            switch type {
            case 24:  // KeyUpdate (§4.6.3)
                guard length == 1, body[0] <= 1 else { throw .decodeError("KeyUpdate") }
                // §5.1: handshake messages MUST NOT span key changes.
                guard handshakeBytes.isEmpty else { throw .unexpectedMessage("data after KeyUpdate in its record") }
                read.update()
                if body[0] == 1 { keyUpdateOwed = true }
            case 4 where role == .client:
                break  // NewSessionTicket: we do not resume sessions
            default:
                throw .unexpectedMessage("post-handshake message type \(type)")
            }
        }
        if handshakeBytes.isEmpty { handshakeBytes = [] }
    }

    // MARK: - Sending

    /// Room needed in `out` to seal `count` application bytes (plus a pending KeyUpdate).
    public static func sealedSize(_ count: Int) -> Int {
        let records = max(1, (count + maxPlaintext - 1) / maxPlaintext)
        return count + records * overhead + 5 + overhead
    }

    /// Seals as much of `plaintext` as fits in `out` as records of at most 2^14 bytes;
    /// returns (plaintext bytes used, record bytes written). A KeyUpdate the peer asked for
    /// goes first (§4.6.3).
    public func seal(_ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> (consumed: Int, produced: Int) {
        var produced = 0
        if keyUpdateOwed && out.count >= 5 + Self.overhead {
            produced += sealKeyUpdate(requestPeer: false, into: out.baseAddress!)
        }
        var consumed = 0
        while consumed < plaintext.count {
            let n = min(Self.maxPlaintext, plaintext.count - consumed)
            guard out.count - produced >= n + Self.overhead else { break }
            produced += write.seal(type: 23, UnsafeRawBufferPointer(rebasing: plaintext[consumed..<(consumed + n)]),
                                   into: out.baseAddress! + produced)
            consumed += n
        }
        return (consumed, produced)
    }

    /// A protected alert record (e.g. close_notify = 0) at `out` (needs 24 bytes); its length.
    public func sealAlert(_ description: UInt8, into out: UnsafeMutableRawPointer) -> Int {
        // §6: close_notify and user_canceled are warnings; everything else we send is fatal.
        var alert: (UInt8, UInt8) = (description == 0 || description == 90 ? 1 : 2, description)
        return withUnsafeBytes(of: &alert) { write.seal(type: 21, $0, into: out) }
    }

    /// A KeyUpdate of our own (e.g. after many records); `requestPeer` asks the peer to update too.
    public func sealKeyUpdate(requestPeer: Bool, into out: UnsafeMutableRawPointer) -> Int {
        var msg: (UInt8, UInt8, UInt8, UInt8, UInt8) = (24, 0, 0, 1, requestPeer ? 1 : 0)
        let n = withUnsafeBytes(of: &msg) { write.seal(type: 22, $0, into: out) }
        write.update()
        keyUpdateOwed = false  // ours went out before any further data (§4.6.3)
        return n
    }
}
