/// Post-handshake handshake messages (RFC 8446 §4.6) on our record layer: KeyUpdate both
/// ways, NewSessionTicket on the client. Fragments are gathered across records, but a message
/// that can never be valid is refused at its header (type, then length), as OpenSSL does,
/// instead of buffering up to its claimed length.
extension TLS13RecordLayer {
    /// Largest NewSessionTicket a client accepts (ticket ≤ 2^16-1, nonce, extensions).
    static let maxTicketMessage = (1 << 16) + 1024

    func receivedHandshake(_ bytes: UnsafeRawBufferPointer) throws(TLSRecordError) {
        // §5.1: "Implementations MUST NOT send zero-length fragments of Handshake types".
        guard bytes.count > 0 else { throw .unexpectedMessage("empty handshake record") }
        handshakeBytes.append(contentsOf: bytes)
        while !handshakeBytes.isEmpty {
            let type = handshakeBytes[0]
            try checkType(type)
            guard handshakeBytes.count >= 4 else { return }
            let length = Int(handshakeBytes[1]) << 16 | Int(handshakeBytes[2]) << 8 | Int(handshakeBytes[3])
            try checkLength(type, length)
            guard handshakeBytes.count >= 4 + length else { return }
            let body = Array(handshakeBytes[4..<(4 + length)])
            handshakeBytes.removeFirst(4 + length)
            try handle(type, body)
        }
        handshakeBytes = []
    }

    /// The messages a peer may send after the handshake: KeyUpdate, and (to a client)
    /// NewSessionTicket. We never ask for post-handshake authentication.
    private func checkType(_ type: UInt8) throws(TLSRecordError) {
        switch type {
        case 24: return
        case 4 where role == .client: return
        default: throw .unexpectedMessage("post-handshake message type \(type)")
        }
    }

    private func checkLength(_ type: UInt8, _ length: Int) throws(TLSRecordError) {
        switch type {
        case 24:  // struct { KeyUpdateRequest request_update; } KeyUpdate: one byte.
            guard length == 1 else { throw .decodeError("KeyUpdate of \(length) bytes") }
        default:
            guard length <= Self.maxTicketMessage else { throw .decodeError("NewSessionTicket of \(length) bytes") }
        }
    }

    private func handle(_ type: UInt8, _ body: [UInt8]) throws(TLSRecordError) {
        switch type {
        case 24:  // KeyUpdate (§4.6.3)
            // update_not_requested(0), update_requested(1); anything else is illegal_parameter.
            guard body[0] <= 1 else { throw .illegalParameter("KeyUpdate request_update \(body[0])") }
            // §5.1: handshake messages MUST NOT span key changes.
            guard handshakeBytes.isEmpty else { throw .unexpectedMessage("data after KeyUpdate in its record") }
            read.update()
            if body[0] == 1 { keyUpdatesOwed += 1 }
        default:
            break  // NewSessionTicket: our client does not resume sessions
        }
    }
}
