import WebSocket

/// Server-Sent Events framing for fallback sessions (WHATWG HTML §9.2 "Server-sent events").
///
/// The stream carries, in order:
/// - `event: session` with the session id as data — always the first event;
/// - a text message as `data:` lines. A browser joins `data` lines with LF, so a message is
///   split at LF; a text that contains CR (which the parser would also treat as a line end)
///   goes as `event: text64` with base64 data instead, so every message arrives byte-exact;
/// - a binary message as `event: binary` with base64 data (RFC 4648 §4);
/// - a close as `event: close` with data `<code> <reason>`; the server ends the stream after it;
/// - heartbeats as comment lines (`:` …) every 15 s, which EventSource ignores.
///
/// Writes append to a caller-owned buffer; nothing here does I/O.
public enum SSEEncoder {
    /// The default heartbeat period: proxies commonly cut idle responses after 30-60 s
    /// (nginx `proxy_read_timeout` is 60 s), so 15 s keeps well inside.
    public static let heartbeatSeconds = 15

    static let dataPrefix: [UInt8] = Array("data: ".utf8)

    /// Appends the first event, naming the session.
    public static func appendSession(_ id: SessionID, to out: inout [UInt8]) {
        appendEvent("session", data: Array(id.description.utf8), to: &out)
    }

    /// Appends one text message (valid UTF-8) as an event.
    public static func appendText(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        if bytes.contains(13) {
            appendEvent("text64", data: Array(Base64.encode(bytes).utf8), to: &out)
            return
        }
        var start = 0
        for i in 0...bytes.count where i == bytes.count || bytes[i] == 10 {
            out.append(contentsOf: dataPrefix)
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[start..<i]))
            out.append(10)
            start = i + 1
        }
        out.append(10)
    }

    /// Appends one binary message, base64 in an `event: binary`.
    public static func appendBinary(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        appendEvent("binary", data: Array(Base64.encode(bytes).utf8), to: &out)
    }

    /// Appends the close event; `reason` must not contain CR or LF (it is cut at the first).
    public static func appendClose(code: UInt16, reason: String, to out: inout [UInt8]) {
        let line = reason.utf8.prefix { $0 != 10 && $0 != 13 }
        appendEvent("close", data: Array("\(code) ".utf8) + line, to: &out)
    }

    /// Appends a heartbeat comment (ignored by EventSource, keeps proxies from timing out).
    public static func appendHeartbeat(to out: inout [UInt8]) {
        out.append(contentsOf: ": hb\n\n".utf8)
    }

    /// Appends a message of either kind.
    public static func append(_ message: Message, to out: inout [UInt8]) {
        if message.isText { appendText(message.bytes, to: &out) } else { appendBinary(message.bytes, to: &out) }
    }

    static func appendEvent(_ name: StaticString, data: [UInt8], to out: inout [UInt8]) {
        out.append(contentsOf: "event: ".utf8)
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(10)
        out.append(contentsOf: dataPrefix)
        out.append(contentsOf: data)
        out.append(contentsOf: [10, 10])
    }
}
