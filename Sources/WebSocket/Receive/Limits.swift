extension WebSocketProtocol {
    /// Size limits enforced while receiving, decided at each frame header.
    ///
    /// Every value is checked: the throwing `init` reports a value out of range as a
    /// `ConfigurationError` (for values from a command line or a file), and the setters trap
    /// on one (a programming error, like an index out of range). Nothing is clamped.
    public struct Limits: Sendable, Equatable {
        /// Sizes are stored in 32 bits (these live in every connection), so a limit is at most
        /// 2 GiB − 1; the whole message must fit in memory anyway.
        public static let sizeRange = 1...Int(Int32.max)
        /// `maxQueuedPongs` is stored in a byte.
        public static let queuedPongsRange = 1...255

        /// Largest message payload, after reassembly (and after decompression). 16 MiB covers
        /// Autobahn section 9 and most real payloads while bounding memory per connection.
        public var maxMessageSize: Int {
            get { Int(message) }
            set {
                message = Int32(ConfigurationError.trap("maxMessageSize", newValue, Self.sizeRange))
                if !explicitFrame { frame = message }
            }
        }
        /// Largest single frame payload. Unless set, it follows `maxMessageSize` (a frame can
        /// never be larger than its message), also when that is raised later.
        public var maxFrameSize: Int {
            get { Int(frame) }
            set {
                frame = Int32(ConfigurationError.trap("maxFrameSize", newValue, Self.sizeRange))
                explicitFrame = true
            }
        }
        /// Whether `maxFrameSize` was set rather than derived from `maxMessageSize`.
        public var hasExplicitFrameLimit: Bool { explicitFrame }
        /// Most frames in one message; bounds per-fragment overhead from a peer that sends
        /// millions of empty continuation frames. 1 Mi allows any sane fragmentation.
        public var maxFragments: Int {
            get { Int(fragments) }
            set { fragments = Int32(ConfigurationError.trap("maxFragments", newValue, Self.sizeRange)) }
        }
        /// Most pongs waiting unsent in `outbound`; pings beyond get no pong until it drains.
        /// 32 answers any sane keepalive and bounds a ping flood to ~4 KiB of pongs.
        public var maxQueuedPongs: Int {
            get { Int(pongs) }
            set { pongs = UInt8(ConfigurationError.trap("maxQueuedPongs", newValue, Self.queuedPongsRange)) }
        }

        // Declared widest first: 14 bytes in every connection, not 17 with padding.
        private var message: Int32 = 16 << 20
        /// The frame limit in effect: `message` unless `explicitFrame` (kept resolved, so the
        /// receive path reads it without a branch).
        private var frame: Int32 = 16 << 20
        private var fragments: Int32 = 1 << 20
        private var explicitFrame = false
        private var pongs: UInt8 = 32

        /// The defaults.
        public init() {}

        /// - Parameter maxFrameSize: nil follows `maxMessageSize`.
        /// - Throws: `ConfigurationError` for a value outside its range.
        public init(maxMessageSize: Int = 16 << 20, maxFrameSize: Int? = nil, maxFragments: Int = 1 << 20,
                    maxQueuedPongs: Int = 32) throws(ConfigurationError) {
            let note = "2 GiB − 1 at most"
            try ConfigurationError.check("maxMessageSize", maxMessageSize, in: Self.sizeRange, note: note)
            if let maxFrameSize {
                try ConfigurationError.check("maxFrameSize", maxFrameSize, in: Self.sizeRange, note: note)
                frame = Int32(maxFrameSize)
                explicitFrame = true
            }
            try ConfigurationError.check("maxFragments", maxFragments, in: Self.sizeRange)
            try ConfigurationError.check("maxQueuedPongs", maxQueuedPongs, in: Self.queuedPongsRange)
            message = Int32(maxMessageSize)
            if !explicitFrame { frame = message }
            fragments = Int32(maxFragments)
            pongs = UInt8(maxQueuedPongs)
        }
    }
}
