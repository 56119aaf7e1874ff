import WebSocket

/// A server frame built once and shared by every recipient.
final class PreparedFrame: Sendable {
    let bytes: [UInt8]
    let payloadCount: Int
    init(opcode: Opcode, payload: UnsafeRawBufferPointer) {
        payloadCount = payload.count
        var proto = WebSocketProtocol(role: .server)
        proto.send(opcode, payload)
        bytes = proto.outbound.bytes
    }
}
