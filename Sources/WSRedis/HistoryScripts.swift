import WSServer
import WebSocket

/// The two Lua scripts that keep a topic's history in Redis (run atomically, so offsets,
/// stream entries and PUBLISH order agree), and the fixed arguments they take. The publish
/// script writes the offset into the envelope and inserts the stream's epoch (flag 0x20),
/// so every live delivery carries its full position.
///
/// Keys per topic: `<prefix>h:<topic>` a Stream (`XADD … MAXLEN ~ N`, entry id
/// `<offset>-1`, field `m` = the envelope) that expires `ttl` seconds after the last publish,
/// and `<prefix>m:<topic>` a hash (`e` epoch, `o` last offset) that lives `metaTTL` seconds
/// after the last publish or recovery (so an idle topic keeps its place).
struct HistoryScripts: Sendable {
    /// KEYS: stream, meta. ARGV: envelope header, payload, maxlen, ttl, channel, epoch if new,
    /// meta ttl.
    static let publish = """
        local e = redis.call('HGET', KEYS[2], 'e')
        if not e then redis.call('HSET', KEYS[2], 'e', ARGV[6]) end
        local o = redis.call('HINCRBY', KEYS[2], 'o', 1)
        e = e or ARGV[6]
        local h = ARGV[1]
        local m = string.sub(h, 1, 2) .. string.char(string.byte(h, 3) + 32) .. string.sub(h, 4, 19)
          .. struct.pack('>I8', o) .. string.char(#e) .. e .. ARGV[2]
        redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], o .. '-1', 'm', m)
        redis.call('EXPIRE', KEYS[1], ARGV[4])
        redis.call('EXPIRE', KEYS[2], ARGV[7])
        redis.call('PUBLISH', ARGV[5], m)
        return o
        """
    /// KEYS: stream, meta. ARGV: first id wanted, epoch if new, meta ttl, the client's epoch
    /// ('' = position only). Returns {epoch, last offset, entries}.
    static let recover = """
        local e = redis.call('HGET', KEYS[2], 'e')
        if not e then
          e = ARGV[2]
          redis.call('HSET', KEYS[2], 'e', e, 'o', 0)
        end
        redis.call('EXPIRE', KEYS[2], ARGV[3])
        local o = redis.call('HGET', KEYS[2], 'o') or '0'
        if ARGV[4] == '' then return {e, o, {}} end
        local first = ARGV[1]
        if ARGV[4] ~= e then first = '-' end
        return {e, o, redis.call('XRANGE', KEYS[1], first, '+')}
        """

    let options: HistoryOptions
    let publishSHA: [UInt8]
    let recoverSHA: [UInt8]
    let maxLength: [UInt8]
    let ttl: [UInt8]
    let metaTTL: [UInt8]
    /// Epochs this instance proposes: 16 random hex digits + a counter (unique per stream).
    let epochPrefix: String

    init(options: HistoryOptions) {
        self.options = options
        publishSHA = Self.hex(SHA1.digest(Array(Self.publish.utf8)))
        recoverSHA = Self.hex(SHA1.digest(Array(Self.recover.utf8)))
        maxLength = Array(String(options.size).utf8)
        ttl = Array(String(max(1, Int(options.ttl.rounded(.up)))).utf8)
        metaTTL = Array(String(max(1, Int(options.metaTTL.rounded(.up)))).utf8)
        var rng = SystemRandomNumberGenerator()
        epochPrefix = String(decoding: Self.hex(withUnsafeBytes(of: rng.next() as UInt64) { Array($0) }), as: UTF8.self)
    }

    /// SCRIPT LOAD for both (sent first on every new connection: a restarted Redis has an
    /// empty script cache).
    var load: [UInt8] { RedisCommand.format("SCRIPT", "LOAD", Self.publish) + RedisCommand.format("SCRIPT", "LOAD", Self.recover) }

    static func hex(_ bytes: [UInt8]) -> [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        return bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }
    }
}
