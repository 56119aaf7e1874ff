"""Fallback edges against the real server: the per-loop connection gauge (/metrics) counts
fallback connections and nothing else; requests whose bytes OpenSSL already decrypted
(--openssl-records, a request larger than one read, pipelined behind it) are answered, not
left waiting for a readable event that never comes; the subprotocol negotiated for a
fallback session."""

import os
import re
import signal
import socket
import time

import pytest

from fallbackutil import SSE, Client, LongPoll, decode, encode


def connections_open(metrics):
    """wss_connections_open summed over loops, read on `metrics`, a keep-alive connection
    that stays open (so it is counted, 1, in every snapshot)."""
    resp = metrics.request("GET", "/metrics")
    body = resp.read().decode()
    assert resp.status == 200, body[:200]
    values = re.findall(r'^wss_connections_open\{loop="\d+"\} (\d+)$', body, re.M)
    assert values, body[:500]
    return sum(int(v) for v in values)


def settled_gauge(metrics, want, timeout=3.0):
    """The gauge is published every 250 ms: read until it shows `want` or time runs out."""
    time.sleep(0.3)  # the snapshot read now may predate what the caller just did
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = connections_open(metrics)
        if seen == want:
            return seen
        time.sleep(0.3)
    return seen


def test_connection_gauge_counts_no_session_tick(server_factory):
    # One loop, so every connection and the session land on it.
    srv = server_factory("ws", "--threads", "1", "--app", "echo")
    metrics = Client(srv)
    try:
        assert settled_gauge(metrics, 1) == 1, "only the /metrics connection is open"
        lp = LongPoll(srv)
        lp.post([("t", "x")])
        lp.close()  # the session lives on, no connection attached
        assert settled_gauge(metrics, 1) == 1, "a fallback session without a connection is not a connection"
        held = LongPoll(srv)
        held.post([("t", "y")])
        try:
            assert settled_gauge(metrics, 3) == 3, "the two keep-alive connections of a session + /metrics"
        finally:
            held.close()
        assert settled_gauge(metrics, 1) == 1
    finally:
        metrics.close()


def raw_tls(srv):
    sock = socket.create_connection((srv.host, srv.port), timeout=10)
    return srv.client_ssl.wrap_socket(sock, server_hostname=srv.host)


def read_response(sock, buf):
    """One Content-Length response from sock; returns (status, body, rest of buf)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection ended before a response; got {buf[:200]!r}"
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    n = int(m.group(1)) if m else 0
    while len(buf) < n:
        chunk = sock.recv(65536)
        assert chunk, "connection ended inside a body"
        buf += chunk
    return status, buf[:n], buf[n:]


def post_request(srv, url, body):
    return (f"POST {url} HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.mark.parametrize("records", ["native", "openssl"])
def test_request_past_one_read_and_pipelined_request_are_answered(server_factory, records):
    """A fallback request that is not the first on its connection is read by the
    WebSocket connection the socket was given back to (here after GET /metrics), which hands
    it over to the fallback and stops reading. When that read fills the loop's 256 KiB buffer
    inside a TLS record, the record's rest stays decrypted inside OpenSSL
    (--openssl-records), where the kernel socket never says readable again; the fallback reads
    once after the takeover, so the tail and a POST pipelined behind it are still answered.
    (OpenSSL 3.0's read-ahead returns at record boundaries in steps of at most 64 KiB, so on
    this machine the buffer does not fill and this passes without that read too: it guards the
    takeover, it did not fail first.) The server is stopped (SIGSTOP) while the client writes,
    so the whole request is in the kernel (a window grown by a first 900 KB POST) before the
    server's first read."""
    extra = ["--openssl-records"] if records == "openssl" else []
    srv = server_factory("wss", "--app", "echo", "--threads", "1", *extra)
    lp = LongPoll(srv)
    sock = raw_tls(srv)
    try:
        warm = "w" * 900_000
        sock.sendall(post_request(srv, lp.url, encode([("t", warm)])))
        status, _, buf = read_response(sock, b"")
        assert status == 204
        sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n\r\n".encode())
        status, _, buf = read_response(sock, buf)
        assert status == 200, "the socket went back to a WebSocket connection"
        # Both POSTs end 600 bytes past the 256 KiB read: a first TLS record of 1,000 bytes
        # shifts the 16 KiB records so the read ends inside one, whose last 1,000 bytes
        # (all that is left) OpenSSL has decrypted and keeps.
        second = post_request(srv, lp.url, encode([("t", "after")]))
        empty = len(post_request(srv, lp.url, encode([("t", "")])))
        n = 256 * 1024 + 600 - len(second) - empty
        n -= len(str(n)) + len(str(n))  # the two length fields grow with n
        big = "x" * n
        req = post_request(srv, lp.url, encode([("t", big)])) + second
        while len(req) < 256 * 1024 + 600:
            big += "x"
            req = post_request(srv, lp.url, encode([("t", big)])) + second
        assert len(req) == 256 * 1024 + 600, len(req)
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            sock.sendall(req[:1000])
            sock.sendall(req[1000:])
            time.sleep(0.3)
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        sock.settimeout(5)
        for _ in range(2):
            status, body, buf = read_response(sock, buf)
            assert status == 204, (status, body[:200])
        got = lp.receive(3)
        assert [r[1] for r in got] == [warm.encode(), big.encode(), b"after"]
    finally:
        sock.close()
        lp.close()


