import Transport
import WebSocket

/// What a `FallbackHTTPConnection` does with each request: create a session, hold a poll,
/// open a stream, take a POST, answer HEAD and CORS preflights, move to the session's loop,
/// or give the socket back for an ordinary request.
extension FallbackHTTPConnection {
    func handle(_ head: HTTPRequestHead) {
        keepAlive = !head.containsToken("Connection", "close") && (head.versionMajor > 1 || head.versionMinor >= 1)
        guard FallbackRouter.claims(head, core: core), let route = core.routes[head.path] else {
            return giveBack(head)
        }
        let query = FallbackRouter.query(head)
        let transport = query.transport!
        let askedKeepAlive = keepAlive
        // A POST answered before its body is read (404, 405, ...): its body would be taken for
        // the next request, so the connection closes after the answer.
        if head.method == "POST" { keepAlive = false }
        let origin = head.value("Origin")
        let cors = corsOrigin(origin)
        requestCORS = cors
        switch head.method {
        case "OPTIONS":
            return preflight(origin: origin, cors: cors)
        case "GET", "HEAD", "POST":
            break
        default:
            return answer(FallbackResponse.error(405, "method \(head.method) not allowed", keepAlive: keepAlive,
                                                 cors: cors, extra: "Allow: GET, HEAD, POST, OPTIONS\r\n"))
        }
        guard let sidText = query.sid else {
            if head.method == "POST" { return notFound(cors) }
            return open(head, route: route, transport: transport, origin: origin, cors: cors)
        }
        // Forged, expired, ended, another transport's or another origin's: all the same 404.
        guard let sid = SessionID(sidText), Int(sid.loop) < core.fallback.loops.count else { return notFound(cors) }
        if Int(sid.loop) != loop.index {
            state = .movingTo(core.fallback.loops[Int(sid.loop)].loop, head)
            return scheduleFlush()
        }
        guard let session = core.fallback.loops[loop.index].lookup(sid), session.kind == transport,
              session.admits(origin: origin, host: head.value("Host")), session.state != .ended else { return notFound(cors) }
        switch head.method {
        case "HEAD":
            answer(FallbackResponse.head(200, contentType: transport == .sse ? FallbackResponse.eventStream : FallbackResponse.batch,
                                         keepAlive: keepAlive, cors: cors))
        case "POST":
            session.touched()
            do {
                let reader = try HTTPBodyReader(head: head, limit: settings.maxPostBody)
                keepAlive = askedKeepAlive
                state = .body(head, reader, session)
                deadline = loop.now + settings.postTimeoutMillis
                if reader.isComplete { state = .idle; deadline = 0; posted([], to: session, origin: origin) }
            } catch {
                fail(error.status, "\(error)")
            }
        default:
            if transport == .sse { startStream(session, head: head, cors: cors) } else { poll(session) }
        }
    }

