#if canImport(Glibc)
import Glibc
#endif
import COpenSSL
import Synchronization

/// Keys that protect stateless TLS session tickets (RFC 8446 §4.6.1, RFC 5077 §4 layout),
/// rotating every `rotationSeconds`: a ticket is issued under the current period's key and
/// accepted under it or the previous one (then renewed), so a ticket lives one to two periods
/// and a stolen key opens at most two periods of tickets.
///
/// Each period's keys are derived from one 32-byte master secret and the period number
/// (HMAC-SHA256(master, label ‖ period)), nothing else: servers of a cluster that share the
/// master secret (a file of 32+ random bytes, e.g. `openssl rand 32 > ticket.key`, read by
/// `init(secretFile:)`) and a clock (NTP) issue and accept each other's tickets without
/// talking to each other. Without a file the secret is random per process (a restart ends
/// every ticket). The secret is kept in wiped memory; derived keys live on the stack and are
/// wiped after each use.
public final class TLSTicketKeys: @unchecked Sendable {
    public let rotationSeconds: UInt64
    private let master: UnsafeMutableRawPointer
    /// The default of every server context in this process: a certificate reload (a new
    /// TLSContext) keeps the tickets already issued valid.
    public static let processWide = TLSTicketKeys()
    static let secretLength = 32

    /// A random master secret from the OS CSPRNG (RAND_bytes).
    public init(rotationSeconds: UInt64 = 3600) {
        self.rotationSeconds = max(rotationSeconds, 1)
        master = UnsafeMutableRawPointer.allocate(byteCount: Self.secretLength, alignment: 16)
        guard RAND_bytes(master.assumingMemoryBound(to: UInt8.self), Int32(Self.secretLength)) == 1 else {
            fatalError("RAND_bytes failed: no randomness for session-ticket keys")
        }
    }

    /// The master secret from the first 32 bytes of `secretFile` (shared by a cluster). The
    /// file must be a regular file that group and others cannot read or write (mode 0600 or
    /// 0400, as ssh asks of private keys): whoever reads it can open every ticket, so every
    /// recorded resumed session, and whoever writes it can choose the keys.
    public init(secretFile: String, rotationSeconds: UInt64 = 3600) throws(TLSError) {
        guard let fp = fopen(secretFile, "re") else {
            throw TLSError("cannot read session-ticket key file '\(secretFile)': \(errnoDescription())")
        }
        var st = stat()
        guard fstat(fileno(fp), &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            fclose(fp)
            throw TLSError("session-ticket key file '\(secretFile)' is not a regular file")
        }
        guard st.st_mode & 0o077 == 0 else {
            fclose(fp)
            let mode = String(st.st_mode & 0o777, radix: 8)
            throw TLSError("session-ticket key file '\(secretFile)' is accessible by group or others (mode \(mode)): chmod 600 it")
        }
        let m = UnsafeMutableRawPointer.allocate(byteCount: Self.secretLength, alignment: 16)
        let n = fread(m, 1, Self.secretLength, fp)
        fclose(fp)
        guard n == Self.secretLength else {
            OPENSSL_cleanse(m, Self.secretLength)
            m.deallocate()
            throw TLSError("session-ticket key file '\(secretFile)' is shorter than \(Self.secretLength) bytes")
        }
        master = m
        self.rotationSeconds = max(rotationSeconds, 1)
    }

    deinit {
        OPENSSL_cleanse(master, Self.secretLength)
        master.deallocate()
    }

    /// The current period (seconds since the epoch / rotation); CLOCK_REALTIME so that the
    /// servers of a cluster agree.
    func period(now: UInt64? = nil) -> UInt64 {
        (now ?? UInt64(time(nil))) / rotationSeconds
    }

    /// name (16 bytes), AES key (32), HMAC key (32) of `period`, at `out` (80 bytes).
    func derive(period: UInt64, into out: UnsafeMutableRawPointer) {
        for (i, label) in ["name", "aes", "hmac"].enumerated() {
            var msg = Array("wss-server ticket \(label) ".utf8)
            for b in 0..<8 { msg.append(UInt8(truncatingIfNeeded: period >> (56 - 8 * UInt64(b)))) }
            withUnsafeTemporaryAllocation(byteCount: 64, alignment: 16) { md in
                var len: UInt32 = 0
                let p = md.baseAddress!.assumingMemoryBound(to: UInt8.self)
                _ = HMAC(EVP_sha256(), master, Int32(Self.secretLength), msg, msg.count, p, &len)
                let at = i == 0 ? 0 : 16 + 32 * (i - 1)
                (out + at).copyMemory(from: p, byteCount: i == 0 ? 16 : 32)
                OPENSSL_cleanse(md.baseAddress, md.count)
            }
        }
    }

    /// SSL_CTX_set_tlsext_ticket_key_evp_cb: 1 = ticket made / accepted, 2 = accepted under
    /// the previous key (OpenSSL issues a fresh one), 0 = unknown key (full handshake), -1 error.
    func crypt(name: UnsafeMutablePointer<UInt8>, iv: UnsafeMutablePointer<UInt8>, cipher: OpaquePointer,
               mac: OpaquePointer, encrypt: Bool, now: UInt64? = nil) -> Int32 {
        withUnsafeTemporaryAllocation(byteCount: 80, alignment: 16) { keys -> Int32 in
            defer { OPENSSL_cleanse(keys.baseAddress, keys.count) }
            let k = keys.baseAddress!
            let now = period(now: now)
            if encrypt {
                derive(period: now, into: k)
                guard RAND_bytes(iv, 16) == 1 else { return -1 }
                memcpy(name, k, 16)
                return wss_ticket_crypt_init(cipher, mac, k.assumingMemoryBound(to: UInt8.self) + 16,
                                             k.assumingMemoryBound(to: UInt8.self) + 48, iv, 1) == 1 ? 1 : -1
            }
            for (age, result) in [(UInt64(0), Int32(1)), (1, 2)] where now >= age {
                derive(period: now - age, into: k)
                guard memcmp(name, k, 16) == 0 else { continue }
                guard wss_ticket_crypt_init(cipher, mac, k.assumingMemoryBound(to: UInt8.self) + 16,
                                            k.assumingMemoryBound(to: UInt8.self) + 48, iv, 0) == 1 else { return -1 }
                return result
            }
            return 0
        }
    }
}

/// Handshakes counted for /metrics: full and resumed (a session ticket accepted).
public final class TLSHandshakeCounters: Sendable {
    private let fullCount = Atomic<Int>(0)
    private let resumedCount = Atomic<Int>(0)
    public init() {}
    func count(resumed: Bool) {
        if resumed { resumedCount.add(1, ordering: .relaxed) } else { fullCount.add(1, ordering: .relaxed) }
    }
    public var full: Int { fullCount.load(ordering: .relaxed) }
    public var resumed: Int { resumedCount.load(ordering: .relaxed) }
}
