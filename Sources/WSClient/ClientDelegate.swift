import WebSocket

/// What a client connection reports. Callbacks run on the connection's event loop.
public protocol ClientDelegate: AnyObject {
    func clientDidOpen(_ client: ClientConnection)
    func client(_ client: ClientConnection, didReceive message: Message)
    func client(_ client: ClientConnection, didReceivePong payload: UnsafeRawBufferPointer)
    /// The connection ended: `code` is the server's close code (1006 without a close
    /// handshake); `error` says what went wrong, if anything did.
    func clientDidClose(_ client: ClientConnection, code: CloseCode, reason: String, error: String?)
}

extension ClientDelegate {
    public func client(_ client: ClientConnection, didReceivePong payload: UnsafeRawBufferPointer) {}
}
