import COpenSSL
import Glibc
@testable import Transport
import XCTest
import TestSupport

/// TLSStream against OpenSSL's client over a socket pair (issue 12): fatal errors behind good
/// bytes (TLS 1.2 / OpenSSL records), close_notify both ways and on both record layers,
/// max_fragment_length, session resumption with the ticket written before the handover.
final class TLSStreamTests: XCTestCase {
    nonisolated(unsafe) static let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 64)
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 64)
    override func tearDown() { buffer.deallocate() }

    func context(native: Bool = true) throws -> TLSContext {
        let dir = TestCertificates.dir
        return try TLSContext(certificateFile: dir + "/cert.pem", keyFile: dir + "/key.pem", nativeRecords: native)
    }

    final class Pair {
        var fds: [Int32] = [0, 0]
        let server: TLSStream
        let cctx: OpaquePointer
        let client: OpaquePointer
        init(_ context: TLSContext, session: OpaquePointer? = nil, setup: (OpaquePointer) -> Void = { _ in }) throws {
            XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
            for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
            server = try XCTUnwrap(context.makeStream(fd: fds[0], scratch: TLSStreamTests.scratch))
            cctx = try XCTUnwrap(SSL_CTX_new(TLS_client_method()))
            setup(cctx)
            client = try XCTUnwrap(SSL_new(cctx))
            if let session { SSL_set_session(client, session) }
            SSL_set_fd(client, fds[1])
            SSL_set_connect_state(client)
            var done = (false, false)
            for _ in 0..<1000 where !(done.0 && done.1) {
                if !done.1 { done.1 = SSL_do_handshake(client) == 1 }
                if !done.0 {
                    switch server.handshake() {
                    case .done: done.0 = true
                    case .error(let e): XCTFail(e); return
                    default: break
                    }
                }
            }
            XCTAssertTrue(done.0 && done.1, "handshake")
        }
        deinit { SSL_free(client); SSL_CTX_free(cctx); close(fds[1]); close(fds[0]) }

        func clientWrite(_ s: String) { XCTAssertEqual(SSL_write(client, s, Int32(s.utf8.count)), Int32(s.utf8.count)) }
        /// Up to `count` bytes the client can read now (also processes tickets and alerts).
        func clientRead(_ count: Int) -> (bytes: [UInt8], error: Int32) {
            var got = [UInt8](repeating: 0, count: count), have = 0, err: Int32 = 0
            for _ in 0..<2000 where have < count {
                let n = got.withUnsafeMutableBytes { SSL_read(client, $0.baseAddress! + have, Int32(count - have)) }
                if n > 0 { have += Int(n); continue }
                err = SSL_get_error(client, n)
                if err != SSL_ERROR_WANT_READ { break }
            }
            return (Array(got[0..<have]), err)
        }
    }

    /// Issue 12 item 5: a bad record right behind good data in the same read. The good bytes
    /// come first; the error is remembered, `hasPendingBytes` says to read again, and the
    /// next read reports it (before: the error was dropped and, with level-triggered epoll,
    /// never reported again). OpenSSL sent its alert.
    func testErrorBehindGoodBytesIsReportedByTheNextRead() throws {
        for tls12 in [true, false] {
            let p = try Pair(try context(native: tls12 ? true : false)) {
                if tls12 { _ = wss_SSL_CTX_set_max_proto_version($0, wss_TLS1_2_VERSION()) }
            }
            XCTAssertNil(p.server.records, "OpenSSL's record layer")
            p.clientWrite("good bytes")
            let garbage: [UInt8] = [23, 3, 3, 0, 24] + [UInt8](repeating: 0x5a, count: 24)
            XCTAssertEqual(write(p.fds[1], garbage, garbage.count), garbage.count)
            XCTAssertEqual(p.server.read(into: buffer), .done(10))
            XCTAssertTrue(p.server.hasPendingBytes, "the owner must read again at once")
            guard case .error = p.server.read(into: buffer) else { return XCTFail("error expected") }
            XCTAssertFalse(p.server.hasPendingBytes)
            XCTAssertEqual(p.clientRead(1).error, SSL_ERROR_SSL, "the client got a fatal alert")
        }
    }

    /// Our record layer: several good records and a bad one (bad MAC, then a record of the
    /// wrong outer type) in ONE read. Every good byte reaches the owner first, an answer it
    /// writes after them still goes out, and only then the fatal alert (RFC 8446 §6.2), at
    /// close. Before: the good records of that read were dropped with the error.
    func testNativeLayerDeliversGoodRecordsBeforeABadOne() throws {
        let badRecords: [[UInt8]] = [[23, 3, 3, 0, 24] + [UInt8](repeating: 0x5a, count: 24),  // bad_record_mac
                                     [22, 3, 3, 0, 4, 1, 2, 3, 4]]  // unprotected handshake: unexpected_message
        for (bad, alert) in zip(badRecords, [SSL_AD_BAD_RECORD_MAC, SSL_AD_UNEXPECTED_MESSAGE]) {
            let p = try Pair(try context())
            XCTAssertNotNil(p.server.records, "our record layer")
            // Three good records and the bad one in the socket before the server reads once.
            let wbio = BIO_new(BIO_s_mem())!
            let sock = SSL_get_wbio(p.client)
            SSL_set0_wbio(p.client, wbio)
            for word in ["one ", "two ", "three"] { p.clientWrite(word) }
            var staged = [UInt8](repeating: 0, count: 4096)
            let n = Int(BIO_read(wbio, &staged, Int32(staged.count)))
            _ = BIO_up_ref(sock)
            SSL_set0_wbio(p.client, sock)
            let oneWrite = Array(staged[0..<n]) + bad
            XCTAssertEqual(write(p.fds[1], oneWrite, oneWrite.count), oneWrite.count)

            XCTAssertEqual(p.server.read(into: buffer), .done(13))
            XCTAssertEqual(Array(UnsafeRawBufferPointer(rebasing: buffer[0..<13])), Array("one two three".utf8))
            XCTAssertTrue(p.server.hasPendingBytes, "the error is for the next read")
            let echo = Array("echo: one two three".utf8)
            XCTAssertEqual(echo.withUnsafeBytes { p.server.write($0) }, .done(echo.count), "the answer is sealed")
            guard case .error = p.server.read(into: buffer) else { return XCTFail("error expected") }
            p.server.close()
            let got = p.clientRead(echo.count + 1)
            XCTAssertEqual(got.bytes, echo, "the answer to the good records arrives")
            XCTAssertEqual(got.error, SSL_ERROR_SSL, "then the fatal alert")
            // OpenSSL's reason for a received alert is 1000 + its description.
            XCTAssertEqual(Int32(ERR_peek_last_error() & 0x7FFFFF), 1000 + alert, "alert \(alert)")
            ERR_clear_error()
        }
    }

    /// RFC 8446 §6.1: a peer's close_notify is answered with ours, on both record layers.
    func testCloseNotifyIsAnswered() throws {
        for native in [true, false] {
            let p = try Pair(try context(native: native))
            XCTAssertEqual(p.server.records != nil, native)
            XCTAssertEqual(SSL_shutdown(p.client), 0, "our close_notify sent, the server's not seen yet")
            var sawEOF = false
            for _ in 0..<100 where !sawEOF { if case .eof = p.server.read(into: buffer) { sawEOF = true } }
            XCTAssertTrue(sawEOF)
            XCTAssertEqual(p.clientRead(1).error, SSL_ERROR_ZERO_RETURN, "server answered close_notify (native \(native))")
        }
    }

    /// `shutdownWrite` and `close` send close_notify (an orderly close), once.
    func testShutdownWriteAndCloseSendCloseNotify() throws {
        for native in [true, false] {
            let p = try Pair(try context(native: native))
            p.server.shutdownWrite()
            XCTAssertEqual(p.clientRead(1).error, SSL_ERROR_ZERO_RETURN, "native \(native)")
        }
        let p = try Pair(try context())
        p.clientWrite("unread input")
        let fd = dup(p.fds[0])
        p.server.close()
        XCTAssertEqual(p.clientRead(1).error, SSL_ERROR_ZERO_RETURN)
        XCTAssertEqual(close(fd), 0)
    }

    /// An orderly close towards a peer that is gone: OpenSSL's close_notify write fails with
    /// EPIPE, and must not kill a process that does not ignore SIGPIPE (this test process).
    func testCloseTowardsAVanishedPeerRaisesNoSIGPIPE() throws {
        let p = try Pair(try context(native: false))
        let peer = dup(p.fds[1])
        shutdown(peer, Int32(SHUT_RDWR))
        close(peer)
        let old = signal(SIGPIPE, SIG_DFL)
        defer { signal(SIGPIPE, old) }
        p.server.close()  // survives
        XCTAssertTrue(p.server.isEstablished)
    }

    /// A certificate reload replaces the context while handshakes made from it are still
    /// running: they finish, ticket included (the stream holds the ticket keys, not the
    /// context; under ASan a dangling key pointer shows here).
    func testHandshakeOutlivesItsReplacedContext() throws {
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        defer { close(fds[0]); close(fds[1]) }
        var ctx: TLSContext? = try context()
        weak let gone = ctx
        let server = try XCTUnwrap(ctx?.makeStream(fd: fds[0], scratch: Self.scratch))
        ctx = nil
        XCTAssertNil(gone, "the context is released")
        let cctx = try XCTUnwrap(SSL_CTX_new(TLS_client_method()))
        defer { SSL_CTX_free(cctx) }
        let client = try XCTUnwrap(SSL_new(cctx))
        defer { SSL_free(client) }
        SSL_set_fd(client, fds[1])
        SSL_set_connect_state(client)
        var done = (false, false)
        for _ in 0..<1000 where !(done.0 && done.1) {
            if !done.1 { done.1 = SSL_do_handshake(client) == 1 }
            if !done.0, case .done = server.handshake() { done.0 = true }
        }
        XCTAssertTrue(done.0 && done.1)
        XCTAssertEqual(server.ticketsSent, 1)
    }

    /// RFC 6066 §4: the client asked for 512-byte fragments; OpenSSL agreed, so our records
    /// carry at most 512 bytes (OpenSSL's client fails with record_overflow otherwise).
    func testMaxFragmentLengthIsHonoured() throws {
        let p = try Pair(try context()) { _ = SSL_CTX_set_tlsext_max_fragment_length($0, 1) }
        XCTAssertEqual(p.server.records?.plaintextLimit, 512)
        let big = [UInt8](repeating: 0x41, count: 5000)
        XCTAssertEqual(big.withUnsafeBytes { p.server.write($0) }, .done(5000))
        XCTAssertEqual(p.clientRead(5000).bytes, big)
    }

    /// Session resumption on our record layer: OpenSSL's ticket went out first, so our write
    /// sequence starts at 1; a second connection with that ticket resumes, and is counted.
    func testResumptionWithNativeRecords() throws {
        let ctx = try context()
        let first = try Pair(ctx) { _ = wss_SSL_CTX_set_session_cache_mode($0, 1) }  // SSL_SESS_CACHE_CLIENT
        XCTAssertEqual(first.server.records?.writeSequence, UInt64(TLSContext.ticketsPerHandshake))
        let hello = Array("hello".utf8)
        XCTAssertEqual(hello.withUnsafeBytes { first.server.write($0) }, .done(5))
        XCTAssertEqual(first.clientRead(5).bytes, hello, "the ticket record and ours decrypt in order")
        let session = try XCTUnwrap(SSL_get1_session(first.client))
        defer { SSL_SESSION_free(session) }
        XCTAssertEqual(SSL_SESSION_is_resumable(session), 1)
        let resumedBefore = TLSContext.handshakes.resumed
        let second = try Pair(ctx, session: session)
        XCTAssertTrue(second.server.resumedSession)
        XCTAssertEqual(SSL_session_reused(second.client), 1)
        XCTAssertNotNil(second.server.records)
        XCTAssertGreaterThan(TLSContext.handshakes.resumed, resumedBefore)
        XCTAssertEqual(hello.withUnsafeBytes { second.server.write($0) }, .done(5))
        // A certificate reload makes a new context: tickets issued before stay valid.
        let reloaded = try Pair(try context(), session: session)
        XCTAssertTrue(reloaded.server.resumedSession, "the process-wide ticket keys survive a reload")
        XCTAssertEqual(second.clientRead(5).bytes, hello)
        second.clientWrite("again")
        var got: [UInt8] = []
        for _ in 0..<100 where got.isEmpty { if case .done(let n) = second.server.read(into: buffer) { got = Array(buffer[0..<n]) } }
        XCTAssertEqual(got, Array("again".utf8))
    }
}
