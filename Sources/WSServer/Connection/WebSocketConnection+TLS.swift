import Logging
import Transport
import WebSocket

/// The TLS port before the handshake is done: the first byte decides (TLS, plain HTTP, or
/// garbage), then OpenSSL's handshake runs step by step.
extension WebSocketConnection {
    func advanceTLSHandshake() {
        switch driver.handshake() {
        case .done:
            core.metrics.tlsHandshake(seconds: Double(monotonicMicros() &- driver.tls!.startedMicros) / 1e6)
            updateInterest()
            readAvailable()
        case .wantRead: driver.update(&interest, to: .read, on: loop)
        case .wantWrite: driver.update(&interest, to: [.read, .write], on: loop)
        case .eof:
            log.debug("peer closed during TLS handshake", metadata: meta)
            finish()
        case .error(let why):
            log.debug("TLS handshake failed: \(why)", metadata: meta)
            core.metrics.tlsHandshakeFailures.add(1)
            core.metrics.handshakeFailed("tls")
            finish()
        }
    }

    static let tlsPortHint = "this port speaks TLS: use https:// or wss://"

    /// Before the TLS handshake: an HTTP request gets a plaintext 400 with a hint at once (as
    /// nginx does), garbage is dropped at once; both are logged once per client per minute.
    /// True: go on with the handshake.
    func checkTLSOpening() -> Bool {
        let opening = driver.peekOpening()
        switch opening {
        case .nothingYet: return false
        case .tls:
            openingChecked = true
            return true
        case .plaintextHTTP, .garbage:
            openingChecked = true
            let http = opening == .plaintextHTTP
            core.metrics.tlsHandshakeFailures.add(1)
            core.metrics.handshakeFailed(http ? "plaintext_http" : "not_tls")
            let client = hostPart(driver.remoteAddress)
            if core.noticeLimiter.allows(client, now: loop.now) {
                log.info(http ? "plain HTTP from \(client) on the TLS port -> 400 (\(Self.tlsPortHint))"
                              : "not TLS from \(client) on the TLS port: dropped", metadata: meta)
            }
            guard http else {
                finish()
                return false
            }
            let (head, body) = HTTPResponder.errorResponse(status: 400, reason: Self.tlsPortHint, extraHeaders: [])
            var answer = head + body
            answer.withUTF8 { driver.writeBypassingTLS(UnsafeRawBufferPointer($0)) }
            startLinger()
            return false
        }
    }
}
