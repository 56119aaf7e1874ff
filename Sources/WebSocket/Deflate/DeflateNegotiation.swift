/// permessage-deflate negotiation, server side (RFC 7692 §5, §7.1).
///
/// Offers are taken in order (across all `Sec-WebSocket-Extensions` headers); the first
/// acceptable `permessage-deflate` offer wins. An offer with an unknown or duplicate parameter,
/// a value on a flag, or a window size that is not 8–15 (a decimal without leading zeros,
/// optionally quoted) is declined and the next one is tried. A header that does not parse as
/// RFC 6455 §9.1 `extension-list` declines compression altogether. Nothing here throws.
///
/// Window bits 8: zlib ≥ 1.2.9 refuses a raw deflate *compressor* with an 8-bit window
/// (`deflateInit2(-8)` → Z_STREAM_ERROR; older zlib silently used 9, which breaks a peer that
/// inflates with a 256-byte window: madler/zlib#171). Compressing with 9 after promising 8 is
/// therefore not an option. An offer with `server_max_window_bits=8` is accepted only if no
/// other offer is acceptable, and then the server keeps the promise by never compressing
/// (every message goes out with RSV1 clear, which §6 allows; the client's messages are still
/// inflated). python-websockets declines such offers outright (its PR #1768); accepting them
/// this way keeps upstream compression and lets Autobahn 13.3.x/13.5.x (which offer only
/// `server_max_window_bits=8`) negotiate. Inflating with 8 bits works, so
/// `client_max_window_bits=8` is accepted normally (and the inflater uses 9 bits anyway, to
/// tolerate peers whose old zlib compressed with 9 after promising 8 — a larger inflate window
/// never rejects valid data).
package enum DeflateNegotiation {
    package static let extensionName = "permessage-deflate"

    /// The outcome of accepting an offer.
    package struct Accepted: Sendable, Equatable {
        package var parameters: DeflateParameters
        /// The exact `Sec-WebSocket-Extensions` value for the 101 response.
        package var responseHeader: String
    }

    /// One parsed extension from `Sec-WebSocket-Extensions`: a name and its parameters, values
    /// unquoted (nil for a parameter without `=`).
    package struct Offer: Sendable, Equatable {
        package var name: String
        package var parameters: [(name: String, value: String?)]

        package static func == (a: Offer, b: Offer) -> Bool {
            a.name == b.name && a.parameters.count == b.parameters.count
                && zip(a.parameters, b.parameters).allSatisfy { $0.name == $1.name && $0.value == $1.value }
        }
    }

    /// Picks the first acceptable permessage-deflate offer from the raw header values, or nil
    /// to decline compression (disabled, no acceptable offer, or a malformed header).
    package static func negotiate(_ headerValues: [String], options: DeflateOptions) -> Accepted? {
        guard options.enabled, let offers = parse(headerValues) else { return nil }
        var fallback: Accepted?  // first acceptable offer that forbids us to compress
        for offer in offers where offer.name.lowercased() == extensionName {
            guard let accepted = accept(offer, options: options) else { continue }
            if accepted.parameters.serverMaxWindowBits >= 9 { return accepted }
            if fallback == nil { fallback = accepted }
        }
        return fallback
    }

    /// Decides one permessage-deflate offer (§7.1.1, §7.1.2); nil declines it.
    static func accept(_ offer: Offer, options: DeflateOptions) -> Accepted? {
        var serverNoContextTakeover = false
        var clientNoContextTakeover = false
        var serverMaxWindowBits: Int?          // the limit the client puts on us
        var clientMaxWindowBits: Int??         // .some(nil): supported, no value
        var seen = Set<String>()
        for (rawName, value) in offer.parameters {
            let name = rawName.lowercased()
            guard seen.insert(name).inserted else { return nil }  // §7: duplicate → decline
            switch name {
            case "server_no_context_takeover":
                guard value == nil else { return nil }
                serverNoContextTakeover = true
            case "client_no_context_takeover":
                guard value == nil else { return nil }
                clientNoContextTakeover = true
            case "server_max_window_bits":
                guard let value, let bits = DeflateParameters.windowBits(value) else { return nil }
                serverMaxWindowBits = bits
            case "client_max_window_bits":
                if let value {
                    guard let bits = DeflateParameters.windowBits(value) else { return nil }
                    clientMaxWindowBits = .some(bits)
                } else {
                    clientMaxWindowBits = .some(nil)
                }
            default:
                return nil  // unknown parameter
            }
        }

        // server_max_window_bits: we compress with at most the client's limit (8 means we
        // will not compress at all, see the type doc).
        var serverBits = options.serverMaxWindowBits
        var answerServerBits = serverBits < 15
        if let limit = serverMaxWindowBits {
            serverBits = min(serverBits, limit)
            answerServerBits = true  // §7.1.2.1: accepting the parameter means answering it
        }

        // client_max_window_bits: we may only answer it if the client advertised it (§7.1.2.2).
        var clientBits = 15
        switch clientMaxWindowBits {
        case .none:
            // Without it the client may use 15 bits; if configured lower, the inflate memory
            // bound could not be kept: decline (python-websockets does the same).
            if options.clientMaxWindowBits < 15 { return nil }
        case .some(.none):
            clientBits = options.clientMaxWindowBits
        case .some(.some(let limit)):
            clientBits = min(limit, options.clientMaxWindowBits)
        }

        let parameters = DeflateParameters(
            serverNoContextTakeover: serverNoContextTakeover || options.serverNoContextTakeover,
            clientNoContextTakeover: clientNoContextTakeover || options.clientNoContextTakeover,
            serverMaxWindowBits: serverBits,
            clientMaxWindowBits: clientBits)
        var response = extensionName
        if parameters.serverNoContextTakeover { response += "; server_no_context_takeover" }
        if parameters.clientNoContextTakeover { response += "; client_no_context_takeover" }
        if answerServerBits { response += "; server_max_window_bits=\(serverBits)" }
        if clientBits < 15 { response += "; client_max_window_bits=\(clientBits)" }
        return Accepted(parameters: parameters, responseHeader: response)
    }

    // MARK: - Header grammar

    /// Parses `Sec-WebSocket-Extensions` values (RFC 6455 §9.1, with RFC 9110 list rules
    /// through `HeaderLexer`: OWS around separators, empty list elements ignored):
    ///
    ///     extension-list = 1#extension
    ///     extension      = token *( OWS ";" OWS extension-param )
    ///     extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
    ///
    /// Returns nil if any value is malformed.
    package static func parse(_ headerValues: [String]) -> [Offer]? {
        var offers: [Offer] = []
        for value in headerValues {
            var malformed = false
            let complete = HeaderLexer.forEachElement(of: Substring(value)) { element in
                guard !malformed else { return }
                if let offer = parseExtension(element) { offers.append(offer) } else { malformed = true }
            }
            if malformed || !complete { return nil }
        }
        return offers
    }

    /// One list element: `token *( OWS ";" OWS extension-param )`, all of it.
    static func parseExtension(_ element: Substring) -> Offer? {
        var lexer = HeaderLexer(element)
        guard let name = lexer.token() else { return nil }
        var parameters: [(name: String, value: String?)] = []
        lexer.skipOWS()
        while lexer.skip(UInt8(ascii: ";")) {
            lexer.skipOWS()
            guard let parameter = lexer.token() else { return nil }
            lexer.skipOWS()
            var value: String?
            if lexer.skip(UInt8(ascii: "=")) {
                lexer.skipOWS()
                if lexer.peek == UInt8(ascii: "\"") {
                    guard let quoted = lexer.quotedString() else { return nil }
                    value = quoted
                } else {
                    guard let token = lexer.token() else { return nil }
                    value = String(token)
                }
                lexer.skipOWS()
            }
            parameters.append((String(parameter), value))
        }
        return lexer.atEnd ? Offer(name: String(name), parameters: parameters) : nil
    }
}
