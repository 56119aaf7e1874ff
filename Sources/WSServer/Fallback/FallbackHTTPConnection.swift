import Logging
import Transport
import WebSocket

/// A client connection carrying fallback requests (SSE streams, polls, POSTs), HTTP/1.1
/// keep-alive: one request at a time, in order. It takes over the socket from the
/// `WebSocketConnection` that read the first such request (`handOverToFallback`), moves to the
/// loop of the session a request names, and gives the socket back to a `WebSocketConnection`
/// if a later request on it is not a fallback one. Confined to its current loop.
final class FallbackHTTPConnection: EventHandler {
    enum State {
        /// Between requests (or reading a head).
        case idle
        /// Reading a POST body for a session.
        case body(HTTPRequestHead, HTTPBodyReader, FallbackSession)
        /// A poll held for a session.
        case held(FallbackSession, until: UInt64)
        /// An SSE stream open for a session.
        case streaming(FallbackSession, chunked: Bool)
        /// Waiting for the end of this loop iteration to move to another loop.
        case movingTo(EventLoop, HTTPRequestHead)
        case closed
    }

    let id: UInt64
    var loop: EventLoop
    let driver: StreamDriver
    let core: ServerCore
    var state = State.idle
    var parser: HTTPHeadParser
    /// Received bytes not yet consumed (a body or a pipelined request).
    var input: [UInt8] = []
    /// Answers not yet written (a class: its bytes stay put while the driver writes them).
    let output = ByteBuffer()
    var interest: Interest = .read
    var flushQueued = false
    var writeBlocked = false
    var closeAfterFlush = false
    /// The current request asked for keep-alive.
    var keepAlive = true
    /// Idle, head or body deadline (0: none while a poll is held or a stream is open).
    var deadline: UInt64 = 0
    var nextHeartbeat: UInt64 = 0
    /// Read once at the end of this iteration: the socket was just taken over (from a
    /// `WebSocketConnection`, or from another loop), and bytes the previous owner left inside
    /// OpenSSL (decrypted, or read ahead) are never signalled by the kernel again.
    var readSoon = false
    /// The CORS origin of the request being answered (a held poll is answered later).
    var requestCORS: String?

    init(id: UInt64, loop: EventLoop, driver: StreamDriver, core: ServerCore) {
        self.id = id
        self.loop = loop
        self.driver = driver
        self.core = core
        parser = HTTPHeadParser(limits: core.configuration.headLimits)
    }

    var settings: FallbackConfiguration { core.configuration.fallback }
    var log: Logger { core.logger }
    var meta: Logger.Metadata { ["conn": "\(id)"] }
    var queuedOutput: Int { output.readableCount }
    var isClosed: Bool { if case .closed = state { return true } else { return false } }

    // MARK: - Events

    func handleEvent(_ events: IOEvents) {
        if events.contains(.writable) { flush() }
        guard !isClosed else { return }
        if events.wantsRead { readAvailable() }
    }

    func readAvailable() {
        let limit = settings.maxPostBody + core.configuration.headLimits.maxHeadSize
        let end = driver.receive(into: loop.readBuffer) { bytes in
            input.append(contentsOf: bytes)
            return input.count <= limit
        }
        switch end {
        case .drained, .stopped:
            if input.count > limit {
                return fail(413, "request larger than \(settings.maxPostBody) bytes")
            }
            process()
        case .writeBlocked:
            writeBlocked = true
            updateInterest()
        case .eof, .error:
            close()
        }
    }

