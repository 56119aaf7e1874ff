/// What this build is: the semantic version (VERSION, or a release tag `vX.Y.Z` on the commit)
/// and the git commit it was built from, generated at build time by BuildInfoPlugin.
public enum BuildInfo {
    /// Semantic version, e.g. "0.1.0".
    public static let version = generatedVersion
    /// `git describe --tags --always --dirty` of the source tree ("unknown" outside git).
    public static let describe = generatedDescribe
    /// Full commit hash ("unknown" outside git).
    public static let commit = generatedCommit

    /// "NAME 0.1.0 (git e3a3ba9)": what `--version` prints.
    public static func versionLine(_ tool: String) -> String {
        "\(tool) \(version) (git \(describe))"
    }
}
