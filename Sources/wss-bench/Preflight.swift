import Dispatch
import Transport
import WSClient

/// Opens one WebSocket before the benchmark starts, so an ordinary error (refused port, wrong
/// CA, a handshake the server refuses) is one line and exit 1 instead of a report of N failed
/// connections. The probe connection is closed (1000) before any worker starts.
enum Preflight {
    /// nil when a connection opened; else why it did not.
    static func probe(_ options: ClientOptions) -> String? {
        guard let loop = try? EventLoop(index: 0, readBufferSize: 64 << 10) else { return nil }
        loop.start(name: "bench-probe")
        defer { loop.stop(); loop.join() }
        let probe = Probe()
        loop.execute {
            do {
                probe.connection = try ClientConnection(loop: loop, options: options, delegate: probe)
            } catch {
                probe.finish("\(error)")
            }
        }
        probe.done.wait()
        return probe.error
    }

    /// Loop-confined until `done` fires.
    final class Probe: ClientDelegate, @unchecked Sendable {
        var connection: ClientConnection?
        private var opened = false
        var error: String?
        let done = DispatchSemaphore(value: 0)
        private var finished = false

        func finish(_ why: String?) {
            guard !finished else { return }
            finished = true
            error = why
            done.signal()
        }

        func clientDidOpen(_ client: ClientConnection) {
            opened = true
            client.close(code: .normal)
        }

        func client(_ client: ClientConnection, didReceive message: Message) {}

        func clientDidClose(_ client: ClientConnection, code: CloseCode, reason: String, error: String?) {
            finish(opened ? nil : error ?? "the server closed the connection during the handshake")
            connection = nil
        }
    }
}
