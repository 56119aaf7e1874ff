import CLinux

/// What a handler wants to hear about for its descriptor. The loop maps it to its backend
/// (epoll bits today); owners never see the backend's constants.
public struct Interest: OptionSet, Sendable {
    public let rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    // Inlinable literals, not `static let`s: those cost a swift_once addressor call per use
    // from other modules.
    /// Bytes (or a close) can be read.
    @inlinable public static var read: Interest { Interest(rawValue: 1) }
    /// The socket can take more bytes (asked for only while a write was refused).
    @inlinable public static var write: Interest { Interest(rawValue: 2) }

    /// The epoll event mask for this interest.
    @inline(__always) var epollBits: UInt32 {
        (contains(.read) ? EPOLLIN.rawValue : 0) | (contains(.write) ? EPOLLOUT.rawValue : 0)
    }
}

/// What the loop observed on a descriptor. The raw value is the backend's mask (epoll bits),
/// so the conversion costs nothing; owners only use the named members.
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    // The epoll values as literals (Linux ABI; TransportTests checks them against the
    // headers), inlinable for the same reason as `Interest`'s.
    /// EPOLLIN.
    @inlinable public static var readable: IOEvents { IOEvents(rawValue: 0x001) }
    /// EPOLLOUT.
    @inlinable public static var writable: IOEvents { IOEvents(rawValue: 0x004) }
    /// The peer hung up or the socket failed (EPOLLHUP | EPOLLERR): reading reports how.
    @inlinable public static var hangup: IOEvents { IOEvents(rawValue: 0x010 | 0x008) }

    /// Something for the read side: data, end of stream or an error.
    @inlinable public var wantsRead: Bool {
        rawValue & (Self.readable.rawValue | Self.hangup.rawValue) != 0
    }
}
