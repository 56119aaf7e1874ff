#if canImport(Glibc)
import Glibc
#endif

/// How an event loop waits for its descriptors. Both backends run every connection kind; the
/// owners above the loop (connections, listener, timers) cannot tell them apart.
public enum IOBackend: String, Sendable, CaseIterable, CustomStringConvertible {
    /// epoll_wait + readiness: the default (README, "Event loop backends": measured, no win for
    /// io_uring on this workload).
    case epoll
    /// io_uring: readiness polls, the wake eventfd and the tick timeout in one ring, one
    /// io_uring_enter per loop iteration that submits and waits.
    case uring

    public var description: String { rawValue }

    /// The default when nothing is asked for.
    public static let standard: IOBackend = .epoll

    /// `WSS_IO` from the environment (tests run the whole suite on either backend with it):
    /// nil when unset, `.failure` with the bad value when it names no backend.
    public static var environment: Result<IOBackend, BadName>? {
        guard let raw = getenv("WSS_IO") else { return nil }
        let value = String(cString: raw)
        if value.isEmpty { return nil }
        return IOBackend(rawValue: value).map { .success($0) } ?? .failure(BadName(value: value))
    }

    /// What `EventLoop(index:)` uses when no backend is passed: `WSS_IO` if it names one, else
    /// `standard`; io_uring only where the probe allows it.
    public static var selected: IOBackend {
        if case .success(let io)? = environment { return resolve(io).backend }
        return standard
    }

    public struct BadName: Error, Sendable, CustomStringConvertible {
        public let value: String
        public var description: String { "WSS_IO must be epoll or uring, not '\(value)'" }
    }

    /// The backend to run for `requested`: epoll when io_uring cannot run in this process, with
    /// the reason (the caller logs it, once). The probe runs once per process.
    public static func resolve(_ requested: IOBackend,
                               probe: () -> Availability = { uringOutcome }) -> (backend: IOBackend, fallback: String?) {
        guard requested == .uring else { return (requested, nil) }
        switch probe() {
        case .available: return (.uring, nil)
        case .unavailable(let why): return (.epoll, "io_uring unavailable (\(why)); using epoll")
        }
    }

    /// Whether a backend can run in this process.
    public enum Availability: Equatable, Sendable {
        case available
        /// Why not, in a few words (for the one log line of the fallback to epoll).
        case unavailable(String)
    }

    /// Whether io_uring loops can run here: `URingProbe.check()` of the TransportURing target,
    /// once per process; unavailable in a program that does not link that target.
    public static let uringOutcome: Availability = URingRegistration.current?.probe()
        ?? .unavailable("this program is built without the io_uring backend (the TransportURing target)")
}

/// What the TransportURing target hands Transport when it is linked into a program (at load
/// time, before `main`: see its `URingLoops.install()`). Transport itself never links liburing,
/// so a library user of WSServer or WSClient alone neither builds nor loads it.
package struct URingRegistration: Sendable {
    package let probe: @Sendable () -> IOBackend.Availability
    package let makeBackend: @Sendable () throws(TransportError) -> any LoopBackend

    package init(probe: @escaping @Sendable () -> IOBackend.Availability,
                 makeBackend: @escaping @Sendable () throws(TransportError) -> any LoopBackend) {
        self.probe = probe
        self.makeBackend = makeBackend
    }

    /// Set once, before any loop is made (a load-time constructor, or `install()` at the top
    /// of `main`), read afterwards.
    nonisolated(unsafe) package static var current: URingRegistration?
}
