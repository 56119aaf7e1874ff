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
    /// Records we seal under one key before we update it ourselves (RFC 8446 §5.5). AES-GCM
    /// may protect 2^24.5 full-size records per key; 2^24 keeps a margin and is far below
    /// ChaCha20-Poly1305's limit (> 2^60) too, so one bound serves every suite.
    public static let defaultKeyUpdateInterval: UInt64 = 1 << 24

    let role: Role
    let read: TLS13Direction
    let write: TLS13Direction
    /// The negotiated cipher suite (for logs).
    public var suite: TLS13Suite { read.suite }
    /// Largest plaintext per record both ways: 2^14, or what max_fragment_length (RFC 6066
    /// §4) agreed in the handshake.
    public let plaintextLimit: Int
    /// After this many records under one write key we send a KeyUpdate first (§5.5).
    public var keyUpdateInterval = TLS13RecordLayer.defaultKeyUpdateInterval
    /// KeyUpdates the peer asked for (§4.6.3), sent before our next application record: one
    /// per request, as OpenSSL does (tlsfuzzer expects that unless told the server coalesces).
    /// At most 32 (`maxRecordsWithoutData`) pile up.
    var keyUpdatesOwed = 0
    public var keyUpdateOwed: Bool { keyUpdatesOwed > 0 }
    /// KeyUpdates we sent (asked for, or for the AEAD limit).
    public private(set) var keyUpdatesSent = 0
    /// Bytes of a handshake message split across records (post-handshake messages are small).
    var handshakeBytes: [UInt8] = []
    /// close_notify received.
    public private(set) var receivedCloseNotify = false
    /// The fatal error that ended the read side (RFC 8446 §6.2: nothing is opened after it).
    public private(set) var failure: TLSRecordError?
    /// Records in a row that carried no application data.
    private var recordsWithoutData = 0
    public static let maxRecordsWithoutData = 32

    /// `writeSequence`: records OpenSSL already sealed under the write secret (its
    /// NewSessionTickets) before handing the connection over.
    public init(role: Role, suite: TLS13Suite, readSecret: [UInt8], writeSecret: [UInt8],
                writeSequence: UInt64 = 0, plaintextLimit: Int = TLS13RecordLayer.maxPlaintext) {
        self.role = role
        self.read = readSecret.withUnsafeBytes { TLS13Direction(suite: suite, secret: $0, encrypting: false) }
        self.write = writeSecret.withUnsafeBytes { TLS13Direction(suite: suite, secret: $0, encrypting: true) }
        self.write.seq = writeSequence
        self.plaintextLimit = min(max(plaintextLimit, 512), Self.maxPlaintext)
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
        /// The fatal error found in a record after `produced` good bytes (nothing after that
        /// record was opened). Without good bytes `open` throws it instead.
        public var error: TLSRecordError? = nil
    }

    /// Opens every complete record in `input`, writing application data to `out` (which must
    /// have room for `input.count` bytes: plaintext is always shorter than its record).
    /// Stops after a close_notify. A partial record at the end is left unconsumed.
    /// A bad record behind good ones does not cost the good ones: their bytes come back with
    /// the error (`Opened.error`); every later call throws it.
    public func open(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) throws(TLSRecordError) -> Opened {
        if let failure { throw failure }
        var off = 0, produced = 0
        do throws(TLSRecordError) {
            try openRecords(input, into: out, off: &off, produced: &produced)
        } catch {
            failure = error
            guard produced > 0 else { throw error }
            return Opened(consumed: off, produced: produced, error: error)
        }
        return Opened(consumed: off, produced: produced)
    }

    private func openRecords(_ input: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer,
                             off: inout Int, produced: inout Int) throws(TLSRecordError) {
        while input.count - off >= 5 && !receivedCloseNotify {
            let type = input[off]
            let length = Int(input[off + 3]) << 8 | Int(input[off + 4])
            // §5.2: after the handshake every record is protected, with outer type application_data.
            guard type == 23 else { throw .unexpectedMessage("unprotected record of type \(type) after the handshake") }
            guard length <= plaintextLimit + 256 else { throw .recordOverflow }
            guard input.count - off >= 5 + length else { break }
            // §5.4: TLSInnerPlaintext (content, type, padding) is at most 2^14 + 1 bytes (or the
            // agreed fragment limit + 1); the tag is 16 bytes.
            guard length <= plaintextLimit + 1 + 16 else { throw .recordOverflow }
            let header = input.baseAddress! + off
            let body = UnsafeRawBufferPointer(start: header + 5, count: length)
            let dest = out.baseAddress! + produced
            let (inner, n) = try read.open(header: header, body: body, into: dest)
            off += 5 + length
            guard n <= plaintextLimit else { throw .recordOverflow }
            try countRecord(hasData: inner == 23 && n > 0)
            // §5.1: handshake messages MUST NOT be interleaved with other record types.
            if inner != 22 && !handshakeBytes.isEmpty {
                throw .unexpectedMessage("content type \(inner) between fragments of a handshake message")
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
    }

    /// A peer that sends only records without application data (empty ones, KeyUpdates,
    /// warnings, tickets) makes us work for nothing: at most 32 in a row, as BoringSSL.
    private func countRecord(hasData: Bool) throws(TLSRecordError) {
        if hasData { recordsWithoutData = 0; return }
        recordsWithoutData += 1
        guard recordsWithoutData <= Self.maxRecordsWithoutData else {
            throw .unexpectedMessage("\(recordsWithoutData) records in a row without application data")
        }
    }

    private func receivedAlert(_ bytes: UnsafeRawBufferPointer) throws(TLSRecordError) {
        // An alert is exactly level and description and is never fragmented (§5.1, §6);
        // OpenSSL and tlsfuzzer answer anything else with unexpected_message.
        guard bytes.count == 2 else { throw .unexpectedMessage("alert record of \(bytes.count) bytes") }
        // §6.1: close_notify ends the peer's writing; every other alert is fatal in TLS 1.3
        // (user_canceled is followed by close_notify).
        switch bytes[1] {
        case 0: receivedCloseNotify = true
        case 90: break
        default: throw .peerAlert(bytes[1])
        }
    }

    // MARK: - Sending

    /// Room needed in `out` to seal `count` application bytes (plus a pending KeyUpdate).
    public static func sealedSize(_ count: Int, plaintextLimit: Int = maxPlaintext) -> Int {
        let records = max(1, (count + plaintextLimit - 1) / plaintextLimit)
        return count + records * overhead + 5 + overhead
    }

    /// Seals as much of `plaintext` as fits in `out` as records of at most `plaintextLimit`
    /// bytes; returns (plaintext bytes used, record bytes written). A KeyUpdate the peer asked
    /// for goes first (§4.6.3); so does ours when the write key has protected
    /// `keyUpdateInterval` records (§5.5).
    public func seal(_ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) -> (consumed: Int, produced: Int) {
        var produced = 0
        while keyUpdatesOwed > 0 && out.count - produced >= 5 + Self.overhead {
            produced += sealKeyUpdate(requestPeer: false, into: out.baseAddress! + produced)
        }
        var consumed = 0
        while consumed < plaintext.count {
            let n = min(plaintextLimit, plaintext.count - consumed)
            if write.recordsUnderKey >= keyUpdateInterval {
                guard out.count - produced >= 5 + Self.overhead else { break }
                // Ask the peer to rekey too if its key has been used as long.
                produced += sealKeyUpdate(requestPeer: read.recordsUnderKey >= keyUpdateInterval,
                                          into: out.baseAddress! + produced)
            }
            guard !keyUpdateOwed, out.count - produced >= n + Self.overhead else { break }
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
        keyUpdatesOwed = max(keyUpdatesOwed - 1, 0)  // ours went out before any further data (§4.6.3)
        keyUpdatesSent += 1
        return n
    }
}
