import CLinux

/// What a handler wants to hear about for its descriptor. The loop maps it to its backend
/// (epoll bits today); owners never see the backend's constants.
public struct Interest: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    /// Bytes (or a close) can be read.
    public static let read = Interest(rawValue: 1)
    /// The socket can take more bytes (asked for only while a write was refused).
    public static let write = Interest(rawValue: 2)

    /// The epoll event mask for this interest.
    @inline(__always) var epollBits: UInt32 {
        (contains(.read) ? EPOLLIN.rawValue : 0) | (contains(.write) ? EPOLLOUT.rawValue : 0)
    }
}

/// What the loop observed on a descriptor. The raw value is the backend's mask (epoll bits),
/// so the conversion costs nothing; owners only use the named members.
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let readable = IOEvents(rawValue: EPOLLIN.rawValue)
    public static let writable = IOEvents(rawValue: EPOLLOUT.rawValue)
    /// The peer hung up or the socket failed: reading reports how.
    public static let hangup = IOEvents(rawValue: EPOLLHUP.rawValue | EPOLLERR.rawValue)

    /// Something for the read side: data, end of stream or an error.
    @inline(__always) public var wantsRead: Bool {
        rawValue & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0
    }
}
