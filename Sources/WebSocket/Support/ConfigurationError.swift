/// A configuration value outside the range the protocol core accepts. Values are rejected,
/// never clamped: a limit silently lowered (or raised) is a limit nobody chose.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The setting, as the type names it (e.g. "maxMessageSize").
    public let setting: String
    public let value: Int
    public let allowed: ClosedRange<Int>
    /// Why the range is what it is, if not obvious.
    public let note: String?

    public init(setting: String, value: Int, allowed: ClosedRange<Int>, note: String? = nil) {
        self.setting = setting
        self.value = value
        self.allowed = allowed
        self.note = note
    }

    /// Throws unless `value` is in `allowed`.
    static func check(_ setting: String, _ value: Int, in allowed: ClosedRange<Int>,
                      note: String? = nil) throws(ConfigurationError) {
        guard allowed.contains(value) else {
            throw ConfigurationError(setting: setting, value: value, allowed: allowed, note: note)
        }
    }

    /// `value` if it is in `allowed`; traps otherwise (for setters: a value out of range there
    /// is a programming error, like an index out of range).
    static func trap(_ setting: String, _ value: Int, _ allowed: ClosedRange<Int>) -> Int {
        precondition(allowed.contains(value), "\(ConfigurationError(setting: setting, value: value, allowed: allowed))")
        return value
    }

    public var description: String {
        "\(setting) must be \(allowed.lowerBound)–\(allowed.upperBound)\(note.map { " (\($0))" } ?? ""), got \(value)"
    }
}
