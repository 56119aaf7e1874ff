/// JSON string escaping (RFC 8259 §7): quote, backslash and control characters escaped, the
/// rest as UTF-8. Log lines carry client-chosen text (paths, user agents), so nothing a client
/// sends can break a line or forge a field.
enum JSONText {
    static func quoted(_ s: String) -> String {
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f || scalar.value == 0x2028 || scalar.value == 0x2029:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default:
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Text-format value: bare if it is a simple token, else JSON-quoted (so a space or a
    /// quote in a user agent cannot be mistaken for the next field).
    static func textValue(_ s: String) -> String {
        let simple = !s.isEmpty && s.unicodeScalars.allSatisfy {
            $0.value > 0x20 && $0.value < 0x7f && $0 != "\"" && $0 != "\\" && $0 != "="
        }
        return simple ? s : quoted(s)
    }
}
