import COpenSSL

/// SHA-1 from libcrypto. Used only for `Sec-WebSocket-Accept` (RFC 6455 §4.2.2), where
/// SHA-1 is a fixed part of the protocol, not a security choice.
package enum SHA1 {
    package static func digest<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        let input = Array(bytes)
        var out = [UInt8](repeating: 0, count: 20)
        input.withUnsafeBufferPointer { inp in
            out.withUnsafeMutableBufferPointer { o in
                _ = COpenSSL.SHA1(inp.baseAddress, inp.count, o.baseAddress)
            }
        }
        return out
    }
}
