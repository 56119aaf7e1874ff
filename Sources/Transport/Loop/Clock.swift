#if canImport(Glibc)
import Glibc
#endif

// The one clock: CLOCK_MONOTONIC. Loops read it once per iteration (`EventLoop.now`, in
// milliseconds) and every deadline is in those units; microseconds only for durations that
// are reported (TLS handshake time).

/// Monotonic milliseconds.
public func monotonicMillis() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec) / 1_000_000
}

/// Monotonic microseconds, same clock.
public func monotonicMicros() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1000
}
