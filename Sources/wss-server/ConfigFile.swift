#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import TOMLKit
import ToolSupport

/// `--config FILE`: a TOML file whose keys are the long flag names without dashes
/// (`max-message-size = 1048576`, `allowed-origin = ["https://a.example"]`,
/// `no-deflate = true`). It is turned into arguments placed before the command line's, so the
/// one parser checks both the same way and a flag on the command line overrides the file (for
/// a repeatable flag, the command line's values replace the file's). An unknown key is an
/// error naming the key and its line.
enum ConfigFile {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The arguments with FILE's settings in front (unchanged without --config).
    static func expand(_ arguments: [String]) throws -> [String] {
        guard let path = configPath(in: arguments) else { return arguments }
        let text = try read(path)
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw Failure(description: "config \(path):\(error.source.begin.line): \(error.description)")
        }
        var fileArguments: [String] = []
        for key in table.keys.sorted() {
            guard let value = table[key] else { continue }
            let line = lineNumber(of: key, in: text)
            let flag = "--\(key)"
            if key == "config" { throw Failure(description: "config \(path):\(line): a config file cannot name another (--config)") }
            if arguments.contains(where: { $0 == flag || $0.hasPrefix(flag + "=") }) { continue }  // the command line wins
            fileArguments += try self.arguments(flag, value, at: "config \(path):\(line)")
        }
        try checkKeys(fileArguments, table: table, text: text, path: path)
        return fileArguments + arguments
    }

    static func configPath(in arguments: [String]) -> String? {
        for (i, a) in arguments.enumerated() {
            if a == "--config", i + 1 < arguments.count { return arguments[i + 1] }
            if a.hasPrefix("--config=") { return String(a.dropFirst(9)) }
        }
        return nil
    }

    /// One TOML value as arguments: scalars after the flag, `true` as the bare flag, `false` as
    /// nothing, an array as the flag repeated.
    static func arguments(_ flag: String, _ value: TOMLValueConvertible, at place: String) throws -> [String] {
        switch value.type {
        case .bool: return value.bool == true ? [flag] : []
        case .int: return [flag, String(value.int!)]
        case .double: return [flag, "\(value.double!)"]
        case .string: return [flag, value.string!]
        case .array:
            return try value.array!.flatMap { element -> [String] in
                guard [.int, .double, .string].contains(element.type) else {
                    throw Failure(description: "\(place): '\(flag.dropFirst(2))' takes a list of numbers or strings")
                }
                return try arguments(flag, element, at: place)
            }
        default:
            throw Failure(description: "\(place): '\(flag.dropFirst(2))' must be a number, string, boolean or list, not a \(value.type)")
        }
    }

    /// Parses the file's arguments alone to find keys the command does not know: ArgumentParser
    /// names the first unknown option. Other complaints (a value out of range, a missing --cert)
    /// are left to the full parse, which sees the command line too.
    static func checkKeys(_ fileArguments: [String], table: TOMLTable, text: String, path: String) throws {
        do {
            _ = try WSSServerCommand.parseAsRoot(fileArguments)
        } catch {
            let message = WSSServerCommand.message(for: error)
            for key in table.keys where message.contains("Unknown option '--\(key)'") {
                throw Failure(description: "config \(path):\(lineNumber(of: key, in: text)): unknown key '\(key)'")
            }
            for key in table.keys where message.contains("'--\(key)") {
                throw Failure(description: "config \(path):\(lineNumber(of: key, in: text)): \(message)")
            }
        }
    }

    /// The line where `key = …` (or a `[key]` table) is, 1-based; 0 if not found.
    static func lineNumber(of key: String, in text: String) -> Int {
        for (i, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.drop { $0 == " " || $0 == "\t" }
            if t.hasPrefix("[\(key)]") { return i + 1 }   // a table header
            for form in [key, "\"\(key)\"", "'\(key)'"] where t.hasPrefix(form) {
                let rest = t.dropFirst(form.count).drop { $0 == " " || $0 == "\t" }
                if rest.hasPrefix("=") { return i + 1 }
            }
        }
        return 0
    }

    static func read(_ path: String) throws -> String {
        guard let file = fopen(path, "r") else {
            throw Failure(description: "cannot read config file '\(path)': \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n > 0 { bytes += chunk[0..<n] }
            if n < chunk.count { break }
            if bytes.count > 1 << 20 { throw Failure(description: "config file '\(path)' is over 1 MiB") }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw Failure(description: "config file '\(path)' is not UTF-8 (TOML requires it)")
        }
        return text
    }
}
