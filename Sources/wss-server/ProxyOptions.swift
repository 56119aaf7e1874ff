import ArgumentParser
import Transport
import WSServer

/// `--proxy-protocol`, `--trusted-proxy`: running behind a balancer.
struct ProxyOptions: ParsableArguments {
    @Flag(help: "Require HAProxy's PROXY protocol header (v1 or v2) on every connection, before TLS, from a --trusted-proxy; the real client address then reaches logs, remoteAddress and the upgrade hook.")
    var proxyProtocol = false

    @Option(help: ArgumentHelp("Balancer address or network allowed to send PROXY headers or X-Forwarded-For, e.g. 10.0.0.0/8 or 127.0.0.1 (repeatable).", valueName: "CIDR"))
    var trustedProxy: [String] = []

    func validate() throws {
        for t in trustedProxy {
            do { _ = try Self.range(t) } catch { throw ValidationError("--trusted-proxy: \(error)") }
        }
        if proxyProtocol && trustedProxy.isEmpty {
            throw ValidationError("--proxy-protocol needs at least one --trusted-proxy CIDR (the balancer's address)")
        }
    }

    static func range(_ text: String) throws -> IPAddressRange {
        try IPAddressRange(text.contains("/") ? text : text + (text.contains(":") ? "/128" : "/32"))
    }

    var trustedRanges: [IPAddressRange] { trustedProxy.compactMap { try? Self.range($0) } }

    func apply(to config: inout ServerConfiguration) {
        if proxyProtocol { config.proxyProtocol = trustedRanges }
        if !trustedRanges.isEmpty { config.trustedProxies = trustedRanges }
    }
}
