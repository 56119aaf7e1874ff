import CHiredis

/// Incremental RESP2 parser: hiredis's sans-IO reader. Feed it whatever bytes arrived (one at
/// a time or many replies at once), then take complete replies until it says it needs more.
/// Never touches a socket. Confined to one thread.
public final class RESPReader {
    private let reader: UnsafeMutablePointer<redisReader>

    public init() {
        reader = redisReaderCreate()
        // Keep up to 64 KiB of read buffer between feeds instead of hiredis's 16 KiB default:
        // a pub/sub stream of small messages then reuses one buffer.
        wss_redis_reader_set_maxbuf(reader, 64 << 10)
    }

    deinit { redisReaderFree(reader) }

    /// Appends received bytes.
    public func feed(_ bytes: UnsafeRawBufferPointer) throws(RESPError) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        if redisReaderFeed(reader, base.assumingMemoryBound(to: CChar.self), bytes.count) != REDIS_OK {
            throw RESPError(String(cString: wss_redis_reader_error(reader)))
        }
    }

    public func feed(_ bytes: [UInt8]) throws(RESPError) {
        let failure = bytes.withUnsafeBytes { b -> RESPError? in
            do throws(RESPError) { try feed(b) } catch { return error }
            return nil
        }
        if let failure { throw failure }
    }

    /// The next complete reply, or nil if more bytes are needed. A protocol error (bytes that
    /// are not RESP) is thrown and leaves the reader unusable: close the connection.
    public func next() throws(RESPError) -> RESPValue? {
        var raw: UnsafeMutableRawPointer?
        if redisReaderGetReply(reader, &raw) != REDIS_OK {
            throw RESPError(String(cString: wss_redis_reader_error(reader)))
        }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    private static func convert(_ r: UnsafeMutablePointer<redisReply>) -> RESPValue {
        let reply = r.pointee
        switch reply.type {
        case REDIS_REPLY_STRING:
            return .bulk(Array(UnsafeRawBufferPointer(start: reply.str, count: reply.len)))
        case REDIS_REPLY_STATUS:
            return .simple(text(reply))
        case REDIS_REPLY_ERROR:
            return .error(text(reply))
        case REDIS_REPLY_INTEGER:
            return .integer(Int64(reply.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RESPValue] = []
            items.reserveCapacity(reply.elements)
            for i in 0..<reply.elements { items.append(convert(reply.element[i]!)) }
            return .array(items)
        default:
            return .null
        }
    }

    private static func text(_ reply: redisReply) -> String {
        String(decoding: UnsafeRawBufferPointer(start: reply.str, count: reply.len), as: UTF8.self)
    }
}

/// The peer sent bytes that are not RESP.
public struct RESPError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
