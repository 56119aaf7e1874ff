/// Server (or client) configuration for permessage-deflate (RFC 7692).
///
/// Window bits and memLevel trade memory per connection for compression ratio; see
/// `PerMessageDeflate.deflateMemory(windowBits:memLevel:)` and `inflateMemory(windowBits:)`.
/// The throwing `init` rejects a value out of range with a `ConfigurationError`; the setters
/// trap on one. Nothing is clamped.
public struct DeflateOptions: Sendable, Equatable {
    /// Our compressor's window: 9–15. 8 is not allowed: zlib cannot build a raw deflate
    /// compressor with a 256-byte window (see `DeflateNegotiation`).
    public static let serverWindowBitsRange = 9...15
    public static let memLevelRange = 1...9
    public static let compressionLevelRange = 0...9

    /// Whether to accept permessage-deflate offers at all.
    public var enabled = true
    /// Largest LZ77 window the server compresses with (`serverWindowBitsRange`).
    public var serverMaxWindowBits: Int {
        get { serverBits }
        set { serverBits = ConfigurationError.trap("serverMaxWindowBits", newValue, Self.serverWindowBitsRange) }
    }
    /// Largest window the server asks the client to compress with
    /// (`DeflateParameters.windowBitsRange`, 8–15); bounds the server's inflate window. Below
    /// 15, offers that do not advertise `client_max_window_bits` are declined (the client
    /// could not be held to it).
    public var clientMaxWindowBits: Int {
        get { clientBits }
        set { clientBits = ConfigurationError.trap("clientMaxWindowBits", newValue, DeflateParameters.windowBitsRange) }
    }
    /// Always answer `server_no_context_takeover`: the compressor forgets its window after
    /// each message (worse ratio; its memory can be released between messages).
    public var serverNoContextTakeover = false
    /// Always answer `client_no_context_takeover`: the client must reset after each message,
    /// so the server's inflater holds no state between messages.
    public var clientNoContextTakeover = false
    /// zlib memLevel (1–9): hash table and pending buffer size of the compressor.
    public var memLevel: Int {
        get { mem }
        set { mem = ConfigurationError.trap("memLevel", newValue, Self.memLevelRange) }
    }
    /// zlib compression level (0–9). 6 is zlib's default and what python-websockets and Node's
    /// `ws` use, so ratios match what peers expect; for WebSocket-sized messages (mostly
    /// under a few KiB) the CPU difference to level 1 is small next to per-call overhead.
    public var compressionLevel: Int {
        get { level }
        set { level = ConfigurationError.trap("compressionLevel", newValue, Self.compressionLevelRange) }
    }
    /// Messages shorter than this are sent uncompressed (RSV1 clear), which permessage-deflate
    /// allows per message. Below ~64 bytes the deflate block overhead (a few bytes of block
    /// header plus the byte-aligning flush) eats most of the gain, and such a frame already
    /// has the 2-byte length form.
    public var minSizeToCompress: Int {
        get { minSize }
        set { minSize = ConfigurationError.trap("minSizeToCompress", newValue, 0...Int.max) }
    }

    private var serverBits = 15
    private var clientBits = 15
    private var mem = 8
    private var level = 6
    private var minSize = 64

    /// The defaults: enabled, 15-bit windows, context takeover, memLevel 8, level 6.
    public init() {}

    /// - Throws: `ConfigurationError` for a value outside its range.
    public init(enabled: Bool = true,
                serverMaxWindowBits: Int = 15,
                clientMaxWindowBits: Int = 15,
                serverNoContextTakeover: Bool = false,
                clientNoContextTakeover: Bool = false,
                memLevel: Int = 8,
                compressionLevel: Int = 6,
                minSizeToCompress: Int = 64) throws(ConfigurationError) {
        try ConfigurationError.check("serverMaxWindowBits", serverMaxWindowBits, in: Self.serverWindowBitsRange,
                                     note: "zlib cannot compress raw deflate with 8")
        try ConfigurationError.check("clientMaxWindowBits", clientMaxWindowBits, in: DeflateParameters.windowBitsRange)
        try ConfigurationError.check("memLevel", memLevel, in: Self.memLevelRange)
        try ConfigurationError.check("compressionLevel", compressionLevel, in: Self.compressionLevelRange)
        try ConfigurationError.check("minSizeToCompress", minSizeToCompress, in: 0...Int.max)
        self.enabled = enabled
        serverBits = serverMaxWindowBits
        clientBits = clientMaxWindowBits
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        mem = memLevel
        level = compressionLevel
        minSize = minSizeToCompress
    }
}

/// The agreed parameters of one connection (RFC 7692 §7.1), as both sides must apply them.
///
/// Window bits travel as `serverMaxWindowBits` / `clientMaxWindowBits` (the RFC's names) from
/// the header to the zlib streams; `windowBits(_:)` is the one parser of a header value and
/// `windowBitsRange` the one range.
public struct DeflateParameters: Sendable, Equatable {
    /// RFC 7692 §7.1.2.1: an LZ77 window of 2^8 to 2^15 bytes.
    public static let windowBitsRange = 8...15

    /// The server resets its compressor after each message.
    public let serverNoContextTakeover: Bool
    /// The client resets its compressor after each message.
    public let clientNoContextTakeover: Bool
    /// Largest window the server compresses with (15 when not negotiated). 8 means the
    /// server never compresses (zlib cannot honour it), see `DeflateNegotiation`.
    public let serverMaxWindowBits: Int
    /// Largest window the client compresses with (15 when not negotiated).
    public let clientMaxWindowBits: Int

    /// - Precondition: window bits in `windowBitsRange` (values from a header come through
    ///   `windowBits(_:)`).
    public init(serverNoContextTakeover: Bool = false, clientNoContextTakeover: Bool = false,
                serverMaxWindowBits: Int = 15, clientMaxWindowBits: Int = 15) {
        precondition(Self.windowBitsRange.contains(serverMaxWindowBits) && Self.windowBitsRange.contains(clientMaxWindowBits),
                     "window bits outside 8–15")
        self.serverNoContextTakeover = serverNoContextTakeover
        self.clientNoContextTakeover = clientNoContextTakeover
        self.serverMaxWindowBits = serverMaxWindowBits
        self.clientMaxWindowBits = clientMaxWindowBits
    }

    /// The window the given side compresses with.
    public func maxWindowBits(of side: WebSocketProtocol.Role) -> Int {
        side == .server ? serverMaxWindowBits : clientMaxWindowBits
    }

    /// Whether the given side resets its compressor after each message.
    public func noContextTakeover(of side: WebSocketProtocol.Role) -> Bool {
        side == .server ? serverNoContextTakeover : clientNoContextTakeover
    }

    /// A window-bits parameter value (RFC 7692 §7.1.2.1: `%x38-39 / "1" %x30-35` — 8 to 15, no
    /// leading zeros, no sign), already unquoted; nil if it is not one.
    public static func windowBits(_ value: String) -> Int? {
        let u = Array(value.utf8)
        switch u.count {
        case 1 where u[0] == UInt8(ascii: "8") || u[0] == UInt8(ascii: "9"):
            return Int(u[0] - UInt8(ascii: "0"))
        case 2 where u[0] == UInt8(ascii: "1") && (UInt8(ascii: "0")...UInt8(ascii: "5")).contains(u[1]):
            return 10 + Int(u[1] - UInt8(ascii: "0"))
        default:
            return nil
        }
    }
}

extension WebSocketProtocol.Role {
    /// The other end.
    public var peer: WebSocketProtocol.Role { self == .server ? .client : .server }
}
