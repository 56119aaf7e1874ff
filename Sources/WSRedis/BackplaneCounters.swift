import Synchronization

/// What the Redis backplane counts, rendered into `/metrics` (Prometheus text format).
final class BackplaneCounters: Sendable {
    let published = Atomic<Int>(0)
    let forwarded = Atomic<Int>(0)
    let dropped = Atomic<Int>(0)
    let received = Atomic<Int>(0)
    let lost = Atomic<Int>(0)
    let duplicates = Atomic<Int>(0)
    let malformed = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let resubscribes = Atomic<Int>(0)
    let unconfirmed = Atomic<Int>(0)
    let keepalives = Atomic<Int>(0)

    func render() -> String {
        var out = ""
        func counter(_ name: String, _ help: String, _ value: borrowing Atomic<Int>) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) counter\n\(name) \(value.load(ordering: .relaxed))\n"
        }
        counter("wss_backplane_published_total", "Local publishes (delivered locally and queued for Redis).", published)
        counter("wss_backplane_forwarded_total", "Publishes handed to the Redis connection.", forwarded)
        counter("wss_backplane_dropped_total", "Publishes not forwarded to Redis: the outgoing queue was full.", dropped)
        counter("wss_backplane_received_total", "Messages from other instances delivered here.", received)
        counter("wss_backplane_lost_total", "Messages from other instances detected missing (sequence gaps).", lost)
        counter("wss_backplane_duplicates_total", "Repeated messages dropped (sequence not new).", duplicates)
        counter("wss_backplane_malformed_total", "Channel messages without a valid envelope (ignored).", malformed)
        counter("wss_backplane_redis_errors_total", "Error replies from Redis to our commands.", errors)
        counter("wss_backplane_unconfirmed_total", "History publishes sent but unanswered when the Redis connection dropped.", unconfirmed)
        counter("wss_backplane_resubscribes_total", "Times the subscription connection (re)subscribed its topics.", resubscribes)
        counter("wss_backplane_keepalive_pings_total", "PINGs sent to Redis on a connection that had been quiet for the keepalive interval.", keepalives)
        return out
    }
}
