#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Transport
import WSClient

/// One wss-client connection: the delegate on the event loop (prints what arrives, exits when
/// the connection ends) and the stdin reader on the main thread (sends what the user types).
final class ClientSession: ClientDelegate, @unchecked Sendable {
    let interactive: Bool
    let count: Int?
    /// Loop-confined, like everything the delegate callbacks touch.
    var connection: ClientConnection?
    private var received = 0
    /// Loop time (ms) of the last message received or of the end of input.
    private var lastActivity: UInt64 = 0
    private var closing = false
    private var isOpen = false
    private let opened = DispatchSemaphore(value: 0)
    /// " (subprotocol chat.v1, permessage-deflate)"; written on the loop before `opened` fires.
    private(set) var negotiated = ""

    init(interactive: Bool, count: Int?) {
        self.interactive = interactive
        self.count = count
    }

    // MARK: - Delegate (event loop)

    func clientDidOpen(_ client: ClientConnection) {
        isOpen = true
        var parts: [String] = []
        if let p = client.subprotocol { parts.append("subprotocol \(p)") }
        if client.isCompressing { parts.append("permessage-deflate") }
        negotiated = parts.isEmpty ? "" : " (\(parts.joined(separator: ", ")))"
        opened.signal()
    }

    func client(_ client: ClientConnection, didReceive message: Message) {
        received += 1
        lastActivity = client.loop.now
        let data = message.data
        if interactive {
            let shown = message.kind == .text ? String(decoding: data, as: UTF8.self)
                : "[binary, \(data.count) bytes] " + data.prefix(32).map { hex($0) }.joined()
            Output.out("\r< \(shown)\n> ")
        } else {
            Output.out(data + [0x0A])
        }
        if let count, received >= count, !closing {
            closing = true
            client.close(code: .normal)
        }
    }

    func clientDidClose(_ client: ClientConnection, code: CloseCode, reason: String, error: String?) {
        guard isOpen else { failBeforeOpen(error ?? "the server closed the connection during the handshake") }
        let status = Self.exitStatus(for: code)
        if interactive || status != 0 {
            let why = reason.isEmpty ? "" : ": \(reason)"
            let detail = error.map { " (\($0))" } ?? ""
            Output.err("\(interactive ? "\n" : "")wss-client: closed with \(code.rawValue)\(why)\(detail)\n")
        }
        exit(status)
    }

    func failBeforeOpen(_ why: String) -> Never {
        WSSClient.failLine(why)
    }

    /// 0 for 1000; 10 + (code − 1000) for 1001–1015; 2 for application codes; 1 otherwise.
    static func exitStatus(for code: CloseCode) -> Int32 {
        switch code.rawValue {
        case 1000: return 0
        case 1001...1015: return Int32(code.rawValue) - 1000 + 10
        case 3000...4999: return 2
        default: return 1
        }
    }

    // MARK: - Main thread

    func waitUntilOpen() { opened.wait() }

    func startPinging(every seconds: Double, loop: EventLoop) {
        let micros = useconds_t(min(seconds, 4000) * 1_000_000)
        DispatchQueue.global().async { [self] in
            while true {
                usleep(micros)
                loop.execute { self.connection?.ping() }
            }
        }
    }

    /// Sends each stdin line as a message. At end of input: interactive closes with 1000 at once;
    /// pipe mode waits for `--count` messages, or without it until the server has been silent
    /// for `linger` seconds (our core drops data frames that arrive after our close frame,
    /// RFC 6455 §1.4, so closing at once would lose the replies still on their way). The
    /// delegate ends the process when the connection ends.
    func readInput(loop: EventLoop, binary: Bool, linger: Double) -> Never {
        if interactive { Output.out("> ") }
        let reader = LineReader()
        while let line = reader.next() {
            if !binary && !validUTF8(line) {
                Output.err("wss-client: skipped a line that is not valid UTF-8 (use --binary)\n")
            } else {
                loop.execute { [self] in
                    guard let c = connection else { return }
                    line.withUnsafeBytes { _ = c.send(binary ? .binary : .text, $0) }
                }
            }
            if interactive { Output.out("> ") }
        }
        if interactive {
            loop.execute { [self] in closing = true; connection?.close(code: .normal) }
        } else if count == nil {
            let quiet = UInt64(linger * 1000)
            loop.execute { [self] in lastActivity = loop.now }
            while true {
                usleep(20_000)
                loop.execute { [self] in
                    guard !closing, let c = connection, c.bufferedAmount == 0,
                          loop.now >= lastActivity + quiet else { return }
                    closing = true
                    c.close(code: .normal)
                }
            }
        }
        while true { pause() }
    }

    private func validUTF8(_ bytes: [UInt8]) -> Bool {
        var it = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&it) {
            case .scalarValue: continue
            case .emptyInput: return true
            case .error: return false
            }
        }
    }

    private func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(b >> 4)], digits[Int(b & 15)]])
    }
}

/// Lines from stdin as bytes (getline: no decoding, so binary lines stay byte-exact), without
/// the trailing "\n" or "\r\n".
final class LineReader {
    private var buffer: UnsafeMutablePointer<CChar>?
    private var capacity = 0
    /// Our own FILE on fd 0 (Swift 6 refuses the global `stdin` as shared mutable state).
    private let file: UnsafeMutablePointer<FILE>? = fdopen(0, "r")

    func next() -> [UInt8]? {
        guard let file else { return nil }
        let n = getline(&buffer, &capacity, file)
        guard n >= 0, let buffer else { return nil }
        var bytes = Array(UnsafeRawBufferPointer(start: buffer, count: n))
        if bytes.last == 0x0A { bytes.removeLast() }
        if bytes.last == 0x0D { bytes.removeLast() }
        return bytes
    }

    deinit { free(buffer) }
}

/// Unbuffered writes straight to the file descriptors (the loop thread and the main thread both
/// write; nothing waits in a stdio buffer when the process exits).
enum Output {
    static func out(_ s: String) { out(Array(s.utf8)) }
    static func out(_ bytes: [UInt8]) { write(1, bytes) }
    static func err(_ s: String) { write(2, Array(s.utf8)) }

    private static func write(_ fd: Int32, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 { if errno == EINTR { continue }; return }
                offset += n
            }
        }
    }
}
