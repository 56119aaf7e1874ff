import Transport
import WebSocket

/// Which requests the fallbacks answer, and what their query says. A request is theirs when
/// fallbacks are on, its path is a WebSocket route, it is not an upgrade attempt, and its
/// query names `transport=sse` or `transport=longpoll`. (`transport=websocket` is the page's
/// word for an ordinary upgrade.)
enum FallbackRouter {
    struct Query {
        var transport: ConnectionTransport?
        var sid: Substring?
    }

    static func query(_ head: HTTPRequestHead) -> Query {
        var q = Query()
        guard let raw = head.query else { return q }
        for pair in raw.split(separator: "&") {
            guard let eq = pair.firstIndex(of: "=") else { continue }
            let name = pair[..<eq], value = pair[pair.index(after: eq)...]
            if name == "transport" {
                if value == "sse" { q.transport = .sse } else if value == "longpoll" { q.transport = .longPolling }
            } else if name == "sid" {
                q.sid = value
            }
        }
        return q
    }

    /// The query the handler sees: the request's without the fallback's own `transport` and
    /// `sid`, so it equals what the same page sends over WebSocket ("room=lobby").
    static func handlerQuery(_ head: HTTPRequestHead) -> String? {
        guard let raw = head.query else { return nil }
        let kept = raw.split(separator: "&").filter {
            !$0.hasPrefix("transport=") && !$0.hasPrefix("sid=") && !$0.hasPrefix("protocol=")
        }
        return kept.isEmpty ? nil : kept.joined(separator: "&")
    }

    /// The subprotocols an opening request offers, in order, as `Sec-WebSocket-Protocol` does
    /// for an upgrade (RFC 6455 §4.1: a comma list of tokens, compared case-sensitively): the
    /// header when present (a fetch or XHR client), else the `protocol` query parameter
    /// (EventSource cannot set headers; commas literal or as %2C). nil: not a list of tokens
    /// (the request gets 400, as an upgrade does).
    static func offeredSubprotocols(_ head: HTTPRequestHead) -> [String]? {
        var list: Substring?
        if let header = head.value("Sec-WebSocket-Protocol") {
            list = Substring(header)
        } else if let raw = head.query {
            for pair in raw.split(separator: "&") where pair.hasPrefix("protocol=") {
                list = pair.dropFirst("protocol=".count)
            }
        }
        guard let list else { return [] }
        let text = list.replacingOccurrences(of: "%2C", with: ",", caseInsensitive: true)
        var out: [String] = []
        for element in text.split(separator: ",", omittingEmptySubsequences: false) {
            let name = element.trimmedOWS
            if name.isEmpty { continue }  // RFC 9110 §5.6.1: empty list elements are ignored
            guard name.utf8.allSatisfy(isTokenChar) else { return nil }
            out.append(String(name))
        }
        return out
    }

    /// RFC 9110 §5.6.2 tchar.
    static func isTokenChar(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
            return true
        default:
            return Array("!#$%&'*+-.^_`|~".utf8).contains(c)
        }
    }

    static func claims(_ head: HTTPRequestHead, core: ServerCore) -> Bool {
        guard core.configuration.fallback.enabled, head.query != nil, core.routes[head.path] != nil,
              !Handshake.isUpgradeAttempt(head) else { return false }
        let q = query(head)
        guard q.transport != nil else { return false }
        // A path that is both a page and a route ("/"): `/?transport=sse` typed in the address
        // bar is the page with a forced transport; a browser navigation asks for HTML, an
        // EventSource for text/event-stream, a fetch for anything.
        if q.sid == nil, head.method == "GET" || head.method == "HEAD", core.pages[head.path] != nil,
           head.value("Accept")?.contains("text/html") == true {
            return false
        }
        return true
    }
}

extension Substring {
    fileprivate var trimmedOWS: Substring {
        var s = self
        while let c = s.first, c == " " || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" { s.removeLast() }
        return s
    }

    /// Replaces every ASCII `target` (matched ignoring ASCII case when asked).
    fileprivate func replacingOccurrences(of target: String, with replacement: String, caseInsensitive: Bool) -> String {
        let t = Array(target.utf8).map { caseInsensitive ? lower($0) : $0 }
        let bytes = Array(utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            if i + t.count <= bytes.count, (0..<t.count).allSatisfy({ (caseInsensitive ? lower(bytes[i + $0]) : bytes[i + $0]) == t[$0] }) {
                out += replacement.utf8
                i += t.count
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private func lower(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c + 32 : c }
}

extension WebSocketConnection {
    /// Gives this connection's socket to a `FallbackHTTPConnection`, which answers `head` and
    /// whatever follows (`rest`). This object is done: it closes nothing and tells no handler
    /// (it never upgraded); the connection slot moves with the socket.
    func handOverToFallback(_ head: HTTPRequestHead, rest: UnsafeRawBufferPointer) {
        let taker = FallbackHTTPConnection(id: id, loop: loop, driver: driver, core: core)
        let unsent = proto.outbound.readableBytes
        taker.output.append(unsent)  // a page answer not yet flushed goes first
        proto.outbound.consume(unsent.count)
        taker.input.append(contentsOf: rest)
        httpParser = nil
        policy.closed()  // so a flush already queued for this object does nothing
        loop.unregister(fd: driver.fd)
        do {
            try driver.register(on: loop, handler: taker, interest: .read)
        } catch {
            log.error("cannot register fallback connection: \(error)", metadata: meta)
            taker.close()
            return
        }
        taker.handle(head)
        taker.process()
        taker.readSoon = true  // the rest of a request may wait inside OpenSSL (this object stopped reading)
        taker.scheduleFlush()
    }
}

/// Response heads of the fallback transports. Every answer: `Cache-Control: no-store` (a
/// poll answer or an event stream must never be reused) and `X-Content-Type-Options: nosniff`.
enum FallbackResponse {
    static func head(_ status: Int, contentType: String? = nil, length: Int? = nil, chunked: Bool = false,
                     keepAlive: Bool, cors: String? = nil, extra: String = "") -> String {
        var h = "HTTP/1.1 \(status) \(statusText(status))\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        if let contentType { h += "Content-Type: \(contentType)\r\n" }
        if let length { h += "Content-Length: \(length)\r\n" }
        if chunked { h += "Transfer-Encoding: chunked\r\n" }
        if let cors { h += "Access-Control-Allow-Origin: \(cors)\r\nVary: Origin\r\n" }
        if !keepAlive { h += "Connection: close\r\n" }
        return h + extra + "\r\n"
    }

    /// A plain-text error answer (head and body in one string).
    static func error(_ status: Int, _ reason: String, keepAlive: Bool, cors: String? = nil, extra: String = "") -> String {
        let body = reason + "\n"
        return head(status, contentType: "text/plain; charset=utf-8", length: body.utf8.count, keepAlive: keepAlive,
                    cors: cors, extra: extra) + body
    }

    static func statusText(_ status: Int) -> String {
        switch status {
        case 204: return "No Content"
        case 408: return "Request Timeout"
        case 411: return "Length Required"
        case 413: return "Content Too Large"
        case 501: return "Not Implemented"
        default: return HTTPResponder.statusText(status)
        }
    }

    static let eventStream = "text/event-stream; charset=utf-8"
    static let batch = "application/octet-stream"
}
