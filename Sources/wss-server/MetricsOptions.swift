import ArgumentParser
import Transport
import WSServer

/// Who may read /metrics, and where.
struct MetricsOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Also serve /metrics on its own listener, e.g. 127.0.0.1:9100 or [::1]:9100 (any client reaching it may read it).", valueName: "ADDR:PORT"))
    var metricsListen: String?

    @Option(help: ArgumentHelp("Client network allowed to read /metrics on the service port (repeatable; default 127.0.0.1/32 and ::1/128); others get 404.", valueName: "CIDR"))
    var metricsAllow: [String] = []

    func validate() throws {
        _ = try ranges()
        if let spec = metricsListen, !Self.isHostPort(spec) {
            throw ValidationError("--metrics-listen must be ADDR:PORT or [IPv6]:PORT: \(spec)")
        }
    }

    func ranges() throws -> [IPAddressRange] {
        do {
            return try metricsAllow.map(IPAddressRange.init)
        } catch {
            throw ValidationError("--metrics-allow: \(error)")
        }
    }

    static func isHostPort(_ spec: String) -> Bool {
        guard let colon = spec.lastIndex(of: ":"), let port = Int(spec[spec.index(after: colon)...]) else { return false }
        return (0...65535).contains(port) && colon != spec.startIndex
    }

    func apply(to config: inout ServerConfiguration) throws {
        if !metricsAllow.isEmpty { config.metricsAllow = try ranges() }
        config.metricsListen = metricsListen
    }
}
