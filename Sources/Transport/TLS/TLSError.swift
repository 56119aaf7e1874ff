import COpenSSL

/// An OpenSSL failure: what we were doing, and every entry that was in the error queue.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var entries: [String]

    public init(_ operation: String, entries: [String] = []) {
        self.operation = operation
        self.entries = entries
    }

    /// Builds an error from the current thread's OpenSSL error queue and leaves it empty.
    public static func drain(_ operation: String) -> TLSError {
        TLSError(operation, entries: drainErrorQueue())
    }

    public var description: String {
        entries.isEmpty ? operation : "\(operation): \(entries.joined(separator: "; "))"
    }
}

/// Empties the OpenSSL error queue, returning its entries as readable strings
/// (the reason part only, e.g. "key values mismatch").
public func drainErrorQueue() -> [String] {
    var out: [String] = []
    while true {
        let code = ERR_get_error()
        if code == 0 { break }
        if let reason = ERR_reason_error_string(code) {
            out.append(String(cString: reason))
        } else {
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            out.append(cString(buf))
        }
    }
    return out
}
