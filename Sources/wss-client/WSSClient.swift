#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import ToolSupport
import Transport
import WSClient
import WSSBuildInfo

struct WSSClient: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wss-client",
        abstract: "Talk to a WebSocket server (ws:// or wss://) from a terminal or a pipe.",
        discussion: """
            Interactive when stdin is a terminal: type a line to send it ('> ' is the prompt), \
            messages arrive as '< TEXT'; Ctrl-D closes. Pipe mode otherwise: each stdin line is \
            one message, each message received is one line on stdout; at the end of input the \
            client waits until the server has been silent for --linger seconds (or for --count \
            messages), closes (1000) and exits. Exit status: 0 after a \
            1000 close, 1 on an ordinary error (bad URL, refused connection, TLS or handshake \
            failure), 10 + (code − 1000) for other 1001–1015 close codes (1001 → 11, 1006 → 16, \
            1011 → 21), 2 for application codes 3000–4999.
            """,
        version: BuildInfo.versionLine("wss-client"))

    @Argument(help: "ws://host:port/path or wss://host:port/path")
    var url: String

    @Option(help: "CA certificates (PEM) to verify a wss:// server against (default: the system store).")
    var ca: String?

    @Flag(help: "Do NOT verify the server's certificate (tests against self-signed servers only).")
    var insecure = false

    @Option(name: .customLong("header"), help: ArgumentHelp("Extra request header 'Name: value' (repeatable).", valueName: "HEADER"))
    var headers: [String] = []

    @Option(name: .customLong("subprotocol"), help: ArgumentHelp("Offer this subprotocol (repeatable).", valueName: "NAME"))
    var subprotocols: [String] = []

    @Flag(help: "Offer permessage-deflate (RFC 7692).")
    var compress = false

    @Option(help: "Send a ping every this many seconds (0: never).")
    var pingInterval: Double = 0

    @Flag(help: "Pipe mode: send each line as a binary message (without its newline).")
    var binary = false

    @Option(help: "Close (1000) after receiving this many messages.")
    var count: Int?

    @Option(help: "Pipe mode without --count: at the end of input, close once the server has been silent this many seconds.")
    var linger: Double = 0.5

    @Option(help: "Seconds allowed for TCP connect, TLS and the upgrade.")
    var connectTimeout: Double = 10

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        if pingInterval < 0 || !pingInterval.isFinite { throw ValidationError("--ping-interval must be a non-negative number of seconds") }
        if linger < 0 || !linger.isFinite { throw ValidationError("--linger must be a non-negative number of seconds") }
        if !(connectTimeout > 0) || !connectTimeout.isFinite { throw ValidationError("--connect-timeout must be positive") }
        if insecure && ca != nil { throw ValidationError("--insecure and --ca exclude each other") }
        try IOSelection.checkEnvironment()
    }

    func run() throws {
        signal(SIGPIPE, SIG_IGN)
        var options = try makeOptions()
        options.connectTimeoutMillis = UInt64(connectTimeout * 1000)
        let interactive = isatty(0) == 1
        let session = ClientSession(interactive: interactive, count: count)
        let loop = try EventLoop(index: 0, readBufferSize: 256 << 10)
        if let warning = IOSelection.fallbackWarning(tool: "wss-client", loops: [loop]) { Output.err(warning + "\n") }
        loop.start(name: "wss-client")
        let opts = options
        loop.execute {
            do {
                session.connection = try ClientConnection(loop: loop, options: opts, delegate: session)
            } catch {
                session.failBeforeOpen("\(error)")
            }
        }
        session.waitUntilOpen()
        if interactive {
            Output.err("connected to \(url)\(session.negotiated); Ctrl-D closes\n")
        }
        if pingInterval > 0 { session.startPinging(every: pingInterval, loop: loop) }
        session.readInput(loop: loop, binary: binary, linger: linger)
    }

    func makeOptions() throws -> ClientOptions {
        guard url.hasPrefix("ws://") || url.hasPrefix("wss://") else {
            throw ValidationError("not a ws:// or wss:// URL: \(url)")
        }
        var tls: TLSClientContext?
        if url.hasPrefix("wss://") {
            if insecure {
                Output.err("""
                    wss-client: WARNING: --insecure: the server's certificate is NOT verified; \
                    anyone on the path can read and change this connection.\n
                    """)
            }
            tls = try TLSClientContext(caFile: ca, verify: !insecure)
        }
        guard var options = ClientOptions(url: url, tls: tls), !options.host.isEmpty,
              (1...65535).contains(options.port) else {
            throw ValidationError("not a valid ws:// or wss:// URL: \(url)")
        }
        options.subprotocols = subprotocols
        options.offerDeflate = compress
        options.headers = try headers.map(Self.parseHeader)
        if !options.headers.contains(where: { $0.name.lowercased() == "user-agent" }) {
            options.headers.append((name: "User-Agent", value: "wss-client/\(BuildInfo.version)"))
        }
        return options
    }

    /// "Name: value" → (Name, value). The name must be an RFC 9110 token; no CR or LF anywhere
    /// (header injection).
    static func parseHeader(_ text: String) throws -> (name: String, value: String) {
        guard let colon = text.firstIndex(of: ":") else {
            throw ValidationError("--header must be 'Name: value': \(text)")
        }
        let name = String(text[..<colon])
        let value = String(text[text.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
        let tokenChars = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        guard !name.isEmpty, name.allSatisfy(tokenChars.contains) else {
            throw ValidationError("--header name is not a valid token: \(name)")
        }
        guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
            throw ValidationError("--header value must not contain CR, LF or NUL")
        }
        return (name, value)
    }
}
