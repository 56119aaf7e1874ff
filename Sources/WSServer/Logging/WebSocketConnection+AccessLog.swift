import Transport
import WebSocket

/// The access log's two hooks in the connection: after an HTTP request has been answered, and
/// when a WebSocket session ends. Both do nothing (one load and a branch) when
/// `ServerConfiguration.accessLog` is nil; with it, a WebSocket keeps its pending record in
/// `ConnectionExtras` until the close.
extension WebSocketConnection {
    /// `head` was answered; its response starts at `mark` in the output buffer (the status is
    /// read back from that status line, so every answer path is covered by this one hook).
    func logRequest(_ head: HTTPRequestHead?, bytesIn: Int, mark: Int) {
        guard let log = core.configuration.accessLog else { return }
        let out = proto.outbound.readableBytes
        let status = out.count >= mark + 12 ? Self.status(in: UnsafeRawBufferPointer(rebasing: out[(mark + 9)...])) : 0
        let (address, port) = AccessLogRecord.split(hostPort: peerAddress(fd: driver.fd))
        var record = AccessLogRecord(
            kind: status == 101 ? .websocket : .http, connection: id, remoteAddress: address, remotePort: port,
            method: head?.method ?? "", path: head?.path ?? "", status: status,
            bytesIn: bytesIn, bytesOut: out.count - mark, durationMillis: millisSinceAccept(),
            tlsVersion: driver.tls?.protocolVersion ?? "", tlsCipher: Self.cipherName(driver.tls?.records?.suite),
            subprotocol: extras?.subprotocol ?? "", compression: proto.deflate != nil,
            userAgent: head?.value("User-Agent") ?? "")
        if status == 101 {
            record.durationMillis = 0
            extrasBox.access = record
            extrasBox.accessOpenedMicros = monotonicMicros()
        } else {
            log.write(record)
        }
    }

    /// The WebSocket session ended with `code` (the one `onClose` gets).
    func logClose(_ code: CloseCode) {
        guard let log = core.configuration.accessLog, let extras, var record = extras.access else { return }
        extras.access = nil
        record.closeCode = Int(code.rawValue)
        record.durationMillis = Double(monotonicMicros() &- extras.accessOpenedMicros) / 1000
        log.write(record)
    }

    private func millisSinceAccept() -> Double {
        if let started = driver.tls?.startedMicros, started > 0 {
            return Double(monotonicMicros() &- started) / 1000
        }
        // In the handshake phase the deadline is accept time + handshake timeout (ms clock).
        guard policy.phase == .handshake else { return 0 }
        return Double(loop.now &- (policy.deadline &- core.policySettings.handshakeMillis))
    }

    static func status(in bytes: UnsafeRawBufferPointer) -> Int {
        var n = 0
        for b in bytes.prefix(3) {
            guard b >= 0x30 && b <= 0x39 else { return 0 }
            n = n * 10 + Int(b - 0x30)
        }
        return n
    }

    /// IANA names of the TLS 1.3 suites our record layer runs (RFC 8446 §B.4).
    static func cipherName(_ suite: TLS13Suite?) -> String {
        switch suite {
        case .some(.aes128GCM): return "TLS_AES_128_GCM_SHA256"
        case .some(.aes256GCM): return "TLS_AES_256_GCM_SHA384"
        case .some(.chacha20Poly1305): return "TLS_CHACHA20_POLY1305_SHA256"
        default: return ""
        }
    }
}
