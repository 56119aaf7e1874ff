// libFuzzer target: the opening-handshake validator (Handshake.validate / acceptValue) and
// ServerHandshake (validate + origin policy + subprotocol + deflate) on top of it.
//
// Built together with Sources/WebSocket/*.swift into one module (see Tests/fuzz/run.sh).
//
// The input is parsed as a request head with HTTPHeadParser; if it parses:
//   * Handshake.validate returns .success whose key is the one Sec-WebSocket-Key sent, is
//     strict base64 of exactly 16 bytes, on a GET over HTTP >= 1.1 with one non-empty Host,
//     `Upgrade: websocket`, `Connection: upgrade` and version 13, and isUpgradeAttempt agrees;
//     or .failure(HandshakeError) whose status is 400, 405 (only for a non-GET) or 426 (only
//     for a version other than 13), with a non-empty reason;
//   * acceptValue is 28 characters of base64 that decode to 20 bytes (for the validated key,
//     and for whatever Sec-WebSocket-Key text was sent, valid or not), and the 101 response
//     carries it and ends with an empty line.
// permessage-deflate negotiation on the Sec-WebSocket-Extensions values, with default and
// restrictive options: an accepted offer has window bits 8-15 within the options, its response
// header parses back as one permessage-deflate extension, and server/client PerMessageDeflate
// built from the parameters round-trip the request target (compress, then decompress).
// Independently of parsing: Base64.encode/decode round-trip on the raw input bytes, and
// acceptValue of the known RFC 6455 §1.3 example.

/// Oracle check that reports its message in optimized builds too (`precondition` traps silently with -O).
@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("ORACLE: " + message(), file: file, line: line) }
}

func checkAccept(_ key: String) -> String {
    let accept = Handshake.acceptValue(forKey: key)
    require(accept.utf8.count == 28, "acceptValue is \(accept.utf8.count) chars for key '\(key)'")
    guard let digest = Base64.decode(accept.utf8), digest.count == 20 else {
        fatalError("ORACLE: " + "acceptValue '\(accept)' is not base64 of 20 bytes")
    }
    return accept
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)

    // Base64 round trip on arbitrary bytes, and strictness: whatever decodes re-encodes to itself.
    let raw = Array(bytes)
    let encoded = Base64.encode(raw)
    require(Base64.decode(encoded.utf8) == raw, "Base64 round trip failed")
    if let decoded = Base64.decode(raw) {
        require(Array(Base64.encode(decoded).utf8) == raw, "Base64.decode accepted a non-canonical text")
    }

    var parser = HTTPHeadParser()
    guard case .complete(let head, _)? = try? parser.feed(bytes) else { return 0 }

    let sentKeys = head.values("Sec-WebSocket-Key")
    for key in sentKeys { _ = checkAccept(key) }

    checkDeflateNegotiation(head)
    checkServerHandshake(head)

    switch Handshake.validate(head) {
    case .success(let request):
        require(head.method == "GET", "accepted method \(head.method)")
        require(head.versionMajor > 1 || (head.versionMajor == 1 && head.versionMinor >= 1),
                     "accepted HTTP/\(head.versionMajor).\(head.versionMinor)")
        require(head.values("Host").count == 1 && !(head.value("Host") ?? "").isEmpty, "accepted bad Host")
        require(head.tokens("Upgrade").contains("websocket"), "accepted without Upgrade: websocket")
        require(head.tokens("Connection").contains("upgrade"), "accepted without Connection: upgrade")
        require(head.tokens("Sec-WebSocket-Version") == ["13"], "accepted version \(head.values("Sec-WebSocket-Version"))")
        require(sentKeys == [request.key], "validated key '\(request.key)' vs sent \(sentKeys)")
        guard let nonce = Base64.decode(request.key.utf8), nonce.count == 16 else {
            fatalError("ORACLE: " + "accepted key '\(request.key)' that is not base64 of 16 bytes")
        }
        require(Handshake.isUpgradeAttempt(head), "valid handshake is not an upgrade attempt")
        require(request.subprotocols.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy(HeaderLexer.isTokenChar) },
                "accepted a subprotocol that is not a token: \(request.subprotocols)")
        let accept = checkAccept(request.key)
        let response = Handshake.response(acceptingKey: request.key, subprotocol: request.subprotocols.first)
        require(response.hasPrefix("HTTP/1.1 101 ") && response.hasSuffix("\r\n\r\n"), "bad 101 response")
        require(response.contains("\r\nSec-WebSocket-Accept: \(accept)\r\n"), "101 without the accept value")
    case .failure(let error):
        require([400, 405, 426].contains(error.status), "\(error) has status \(error.status)")
        require(!error.reason.isEmpty, "\(error) has no reason")
        if case .methodNotGet(let m) = error {
            require(m == head.method && m != "GET", "methodNotGet(\(m)) for \(head.method)")
        }
        if error.status == 405 { require(head.method != "GET", "405 for a GET") }
        if error.status == 426 {
            require(head.tokens("Sec-WebSocket-Version") != ["13"], "426 for version 13")
        }
    }
    return 0
}

