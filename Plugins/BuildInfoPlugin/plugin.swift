import Foundation
import PackagePlugin

/// Generates `BuildInfo+Generated.swift` (version and git commit), offline: a build command
/// runs `build-info.sh`, which reads VERSION and asks the local git for `describe`.
///
/// A build command, not a prebuild command: SwiftPM skips plugins (and so prebuild commands)
/// on incremental builds (swift-package-manager issue 5476). Its inputs are the git files that
/// move on every commit, checkout and `git add` (HEAD, HEAD's reflog, the index, the branch
/// ref), so the next `swift build` after a commit regenerates the file; the script rewrites it
/// only when the value changed, so nothing recompiles otherwise.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let package = context.package.directoryURL
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildInfo+Generated.swift")
        let script = package.appending(path: "Plugins/BuildInfoPlugin/build-info.sh")
        return [.buildCommand(
            displayName: "build info from VERSION and git describe",
            executable: URL(fileURLWithPath: "/bin/sh"),
            arguments: [script.path, package.path, output.deletingLastPathComponent().path],
            inputFiles: [script, package.appending(path: "VERSION")] + gitInputs(package),
            outputFiles: [output])]
    }

    /// The files under .git that change when HEAD moves or the index changes; only those that
    /// exist (a tarball without .git has none). Handles worktrees (.git is a file).
    func gitInputs(_ package: URL) -> [URL] {
        let fm = FileManager.default
        var gitDir = package.appending(path: ".git")
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: gitDir.path, isDirectory: &isDir) else { return [] }
        if !isDir.boolValue {
            // "gitdir: /path/to/main/.git/worktrees/NAME"
            guard let text = try? String(contentsOf: gitDir, encoding: .utf8),
                  let line = text.split(separator: "\n").first(where: { $0.hasPrefix("gitdir: ") })
            else { return [] }
            let path = String(line.dropFirst(8))
            gitDir = path.hasPrefix("/") ? URL(fileURLWithPath: path) : package.appending(path: path)
        }
        var commonDir = gitDir
        if let text = try? String(contentsOf: gitDir.appending(path: "commondir"), encoding: .utf8) {
            let path = text.trimmingCharacters(in: .whitespacesAndNewlines)
            commonDir = path.hasPrefix("/") ? URL(fileURLWithPath: path) : gitDir.appending(path: path)
        }
        var files = [gitDir.appending(path: "HEAD"), gitDir.appending(path: "logs/HEAD"),
                     gitDir.appending(path: "index"), commonDir.appending(path: "packed-refs")]
        if let head = try? String(contentsOf: gitDir.appending(path: "HEAD"), encoding: .utf8),
           head.hasPrefix("ref: ") {
            let ref = head.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines)
            files.append(commonDir.appending(path: ref))
        }
        return files.filter { fm.fileExists(atPath: $0.path) }
    }
}
