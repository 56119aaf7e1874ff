#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

/// Session resumption (RFC 8446 §2.2, §4.6.1) on both record layers: OpenSSL writes one
/// stateless NewSessionTicket straight to the socket at the end of the handshake, under the
/// server's first application key; TLSStream counts it (the generate callback) so that our
/// record layer's write sequence number starts after it. Tickets are sealed with
/// TLSTicketKeys (rotating, shareable by a cluster); no server-side session cache.
extension TLSContext {
    func configureTickets(_ ctx: OpaquePointer) {
        // No per-session server cache (memory per connection, and a lock every handshake).
        _ = wss_SSL_CTX_set_session_cache_mode(ctx, wss_SSL_SESS_CACHE_OFF())
        _ = SSL_CTX_set_num_tickets(ctx, Self.ticketsPerHandshake)
        // Ticket lifetime (and hint): one rotation period; a ticket is accepted for one to two.
        _ = SSL_CTX_set_timeout(ctx, Int(ticketKeys.rotationSeconds))
        _ = SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, Self.ticketKeyCallback)
        _ = SSL_CTX_set_session_ticket_cb(ctx, Self.ticketGenerated, nil, nil)
        if nativeRecords { SSL_CTX_set_keylog_callback(ctx, TLSStream.keyLogCallback) }
    }

    static let ticketKeyCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?,
                                                  OpaquePointer?, OpaquePointer?, Int32) -> Int32 = { ssl, name, iv, cipher, mac, enc in
        // The keys come through the stream, which holds them during its handshake: a context
        // replaced by a certificate reload may be gone while its last handshakes finish.
        guard let name, let iv, let cipher, let mac, let keys = TLSStream.stream(of: ssl)?.ticketKeys else { return -1 }
        let r = keys.crypt(name: name, iv: iv, cipher: cipher, mac: mac, encrypt: enc == 1)
        // Accepted: always ask for a fresh ticket (2). In TLS 1.3 OpenSSL sends one on a resumed
        // handshake only then, and a client should use each ticket once (RFC 8446 §C.4).
        return enc == 1 || r != 1 ? r : 2
    }

    /// Runs once per NewSessionTicket OpenSSL makes (each goes out as one record).
    static let ticketGenerated: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?) -> Int32 = { ssl, _ in
        TLSStream.stream(of: ssl)?.ticketsSent += 1
        return 1
    }
}
