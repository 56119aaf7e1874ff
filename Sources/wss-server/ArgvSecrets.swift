/// Secrets given on the command line: any local user can read a process's arguments (`ps`,
/// /proc/PID/cmdline). The server still starts, with one warning line that says where the
/// secret belongs instead (--backplane-password-file, WSS_BACKPLANE_PASSWORD, or a --config
/// file that only its owner can read); the secret itself is
/// never printed.
enum ArgvSecrets {
    /// The warning for `arguments` (the process's own, before --config expansion), if any.
    static func warning(for arguments: [String]) -> String? {
        for (i, a) in arguments.enumerated() {
            let url: String
            if a == "--backplane", i + 1 < arguments.count { url = arguments[i + 1] }
            else if a.hasPrefix("--backplane=") { url = String(a.dropFirst("--backplane=".count)) }
            else { continue }
            if hasPassword(url) {
                return "wss-server: warning: the --backplane URL carries a password on the command line, where any local user can read it (ps); use --backplane-password-file FILE, WSS_BACKPLANE_PASSWORD, or a --config FILE of mode 0600 instead"
            }
        }
        return nil
    }

    /// redis://[user][:password]@host…: a userinfo part with a colon, or any userinfo at all
    /// (Redis 6 ACLs take "user:password"; a bare "secret@" is a password to some clients too).
    static func hasPassword(_ url: String) -> Bool {
        guard let scheme = url.range(of: "://") else { return false }
        let rest = url[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" }
        return authority.contains("@")
    }
}
