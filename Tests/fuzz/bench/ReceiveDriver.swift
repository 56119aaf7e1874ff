// Instruction-count driver for the frame receiver (WebSocketProtocol.next), run under
// callgrind by Tests/fuzz/bench/callgrind.sh. Not a timed benchmark: callgrind counts are
// stable on a loaded machine, so a before/after pair shows a change in cost.
//
// Workload: 100,000 client frames (masked), mixed as a chat/echo server sees them —
// small text, 125-byte binary, 512-byte and 1 KiB binary, three-frame fragmented text,
// pings — fed in 16 KiB reads (as the loop's read buffer) and again in 61-byte reads
// (headers and payloads split across reads).

func appendFrame(_ out: inout [UInt8], opcode: UInt8, fin: Bool, payload: Int, seed: Int) {
    out.append((fin ? 0x80 : 0) | opcode)
    if payload < 126 {
        out.append(0x80 | UInt8(payload))
    } else {
        out += [0x80 | 126, UInt8(payload >> 8), UInt8(payload & 0xFF)]
    }
    let key: [UInt8] = [UInt8(truncatingIfNeeded: seed), 0x5A, 0xC3, UInt8(truncatingIfNeeded: seed >> 8)]
    out += key
    for i in 0..<payload { out.append(UInt8(ascii: "a") &+ UInt8(i % 26) ^ key[i & 3]) }
}

func workload(frames: Int) -> [UInt8] {
    var out: [UInt8] = []
    var n = 0
    while n < frames {
        switch n % 10 {
        case 0, 1, 2, 3: appendFrame(&out, opcode: 1, fin: true, payload: 16, seed: n); n += 1
        case 4, 5: appendFrame(&out, opcode: 2, fin: true, payload: 125, seed: n); n += 1
        case 6: appendFrame(&out, opcode: 2, fin: true, payload: 1024, seed: n); n += 1
        case 7: appendFrame(&out, opcode: 2, fin: true, payload: 512, seed: n); n += 1
        case 8:
            appendFrame(&out, opcode: 1, fin: false, payload: 40, seed: n)
            appendFrame(&out, opcode: 0, fin: false, payload: 40, seed: n + 1)
            appendFrame(&out, opcode: 0, fin: true, payload: 40, seed: n + 2)
            n += 3
        default: appendFrame(&out, opcode: 9, fin: true, payload: 8, seed: n); n += 1
        }
    }
    return out
}

@inline(never)
func receiveAll(_ input: UnsafeMutableRawBufferPointer, readSize: Int, into p: inout WebSocketProtocol) -> (Int, Int) {
    var events = 0, bytes = 0
    var offset = 0
    while offset < input.count {
        let end = min(offset + readSize, input.count)
        let read = UnsafeMutableRawBufferPointer(rebasing: input[offset..<end])
        var cursor = 0
        while let event = p.next(read, cursor: &cursor) {
            events += 1
            switch event {
            case .text(let b), .binary(let b), .ping(let b): bytes &+= b.count
            case .failed(let e): fatalError("failed: \(e)")
            default: break
            }
        }
        p.outbound.clear()
        p.outboundDrained()
        offset = end
    }
    return (events, bytes)
}

@main
struct ReceiveDriver {
    static func main() {
        print("MemoryLayout<WebSocketProtocol>.size = \(MemoryLayout<WebSocketProtocol>.size)")
        let frames = workload(frames: 100_000)
        let work = UnsafeMutableRawBufferPointer.allocate(byteCount: frames.count, alignment: 16)
        defer { work.deallocate() }
        let sizes = CommandLine.arguments.dropFirst().compactMap { Int($0) }
        for readSize in sizes.isEmpty ? [16 << 10, 61] : sizes {
            frames.withUnsafeBytes { work.copyMemory(from: $0) }  // unmasking is in place
            var p = WebSocketProtocol(role: .server)
            let (events, bytes) = receiveAll(work, readSize: readSize, into: &p)
            print("read size \(readSize): \(frames.count) bytes in, \(events) events, \(bytes) payload bytes")
        }
    }
}
