import Foundation
import Logging

/// The log lines of a test's logger (`logger`), for assertions on what the code said.
public final class LogLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [(Logger.Level, String)] = []
    public init() {}
    public func append(_ level: Logger.Level, _ s: String) { lock.lock(); lines.append((level, s)); lock.unlock() }
    public var all: [(Logger.Level, String)] { lock.lock(); defer { lock.unlock() }; return lines }
    /// A logger at trace level whose every line lands here.
    public var logger: Logger { Logger(label: "test") { [self] _ in LogCapture(lines: self) } }
}

/// A `LogHandler` that appends to `LogLines`.
public struct LogCapture: LogHandler {
    let lines: LogLines
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .trace
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    public func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                    file: String, function: String, line: UInt) {
        lines.append(level, "\(message)")
    }
}
