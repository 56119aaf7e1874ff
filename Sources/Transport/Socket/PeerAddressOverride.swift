/// The client address a trusted balancer reported for a socket (PROXY protocol header, or
/// X-Forwarded-For), by descriptor. `peerAddress(fd:)` answers with it, so logs,
/// `remoteAddress` and the upgrade hook all see the real client. Set (or cleared) for every
/// accepted socket before it serves anything, so a reused descriptor never shows a stale one.
public enum PeerAddressOverride {
    private static let table = Locked<[String?]>([])

    public static func set(fd: Int32, _ address: String?) {
        let i = Int(fd)
        guard i >= 0 else { return }
        table.withLock { t in
            if i >= t.count {
                if address == nil { return }
                t += [String?](repeating: nil, count: i + 1 - t.count + 64)
            }
            t[i] = address
        }
    }

    public static func get(fd: Int32) -> String? {
        let i = Int(fd)
        return table.withLock { t in i >= 0 && i < t.count ? t[i] : nil }
    }
}
