/// The server's whole answer to an opening handshake (RFC 6455 §4.2), sans-IO, in two steps
/// so that the application decides in between:
///
/// 1. `validate(_:)` checks the request (§4.2.1) and the origin policy (§10.2) and returns
///    the request, or the rejection to send.
/// 2. The application looks at the request (path, headers, offered subprotocols) and accepts
///    with a subprotocol, or rejects with a status.
/// 3. `answer(_:_:)` turns that decision into the 101 response, with the subprotocol checked
///    against the offer (§4.2.2: the server selects one the client offered, or none) and
///    permessage-deflate negotiated (RFC 7692 §5; a bad offer only means no compression).
///
/// `respond(to:decide:)` does all three with a closure. The caller writes the bytes and, on
/// `.accept`, installs `deflate` into its `WebSocketProtocol`; nothing here does I/O.
public struct ServerHandshake: Sendable {
    public var origins: OriginPolicy
    /// permessage-deflate settings (`enabled: false` never negotiates it).
    public var deflate: DeflateOptions
    /// The listener speaks TLS (the scheme of a same-origin `Origin` is `https`).
    public var secure: Bool

    public init(origins: OriginPolicy = .sameOrigin, deflate: DeflateOptions = DeflateOptions(), secure: Bool) {
        self.origins = origins
        self.deflate = deflate
        self.secure = secure
    }

    /// The application's decision between the two steps.
    public enum Decision: Sendable {
        /// Upgrade, speaking `subprotocol` (which must be one the client offered; otherwise
        /// none is sent and `Accepted.ignoredSubprotocol` says so).
        case accept(subprotocol: String?, extraHeaders: [(String, String)] = [])
        /// Refuse with an HTTP status (400–599; anything else becomes 403) and a short reason.
        case reject(status: Int, reason: String)
    }

    /// A refused handshake: the HTTP answer and why.
    public struct Rejection: Error, Sendable, Equatable {
        public enum Cause: Sendable, Equatable {
            case invalid(HandshakeError)
            case origin(String)
            case application
        }
        public var cause: Cause
        public var status: Int
        /// Headers the answer must carry beyond the usual ones (`Sec-WebSocket-Version: 13`
        /// after a version mismatch, §4.2.2; `Allow: GET` after another method, RFC 9110 §15.5.6).
        public var headers: [(String, String)]
        /// A short reason, safe to send to the peer and to log.
        public var reason: String
        /// The response body: the reason as one line.
        public var body: String { reason + "\n" }

        /// A short label for metrics ("key", "version", "origin", "application", ...).
        public var label: String {
            switch cause {
            case .invalid(let e): return e.label
            case .origin: return "origin"
            case .application: return "application"
            }
        }

        public static func == (a: Rejection, b: Rejection) -> Bool {
            a.cause == b.cause && a.status == b.status && a.reason == b.reason
                && a.headers.map { $0.0 + ":" + $0.1 } == b.headers.map { $0.0 + ":" + $0.1 }
        }
    }

    /// A handshake the server accepts.
    public struct Accepted {
        /// The request: its key is hashed when the response is written (no `String` is kept).
        var request: HandshakeRequest
        var extensions: String?
        var extraHeaders: [(String, String)]
        /// The whole 101 response head, ending with the empty line.
        public var response: String {
            let out = ByteBuffer()
            write(to: out)
            return String(decoding: out.readableBytes, as: UTF8.self)
        }
        public var subprotocol: String?
        /// permessage-deflate for this connection, if negotiated: install it into the protocol.
        public var deflate: PerMessageDeflate?
        /// A subprotocol the application chose that the client had not offered (sent none).
        public var ignoredSubprotocol: String?

        /// Appends the 101 response to `out` (what `response` holds, without the `String`).
        package func write(to out: ByteBuffer) {
            var found = false
            request.head.forEachValue("Sec-WebSocket-Key") { key in
                guard !found else { return }
                found = true
                Handshake.writeResponse(acceptingKey: key, subprotocol: subprotocol, extensions: extensions,
                                        extraHeaders: extraHeaders, to: out)
            }
        }
    }

    public enum Outcome {
        case accept(Accepted)
        case reject(Rejection)
    }

    /// Step 1: the request is a valid WebSocket handshake from an allowed origin.
    public func validate(_ head: HTTPRequestHead) -> Result<HandshakeRequest, Rejection> {
        switch Handshake.validate(head) {
        case .failure(let error):
            var headers: [(String, String)] = []
            if case .unsupportedVersion = error { headers.append(("Sec-WebSocket-Version", "13")) }
            if case .methodNotGet = error { headers.append(("Allow", "GET")) }
            return .failure(Rejection(cause: .invalid(error), status: error.status, headers: headers,
                                      reason: error.reason))
        case .success(let request):
            // No Origin (most non-browser clients) is always allowed: Host is not even read.
            if let origin = request.origin, !origin.isEmpty,
               !origins.allows(origin: origin, host: head.value("Host"), secure: secure) {
                return .failure(Rejection(cause: .origin(origin), status: 403, headers: [],
                                          reason: "origin not allowed"))
            }
            return .success(request)
        }
    }

    /// Step 2: the answer to a validated request after the application's decision.
    public func answer(_ request: HandshakeRequest, _ decision: Decision) -> Outcome {
        switch decision {
        case .reject(let status, let reason):
            return .reject(Rejection(cause: .application, status: (400...599).contains(status) ? status : 403,
                                     headers: [], reason: reason))
        case .accept(let wanted, let extraHeaders):
            var subprotocol = wanted, ignored: String?
            if let s = wanted, !request.subprotocols.contains(s) {
                subprotocol = nil
                ignored = s
            }
            var extensions: String?
            var perMessageDeflate: PerMessageDeflate?
            if deflate.enabled, request.offersExtensions,
               let accepted = DeflateNegotiation.negotiate(request.extensions, options: deflate) {
                extensions = accepted.responseHeader
                perMessageDeflate = PerMessageDeflate(role: .server, parameters: accepted.parameters, options: deflate)
            }
            return .accept(Accepted(request: request, extensions: extensions, extraHeaders: extraHeaders,
                                    subprotocol: subprotocol, deflate: perMessageDeflate, ignoredSubprotocol: ignored))
        }
    }

    /// Both steps, with the application's decision as a closure (called only for a valid
    /// request from an allowed origin).
    public func respond(to head: HTTPRequestHead, decide: (HandshakeRequest) -> Decision) -> Outcome {
        switch validate(head) {
        case .failure(let rejection): return .reject(rejection)
        case .success(let request): return answer(request, decide(request))
        }
    }
}

extension HandshakeError {
    /// A short label for metrics.
    public var label: String {
        switch self {
        case .methodNotGet: return "method"
        case .httpVersionTooOld: return "http_version"
        case .missingHost: return "host"
        case .missingUpgrade: return "upgrade_header"
        case .missingConnectionUpgrade: return "connection_header"
        case .missingKey, .invalidKey: return "key"
        case .invalidSubprotocols: return "subprotocol"
        case .unsupportedVersion: return "version"
        }
    }
}
