import Transport
import WSClient

/// One SSE or long-polling session of the fallback benchmark (README "Fallback transports"):
/// a "down" connection that opens the session and then carries the server's messages (one
/// event stream, or polls asked again as soon as each is answered), and, when echoing, an "up"
/// connection that POSTs each message as a one-record batch (`t<len>:<payload>`), keep-alive,
/// up to `depth` requests in flight (pipelined). Echoes must come back byte for byte, in order.
final class FallbackBenchSession: FallbackStreamOwner {
    enum Transport { case sse, longPoll }
    enum State { case opening, open, ended }

    unowned let worker: FallbackWorker
    let transport: Transport
    let uid: UInt32
    let echo: Bool
    var state = State.opening
    var down: FallbackHTTPStream?
    var up: FallbackHTTPStream?
    var sid = ""
    let started = nowNanos()
    // Echo bookkeeping: sequence numbers and the send time of each message in flight.
    var sendSeq: UInt64 = 0
    var recvSeq: UInt64 = 0
    var sendTimes: [UInt64]
    // Parsing the down connection: response head seen; SSE chunk state and de-chunked text.
    var headDone = false
    var chunkLeft = 0
    var chunkTrailer = 0
    var events: [UInt8] = []
    var bodyLeft = -1
    // Up connection: 204 answers still owed.
    var postsOwed = 0

    init(worker: FallbackWorker, transport: Transport, uid: UInt32, echo: Bool) {
        self.worker = worker
        self.transport = transport
        self.uid = uid
        self.echo = echo
        sendTimes = Array(repeating: 0, count: max(worker.settings.depth, 1))
    }

    var query: String { transport == .sse ? "transport=sse" : "transport=longpoll" }
    var sessionURL: String { "\(worker.path)?\(query)&sid=\(sid)" }

    func start() throws {
        down = try FallbackHTTPStream(loop: worker.loop, options: worker.settings.options, owner: self)
        if echo { up = try FallbackHTTPStream(loop: worker.loop, options: worker.settings.options, owner: self) }
    }

    func close() {
        state = .ended
        down?.close()
        up?.close()
        down = nil
        up = nil
    }

    func request(_ method: String, _ target: String, body: [UInt8]? = nil, accept: String? = nil) -> [UInt8] {
        var head = "\(method) \(target) HTTP/1.1\r\nHost: \(worker.hostHeader)\r\n"
        if let accept { head += "Accept: \(accept)\r\n" }
        if let body { head += "Content-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\n" }
        return Array((head + "\r\n").utf8) + (body ?? [])
    }

    // MARK: - FallbackStreamOwner

    func streamOpened(_ stream: FallbackHTTPStream) {
        if stream === down {
            stream.send(request("GET", "\(worker.path)?\(query)", accept: transport == .sse ? "text/event-stream" : nil))
        } else if state == .open {
            startSending()
        }
    }

    func streamEnded(_ stream: FallbackHTTPStream, _ why: String) {
        guard state != .ended else { return }
        if worker.stopping { return close() }
        if state == .opening { worker.ends.connErrors += 1 } else { worker.ends.closedByServer += 1 }
        worker.log.report("session \(uid): \(why)")
        worker.sessionEnded(self, wasUp: state == .open)
        close()
    }

    func streamReceived(_ stream: FallbackHTTPStream) {
        if stream === up { return receivedPostAnswers(stream) }
        if !headDone {
            guard let end = find(stream.input, [13, 10, 13, 10]) else { return }
            let head = String(decoding: stream.input[0..<end], as: UTF8.self)
            stream.input.removeFirst(end + 4)
            guard head.hasPrefix("HTTP/1.1 200 ") else { return protocolError("answer \(head.prefix(40))") }
            headDone = true
            bodyLeft = transport == .longPoll ? contentLength(head) : -1
        }
        if transport == .sse { receivedStream(stream) } else { receivedPollAnswer(stream) }
    }

    // MARK: - SSE: chunked event stream

    func receivedStream(_ stream: FallbackHTTPStream) {
        var i = 0
        let bytes = stream.input
        while i < bytes.count {
            if chunkTrailer > 0 {
                i += 1
                chunkTrailer -= 1
            } else if chunkLeft > 0 {
                let n = min(chunkLeft, bytes.count - i)
                events += bytes[i..<(i + n)]
                i += n
                chunkLeft -= n
                if chunkLeft == 0 { chunkTrailer = 2 }
            } else {
                guard let eol = find(bytes[i...], [13, 10]) else { break }
                guard let size = Int(String(decoding: bytes[i..<eol], as: UTF8.self), radix: 16), size > 0 else {
                    return protocolError("stream ended or bad chunk size")
                }
                chunkLeft = size
                i = eol + 2
            }
        }
        stream.input.removeFirst(i)
        var start = events.startIndex
        while state != .ended, let end = find(events[start...], [10, 10]) {
            sseEvent(events[start..<end])
            start = end + 2
        }
        events.removeFirst(start - events.startIndex)
    }