/// ServerHandshake agrees with its building blocks: it accepts exactly what Handshake.validate
/// accepts from an origin the policy allows, answers 101 with the accept value and a subprotocol
/// only if offered, and rejects with a 4xx/5xx status and a reason.
func checkServerHandshake(_ head: HTTPRequestHead) {
    let valid: Bool
    if case .success = Handshake.validate(head) { valid = true } else { valid = false }
    for (policy, secure) in [(OriginPolicy.sameOrigin, false), (.sameOrigin, true), (.any, false)] {
        let handshake = ServerHandshake(origins: policy, deflate: DeflateOptions(), secure: secure)
        let allowed = policy.allows(origin: head.value("Origin"), host: head.value("Host"), secure: secure)
        var offered: [String] = []
        switch handshake.respond(to: head, decide: { request in
            offered = request.subprotocols
            return .accept(subprotocol: request.subprotocols.last)
        }) {
        case .accept(let a):
            require(valid && allowed, "accepted: valid \(valid), origin allowed \(allowed)")
            require(a.response.hasPrefix("HTTP/1.1 101 ") && a.response.hasSuffix("\r\n\r\n"), "bad 101")
            require(a.subprotocol == offered.last && a.ignoredSubprotocol == nil, "subprotocol \(a.subprotocol ?? "-")")
            require(a.response.contains("Sec-WebSocket-Protocol:") == (a.subprotocol != nil), "protocol header")
            require(a.response.contains("Sec-WebSocket-Extensions:") == (a.deflate != nil), "extensions header")
        case .reject(let r):
            require(!(valid && allowed), "rejected a valid request from an allowed origin: \(r.reason)")
            require((400...599).contains(r.status) && !r.reason.isEmpty, "rejection \(r.status) '\(r.reason)'")
            if case .origin = r.cause { require(valid && !allowed && r.status == 403, "origin rejection") }
        }
    }
}

// The RFC 6455 §1.3 example, checked once at load time (a wrong SHA-1/base64 binding fails fast).
private let rfcExampleChecked: Void = {
    require(Handshake.acceptValue(forKey: "dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
                 "acceptValue disagrees with RFC 6455 §1.3")
}()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> CInt {
    rfcExampleChecked
    return 0
}

func checkDeflateNegotiation(_ head: HTTPRequestHead) {
    let values = head.values("Sec-WebSocket-Extensions")
    let optionSets = [DeflateOptions(),
                      try! DeflateOptions(serverMaxWindowBits: 9, clientMaxWindowBits: 8, serverNoContextTakeover: true,
                                     clientNoContextTakeover: true, memLevel: 1, compressionLevel: 9, minSizeToCompress: 0)]
    for options in optionSets {
        guard let accepted = DeflateNegotiation.negotiate(values, options: options) else { continue }
        require(DeflateNegotiation.parse(values) != nil, "accepted an offer from a malformed header")
        let p = accepted.parameters
        require((8...15).contains(p.serverMaxWindowBits) && p.serverMaxWindowBits <= options.serverMaxWindowBits,
                "serverMaxWindowBits \(p.serverMaxWindowBits)")
        require((8...15).contains(p.clientMaxWindowBits) && p.clientMaxWindowBits <= options.clientMaxWindowBits,
                "clientMaxWindowBits \(p.clientMaxWindowBits)")
        require(!options.serverNoContextTakeover || p.serverNoContextTakeover, "dropped server_no_context_takeover")
        require(!options.clientNoContextTakeover || p.clientNoContextTakeover, "dropped client_no_context_takeover")
        guard let back = DeflateNegotiation.parse([accepted.responseHeader]), back.count == 1,
              back[0].name == DeflateNegotiation.extensionName else {
            fatalError("ORACLE: response header '\(accepted.responseHeader)' does not parse back")
        }
        // Both ends built from the agreed parameters round-trip a message each way.
        let server = PerMessageDeflate(role: .server, parameters: p, options: options)
        let client = PerMessageDeflate(role: .client, parameters: p)
        let message = Array(head.target.utf8) + Array(repeating: UInt8(ascii: "a"), count: 100)
        for (sender, receiver) in [(server, client), (client, server)] where sender.canCompress {
            for _ in 0..<2 {  // twice: the second message may refer back into the window
                let compressed = sender.compress(message)
                do throws(DeflateError) {
                    let plain = try receiver.decompress(compressed, limit: 1 << 16)
                    require(plain == message, "deflate round trip changed the message (\(p))")
                } catch {
                    fatalError("ORACLE: deflate round trip failed with \(error) (\(p))")
                }
            }
        }
    }
}
