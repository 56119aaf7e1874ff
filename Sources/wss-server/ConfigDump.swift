/// `--print-config`: the effective settings (defaults, the config file and the command line
/// merged) as a TOML config file, one `key = value` per flag, read off the parsed command by
/// reflection so that every option group, present or added later, is included. Feeding the
/// output back with `--config` gives the same settings (tested for every flag). No secret is
/// printed: a settings value that holds one (the `--backplane` URL's password) is replaced by a
/// placeholder, with a comment line above it saying where the secret must come from; the other
/// secrets are files (`--backplane-password-file`, `--ticket-key-file`, `--key`), printed as
/// their paths, or the environment (`WSS_BACKPLANE_PASSWORD`), never read here.
enum ConfigDump {
    static func toml(_ command: WSSServerCommand) -> String {
        var lines: [String] = []
        collect(command, into: &lines)
        return lines.joined(separator: "\n") + "\n"
    }

    /// Keys that are not settings.
    static let skipped: Set<String> = ["config", "print-config"]

    private static func collect(_ value: Any, into lines: inout [String]) {
        for child in Mirror(reflecting: value).children {
            guard let label = child.label, label.hasPrefix("_") else { continue }
            guard let parsed = parsedValue(of: child.value) else { continue }
            let typeName = String(describing: type(of: child.value))
            if typeName.hasPrefix("OptionGroup<") {
                collect(parsed, into: &lines)
                continue
            }
            let key = kebab(String(label.dropFirst()))
            guard !skipped.contains(key), let rendered = render(parsed) else { continue }
            if rendered == "false" && typeName.hasPrefix("Flag<") { continue }  // an unset flag
            if let (shown, comment) = redacted(key: key, parsed) {
                lines.append("# \(comment)")
                lines.append("\(key) = \(quoted(shown))")
                continue
            }
            lines.append("\(key) = \(rendered)")
        }
    }

    /// The value to print instead of `value` for a setting that carries a secret, and why.
    static func redacted(key: String, _ value: Any) -> (String, String)? {
        guard key == "backplane", let url = value as? String,
              let shown = BackplaneOptions.redactingPassword(url) else { return nil }
        return (shown, "backplane: the URL's password is not printed; \(BackplaneOptions.passwordPlaceholder) stands for it: "
                + "give it with backplane-password-file (a file of mode 0600) or WSS_BACKPLANE_PASSWORD, "
                + "or write it back here in a config file of mode 0600")
    }

    /// An ArgumentParser property wrapper's parsed value (its storage is `.value(x)` after
    /// parsing).
    private static func parsedValue(of wrapper: Any) -> Any? {
        for storage in Mirror(reflecting: wrapper).children {
            for payload in Mirror(reflecting: storage.value).children where payload.label == "value" {
                return payload.value
            }
        }
        return nil
    }

    /// ArgumentParser's default long name: camelCase to kebab-case, an acronym as one word
    /// (historyTTL → history-ttl, urlString → url-string, URLString → url-string).
    static func kebab(_ name: String) -> String {
        let chars = Array(name)
        var out = ""
        for (i, c) in chars.enumerated() {
            if c.isUppercase && i > 0 {
                let prev = chars[i - 1]
                let nextIsLower = i + 1 < chars.count && chars[i + 1].isLowercase
                if !prev.isUppercase || nextIsLower { out += "-" }
            }
            out += c.lowercased()
        }
        return out
    }

    private static func render(_ value: Any) -> String? {
        switch value {
        case let v as String: return quoted(v)
        case let v as Bool: return v ? "true" : "false"
        case let v as Int: return String(v)
        case let v as Double: return "\(v)"
        case let v as [Any]: return "[" + v.compactMap(render).joined(separator: ", ") + "]"
        case let v as any RawRepresentable:
            return render(v.rawValue)
        default:
            let mirror = Mirror(reflecting: value)
            if mirror.displayStyle == .optional { return mirror.children.first.flatMap { render($0.value) } }
            return quoted(String(describing: value))
        }
    }

    /// A TOML basic string (TOML 1.0 §String).
    private static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where u.value < 0x20 || u.value == 0x7f:
                let hex = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
