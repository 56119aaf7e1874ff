import WebSocket

/// Answers a parsed request head: a WebSocket upgrade, a page, or a precise HTTP error.
enum HTTPResponder {
    static func respond(to head: HTTPRequestHead, on connection: WebSocketConnection) {
        let core = connection.core
        let path = head.path
        let log = connection.log
        ForwardedFor.record(head, fd: connection.driver.fd, configuration: core.configuration)
        // Draining (SIGTERM): /healthz and everything else answer 503, so a balancer's health
        // check takes this instance out while open connections close with 1001.
        if core.shuttingDown.load(ordering: .relaxed) {
            log.info("\(head.method) \(path) during shutdown -> 503", metadata: connection.meta)
            return connection.respondError(status: 503, reason: "server is shutting down")
        }
        guard head.method == "GET" || head.method == "HEAD" else {
            log.info("\(head.method) \(path) -> 405", metadata: connection.meta)
            connection.respondError(status: 405, reason: "method \(head.method) not allowed",
                                    extraHeaders: [("Allow", "GET, HEAD")])
            return
        }
        if Handshake.isUpgradeAttempt(head) {
            guard let route = core.routes[path] else {
                log.info("upgrade to unknown path \(path) -> 404", metadata: connection.meta)
                connection.respondError(status: 404, reason: "no WebSocket endpoint at \(path)")
                return
            }
            switch Handshake.validate(head) {
            case .failure(let error):
                log.info("handshake refused: \(error.reason) -> \(error.status)", metadata: connection.meta)
                core.stats.handshakeFailures.add(1)
                core.metrics.handshakeFailed(error.metricLabel)
                var extra: [(String, String)] = []
                if case .unsupportedVersion = error { extra.append(("Sec-WebSocket-Version", "13")) }
                if case .methodNotGet = error { extra.append(("Allow", "GET")) }
                connection.respondError(status: error.status, reason: error.reason, extraHeaders: extra)
            case .success(let request):
                guard core.originAllowed(request.origin, host: head.value("Host")) else {
                    log.info("origin \(request.origin ?? "") not allowed -> 403", metadata: connection.meta)
                    core.metrics.handshakeFailed("origin")
                    connection.respondError(status: 403, reason: "origin not allowed")
                    return
                }
                let upgrade = UpgradeRequest(head: head, subprotocols: request.subprotocols, fd: connection.driver.fd)
                switch route.handler.shouldUpgrade(upgrade) {
                case .reject(let status, let reason):
                    log.info("upgrade rejected by the application: \(status) \(reason)", metadata: connection.meta)
                    core.metrics.handshakeFailed("application")
                    connection.respondError(status: (400...599).contains(status) ? status : 403, reason: reason)
                case .accept(let subprotocol, let userData):
                    var chosen = subprotocol
                    if let s = subprotocol, !request.subprotocols.contains(s) {
                        log.warning("application chose subprotocol '\(s)' the client did not offer; sending none",
                                    metadata: connection.meta)
                        chosen = nil
                    }
                    // A malformed or unacceptable offer only means no compression (RFC 7692 §5).
                    var extensions: String?
                    var deflate: PerMessageDeflate?
                    if core.configuration.deflate.enabled, !request.extensions.isEmpty,
                       let accepted = DeflateNegotiation.negotiate(request.extensions, options: core.configuration.deflate) {
                        extensions = accepted.responseHeader
                        deflate = PerMessageDeflate(role: .server, parameters: accepted.parameters,
                                                    options: core.configuration.deflate)
                    }
                    connection.upgrade(route: route,
                                       response: Handshake.response(acceptingKey: request.key, subprotocol: chosen,
                                                                    extensions: extensions),
                                       subprotocol: chosen, deflate: deflate, userData: userData)
                }
            }
            return
        }
        let keepAlive = !head.containsToken("Connection", "close")
            && (head.versionMajor > 1 || head.versionMinor >= 1)
        if path == "/metrics" && core.configuration.metricsEnabled && core.pages[path] == nil {
            let body = Array(core.metrics.render(stats: core.stats).utf8)
            let text = okHead(contentType: "text/plain; version=0.0.4; charset=utf-8", length: body.count,
                              keepAlive: keepAlive)
            let sent = head.method == "HEAD" ? [] : body
            if keepAlive { connection.writeHTTP(text, body: sent) } else { connection.writeFinalHTTP(text, body: sent) }
            return
        }
        if let page = core.pages[path] {
            log.debug("GET \(path) -> 200", metadata: connection.meta)
            let body = head.method == "HEAD" ? [] : page.body
            let text = okHead(contentType: page.contentType, length: page.body.count, keepAlive: keepAlive)
            if keepAlive { connection.writeHTTP(text, body: body) } else { connection.writeFinalHTTP(text, body: body) }
            return
        }
        if core.routes[path] != nil {
            log.info("GET \(path) without upgrade -> 426", metadata: connection.meta)
            connection.respondError(status: 426, reason: "this is a WebSocket endpoint: upgrade required",
                                    extraHeaders: [("Upgrade", "websocket")])
            return
        }
        log.info("GET \(path) -> 404", metadata: connection.meta)
        connection.respondError(status: 404, reason: "not found: \(path)")
    }

    static func okHead(contentType: String, length: Int, keepAlive: Bool) -> String {
        "HTTP/1.1 200 OK\r\nContent-Type: \(contentType)\r\nContent-Length: \(length)\r\n"
            + "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n"
            + (keepAlive ? "" : "Connection: close\r\n") + "\r\n"
    }

    static func errorResponse(status: Int, reason: String, extraHeaders: [(String, String)]) -> (head: String, body: String) {
        let body = reason + "\n"
        var head = "HTTP/1.1 \(status) \(statusText(status))\r\nContent-Type: text/plain; charset=utf-8\r\n"
        head += "Content-Length: \(body.utf8.count)\r\nConnection: close\r\n"
        for (n, v) in extraHeaders { head += "\(n): \(v)\r\n" }
        return (head + "\r\n", body)
    }

    static func statusText(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 426: return "Upgrade Required"
        case 431: return "Request Header Fields Too Large"
        case 503: return "Service Unavailable"
        default: return "Error"
        }
    }
}

/// A static resource served on GET.
public struct Page: Sendable {
    public var contentType: String
    public var body: [UInt8]
    public init(contentType: String, body: [UInt8]) {
        self.contentType = contentType
        self.body = body
    }
    public init(html: String) { self.init(contentType: "text/html; charset=utf-8", body: Array(html.utf8)) }
}

extension HandshakeError {
    /// Short label for metrics.
    var metricLabel: String {
        switch self {
        case .methodNotGet: return "method"
        case .httpVersionTooOld: return "http_version"
        case .missingHost: return "host"
        case .missingUpgrade: return "upgrade_header"
        case .missingConnectionUpgrade: return "connection_header"
        case .missingKey, .invalidKey: return "key"
        case .unsupportedVersion: return "version"
        }
    }
}
