"""How the connection engine ends connections and answers what is not its protocol (issue 12
items 6, 11, 13): TLS close_notify on every orderly close (RFC 8446 §6.1) on both record
layers, no RST after our close, a 400 for HTTP/1.1 without Host (RFC 9112 §3.2), a plaintext
400 for HTTP sent to the TLS port, and backpressure that reaches a slow reader."""
from __future__ import annotations

import socket
import ssl
import struct
import threading
import time

import pytest

from wsutil import (OP_BIN, OP_CLOSE, Reader, build_frame, close_payload, read_frame,
                    read_http_response, recv_until_closed, upgrade_request)

MiB = 1 << 20


def strict_tls(srv):
    """A TLS client that reports a TCP end without close_notify as an error (OpenSSL 3's
    "unexpected eof") instead of hiding it."""
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    s = srv.client_ssl.wrap_socket(sock, server_hostname="localhost", suppress_ragged_eofs=False)
    s.settimeout(5)
    return s


def upgrade(sock, path="/"):
    req, _ = upgrade_request(path)
    sock.sendall(req.encode())
    reader = Reader(sock)
    assert read_http_response(reader).status == 101
    return reader


@pytest.mark.parametrize("records", ["native", "openssl"])
def test_clean_close_sends_close_notify(server_factory, records):
    extra = ["--openssl-records"] if records == "openssl" else []
    srv = server_factory("wss", "--app", "echo", *extra)
    sock = strict_tls(srv)
    reader = upgrade(sock)
    sock.sendall(build_frame(OP_CLOSE, close_payload(1000)))
    _, _, op, _, payload = read_frame(reader)
    assert op == OP_CLOSE and payload[:2] == b"\x03\xe8"
    # close_notify: recv says end of stream; without it, OpenSSL raises "unexpected eof".
    try:
        rest = sock.recv(100)
    except ssl.SSLEOFError as e:
        pytest.fail(f"server ended TLS without close_notify: {e}")
    assert rest == b""
    sock.close()


@pytest.mark.parametrize("records", ["native", "openssl"])
def test_client_close_notify_is_answered(server_factory, records):
    extra = ["--openssl-records"] if records == "openssl" else []
    srv = server_factory("wss", "--app", "echo", *extra)
    sock = strict_tls(srv)
    upgrade(sock)
    # unwrap() sends our close_notify and waits for the server's.
    try:
        plain = sock.unwrap()
    except (ssl.SSLError, OSError) as e:
        pytest.fail(f"server did not answer close_notify: {e!r}")
    plain.close()
    assert srv.alive()


def test_input_after_our_close_gets_no_reset(server_factory):
    """After the close handshake the server sends FIN and drains: input still arriving must
    not turn the end into an RST (an RST purges the client's receive queue, our close frame
    with it)."""
    srv = server_factory("ws", "--app", "echo")
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    reader = upgrade(sock)

    errors = []

    def send_close_then_more():
        try:
            sock.sendall(build_frame(OP_CLOSE, close_payload(1000)) + b"\x00" * (4 * MiB))
        except OSError as e:
            errors.append(e)

    t = threading.Thread(target=send_close_then_more, daemon=True)
    t.start()
    time.sleep(0.3)
    try:
        _, _, op, _, _ = read_frame(reader)
        assert op == OP_CLOSE
        rest, closed = b"", False
        sock.settimeout(5)
        rest = sock.recv(100)
    except ConnectionResetError:
        pytest.fail("server reset the connection: it closed with unread input instead of draining")
    assert rest == b""
    t.join(5)
    assert not errors, f"the server reset the connection while input was still arriving: {errors[0]!r}"
    sock.close()


@pytest.mark.parametrize("request_line", ["GET / HTTP/1.1", "GET /metrics HTTP/1.1"])
def test_http11_without_host_is_400(server_factory, request_line):
    srv = server_factory("ws", "--app", "reply")
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    sock.sendall(f"{request_line}\r\n\r\n".encode())
    resp = read_http_response(Reader(sock))
    assert resp.status == 400, resp
    assert b"Host" in resp.body
    sock.close()


