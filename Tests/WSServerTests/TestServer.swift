import Logging
import TestSupport
@testable import WSServer

/// A started `Server` on 127.0.0.1 and a port the kernel picks, one loop unless `threads` says
/// otherwise, with `routes`, over TLS with the test certificates if `tls`; `configure` sets
/// anything else before it starts. The one place the WSServer tests make a server.
func startTestServer(threads: Int = 1, tls: Bool = false, logger: Logger = Logger(label: "wss-server"),
                     backplane: Backplane = InProcessBackplane(),
                     routes: [(String, WebSocketHandler)] = [],
                     configure: (inout ServerConfiguration) throws -> Void = { _ in }) throws -> Server {
    var config = ServerConfiguration()
    config.host = "127.0.0.1"
    config.port = 0
    config.threads = threads
    if tls {
        config.certificateFile = TestCertificates.dir + "/cert.pem"
        config.keyFile = TestCertificates.dir + "/key.pem"
    }
    try configure(&config)
    let server = try Server(configuration: config, logger: logger, backplane: backplane)
    for (path, handler) in routes { server.route(path, handler) }
    try server.start()
    return server
}