    func sseEvent(_ block: ArraySlice<UInt8>) {
        if block.first == UInt8(ascii: ":") { return }  // heartbeat comment
        let text = String(decoding: block, as: UTF8.self)
        if text.hasPrefix("event: session\ndata: ") {
            sid = String(text.dropFirst("event: session\ndata: ".count))
            return opened()
        }
        guard text.hasPrefix("data: ") else { return protocolError("unexpected event \(text.prefix(40))") }
        received(block.dropFirst(6))
    }

    // MARK: - Long polling: batches

    func receivedPollAnswer(_ stream: FallbackHTTPStream) {
        guard bodyLeft >= 0, stream.input.count >= bodyLeft else { return }
        let body = stream.input[0..<bodyLeft]
        var i = body.startIndex
        while i < body.endIndex, state != .ended {
            let kind = body[i]
            guard let colon = body[(i + 1)...].firstIndex(of: UInt8(ascii: ":")),
                  let n = Int(String(decoding: body[(i + 1)..<colon], as: UTF8.self)), colon + 1 + n <= body.endIndex else {
                return protocolError("bad batch")
            }
            let payload = body[(colon + 1)..<(colon + 1 + n)]
            switch kind {
            case UInt8(ascii: "s"): sid = String(decoding: payload, as: UTF8.self)
            case UInt8(ascii: "t"): received(payload)
            default: return protocolError("unexpected record \(kind)")
            }
            i = colon + 1 + n
        }
        stream.input.removeFirst(bodyLeft)
        headDone = false
        bodyLeft = -1
        guard state != .ended else { return }
        stream.send(request("GET", sessionURL))  // the next poll, at once
        if state == .opening { opened() }
    }

    // MARK: - Echo

    func opened() {
        guard state == .opening, !sid.isEmpty else { return }
        state = .open
        worker.sessionUp(self, afterNanos: nowNanos() &- started)
        if up?.isOpen == true { startSending() }
    }

    func startSending() {
        guard echo, worker.sending else { return }
        while sendSeq - recvSeq < UInt64(sendTimes.count) { sendOne() }
    }

    func sendOne() {
        guard let up else { return }
        let now = nowNanos()
        sendTimes[Int(sendSeq % UInt64(sendTimes.count))] = now
        up.send(request("POST", sessionURL, body: worker.batch(uid: uid, seq: sendSeq)))
        if now >= worker.settings.w0 && now < worker.settings.w1 { worker.txMsgs += 1 }
        sendSeq += 1
        postsOwed += 1
    }

    func received(_ payload: ArraySlice<UInt8>) {
        let now = nowNanos()
        guard echo else { return }
        if !worker.matches(payload, uid: uid, seq: recvSeq) { worker.mismatches += 1 }
        if now >= worker.settings.w0 && now < worker.settings.w1 {
            worker.msgs += 1
            worker.latency.add(now &- sendTimes[Int(recvSeq % UInt64(sendTimes.count))])
        }
        recvSeq += 1
        if worker.sending && now < worker.settings.w1 { sendOne() }
    }

    func receivedPostAnswers(_ stream: FallbackHTTPStream) {
        while let end = find(stream.input, [13, 10, 13, 10]) {
            let ok = stream.input.starts(with: Array("HTTP/1.1 204 ".utf8))
            stream.input.removeFirst(end + 4)
            postsOwed -= 1
            if !ok { return protocolError("a POST was not answered 204") }
        }
    }

    func protocolError(_ why: String) {
        worker.ends.protoErrors += 1
        worker.log.report("session \(uid): \(why)")
        worker.sessionEnded(self, wasUp: state == .open)
        close()
    }
}

/// First index of `pattern` in `bytes`, as an index of `bytes`.
func find<C: Collection>(_ bytes: C, _ pattern: [UInt8]) -> C.Index? where C.Element == UInt8, C.Index == Int {
    guard bytes.count >= pattern.count else { return nil }
    var i = bytes.startIndex
    let last = bytes.endIndex - pattern.count
    while i <= last {
        if bytes[i] == pattern[0] {
            var k = 1
            while k < pattern.count && bytes[i + k] == pattern[k] { k += 1 }
            if k == pattern.count { return i }
        }
        i += 1
    }
    return nil
}

/// Content-Length of a response head (0 when absent).
func contentLength(_ head: String) -> Int {
    for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
        return Int(line.dropFirst("content-length:".count).drop(while: { $0 == " " })) ?? 0
    }
    return 0
}