@pytest.mark.parametrize("records", ["native", "openssl"])
def test_post_pipelined_behind_a_held_poll_is_answered(server_factory, records):
    """HTTP/1.1 pipelining (RFC 9112 §9.3.2): a POST sent right behind a poll on the same
    connection waits while the poll is held, then is answered in order once the poll is
    (here by its timeout), without another byte from the client."""
    extra = ["--openssl-records"] if records == "openssl" else []
    srv = server_factory("wss", "--app", "echo", "--poll-timeout", "1", *extra)
    lp = LongPoll(srv)
    sock = raw_tls(srv)
    try:
        poll = f"GET {lp.url} HTTP/1.1\r\nHost: {srv.host}:{srv.port}\r\n\r\n".encode()
        sock.sendall(poll + post_request(srv, lp.url, encode([("t", "behind")])))
        sock.settimeout(5)
        status, body, buf = read_response(sock, b"")
        assert (status, body) == (200, b""), "the held poll times out empty"
        status, body, buf = read_response(sock, buf)
        assert status == 204, (status, body)
        assert lp.receive(1) == [("t", b"behind")]
    finally:
        sock.close()
        lp.close()


def test_every_long_poll_answer_carries_cors_for_an_allowed_origin(server_factory):
    """A cross-origin page can read a poll's answer only with Access-Control-Allow-Origin:
    the first answer, a poll answered at once and a held poll answered later all carry it."""
    srv = server_factory("ws", "--app", "echo", "--allowed-origin", "https://app.example", "--poll-timeout", "1")
    origin = "https://app.example"
    lp = LongPoll(srv, origin=origin)
    try:
        def poll():
            resp = lp.poller.request("GET", lp.url)
            body = resp.read()
            assert resp.status == 200, (resp.status, body)
            return resp.getheader("Access-Control-Allow-Origin"), body
        lp.post([("t", "hi")])
        assert poll() == (origin, b"t2:hi"), "answered at once"
        assert poll() == (origin, b""), "held, then answered empty at the timeout"
    finally:
        lp.close()


@pytest.mark.parametrize("records", ["native", "openssl"])
def test_sse_session_with_pipelined_posts_over_wss(server_factory, records):
    """Three POSTs in one write on one keep-alive TLS connection: three 204s in order, the
    three echoes in order on the session's event stream."""
    extra = ["--openssl-records"] if records == "openssl" else []
    srv = server_factory("wss", "--app", "echo", *extra)
    sse = SSE(srv)
    sock = raw_tls(srv)
    try:
        texts = ["one 你好", "two 🚀", "three"]
        sock.sendall(b"".join(post_request(srv, sse.url, encode([("t", t)])) for t in texts))
        sock.settimeout(5)
        buf = b""
        for _ in texts:
            status, body, buf = read_response(sock, buf)
            assert status == 204, (status, body)
        assert [sse.message() for _ in texts] == texts
    finally:
        sock.close()
        sse.close()
