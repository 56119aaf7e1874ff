import ArgumentParser
import WSServer

/// Flags of the SSE and long-polling fallbacks (README "Fallback transports"); defaults come
/// from `FallbackConfiguration`, the one place that holds them.
struct FallbackOptions: ParsableArguments {
    static let defaults = FallbackConfiguration()

    @Flag(help: "Do not serve the SSE and long-polling fallbacks (?transport=sse|longpoll).")
    var noFallback = false

    @Option(help: ArgumentHelp("Seconds a fallback session lives with no request; then the handler sees onClose 1001.", valueName: "SECONDS"))
    var sessionTimeout: Double = defaults.sessionTimeout

    @Option(help: ArgumentHelp("Seconds a long poll is held when there is nothing to send.", valueName: "SECONDS"))
    var pollTimeout: Double = defaults.pollTimeout

    @Option(help: ArgumentHelp("Fallback sessions per server; more are answered 503.", valueName: "N"))
    var maxSessions: Int = defaults.maxSessions

    @Option(help: ArgumentHelp("Bytes of one fallback POST body; more is answered 413.", valueName: "BYTES"))
    var maxPostBody: Int = defaults.maxPostBody

    @Option(help: ArgumentHelp("Messages in one fallback POST; more are answered 413.", valueName: "N"))
    var maxPostMessages: Int = defaults.maxPostMessages

    @Option(help: ArgumentHelp("Seconds a fallback request head or POST body may take to arrive (408 after).", valueName: "SECONDS"))
    var postTimeout: Double = defaults.postTimeout

    var configuration: FallbackConfiguration {
        var c = FallbackConfiguration()
        c.enabled = !noFallback
        c.sessionTimeout = sessionTimeout
        c.pollTimeout = pollTimeout
        c.maxSessions = maxSessions
        c.maxPostBody = maxPostBody
        c.maxPostMessages = maxPostMessages
        c.postTimeout = postTimeout
        return c
    }

    func validate() throws {
        do {
            try configuration.validate()
        } catch {
            throw ValidationError(error.description)
        }
    }
}
