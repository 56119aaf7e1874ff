// libFuzzer target: the incremental HTTP request-head parser (HTTPHeadParser).
//
// Built together with Sources/WebSocket/*.swift into one module (see Tests/fuzz/run.sh), so the
// protocol types are used directly, without `import WebSocket`.
//
// Oracle, for two limit settings (the defaults, and small limits so that 431 is reachable
// within libFuzzer's input sizes):
//   * every outcome is .needMore, .complete(head, consumed) with 0 < consumed <= input and a
//     well-formed head, or a thrown HTTPHeadError whose status is 400 or 431;
//   * feeding the input whole, split in two at a data-derived point, and one byte at a time
//     gives the same outcome (same head, same total bytes consumed, same error);
//   * .needMore has buffered every byte and is within both limits;
//   * re-parsing exactly the consumed prefix with a fresh parser gives the same head.

/// Oracle check that reports its message in optimized builds too (`precondition` traps silently with -O).
@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("ORACLE: " + message(), file: file, line: line) }
}

/// What a parser made of a byte stream, independent of how it was split.
enum HeadOutcome: Equatable, CustomStringConvertible {
    case needMore(buffered: Int)
    case complete(HTTPRequestHead, consumed: Int)  // consumed counts from the start of the stream
    case error(HTTPHeadError)

    var description: String {
        switch self {
        case .needMore(let n): return "needMore(buffered: \(n))"
        case .complete(let h, let c):
            return "complete(\(h.method) \(h.target) HTTP/\(h.versionMajor).\(h.versionMinor), "
                + "\(h.headers.count) headers, consumed: \(c))"
        case .error(let e): return "error(\(e), status \(e.status))"
        }
    }
}

/// Feeds `bytes` to a fresh parser in pieces ending at `cuts` (ascending offsets) and at the end.
func parseHead(_ bytes: UnsafeRawBufferPointer, cuts: [Int], limits: HTTPHeadParser.Limits) -> HeadOutcome {
    var parser = HTTPHeadParser(limits: limits)
    var start = 0
    for end in cuts + [bytes.count] where end >= start {
        let piece = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
        do {
            switch try parser.feed(piece) {
            case .needMore:
                break
            case .complete(let head, let consumed):
                require(consumed > 0 && consumed <= piece.count,
                             "consumed \(consumed) outside the \(piece.count)-byte piece")
                return .complete(head, consumed: start + consumed)
            }
        } catch {
            return .error(error)
        }
        start = end
    }
    return .needMore(buffered: parser.bufferedCount)
}

/// The String-based lookups (`HTTPHeaderFields`' defaults), the reference for the head's own.
struct StringFields: HTTPHeaderFields { var headers: [(name: String, value: String)] }

func isToken(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.allSatisfy { HTTPHeadParser.isTokenChar($0) }
}

func checkOutcome(_ o: HeadOutcome, _ bytes: UnsafeRawBufferPointer, _ limits: HTTPHeadParser.Limits) {
    switch o {
    case .needMore(let buffered):
        require(buffered == bytes.count, "needMore but buffered \(buffered) of \(bytes.count)")
        require(buffered <= limits.maxHeadSize, "needMore past maxHeadSize")
        let lfs = bytes.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
        require(lfs <= limits.maxHeaders + 1, "needMore after \(lfs) lines (max \(limits.maxHeaders))")
    case .complete(let head, let consumed):
        require(consumed > 0 && consumed <= bytes.count, "consumed \(consumed) of \(bytes.count)")
        require(consumed <= limits.maxHeadSize, "head of \(consumed) bytes accepted past maxHeadSize")
        require(bytes[consumed - 1] == 10, "head does not end with LF")
        require(isToken(head.method), "method '\(head.method)' is not a token")
        require(!head.target.isEmpty && head.target.utf8.allSatisfy { $0 > 32 && $0 < 127 },
                     "bad target '\(head.target)'")
        require((0...9).contains(head.versionMajor) && (0...9).contains(head.versionMinor), "bad version")
        require(head.headers.count <= limits.maxHeaders, "more headers than maxHeaders")
        for (name, value) in head.headers {
            require(isToken(name), "header name '\(name)' is not a token")
            require(!value.utf8.contains(where: { ($0 < 32 && $0 != 9) || $0 == 127 }),
                         "control character in value of \(name)")
            require(value.utf8.first != 32 && value.utf8.first != 9
                         && value.utf8.last != 32 && value.utf8.last != 9, "value of \(name) not trimmed")
        }
        // Lookups on the head's bytes agree with the String pairs it hands out.
        let pairs = head.headers
        for (name, _) in pairs {
            let same = pairs.filter { asciiCaseInsensitiveEquals($0.name, name) }.map(\.value)
            require(head.values(name) == same, "values(\(name)) \(head.values(name)) vs \(same)")
            require(head.count(name) == same.count, "count(\(name))")
            require(head.value(name) == same.joined(separator: ", "), "value(\(name))")
            require(head.tokens(name) == StringFields(headers: pairs).tokens(name), "tokens(\(name))")
        }
        // The consumed prefix alone parses to the same head.
        let again = parseHead(UnsafeRawBufferPointer(rebasing: bytes[0..<consumed]), cuts: [], limits: limits)
        require(again == o, "prefix re-parse: \(again) vs \(o)")
    case .error(let e):
        require(e.status == 400 || e.status == 431, "error \(e) has status \(e.status)")
        switch e {
        case .headTooLarge(let l): require(l == limits.maxHeadSize && bytes.count > l, "spurious \(e)")
        case .tooManyHeaders(let l): require(l == limits.maxHeaders, "spurious \(e)")
        case .malformed(let why): require(!why.isEmpty, "malformed without a reason")
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    // Split point derived from the data (a hash of it), anywhere in 0...size.
    var h: UInt32 = 2166136261
    for b in bytes.prefix(64) { h = (h ^ UInt32(b)) &* 16777619 }
    let split = size == 0 ? 0 : Int(h % UInt32(size + 1))

    for limits in [HTTPHeadParser.Limits(), HTTPHeadParser.Limits(maxHeadSize: 300, maxHeaders: 6)] {
        let whole = parseHead(bytes, cuts: [], limits: limits)
        checkOutcome(whole, bytes, limits)
        let halves = parseHead(bytes, cuts: [split], limits: limits)
        require(halves == whole, "split at \(split): \(halves) vs whole: \(whole)")
        let single = parseHead(bytes, cuts: size > 1 ? Array(1..<size) : [], limits: limits)
        require(single == whole, "byte at a time: \(single) vs whole: \(whole)")
    }
    return 0
}
