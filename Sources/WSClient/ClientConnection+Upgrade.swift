import Transport
import WebSocket

/// From connected to open: the TLS handshake, the upgrade request, the server's answer.
extension ClientConnection {
    func advanceTLS() {
        switch driver.handshake() {
        case .done: startUpgrade()
        case .wantRead: driver.update(&interest, to: .read, on: loop)
        case .wantWrite: driver.update(&interest, to: [.read, .write], on: loop)
        case .eof: finish(code: .abnormal, reason: "", error: "server closed during TLS handshake")
        case .error(let why): finish(code: .abnormal, reason: "", error: why)
        }
    }

    func startUpgrade() {
        phase = .upgrading
        proto.outbound.append(handshake.request)
        driver.update(&interest, to: .read, on: loop)
        flush()
    }

    /// The server's answer to the upgrade: bytes it used, or nil (more needed, or failed).
    func receivedResponse(_ bytes: UnsafeMutableRawBufferPointer) -> Int? {
        do {
            guard let (head, consumed) = try responseParser.feedResponse(UnsafeRawBufferPointer(bytes)) else { return nil }
            switch handshake.accept(head) {
            case .failure(let e):
                finish(code: .abnormal, reason: "", error: "\(e)")
                return nil
            case .success(let accepted):
                subprotocol = accepted.subprotocol
                if let params = accepted.deflate {
                    proto.deflate = PerMessageDeflate(role: .client, parameters: params, options: options.deflateOptions)
                }
            }
            phase = .open
            policy.opened(now: loop.now)
            delegate?.clientDidOpen(self)
            return consumed
        } catch {
            finish(code: .abnormal, reason: "", error: "bad handshake response: \(error)")
            return nil
        }
    }
}
