#if canImport(Glibc)
import Glibc
#endif
import Transport
import WebSocket

/// The access log's hooks in the connection: after an HTTP request has been answered, when a
/// WebSocket session gets its close code, and when the socket closes. All do nothing (one load
/// and a branch) when `ServerConfiguration.accessLog` is nil; with it, an open WebSocket holds
/// nothing in the connection: its entry waits in the log's `AccessSessions` table.
extension WebSocketConnection {
    /// `head` was answered; its response starts at `mark` in the output buffer (the status is
    /// read back from that status line, so every answer path is covered by this one hook).
    func logRequest(_ head: HTTPRequestHead?, bytesIn: Int, mark: Int) {
        guard let log = core.configuration.accessLog else { return }
        let out = proto.outbound.readableBytes
        let status = out.count >= mark + 12 ? Self.status(in: UnsafeRawBufferPointer(rebasing: out[(mark + 9)...])) : 0
        let (address, port) = AccessLogRecord.split(hostPort: peerAddress(fd: driver.fd))
        let record = AccessLogRecord(
            kind: status == 101 ? .websocket : .http, connection: id, remoteAddress: address, remotePort: port,
            method: head?.method ?? "", path: head.map { log.redaction.apply($0.target) } ?? "", status: status,
            bytesIn: bytesIn, bytesOut: out.count - mark, durationMillis: millisSinceAccept(),
            tlsVersion: driver.tls?.protocolVersion ?? "", tlsCipher: driver.tls?.cipherName ?? "",
            subprotocol: extras?.subprotocol ?? "", compression: proto.deflate != nil,
            userAgent: head?.value("User-Agent") ?? "")
        if status == 101 && policy.phase == .closed {
            // Ended before its line was started (the socket failed in `onOpen`): written now.
            var ended = record
            let early = log.sessions.takeEarlyCode(fd: driver.fd, connection: id)
            ended.closeCode = Int(early ?? CloseCode.abnormal.rawValue)
            log.write(ended)
        } else if status == 101 {
            // Written when the connection ends: bytes and duration of its whole life then.
            let opened = monotonicMicros() &- UInt64(max(0, record.durationMillis * 1000))
            log.sessions.open(fd: driver.fd, connection: id, openedMicros: opened, address: address, port: port,
                              text: record.sessionText)
        } else {
            log.write(record)
        }
    }

    /// The WebSocket session ended with `code` (the one `onClose` gets); the line is written
    /// by `logConnectionEnd`, when the socket closes.
    func logClose(_ code: CloseCode) {
        // After `finish` the line is written: nothing to keep (1006 it was).
        guard let log = core.configuration.accessLog, policy.phase != .closed else { return }
        log.sessions.closed(fd: driver.fd, connection: id, code: code.rawValue)
    }

    /// The connection is about to close its socket: a WebSocket's line gets the bytes the
    /// connection carried in its whole life (TCP payload both ways, handshake included; with
    /// TLS the records) and the time since accept, and is written. No close code yet: 1006.
    func logConnectionEnd() {
        guard let log = core.configuration.accessLog,
              let ended = log.sessions.finish(fd: driver.fd, connection: id) else { return }
        let e = ended.entry
        var record = AccessLogRecord(sessionText: ended.text)
        record.connection = id
        record.remoteAddress = e.address
        record.remotePort = Int(e.port)
        record.closeCode = Int(e.closeCode == 0 ? CloseCode.abnormal.rawValue : e.closeCode)
        if let (received, acked) = Self.tcpByteCounts(fd: driver.fd) {
            record.bytesIn = received
            record.bytesOut = acked
        }
        record.durationMillis = Double(monotonicMicros() &- e.openedMicros) / 1000
        log.write(record)
    }

    /// TCP_INFO's tcpi_bytes_received and tcpi_bytes_acked (Linux ≥ 4.1, RFC 4898): the
    /// kernel counts them anyway, so the message path counts nothing. Glibc's `tcp_info`
    /// stops at tcpi_total_retrans; the kernel's (uapi linux/tcp.h, which only grows) goes on
    /// with pacing_rate, max_pacing_rate, bytes_acked, bytes_received, eight bytes each.
    static func tcpByteCounts(fd: Int32) -> (received: Int, acked: Int)? {
        let base = MemoryLayout<tcp_info>.size  // 104: where tcpi_pacing_rate starts
        var raw = (tcp_info(), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var len = socklen_t(MemoryLayout.size(ofValue: raw))
        let ok = withUnsafeMutableBytes(of: &raw) { buf -> (Int, Int)? in
            guard getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, buf.baseAddress, &len) == 0,
                  Int(len) >= base + 32 else { return nil }
            let acked = buf.load(fromByteOffset: base + 16, as: UInt64.self)
            let received = buf.load(fromByteOffset: base + 24, as: UInt64.self)
            return (Int(truncatingIfNeeded: received), Int(truncatingIfNeeded: acked))
        }
        return ok
    }

    private func millisSinceAccept() -> Double {
        if let started = driver.tls?.startedMicros, started > 0 {
            return Double(monotonicMicros() &- started) / 1000
        }
        // In the handshake phase the deadline is accept time + handshake timeout (ms clock).
        guard policy.phase == .handshake else { return 0 }
        return Double(loop.now &- (policy.deadline &- core.policySettings.handshakeMillis))
    }

    static func status(in bytes: UnsafeRawBufferPointer) -> Int {
        var n = 0
        for b in bytes.prefix(3) {
            guard b >= 0x30 && b <= 0x39 else { return 0 }
            n = n * 10 + Int(b - 0x30)
        }
        return n
    }
}