def test_two_host_headers_are_400(server_factory):
    srv = server_factory("ws", "--app", "reply")
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert read_http_response(Reader(sock)).status == 400
    sock.close()


def test_http10_without_host_is_still_served(server_factory):
    srv = server_factory("ws", "--app", "reply")
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert read_http_response(Reader(sock)).status == 200
    sock.close()


def test_plain_http_on_the_tls_port_gets_a_plaintext_400_at_once(server_factory):
    srv = server_factory("wss", "--app", "reply", "--handshake-timeout", "10")
    t0 = time.monotonic()
    lines = []
    for _ in range(3):
        sock = socket.create_connection((srv.host, srv.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data, closed = recv_until_closed(sock, 5)
        sock.close()
        assert closed
        lines.append(data)
    elapsed = time.monotonic() - t0
    assert elapsed < 3, f"answered only after {elapsed:.1f}s (the handshake timeout?)"
    for data in lines:
        assert data.startswith(b"HTTP/1.1 400 "), data[:200]
        assert b"this port speaks TLS: use https:// or wss://" in data
    # Logged at info, once per client address per minute (three requests, one line).
    time.sleep(0.2)
    assert srv.stderr().count("plain HTTP from 127.0.0.1 on the TLS port") == 1, srv.stderr()[-2000:]


def test_garbage_on_the_tls_port_is_dropped_at_once(server_factory):
    srv = server_factory("wss", "--app", "reply", "--handshake-timeout", "10")
    sock = socket.create_connection((srv.host, srv.port), timeout=5)
    t0 = time.monotonic()
    sock.sendall(b"\x00\x01\x02 not a TLS record")
    data, closed = recv_until_closed(sock, 5)
    sock.close()
    assert closed and data == b""
    assert time.monotonic() - t0 < 2
    # The TLS port still works.
    good = strict_tls(srv)
    upgrade(good, "/chatsocket")
    good.close()


def _flood_chat(srv, n, size):
    """A publisher on /chatsocket that reads its own copies; returns when all n were sent."""
    pub = socket.create_connection((srv.host, srv.port), timeout=10)
    reader = upgrade(pub, "/chatsocket")
    done = threading.Event()

    def drain():
        try:
            while not done.is_set():
                read_frame(reader, 10)
        except Exception:
            pass

    t = threading.Thread(target=drain, daemon=True)
    t.start()
    for i in range(n):
        pub.sendall(build_frame(OP_BIN, bytes([i % 256]) * size))
    return pub, done


def _slow_subscriber(srv):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((srv.host, srv.port))
    return s, upgrade(s, "/chatsocket")


def test_close_on_backpressure_discards_the_backlog_and_closes_at_once(server_factory):
    limit = 8 * MiB
    srv = server_factory("ws", "--app", "chat", "--max-backpressure", str(limit),
                         "--high-water-mark", str(MiB), "--close-on-backpressure")
    sub, sub_reader = _slow_subscriber(srv)
    n, size = 200, 64 * 1024  # 12.5 MiB: over the limit
    pub, done = _flood_chat(srv, n, size)
    time.sleep(1.0)
    data_bytes, code = 0, None
    for _ in range(n + 10):
        fin, rsv, op, masked, payload = read_frame(sub_reader, 10)
        if op == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0]
            break
        assert op == OP_BIN and len(payload) == size, "a frame was cut"
        data_bytes += len(payload)
    done.set()
    pub.close()
    sub.close()
    assert code == 1008
    # Only what the kernel buffers already held comes before the close, not the 8 MiB queue.
    assert data_bytes < limit, f"{data_bytes} bytes of messages before the 1008: the close waited behind the backlog"


def test_backpressure_drops_are_logged_once_per_connection(server_factory):
    srv = server_factory("ws", "--app", "chat", "--max-backpressure", str(2 * MiB),
                         "--high-water-mark", str(MiB))
    sub, _ = _slow_subscriber(srv)
    pub, done = _flood_chat(srv, 120, 64 * 1024)
    time.sleep(1.0)
    done.set()
    pub.close()
    log = srv.stderr()
    assert log.count("dropping messages to") == 1, log[-3000:]
    sub.close()
