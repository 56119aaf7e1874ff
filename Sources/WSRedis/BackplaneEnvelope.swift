import WebSocket

/// The bytes of one message on a Redis channel (version 1): a 27-byte header, then the
/// payload byte for byte (text stays UTF-8 as the client sent it, binary is untouched).
///
///     offset  size  field
///     0       1     'W' (0x57), magic
///     1       1     version, 1
///     2       1     kind: 1 text, 2 binary; flag 0x80: the sequence is the topic's stream
///                   offset (history on); flag 0x40: the publishing server delivered it to
///                   its own subscribers already; flag 0x20: the stream's epoch
///                   follows the header (set by the history script, never by `writeHeader`)
///     3       16    instance id of the publishing server (OS CSPRNG, new at each start)
///     19      8     sequence number, big-endian: per (instance, topic) from 1, or with
///                   flag 0x80 the offset in the topic's Redis Stream (set by the script)
///     27      1     with flag 0x20 only: the epoch's length E (1…255)
///     28      E     with flag 0x20 only: the epoch (ASCII)
///     27/28+E …     payload
///
/// The instance id lets a server skip its own messages (it delivered them locally already);
/// the sequence lets a receiver count messages it missed (a Redis outage) and drop repeats.
public struct BackplaneEnvelope: Equatable, Sendable {
    public static let headerSize = 27
    static let magic: UInt8 = 0x57
    static let version: UInt8 = 1

    public var kind: Message.Kind
    public var instance: InstanceID
    public var sequence: UInt64
    /// Flag 0x80: `sequence` is the topic's stream offset.
    public var isStreamOffset: Bool
    /// Flag 0x40: the publisher's own subscribers have it already.
    public var deliveredAtOrigin: Bool
    /// Flag 0x20: the epoch of the stream `sequence` is an offset in (read by `parse`;
    /// `writeHeader` leaves it to the history script).
    public var epoch: String?

    public init(kind: Message.Kind, instance: InstanceID, sequence: UInt64,
                isStreamOffset: Bool = false, deliveredAtOrigin: Bool = false, epoch: String? = nil) {
        self.epoch = epoch
        self.kind = kind
        self.instance = instance
        self.sequence = sequence
        self.isStreamOffset = isStreamOffset
        self.deliveredAtOrigin = deliveredAtOrigin
    }

    /// Writes the header into `out` (27 bytes).
    public func writeHeader(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= Self.headerSize)
        out[0] = Self.magic
        out[1] = Self.version
        out[2] = (kind == .text ? 1 : 2) | (isStreamOffset ? 0x80 : 0) | (deliveredAtOrigin ? 0x40 : 0)
        withUnsafeBytes(of: instance.high.bigEndian) { out.baseAddress!.advanced(by: 3).copyMemory(from: $0.baseAddress!, byteCount: 8) }
        withUnsafeBytes(of: instance.low.bigEndian) { out.baseAddress!.advanced(by: 11).copyMemory(from: $0.baseAddress!, byteCount: 8) }
        withUnsafeBytes(of: sequence.bigEndian) { out.baseAddress!.advanced(by: 19).copyMemory(from: $0.baseAddress!, byteCount: 8) }
    }

    /// Parses a channel message: the header and where the payload starts, or why it is not ours.
    public static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<(BackplaneEnvelope, payload: UnsafeRawBufferPointer), EnvelopeError> {
        guard bytes.count >= headerSize else { return .failure(.tooShort(bytes.count)) }
        guard bytes[0] == magic else { return .failure(.notAnEnvelope) }
        guard bytes[1] == version else { return .failure(.unknownVersion(bytes[1])) }
        let kind: Message.Kind
        switch bytes[2] & 0x1F {
        case 1: kind = .text
        case 2: kind = .binary
        default: return .failure(.unknownKind(bytes[2]))
        }
        func u64(_ at: Int) -> UInt64 { bytes[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) } }
        var envelope = BackplaneEnvelope(kind: kind, instance: InstanceID(high: u64(3), low: u64(11)), sequence: u64(19),
                                         isStreamOffset: bytes[2] & 0x80 != 0, deliveredAtOrigin: bytes[2] & 0x40 != 0)
        var start = headerSize
        if bytes[2] & 0x20 != 0 {
            guard bytes.count > headerSize, bytes[headerSize] > 0, bytes.count >= headerSize + 1 + Int(bytes[headerSize]) else {
                return .failure(.badEpoch)
            }
            start = headerSize + 1 + Int(bytes[headerSize])
            envelope.epoch = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(headerSize + 1)..<start]), as: UTF8.self)
        }
        return .success((envelope, UnsafeRawBufferPointer(rebasing: bytes[start...])))
    }
}

public enum EnvelopeError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooShort(Int), notAnEnvelope, unknownVersion(UInt8), unknownKind(UInt8), badEpoch
    public var description: String {
        switch self {
        case .tooShort(let n): return "message of \(n) bytes is shorter than the 27-byte envelope header"
        case .notAnEnvelope: return "no envelope magic (published by something other than wss-server?)"
        case .unknownVersion(let v): return "envelope version \(v) is not 1"
        case .unknownKind(let k): return "message kind \(k) is neither 1 (text) nor 2 (binary)"
        case .badEpoch: return "flag 0x20 set but no epoch (length byte 1-255 and that many bytes) after the header"
        }
    }
}

/// 128 random bits naming one running server.
public struct InstanceID: Hashable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64
    public init(high: UInt64, low: UInt64) { self.high = high; self.low = low }

    /// From the OS CSPRNG (`SystemRandomNumberGenerator` is getrandom(2) on Linux).
    public static func random() -> InstanceID {
        var rng = SystemRandomNumberGenerator()
        return InstanceID(high: rng.next(), low: rng.next())
    }

    /// The first 8 hex digits (enough to tell instances apart in a log).
    public var description: String {
        let h = String(high >> 32, radix: 16)
        return String(repeating: "0", count: 8 - h.count) + h
    }
}
