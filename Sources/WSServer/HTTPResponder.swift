import WebSocket

/// Answers a parsed request head: a WebSocket upgrade, a page, or a precise HTTP error.
enum HTTPResponder {
    static func respond(to head: HTTPRequestHead, on connection: WebSocketConnection) {
        let core = connection.core
        let path = head.path
        let log = connection.log
        let meta = connection.meta
        guard head.method == "GET" || head.method == "HEAD" else {
            log.info("\(head.method) \(path) -> 405", metadata: meta)
            connection.respondError(status: 405, reason: "method \(head.method) not allowed",
                                    extraHeaders: [("Allow", "GET, HEAD")])
            return
        }
        if Handshake.isUpgradeAttempt(head) {
            guard let handler = core.routes[path] else {
                log.info("upgrade to unknown path \(path) -> 404", metadata: meta)
                connection.respondError(status: 404, reason: "no WebSocket endpoint at \(path)")
                return
            }
            switch Handshake.validate(head) {
            case .failure(let error):
                log.info("handshake refused: \(error.reason) -> \(error.status)", metadata: meta)
                core.stats.handshakeFailures.add(1)
                var extra: [(String, String)] = []
                if case .unsupportedVersion = error { extra.append(("Sec-WebSocket-Version", "13")) }
                if case .methodNotGet = error { extra.append(("Allow", "GET")) }
                connection.respondError(status: error.status, reason: error.reason, extraHeaders: extra)
            case .success(let request):
                connection.upgrade(path: path, handler: handler,
                                   response: Handshake.response(acceptingKey: request.key))
            }
            return
        }
        let keepAlive = !head.tokens("Connection").contains("close")
            && (head.versionMajor > 1 || head.versionMinor >= 1)
        if let page = core.pages[path] {
            log.debug("GET \(path) -> 200", metadata: meta)
            let body = head.method == "HEAD" ? [] : page.body
            connection.writeHTTP(okHead(contentType: page.contentType, length: page.body.count, keepAlive: keepAlive),
                                 body: body)
            if !keepAlive { connection.afterFlush = .linger }
            return
        }
        if core.routes[path] != nil {
            log.info("GET \(path) without upgrade -> 426", metadata: meta)
            connection.respondError(status: 426, reason: "this is a WebSocket endpoint: upgrade required",
                                    extraHeaders: [("Upgrade", "websocket")])
            return
        }
        log.info("GET \(path) -> 404", metadata: meta)
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
        case 403: return "Forbidden"
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