    /// A new session: the same origin rule and `shouldUpgrade` as an upgrade, then the first
    /// answer (SSE: the stream with the session event; long polling: the session record).
    func open(_ head: HTTPRequestHead, route: Route, transport: ConnectionTransport, origin: String?, cors: String?) {
        if head.method == "HEAD" {
            return answer(FallbackResponse.head(200, contentType: transport == .sse ? FallbackResponse.eventStream : FallbackResponse.batch,
                                                keepAlive: keepAlive, cors: cors))
        }
        guard core.handshake.origins.allows(origin: origin, host: head.value("Host"), secure: core.isTLS) else {
            log.info("fallback: origin \(origin ?? "") not allowed -> 403", metadata: meta)
            return answer(FallbackResponse.error(403, "origin not allowed", keepAlive: keepAlive))
        }
        guard let offered = FallbackRouter.offeredSubprotocols(head) else {
            log.info("fallback: subprotocol list is not tokens -> 400", metadata: meta)
            return answer(FallbackResponse.error(400, "Sec-WebSocket-Protocol is not a list of tokens", keepAlive: keepAlive, cors: cors))
        }
        let decision = route.handler.shouldUpgrade(UpgradeRequest(head: head, subprotocols: offered, fd: driver.fd))
        guard case .accept(let wanted, let userData) = decision else {
            if case .reject(let status, let reason) = decision {
                log.info("fallback session rejected by the application: \(status) \(reason)", metadata: meta)
                answer(FallbackResponse.error((400...599).contains(status) ? status : 403, reason, keepAlive: keepAlive, cors: cors))
            }
            return
        }
        guard core.fallback.reserveSession() else {
            log.warning("fallback: \(settings.maxSessions) sessions open -> 503", metadata: meta)
            return answer(FallbackResponse.error(503, "too many sessions", keepAlive: keepAlive, cors: cors,
                                                 extra: "Retry-After: 5\r\n"))
        }
        var subprotocol = wanted
        if let s = wanted, !offered.contains(s) {
            log.warning("application chose subprotocol '\(s)' the client did not offer; sending none", metadata: meta)
            subprotocol = nil
        }
        let home = core.fallback.loops[loop.index]
        let session: FallbackSession
        do {
            let id = try SessionID.random(loop: UInt8(loop.index))
            session = FallbackSession(id: id, kind: transport, origin: origin, remoteAddress: driver.remoteAddress,
                                      home: home, core: core)
            try home.insert(session)
        } catch {
            core.fallback.releaseSession()
            log.error("fallback: cannot create a session: \(error)", metadata: meta)
            return answer(FallbackResponse.error(500, "cannot create a session", keepAlive: keepAlive, cors: cors))
        }
        let connID = core.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let connection = WebSocketConnection(id: connID, loop: loop, fallback: session, route: route, subprotocol: subprotocol,
                                             userData: userData, query: FallbackRouter.handlerQuery(head), core: core)
        session.connection = connection
        log.debug("fallback session (\(transport)) opened on \(head.path)", metadata: meta)
        if transport == .sse {
            startStream(session, head: head, cors: cors)
            connection.fallbackOpened()
        } else {
            connection.fallbackOpened()  // what onOpen sends rides in the first answer
            var body: [UInt8] = []
            LongPollBatch.append(.session(session.id.description), to: &body)
            body.append(contentsOf: session.takePending())
            answer(FallbackResponse.head(200, contentType: FallbackResponse.batch, length: body.count,
                                         keepAlive: keepAlive, cors: cors,
                                         extra: sessionHeader(session) + protocolHeader(session)), body: body)
            session.delivered()
        }
    }

    /// Every answer that belongs to a session names it, so a balancer in HTTP mode can keep
    /// the session's requests on this instance (share/cluster/haproxy.cfg: `stick
    /// store-response res.hdr(X-Session-Id)`, matched against `?sid=`). A 404 does not.
    func sessionHeader(_ session: FallbackSession) -> String {
        "X-Session-Id: \(session.id)\r\n"
    }

    /// The chosen subprotocol on a session's opening answer and on every SSE stream.
    func protocolHeader(_ session: FallbackSession) -> String {
        session.connection?.subprotocol.map { "Sec-WebSocket-Protocol: \($0)\r\n" } ?? ""
    }

    func startStream(_ session: FallbackSession, head: HTTPRequestHead, cors: String?) {
        let chunked = head.versionMinor >= 1 || head.versionMajor > 1
        if !chunked { keepAlive = false }
        output.append(FallbackResponse.head(200, contentType: FallbackResponse.eventStream, chunked: chunked,
                                                        keepAlive: keepAlive, cors: cors,
                                                        extra: "X-Accel-Buffering: no\r\n" + sessionHeader(session) + protocolHeader(session)))
        var first: [UInt8] = []
        SSEEncoder.appendSession(session.id, to: &first)
        first.append(contentsOf: session.takePending())
        state = .streaming(session, chunked: chunked)
        nextHeartbeat = loop.now + settings.heartbeatMillis
        session.attach(self)
        writeStream(first, chunked: chunked)
        session.delivered()
    }

    func writeStream(_ bytes: [UInt8], chunked: Bool) {
        guard !bytes.isEmpty else { return }
        if chunked { output.append(String(bytes.count, radix: 16) + "\r\n") }
        output.append(bytes)
        if chunked { output.append([13, 10]) }
        scheduleFlush()
    }

    /// Long poll: answered now if anything is pending, else held until output or the timeout.
    func poll(_ session: FallbackSession) {
        session.attach(self)  // a poll already held is answered (empty) first
        state = .held(session, until: loop.now + settings.pollTimeoutMillis)
        if session.hasPending || session.state != .open { answerPoll(session) }
    }

    func answerPoll(_ session: FallbackSession) {
        let body = session.takePending()
        state = .idle
        session.detach(self)
        answer(FallbackResponse.head(200, contentType: FallbackResponse.batch, length: body.count, keepAlive: keepAlive,
                                     cors: requestCORS, extra: sessionHeader(session)), body: body)
        session.delivered()
    }

