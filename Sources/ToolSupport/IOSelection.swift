import ArgumentParser
import Transport

/// `WSS_IO` in the tools: a value that names no backend is a one-line error (never a silent
/// epoll), and loops that asked for io_uring but run on epoll get one warning line.
public enum IOSelection {
    /// Throws for a `WSS_IO` that is neither epoll nor uring (call it from `validate()`).
    public static func checkEnvironment() throws {
        if case .failure(let bad)? = IOBackend.environment { throw ValidationError(bad.description) }
    }

    /// "TOOL: warning: …" when `WSS_IO=uring` and some of `loops` run on epoll (the probe
    /// failed, or a ring could not be set up), else nil.
    public static func fallbackWarning(tool: String, loops: [EventLoop]) -> String? {
        guard case .success(.uring)? = IOBackend.environment, loops.contains(where: { $0.io == .epoll }) else { return nil }
        let why = IOBackend.resolve(.uring).fallback ?? loops.lazy.compactMap(\.uringSetupFailure).first
            .map { "io_uring ring setup failed (\($0)); using epoll" } ?? "using epoll"
        return "\(tool): warning: WSS_IO=uring: \(why)"
    }
}
