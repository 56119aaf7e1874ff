#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser

extension ParsableCommand {
    /// Parses and runs the command like `main()`, but an ordinary error (a bad flag, a bad
    /// value, a failed run) is ONE line on stderr, "TOOL: error: …", and exit status 1, instead
    /// of ArgumentParser's usage block and status 64. `--help` and `--version` behave as usual.
    public static func mainWithOneLineErrors(_ arguments: [String]? = nil) -> Never {
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
            Glibc.exit(0)
        } catch {
            if exitCode(for: error) == .success { exit(withError: error) }  // --help, --version
            if let code = error as? ExitCode { Glibc.exit(code.rawValue) }   // already reported
            failLine(message(for: error))
        }
    }

    /// Writes "TOOL: error: MESSAGE" (newlines folded into "; ") to stderr and exits 1.
    public static func failLine(_ message: String) -> Never {
        let name = configuration.commandName ?? "error"
        let text = message.split(whereSeparator: \.isNewline).joined(separator: "; ")
        var line = "\(name): error: \(text)\n"
        line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
        Glibc.exit(1)
    }
}
