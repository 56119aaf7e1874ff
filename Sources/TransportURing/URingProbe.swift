#if canImport(Glibc)
import Glibc
#endif
import CLiburing
import Transport

/// Whether this process can run an io_uring event loop: a ring can be created (the kernel has
/// io_uring, and neither `kernel.io_uring_disabled` nor a seccomp filter forbids it), the
/// operations the loop relies on exist, and a provided-buffer ring can be registered.
public enum URingProbe {
    public typealias Outcome = IOBackend.Availability

    /// Probes with a throwaway 4-entry ring and a 1-buffer group (well under a millisecond).
    public static func check() -> Outcome {
        let uring: URing
        do { uring = try URing(entries: 4) } catch {
            return .unavailable("\(error)")
        }
        var missing: UnsafePointer<CChar>?
        let rc = wss_uring_probe_required(uring.handle, &missing)
        if rc < 0 { return .unavailable("the kernel does not answer IORING_REGISTER_PROBE (Linux < 5.6)") }
        if rc == 0 { return .unavailable("the kernel has no io_uring \(missing.map { String(cString: $0) } ?? "operation")") }
        do { _ = try URingBufferRing(uring: uring, group: 0, count: 1, size: 64) } catch {
            return .unavailable("no provided-buffer rings (Linux < 5.19): \(error)")
        }
        return .available
    }

    /// Whether the kernel completes a MSG_DONTWAIT send on a socket while submitting it (the
    /// count, or -EAGAIN, ready as soon as io_uring_enter returned, with no wait), which the
    /// loop's batched sends rely on: the owner's bytes may move right after. Checked once per
    /// process with a one-byte send over a socket pair.
    public static let sendsCompleteInline: Bool = {
        guard let uring = try? URing(entries: 4) else { return false }
        var sv: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &sv) == 0 else { return false }
        defer { close(sv[0]); close(sv[1]) }
        var byte: UInt8 = 0x2A
        let prepared = withUnsafeBytes(of: &byte) { uring.prepareSendNoWait(fd: sv[0], $0, userData: 1) }
        guard prepared, uring.submit() == 1, uring.ready == 1 else { return false }
        var result: Int32 = 0
        _ = uring.drainCompletions { result = $0.result }
        return result == 1
    }()

    /// Whether the kernel has zero-copy send (IORING_OP_SEND_ZC, Linux 6.0).
    public static func hasSendZeroCopy() -> Bool {
        guard let uring = try? URing(entries: 4) else { return false }
        return wss_uring_has_send_zc(uring.handle) != 0
    }
}