    func posted(_ body: [UInt8], to session: FallbackSession, origin: String?) {
        guard session.state == .open else { return notFound(corsOrigin(origin)) }
        let records: [BatchRecord]
        do {
            records = try LongPollBatch.decode(body, maxMessages: settings.maxPostMessages,
                                               maxMessageSize: core.configuration.limits.maxMessageSize)
        } catch {
            return fail(error.status, "\(error)")
        }
        session.touched()
        answer(FallbackResponse.head(204, keepAlive: keepAlive, cors: corsOrigin(origin), extra: sessionHeader(session)))
        session.received(records)
    }

    /// The session now delivers through another request, or ended.
    func sessionReplaced(_ session: FallbackSession) {
        switch state {
        case .held(let s, _) where s === session:
            answerPoll(session)
        case .streaming(let s, let chunked) where s === session:
            state = .idle
            let rest = session.state == .ended ? [] : session.takePending()
            writeStream(rest, chunked: chunked)
            if chunked { output.append("0\r\n\r\n") } else { closeAfterFlush = true }
            finishedRequest()
            scheduleFlush()
        default: break
        }
    }

    func sessionHasOutput() { scheduleFlush() }

    func answer(_ text: String, body: [UInt8] = []) {
        write(text, body: body)
        finishedRequest()
    }

    /// A response is complete: close if the client asked, else wait for the next request.
    func finishedRequest() {
        if !keepAlive { closeAfterFlush = true }
        deadline = loop.now + settings.sessionTimeoutMillis
    }

    func notFound(_ cors: String?) {
        answer(FallbackResponse.error(404, "no such session", keepAlive: keepAlive, cors: cors))
    }

    /// CORS answers only for origins in `--allowed-origin` (a same-origin page needs none).
    func corsOrigin(_ origin: String?) -> String? {
        guard let origin, let list = core.configuration.allowedOrigins else { return nil }
        return list.contains("*") || list.contains(origin) ? origin : nil
    }

    func preflight(origin: String?, cors: String?) {
        guard let cors else { return answer(FallbackResponse.error(403, "origin not allowed", keepAlive: keepAlive)) }
        answer(FallbackResponse.head(204, keepAlive: keepAlive, cors: cors,
                                     extra: "Access-Control-Allow-Methods: GET, POST\r\nAccess-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 600\r\n"))
    }
}

/// Moving between loops and handing the socket back.
extension FallbackHTTPConnection {
    /// The request names a session on `target`: the socket moves there (unregistered here,
    /// registered there by a task on that loop) and the request is handled on the session's
    /// own thread. Runs at the end of an iteration, after this loop's last flush for it.
    func move(to target: EventLoop, head: HTTPRequestHead) {
        loop.unregister(fd: driver.fd)
        let box = UncheckedSendable(value: (self, head))
        target.execute {
            let (connection, head) = box.value
            connection.arrive(on: target, head: head)
        }
    }

    func arrive(on target: EventLoop, head: HTTPRequestHead) {
        loop = target
        state = .idle
        interest = .read
        do {
            try driver.register(on: target, handler: self, interest: .read)
        } catch {
            log.error("fallback: cannot move the connection to loop \(target.index): \(error)", metadata: meta)
            state = .closed
            driver.close(on: target)
            core.metrics.openConnections.subtract(1)
            return
        }
        handle(head)
        process()
        readSoon = true
        scheduleFlush()
    }

    /// A request that is not a fallback one (the page, an upgrade) on a connection we hold:
    /// the socket goes back to a `WebSocketConnection`, which answers it as any other.
    func giveBack(_ head: HTTPRequestHead) {
        state = .closed  // without closing: the socket and its connection slot move on
        loop.unregister(fd: driver.fd)
        let connection = WebSocketConnection(id: id, loop: loop, fd: driver.fd, tls: driver.tls, core: core)
        if queuedOutput > 0 {
            connection.proto.outbound.append(output.readableBytes)
        }
        output.clear()
        do {
            try driver.register(on: loop, handler: connection, interest: .read)
        } catch {
            log.error("fallback: cannot give the connection back: \(error)", metadata: meta)
            driver.close(on: loop)
            core.metrics.openConnections.subtract(1)
            return
        }
        HTTPResponder.respond(to: head, on: connection)
        connection.scheduleFlush()
        if !input.isEmpty {
            var rest = input
            input = []
            rest.withUnsafeMutableBytes { connection.received($0) }
        }
    }
}

/// Carries loop-confined objects to the loop that takes them over (EventLoop.execute): the
/// sender stops touching them before the task runs.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
}
