#if canImport(Glibc)
import Glibc
#endif
import COpenSSL

/// Socket I/O for our own TLS 1.3 record layer: ciphertext passes through the loop's scratch
/// buffer; only a partial record (input) or a partial send (output) is kept between calls.
extension TLSStream {
    /// One read() of ciphertext into the scratch buffer (after any partial record kept from
    /// the last one), every whole record opened straight into `buffer`.
    func readRecords(_ records: TLS13RecordLayer, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        if records.receivedCloseNotify { return .eof }
        let scratch = self.scratch!
        let capacity = min(scratch.count, buffer.count)
        var have = carry.count
        if have > 0 {
            carry.withUnsafeBytes { scratch.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: have) }
            carry = []
        }
        switch TCPStream.read(fd: fd, into: UnsafeMutableRawBufferPointer(rebasing: scratch[have..<capacity])) {
        case .done(let n):
            have += n
        case let other:  // .wantRead, .eof or .error: keep the partial record
            if have > 0 { carry = Array(UnsafeRawBufferPointer(start: scratch.baseAddress, count: have)) }
            return other
        }
        let opened: TLS13RecordLayer.Opened
        do throws(TLSRecordError) {
            opened = try records.open(UnsafeRawBufferPointer(start: scratch.baseAddress, count: have), into: buffer)
        } catch {
            return failed(error)
        }
        if let error = opened.error {  // behind good bytes: those first, the error next read
            pendingResult = failed(error)
            return .done(opened.produced)
        }
        if opened.consumed < have {
            carry = Array(UnsafeRawBufferPointer(start: scratch.baseAddress! + opened.consumed, count: have - opened.consumed))
        }
        if records.receivedCloseNotify {
            answerCloseNotify()
            if opened.produced > 0 { pendingResult = .eof }  // hasPendingBytes: read again
        } else if records.keyUpdateOwed && !hasPendingOutput {
            _ = write(UnsafeRawBufferPointer(start: nil, count: 0))
        }
        if opened.produced > 0 { return .done(opened.produced) }
        if records.receivedCloseNotify { return .eof }
        // Only a partial record, a KeyUpdate or a ticket: nothing for the caller yet. Bytes
        // still in the kernel are signalled again (level-triggered epoll).
        return .wantRead
    }

    /// A fatal record error ends reading. Our alert (RFC 8446 §6.2) is owed, not sent: the
    /// owner may still answer what it received before the bad record, and `shutdownWrite` or
    /// `close` sends the alert after those answers. A peer's fatal alert needs none, and
    /// nothing more is sealed after it.
    func failed(_ error: TLSRecordError) -> IOResult {
        if let alert = error.alert { owedAlert = alert } else { alertSent = true }
        return .error(error.description)
    }

    /// Sends what an earlier call left, then seals as much of `bytes` as the scratch buffer
    /// holds into records and sends them with one send(). Bytes sealed are consumed even if
    /// the socket takes only part of them (the rest waits in `unsent`). An empty `bytes`
    /// only pushes what waits.
    func writeRecords(_ records: TLS13RecordLayer, _ bytes: UnsafeRawBufferPointer) -> IOResult {
        if hasPendingOutput {
            switch sendUnsent() {
            case .done: break
            case let other: return other
            }
        }
        if bytes.count == 0 && !records.keyUpdateOwed { return .done(0) }
        if alertSent { return .eof }  // nothing is sealed after our close_notify or fatal alert
        let scratch = self.scratch!
        let (consumed, produced) = records.seal(bytes, into: scratch)
        let (sent, stop) = sendSome(UnsafeRawBufferPointer(rebasing: scratch[0..<produced]))
        if let stop { return stop }
        if sent < produced {
            unsent = Array(UnsafeRawBufferPointer(start: scratch.baseAddress! + sent, count: produced - sent))
            unsentOffset = 0
        }
        return .done(consumed)
    }

    func sendUnsent() -> IOResult {
        let (sent, stop) = unsent.withUnsafeBytes { sendSome(UnsafeRawBufferPointer(rebasing: $0[unsentOffset...])) }
        unsentOffset += sent
        if let stop { return stop }
        if unsentOffset < unsent.count { return .wantWrite }
        unsent = []
        unsentOffset = 0
        return .done(0)
    }

    /// Sends as much of `bytes` as the socket takes: how much, and the result that ended it
    /// early (.eof, .error); a full socket is not an error.
    func sendSome(_ bytes: UnsafeRawBufferPointer) -> (sent: Int, stop: IOResult?) {
        var sent = 0
        while sent < bytes.count {
            switch TCPStream.write(fd: fd, UnsafeRawBufferPointer(rebasing: bytes[sent...])) {
            case .done(let n): sent += n
            case .wantWrite: return (sent, nil)
            case let other: return (sent, other)
            }
        }
        return (sent, nil)
    }

}
