/// The page's favicon: a speech bubble with a lightning bolt, as an SVG data URL (no request,
/// no file). Percent-encoded only where a URL needs it (`#`, `<`, `>`, `"`).
enum ChatPageIcon {
    static let svg = """
    <svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 64 64'>\
    <rect x='4' y='6' width='56' height='42' rx='10' fill='#2563eb'/>\
    <path d='M16 46 L14 60 L30 46 Z' fill='#2563eb'/>\
    <path d='M35 12 L22 31 H31 L27 43 L42 23 H33 Z' fill='#fde047'/>\
    </svg>
    """

    static let dataURL: String = {
        var out = "data:image/svg+xml,"
        for c in svg.unicodeScalars {
            switch c {
            case "#": out += "%23"
            case "<": out += "%3C"
            case ">": out += "%3E"
            case "\"": out += "%22"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }()
}
