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
        guard head.isMethod("GET") || head.isMethod("HEAD") else {
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
            upgrade(head, to: route, on: connection)
            return
        }
        // RFC 9112 §3.2: an HTTP/1.1 request without Host, or with more than one, is a 400
        // (an upgrade attempt gets it from the core's handshake validation).
        let hosts = head.count("Host")
        if hosts > 1 || (hosts == 0 && head.versionMajor == 1 && head.versionMinor >= 1) {
            log.info("\(head.method) \(path) with \(hosts) Host headers -> 400", metadata: connection.meta)
            connection.respondError(status: 400, reason: hosts == 0 ? "missing Host header" : "more than one Host header")
            return
        }
        let keepAlive = !head.containsToken("Connection", "close")
            && (head.versionMajor > 1 || head.versionMinor >= 1)
        if path == "/metrics" && core.configuration.metricsEnabled && core.pages[path] == nil && connection.mayReadMetrics {
            let body = Array(core.metrics.render().utf8)
            let text = okHead(contentType: "text/plain; version=0.0.4; charset=utf-8", length: body.count,
                              keepAlive: keepAlive)
            let sent = head.isMethod("HEAD") ? [] : body
            if keepAlive { connection.writeHTTP(text, body: sent) } else { connection.writeFinalHTTP(text, body: sent) }
            return
        }
        if let page = core.pages[path] {
            log.debug("GET \(path) -> 200", metadata: connection.meta)
            let body = head.isMethod("HEAD") ? [] : page.body
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

    /// The one place the upgrade is decided: the core's `ServerHandshake` validates, the
    /// route's handler decides, the connection carries out the answer.
    static func upgrade(_ head: HTTPRequestHead, to route: Route, on connection: WebSocketConnection) {
        let core = connection.core
        let log = connection.log
        var userData: AnyObject?
        let outcome = core.handshake.respond(to: head) { request in
            let upgrade = UpgradeRequest(head: head, subprotocols: request.subprotocols, fd: connection.driver.fd)
            switch route.handler.shouldUpgrade(upgrade) {
            case .reject(let status, let reason): return .reject(status: status, reason: reason)
            case .accept(let subprotocol, let data):
                userData = data
                return .accept(subprotocol: subprotocol)
            }
        }
        switch outcome {
        case .reject(let r):
            switch r.cause {
            case .invalid:
                log.info("handshake refused: \(r.reason) -> \(r.status)", metadata: connection.meta)
            case .origin(let origin):
                log.info("origin \(origin) not allowed -> 403", metadata: connection.meta)
            case .application:
                log.info("upgrade rejected by the application: \(r.status) \(r.reason)", metadata: connection.meta)
            }
            core.metrics.handshakeFailed(r.label)
            connection.respondError(status: r.status, reason: r.reason, extraHeaders: r.headers)
        case .accept(let a):
            if let s = a.ignoredSubprotocol {
                log.warning("application chose subprotocol '\(s)' the client did not offer; sending none",
                            metadata: connection.meta)
            }
            connection.upgrade(route: route, accepted: a, userData: userData, query: head.query)
        }
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
