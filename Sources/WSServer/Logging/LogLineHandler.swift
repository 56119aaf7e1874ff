#if canImport(Glibc)
import Glibc
#endif
import Logging

/// A swift-log handler writing one line per event to stderr, in `--log-format`:
/// - text: `2026-12-01T20:18:01.123Z info wss-server: listening conn=3`
/// - json: `{"ts":"2026-12-01T20:18:01.123Z","level":"info","label":"wss-server","msg":"listening","conn":"3"}`
///
/// Timestamps are UTC with milliseconds; the JSON keys are ts, level, label, msg, then the
/// metadata keys in sorted order (values as strings). A line is one `write(2)`: lines from
/// different threads never interleave.
public struct LogLineHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public let label: String
    public let format: LogFormat
    private let fd: Int32

    public init(label: String, format: LogFormat, level: Logger.Level = .info, fd: Int32 = 2) {
        self.label = label
        self.format = format
        self.logLevel = level
        self.fd = fd
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
                    source: String, file: String, function: String, line: UInt) {
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { $1 } }
        if let explicit { all.merge(explicit) { $1 } }
        var text = render(level: level, message: "\(message)", metadata: all, timestamp: LogTimestamp.now()) + "\n"
        LogWrite.all(&text, to: fd)
    }

    /// The line for one event, without the newline (separate for tests).
    public func render(level: Logger.Level, message: String, metadata: Logger.Metadata, timestamp: String) -> String {
        let pairs = metadata.sorted { $0.key < $1.key }
        switch format {
        case .json:
            var out = "{\"ts\":\"\(timestamp)\",\"level\":\"\(level.rawValue)\",\"label\":\(JSONText.quoted(label)),"
                + "\"msg\":\(JSONText.quoted(message))"
            for (k, v) in pairs where !["ts", "level", "label", "msg"].contains(k) {
                out += ",\(JSONText.quoted(k)):\(JSONText.quoted("\(v)"))"
            }
            return out + "}"
        case .text:
            // The message itself stays readable; only control characters are escaped.
            let safe = message.unicodeScalars.contains { $0.value < 0x20 } ? JSONText.quoted(message) : message
            var out = "\(timestamp) \(level.rawValue) \(label): \(safe)"
            for (k, v) in pairs { out += " \(k)=\(JSONText.textValue("\(v)"))" }
            return out
        }
    }
}
