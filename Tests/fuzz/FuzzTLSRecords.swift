// libFuzzer target: the receive side of our TLS 1.3 record layer (TLS13RecordLayer.open,
// server role) — what a hostile peer controls after the handshake.
//
// Built together with Sources/Transport/TLS13Records.swift into one module (see run.sh).
//
// Input layout:
//   byte 0   bits 0-1 cipher suite (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305, AES-128-GCM)
//            bits 2-7 c: the wire is fed in chunks of c * 37 + 1 bytes (as reads would split it)
//   rest     operations, each [op][n][n bytes] (n clipped to what is left):
//            op & 3 == 0  an application_data record carrying the bytes
//            op & 3 == 1  a record with inner content type op >> 2 (0-63: alert 21, handshake 22,
//                         application_data 23, and invalid ones) carrying the bytes
//            op & 3 == 2  application data with op >> 2 bytes of zero padding (§5.4)
//            op & 3 == 3  the bytes raw on the wire, unprotected (a forged or broken record)
//
// A client-side TLS13RecordLayer with the matching secrets seals the records, so the
// authenticated inner layer (content types, alerts, handshake reassembly, KeyUpdate) is
// reached, not only the MAC check. The wire goes to one server layer in chunks (keeping the
// unconsumed tail like TLSStream does) and to another all at once. Oracle:
//   * both feedings end the same way (same error or none, same close_notify) and deliver the
//     same bytes (good records before a bad one are delivered with its error);
//   * what is delivered is a prefix of the application data sealed, in order (unless a record
//     with inner type 0 was sealed: its real type is its last non-zero byte);
//   * with no raw bytes and only application data (at most 32 empty records in a row),
//     everything is delivered and nothing fails;
//   * consumed never exceeds the input, produced never exceeds the output room.

@inline(__always)
func require(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("ORACLE: " + message(), file: file, line: line) }
}

struct Outcome: Equatable {
    var delivered: [UInt8] = []
    var error: TLSRecordError?
    var closeNotify = false
}

func feed(_ layer: TLS13RecordLayer, _ wire: [UInt8], chunk: Int) -> Outcome {
    var outcome = Outcome()
    var pending: [UInt8] = []
    var offset = 0
    while offset < wire.count || (offset == wire.count && wire.isEmpty) {
        let end = min(wire.count, offset + chunk)
        pending += wire[offset..<end]
        offset = end
        // Exact-size heap blocks so ASan sees any access past them.
        let input = UnsafeMutableRawBufferPointer.allocate(byteCount: max(pending.count, 1), alignment: 1)
        let output = UnsafeMutableRawBufferPointer.allocate(byteCount: max(pending.count, 1), alignment: 1)
        defer { input.deallocate(); output.deallocate() }
        pending.withUnsafeBytes { if $0.count > 0 { input.copyMemory(from: $0) } }
        do throws(TLSRecordError) {
            let r = try layer.open(UnsafeRawBufferPointer(rebasing: input[0..<pending.count]),
                                   into: UnsafeMutableRawBufferPointer(rebasing: output[0..<pending.count]))
            require(r.consumed <= pending.count && r.produced <= pending.count && r.produced <= r.consumed,
                    "consumed \(r.consumed) produced \(r.produced) of \(pending.count)")
            outcome.delivered += output[0..<r.produced]
            pending.removeFirst(r.consumed)
            // A bad record behind good ones: their bytes came back with the error.
            if let e = r.error { outcome.error = e; break }
        } catch {
            outcome.error = error
            break
        }
        if layer.receivedCloseNotify { outcome.closeNotify = true; break }
        if wire.isEmpty { break }
    }
    return outcome
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTLSRecords(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard let first = bytes.first else { return 0 }
    let suite = [TLS13Suite.aes128GCM, .aes256GCM, .chacha20Poly1305, .aes128GCM][Int(first & 3)]
    let chunk = Int(first >> 2) * 37 + 1
    let c2s = [UInt8](repeating: 0x5a, count: suite.hashLength)
    let s2c = [UInt8](repeating: 0xa5, count: suite.hashLength)
    let client = TLS13RecordLayer(role: .client, suite: suite, readSecret: s2c, writeSecret: c2s)

    var wire: [UInt8] = []
    var sealedData: [UInt8] = []
    var onlyCleanData = true
    // Inner type 0 is padding (§5.4): such a record reads as its content up to the last
    // non-zero byte, as that byte's type — legal to receive, impossible to predict here.
    var prefixOracle = true
    var emptyRun = 0
    var record = [UInt8](repeating: 0, count: 600)
    var i = 1
    while i + 1 < bytes.count {
        let op = bytes[i], n = min(Int(bytes[i + 1]), bytes.count - i - 2)
        let content = Array(bytes[(i + 2)..<(i + 2 + n)])
        i += 2 + n
        switch op & 3 {
        case 3:
            wire += content
            onlyCleanData = false
            continue
        case 1:
            let type = op >> 2
            if type != 23 { onlyCleanData = false } else { sealedData += content }
            if type == 0 { prefixOracle = false }
            emptyRun = type == 23 && !content.isEmpty ? 0 : emptyRun + 1
            if emptyRun > TLS13RecordLayer.maxRecordsWithoutData { onlyCleanData = false }
            let len = content.withUnsafeBytes { c in record.withUnsafeMutableBytes { client.write.seal(type: type, c, into: $0.baseAddress!) } }
            wire += record[0..<len]
        default:
            // More than 32 records in a row without data fail the connection by design.
            emptyRun = content.isEmpty ? emptyRun + 1 : 0
            if emptyRun > TLS13RecordLayer.maxRecordsWithoutData { onlyCleanData = false }
            sealedData += content
            let padding = op & 3 == 2 ? Int(op >> 2) : 0
            let len = content.withUnsafeBytes { c in
                record.withUnsafeMutableBytes { client.write.seal(type: 23, c, into: $0.baseAddress!, padding: padding) }
            }
            wire += record[0..<len]
        }
    }

    let chunked = feed(TLS13RecordLayer(role: .server, suite: suite, readSecret: c2s, writeSecret: s2c), wire, chunk: chunk)
    let whole = feed(TLS13RecordLayer(role: .server, suite: suite, readSecret: c2s, writeSecret: s2c), wire, chunk: max(wire.count, 1))
    require(chunked.error == whole.error && chunked.closeNotify == whole.closeNotify,
            "chunked \(chunked) vs whole \(whole)")
    // Records opened before a failing one in the same call are delivered with the error, so
    // however the wire was split, both feedings deliver exactly the same bytes.
    require(chunked.delivered == whole.delivered, "chunked and whole delivered differently: \(chunked) vs \(whole)")
    for o in [chunked, whole] where prefixOracle {
        require(o.delivered.count <= sealedData.count && Array(sealedData[0..<o.delivered.count]) == o.delivered,
                "delivered bytes are not a prefix of the sealed application data")
    }
    if onlyCleanData {
        require(whole.error == nil && whole.delivered == sealedData, "clean records not delivered: \(whole)")
    }
    return 0
}