    /// Handles whatever complete requests the input holds.
    func process() {
        while !isClosed {
            switch state {
            case .idle:
                guard !input.isEmpty else { return }
                if deadline == 0 || parser.bufferedCount == 0 { deadline = loop.now + settings.postTimeoutMillis }
                let result: HTTPHeadParser.Result
                do {
                    result = try input.withUnsafeBytes { try parser.feed($0) }
                } catch {
                    return fail((error as? HTTPHeadError)?.status ?? 400, "bad request head: \(error)")
                }
                guard case .complete(let head, let consumed) = result else {
                    input = []
                    return
                }
                input.removeFirst(consumed)
                if input.isEmpty { input = [] }  // no buffer kept while a poll is held
                parser = HTTPHeadParser(limits: core.configuration.headLimits)
                deadline = 0
                handle(head)
            case .body(let head, var reader, let session):
                guard !input.isEmpty else { return }
                let result: HTTPBodyReader.Result
                do {
                    result = try input.withUnsafeBytes { try reader.feed($0) }
                } catch {
                    return fail((error as? HTTPBodyError)?.status ?? 400, "\(error)")
                }
                guard case .complete(let body, let consumed) = result else {
                    input = []
                    state = .body(head, reader, session)
                    return
                }
                input.removeFirst(consumed)
                if input.isEmpty { input = [] }  // no buffer kept while a poll is held
                state = .idle
                deadline = 0
                posted(body, to: session, origin: head.value("Origin"))
            case .held, .streaming, .movingTo, .closed:
                return
            }
        }
    }

    // MARK: - Output

    func write(_ text: String, body: [UInt8] = []) {
        output.append(text)
        output.append(body)
        scheduleFlush()
    }

    func scheduleFlush() {
        guard !flushQueued, !isClosed else { return }
        flushQueued = true
        loop.scheduleFlush(self)
    }

    func flushScheduled() {
        flushQueued = false
        switch state {
        case .held(let session, _) where session.hasPending || session.state != .open:
            answerPoll(session)
        case .streaming(let session, let chunked) where session.hasPending:
            writeStream(session.takePending(), chunked: chunked)
            session.delivered()
        case .movingTo(let target, let head):
            flush()
            return move(to: target, head: head)
        default: break
        }
        flush()
        if readSoon {
            readSoon = false
            if !isClosed { readAvailable() }
        } else if case .idle = state, !input.isEmpty {
            process()  // a request pipelined behind a poll or a stream that just ended
            if queuedOutput > 0 { flush() }
        }
    }

    func flush() {
        guard !isClosed else { return }
        let out = output
        let end = driver.flush(pending: { out.readableBytes }, consumed: { out.consume($0) })
        switch end {
        case .drained:
            // An idle or held connection keeps no output block; a stream keeps a small one.
            if case .streaming = state { output.releaseIfEmpty(threshold: 16 << 10) } else { output.releaseIfEmpty() }
            writeBlocked = false
            if closeAfterFlush { return close() }
            updateInterest()
        case .writeBlocked:
            writeBlocked = true
            updateInterest()
        case .readBlocked: break
        case .eof, .error: close()
        }
    }

    func updateInterest() {
        guard !isClosed else { return }
        var wanted: Interest = .read
        if writeBlocked { wanted.insert(.write) }
        driver.update(&interest, to: wanted, on: loop)
    }

    /// An error answer; the connection closes after it (the request's framing may be unknown).
    func fail(_ status: Int, _ reason: String) {
        log.info("fallback request -> \(status): \(reason)", metadata: meta)
        core.metrics.httpErrors.add(1)
        keepAlive = false
        write(FallbackResponse.error(status, reason, keepAlive: false))
        state = .idle
        input = []
        closeAfterFlush = true
    }

    func close() {
        guard !isClosed else { return }
        let previous = state
        state = .closed
        switch previous {
        case .held(let session, _), .streaming(let session, _), .body(_, _, let session): session.detach(self)
        default: break
        }
        driver.close(on: loop)
        core.metrics.openConnections.subtract(1)
        output.clear()
        output.releaseIfEmpty()
        input = []
    }

    func loopStopped() { close() }

    // MARK: - Timers

    func tick(now: UInt64) {
        switch state {
        case .held(let session, let until) where now >= until:
            answerPoll(session)
            flush()
        case .streaming(_, let chunked) where now >= nextHeartbeat:
            nextHeartbeat = now + settings.heartbeatMillis
            var beat: [UInt8] = []
            SSEEncoder.appendHeartbeat(to: &beat)
            writeStream(beat, chunked: chunked)
        case .idle, .body:
            if deadline != 0 && now >= deadline {
                if case .body = state { fail(408, "POST body not complete within \(settings.postTimeout) s") }
                else if parser.bufferedCount > 0 || !input.isEmpty { fail(408, "request head not complete within \(settings.postTimeout) s") }
                else { close() }
            }
        default: break
        }
    }
}
