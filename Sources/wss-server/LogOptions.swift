import ArgumentParser
import Logging
import WSServer

extension LogFormat: ExpressibleByArgument {}

/// Logging flags: level and format of the log, and the access log.
struct LogOptions: ParsableArguments {
    @Option(help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    @Option(help: "text (one readable line per event) or json (JSON Lines with stable keys); UTC timestamps with milliseconds.")
    var logFormat: LogFormat = .text

    @Option(help: ArgumentHelp("Access log: one line per HTTP request and per WebSocket session: off, stderr, or a file (reopened on SIGHUP, for logrotate).", valueName: "off|stderr|FILE"))
    var accessLog: String = "stderr"

    @Option(help: ArgumentHelp("Query parameters whose values the access log writes as *** (comma-separated, case-insensitive; '' for none). The logged path is the request target with its query.", valueName: "NAMES"))
    var accessLogRedact: String = QueryRedaction.defaultNames.joined(separator: ",")

    var redactedNames: [String] {
        accessLogRedact.split(separator: ",").map { String($0.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()) }
            .filter { !$0.isEmpty }
    }

    func validate() throws {
        if Logger.Level(rawValue: logLevel) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
        if accessLog.isEmpty { throw ValidationError("--access-log must be off, stderr or a file path") }
        for name in redactedNames where name.contains(where: { "&=?#".contains($0) || $0.isWhitespace }) {
            throw ValidationError("--access-log-redact: '\(name)' is not a parameter name")
        }
    }

    var level: Logger.Level { Logger.Level(rawValue: logLevel) ?? .info }

    /// Installs the log handler for the whole process.
    func bootstrap() {
        let (format, level) = (logFormat, level)
        LoggingSystem.bootstrap { label in LogLineHandler(label: label, format: format, level: level) }
    }

    /// The access log, or nil when off. Access lines are `info`: on stderr they follow
    /// --log-level (none above info); a file gets them whatever the level.
    func makeAccessLog() throws -> AccessLog? {
        if accessLog == "stderr" && level > .info { return nil }
        return try AccessLog.parse(accessLog, format: logFormat, redaction: QueryRedaction(names: redactedNames))
    }
}
