import Transport
import WebSocket

/// `X-Forwarded-For` from a trusted balancer that terminates TLS itself (HAProxy in HTTP
/// mode, nginx): the client is the rightmost address in the header that is not itself a
/// trusted proxy (addresses to its left were written by the client and can be forged).
enum ForwardedFor {
    static func client(_ header: String, trusted: [IPAddressRange]) -> IPAddress? {
        var found: IPAddress?
        for part in header.split(separator: ",").reversed() {
            let text = part.trimmingSpaces
            guard let a = IPAddress(text) else { return found }  // garbage: stop, trust nothing beyond
            found = a
            if !trusted.contains(address: a.unmapped) { return a }
        }
        return found
    }

    /// Records the forwarded client of this request for `peerAddress(fd:)` (or clears it),
    /// when the socket's peer is a trusted proxy and no PROXY header is in use.
    static func record(_ head: HTTPRequestHead, fd: Int32, configuration: ServerConfiguration) {
        let trusted = configuration.trustedProxies
        guard !trusted.isEmpty, configuration.proxyProtocol == nil else { return }
        var address: String?
        if let header = head.value("X-Forwarded-For"), let peer = IPAddress(socketPeerAddress(fd: fd).hostPart),
           trusted.contains(address: peer.unmapped) {
            address = client(header, trusted: trusted).map { "\($0.unmapped)" }
        }
        PeerAddressOverride.set(fd: fd, address)
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

extension String {
    /// "1.2.3.4:80" → "1.2.3.4", "[::1]:80" → "::1"; a bare address ("::1", "1.2.3.4") as is,
    /// and junk unchanged (so no address). The access log's split, not a cut at the last colon.
    var hostPart: String { AccessLogRecord.split(hostPort: self).0 }
}
