"""Hardening: timeouts, resource limits, backpressure, signals (graceful shutdown, SIGHUP reload).

Everything is observed over real sockets and /proc (fd count, VmRSS) of the server process;
no server-side statistics are consulted. Every wait and loop is bounded.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from conftest import GENERATE
from wsutil import (OP_BIN, OP_CLOSE, OP_CONT, OP_PING, OP_TEXT, Reader, assert_close_then_eof, build_frame,
                    expect_close, read_frame, read_http_response, recv_until_closed, run, upgrade_request,
                    ws_connect, ws_handshake)

MiB = 1 << 20


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wait_until(pred, timeout: float, interval: float = 0.05):
    """Poll pred() until truthy or timeout; returns the last value."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v
        time.sleep(interval)


def fast_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """Masked client frame; XOR done on big ints so multi-MiB payloads stay cheap."""
    key = os.urandom(4)
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    ks = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(ks, "big")).to_bytes(n, "big") if n else b""
    return head + key + masked


def small_rcvbuf_socket(server, rcvbuf: int = 4096, timeout: float = 5.0):
    """Like raw_connect, but with a tiny receive buffer (set before connect) so that a
    client that never reads stalls the server's output quickly."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    s.connect((server.host, server.port))
    if server.tls:
        s = server.client_ssl.wrap_socket(s, server_hostname="localhost")
        s.settimeout(timeout)
    return s


def raw_upgrade(sock, path="/chatsocket", timeout=5.0) -> Reader:
    req, _ = upgrade_request(path)
    sock.sendall(req.encode())
    reader = Reader(sock)
    resp = read_http_response(reader, timeout=timeout)
    assert resp.status == 101, resp
    return reader


def raw_echo(server, payload: bytes = b"probe", opcode=OP_TEXT, timeout=3.0) -> float:
    """Fresh raw connection, one echo round trip; returns its duration in seconds."""
    t0 = time.monotonic()
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    # TCP_NODELAY on our side: otherwise client Nagle + delayed ACK adds ~40 ms per TLS message.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if server.scheme == "wss":
        sock = server.client_ssl.wrap_socket(sock, server_hostname="localhost")
        sock.settimeout(timeout)
    try:
        reader = raw_upgrade(sock, timeout=timeout)
        sock.sendall(fast_frame(opcode, payload))
        fin, _, op, _, got = read_frame(reader, timeout)
        assert (fin, op, got) == (True, opcode, payload)
        return time.monotonic() - t0
    finally:
        sock.close()


def rst_close(sock):
    """Abortive close: SO_LINGER (on, 0) makes close() send RST."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def peer_serial(server, ctx: ssl.SSLContext) -> int:
    from cryptography import x509
    with socket.create_connection((server.host, server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def serial_of_pem(path) -> int:
    from cryptography import x509
    return x509.load_pem_x509_certificate(open(path, "rb").read()).serial_number


# --------------------------------------------------------------------------
# 1. slowloris / handshake timeout
# --------------------------------------------------------------------------

def test_slowloris_header_trickle_is_cut(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo", "--handshake-timeout", "1")
    t0 = time.monotonic()
    slow = socket.create_connection((srv.host, srv.port), timeout=5)
    if srv.tls:
        slow = srv.client_ssl.wrap_socket(slow, server_hostname="localhost")
    try:
        slow.sendall(b"GET / HTTP/1.1\r\n")
        header = b"X-Slow: " + b"a" * 100
        i = 0
        closed_at = None
        echo_time = None
        got = b""
        while time.monotonic() - t0 < 6.0:
            if echo_time is None and time.monotonic() - t0 > 0.4:
                echo_time = raw_echo(srv, b"normal client during slowloris")
            slow.settimeout(0.2)  # recv with a short timeout (TLS: select() is fooled by session tickets)
            try:
                chunk = slow.recv(4096)
            except (socket.timeout, TimeoutError):
                chunk = None
            except (ConnectionResetError, ssl.SSLError, OSError):
                chunk = b""
            if chunk is not None:
                if not chunk:
                    closed_at = time.monotonic() - t0
                    break
                got += chunk  # e.g. a 408 answer; keep reading until EOF
                continue
            try:
                slow.sendall(header[i:i + 1])
                i += 1
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                closed_at = time.monotonic() - t0
                break
        assert i >= 3, f"only {i} header bytes trickled before the cut at {closed_at}"
        assert echo_time is not None and echo_time < 1.0, f"normal echo took {echo_time}"
        assert closed_at is not None, (f"slowloris client still connected after 6 s "
                                       f"({i} header bytes sent, got {got[:200]!r})")
        assert 0.8 <= closed_at <= 3.0, f"slowloris client cut after {closed_at:.2f} s (expected ~1-3 s)"
        assert srv.alive()
    finally:
        slow.close()


def test_silent_tls_client_is_cut(server_factory):
    srv = server_factory("wss", "--handshake-timeout", "1")
    # (a) plain TCP connect to the TLS port, nothing sent (no ClientHello).
    t0 = time.monotonic()
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    try:
        data, closed = recv_until_closed(s, 5.0)
        el = time.monotonic() - t0
        assert closed, f"silent TCP client on TLS port not cut within 5 s (got {data[:100]!r})"
        assert 0.8 <= el <= 3.0, f"cut after {el:.2f} s"
    finally:
        s.close()
    # (b) TLS handshake completed, but no HTTP request ever sent.
    t0 = time.monotonic()
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    s = srv.client_ssl.wrap_socket(s, server_hostname="localhost")
    try:
        data, closed = recv_until_closed(s, 5.0)
        el = time.monotonic() - t0
        assert closed, "TLS client that never sends a request not cut within 5 s"
        assert 0.8 <= el <= 3.0, f"cut after {el:.2f} s"
    finally:
        s.close()
    assert srv.alive()
    assert raw_echo(srv, b"\x00\x01", OP_BIN) < 1.0  # reply app echoes binary unchanged


# --------------------------------------------------------------------------
# 2. idle timeout
# --------------------------------------------------------------------------

def test_idle_timeout_pings_then_closes_1001(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo", "--idle-timeout", "1", "--close-timeout", "1")
    result = {}

    def raw_client():
        t0 = time.monotonic()
        sock, reader = ws_handshake(srv)
        try:
            fin, rsv, op, masked, payload = read_frame(reader, 3.0)
            result["first"] = (op, time.monotonic() - t0)
            code = None
            for _ in range(10):
                fin, rsv, op, masked, payload = read_frame(reader, 4.0)
                if op == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    break
            result["close"] = (code, time.monotonic() - t0)
            _, closed = recv_until_closed(sock, 4.0)
            result["eof"] = (closed, time.monotonic() - t0)
        except Exception as e:  # reported by the main thread
            result["error"] = repr(e)
        finally:
            sock.close()

    th = threading.Thread(target=raw_client, daemon=True)
    th.start()

    async def good_client():
        async with ws_connect(srv, ping_interval=None) as ws:
            await asyncio.sleep(3.0)  # websockets answers the server's pings meanwhile
            await ws.send("still here")
            return await asyncio.wait_for(ws.recv(), 2)

    assert run(good_client(), 10) == "still here"
    th.join(10)
    assert not th.is_alive()
    assert "error" not in result, result
    op, t_ping = result["first"]
    assert op == OP_PING, f"first frame from server opcode {op}, expected ping"
    assert 0.7 <= t_ping <= 2.0, f"ping after {t_ping:.2f} s (idle timeout 1 s)"
    code, t_close = result["close"]
    assert code == 1001, f"close code {code}, expected 1001"
    assert 1.7 <= t_close <= 4.0, f"close after {t_close:.2f} s"
    closed, t_eof = result["eof"]
    assert closed and t_eof <= 5.0, f"TCP not closed (closed={closed}, t={t_eof:.2f})"


# --------------------------------------------------------------------------
# 3. fd leak under connection churn with RST
# --------------------------------------------------------------------------

def _churn(srv, total: int, batch: int):
    """Open `total` connections in batches; kinds rotate: upgraded, mid-handshake, bare.
    All closed abortively (RST). Returns (upgraded, highest server fd count seen mid-batch)."""
    done = 0
    upgraded = 0
    peak = 0
    while done < total:
        n = min(batch, total - done)
        socks = []
        try:
            for i in range(n):
                kind = (done + i) % 4  # 0,1: upgrade; 2: mid-handshake; 3: bare connect
                s = socket.create_connection((srv.host, srv.port), timeout=5)
                if srv.tls and kind != 3:
                    s = srv.client_ssl.wrap_socket(s, server_hostname="localhost")
                    s.settimeout(5)
                if kind in (0, 1):
                    req, _ = upgrade_request()
                    s.sendall(req.encode())
                elif kind == 2:
                    s.sendall(b"GET /chatsocket HTTP/1.1\r\nHost: localhost\r\nUpgr")
                elif srv.tls and (done + i) % 8 == 3:
                    s.sendall(b"\x16\x03\x01\x00")  # start of a TLS record, then nothing
                socks.append((kind, s))
            for kind, s in socks:
                if kind in (0, 1):
                    resp = read_http_response(Reader(s), timeout=5)
                    assert resp.status == 101, resp
                    upgraded += 1
            peak = max(peak, fd_count(srv.proc.pid))
        finally:
            for _, s in socks:
                rst_close(s)
        done += n
    return upgraded, peak


@pytest.mark.parametrize("scheme_total", [("ws", 5000), ("wss", 1000)], ids=["ws", "wss"])
def test_no_fd_leak_after_rst_churn(server_factory, scheme_total):
    sch, total = scheme_total
    srv = server_factory(sch, "--app", "echo")
    pid = srv.proc.pid
    raw_echo(srv)  # warm up lazily created resources
    time.sleep(0.2)
    baseline = fd_count(pid)
    t0 = time.monotonic()
    upgraded, peak = _churn(srv, total, 200)
    churn_s = time.monotonic() - t0
    peak_after = fd_count(pid)
    settled = wait_until(lambda: fd_count(pid) == baseline, 10.0, 0.1)
    final = fd_count(pid)
    print(f"\n[fd {sch}] baseline={baseline} peak-mid-batch={peak} right-after-churn={peak_after} final={final} "
          f"({total} conns, {upgraded} upgraded, churn {churn_s:.1f}s)")
    assert srv.alive()
    assert peak >= baseline + 100, f"server never held the batch open (peak {peak})"
    assert settled and final == baseline, f"fd count {final} != baseline {baseline} 10 s after churn"
    assert raw_echo(srv) < 1.0
    assert wait_until(lambda: fd_count(pid) == baseline, 5.0)


# --------------------------------------------------------------------------
# 4. never-reading client: bounded memory, other clients unaffected
# --------------------------------------------------------------------------

def test_never_reading_client_bounded_memory(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo")
    pid = srv.proc.pid
    raw_echo(srv, os.urandom(64 * 1024), OP_BIN)  # warm-up: buffers of the size used below
    time.sleep(0.3)
    baseline = rss_kib(pid)

    peak = [baseline]
    stop = threading.Event()

    def sampler():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], rss_kib(pid))
            except OSError:
                return
            stop.wait(0.05)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    hog = small_rcvbuf_socket(srv)
    try:
        raw_upgrade(hog)
        frame = fast_frame(OP_BIN, os.urandom(64 * 1024))
        attempt = 48 * MiB  # 3x --max-backpressure default: must stall long before that
        sent = 0
        hog.settimeout(2.0)
        blocked = False
        while sent < attempt:
            try:
                hog.sendall(frame)
            except (socket.timeout, TimeoutError):
                blocked = True
                break
            sent += len(frame)
        # While the hog is stalled, another client still gets echoes promptly.
        rtts = [raw_echo(srv, os.urandom(64 * 1024), OP_BIN) for _ in range(3)]
        time.sleep(0.5)
        after = rss_kib(pid)
    finally:
        stop.set()
        th.join(2)
        rst_close(hog)
    print(f"\n[rss {scheme}] baseline={baseline / 1024:.1f} MiB peak={peak[0] / 1024:.1f} MiB "
          f"after={after / 1024:.1f} MiB; hog sent {sent / MiB:.1f} MiB before blocking={blocked}; "
          f"echo rtts={[round(r * 1000, 1) for r in rtts]} ms")
    assert blocked, f"server kept reading: client sent all {sent / MiB:.0f} MiB without reading a byte"
    assert max(rtts) < 1.0, f"echo for the second client took {max(rtts):.2f} s"
    assert peak[0] < baseline + 32 * 1024, (
        f"server RSS peaked at {peak[0] / 1024:.1f} MiB, baseline {baseline / 1024:.1f} MiB (+32 MiB allowed)")
    assert srv.alive()


# --------------------------------------------------------------------------
# 5. slow chat subscriber: --close-on-backpressure vs. dropping
# --------------------------------------------------------------------------

N_PUB = 160  # 160 x 64 KiB = 10 MiB, 5x --max-backpressure
PUB_SIZE = 64 * 1024


async def _publish(srv, n=N_PUB):
    """Publisher on /chatsocket: sends n 64 KiB binary messages while reading its own copies."""
    async with ws_connect(srv, ping_interval=None) as pub:
        got = 0

        async def reader():
            nonlocal got
            while got < n:
                m = await pub.recv()
                if isinstance(m, bytes) and len(m) == PUB_SIZE:
                    got += 1

        rt = asyncio.ensure_future(reader())
        t0 = time.monotonic()
        for i in range(n):
            await pub.send(bytes([i % 256]) * PUB_SIZE)
        await asyncio.wait_for(rt, 15)
        pub_s = time.monotonic() - t0
        await pub.send("publisher still works")
        for _ in range(5):
            m = await asyncio.wait_for(pub.recv(), 3)
            if m == "publisher still works":
                break
        else:
            raise AssertionError("publisher never got its marker back")
        return got, pub_s


def _chat_server(server_factory, scheme, *extra):
    return server_factory(scheme, "--app", "chat", "--max-backpressure", str(2 * MiB),
                          "--high-water-mark", str(MiB), "--close-timeout", "1", *extra)


def test_close_on_backpressure_closes_slow_subscriber(server_factory, scheme):
    srv = _chat_server(server_factory, scheme, "--close-on-backpressure")
    sub = small_rcvbuf_socket(srv)
    try:
        reader = raw_upgrade(sub)
        got, pub_s = run(_publish(srv), 30)
        assert got == N_PUB
        # Now read everything that was buffered; the server must have closed the subscriber.
        t0 = time.monotonic()
        code = None
        frames = 0
        try:
            for _ in range(N_PUB + 10):
                fin, rsv, op, masked, payload = read_frame(reader, 5.0)
                if op == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    break
                frames += 1
        except (EOFError, TimeoutError):
            pass
        _, closed = recv_until_closed(sub, 5.0)
        el = time.monotonic() - t0
        print(f"\n[backpressure close {scheme}] publisher {pub_s:.2f}s; slow subscriber got {frames} data frames, "
              f"close code {code}, EOF after {el:.2f}s of draining")
        assert closed, "slow subscriber's TCP connection was not closed by the server"
        assert frames < N_PUB, "slow subscriber received every message: backpressure never triggered"
        assert code == 1008, f"slow subscriber closed with {code}, expected a close frame with 1008"
        assert srv.alive()
    finally:
        sub.close()


def test_backpressure_drops_but_keeps_slow_subscriber(server_factory, scheme):
    srv = _chat_server(server_factory, scheme)
    sub = small_rcvbuf_socket(srv)
    try:
        reader = raw_upgrade(sub)
        got, pub_s = run(_publish(srv), 30)
        assert got == N_PUB
        # Drain what was queued; the subscriber must still be connected (no close, no EOF).
        frames = 0
        closed_code = None
        for _ in range(N_PUB + 10):
            try:
                fin, rsv, op, masked, payload = read_frame(reader, 1.5)
            except TimeoutError:
                break
            if op == OP_CLOSE:
                closed_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                break
            frames += 1
        print(f"\n[backpressure drop {scheme}] slow subscriber drained {frames}/{N_PUB} data frames")
        assert closed_code is None, f"slow subscriber was closed with {closed_code} without --close-on-backpressure"
        assert frames < N_PUB, "no message dropped: the subscriber never exceeded --max-backpressure?"
        # Still a working chat member: it sends, and receives a later message.
        sub.sendall(fast_frame(OP_TEXT, b"subscriber alive"))
        for _ in range(5):
            fin, rsv, op, masked, payload = read_frame(reader, 3.0)
            if op == OP_TEXT and payload == b"subscriber alive":
                break
        else:
            raise AssertionError("slow subscriber did not get its own message back")
    finally:
        sub.close()


# --------------------------------------------------------------------------
# 6. --max-connections
# --------------------------------------------------------------------------

def _rejected(srv) -> tuple[bool, bytes]:
    """One extra connection; True if the server closes it at once (returns data seen)."""
    s = socket.create_connection((srv.host, srv.port), timeout=3)
    try:
        if srv.tls:
            try:
                s = srv.client_ssl.wrap_socket(s, server_hostname="localhost")
            except (ssl.SSLError, OSError):
                return True, b""
        data, closed = recv_until_closed(s, 2.0)
        return closed, data
    finally:
        s.close()


def test_max_connections(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo", "--max-connections", "5")
    conns = [ws_handshake(srv) for _ in range(5)]
    try:
        t0 = time.monotonic()
        closed, data = _rejected(srv)
        el = time.monotonic() - t0
        assert closed and el < 1.5, f"6th connection not closed at once (closed={closed}, {el:.2f}s)"
        if not srv.tls:
            assert data.startswith(b"HTTP/1.1 503"), f"6th plain connection got {data[:200]!r}"
        # The five are unaffected.
        for sock, reader in conns:
            sock.sendall(fast_frame(OP_TEXT, b"x"))
            assert read_frame(reader, 3)[4] == b"x"
        # Close two cleanly, two new ones are accepted (bounded retries while counts update).
        for sock, reader in conns[:2]:
            sock.sendall(build_frame(OP_CLOSE, struct.pack("!H", 1000)))
            assert_close_then_eof(sock, reader, 1000, 3.0)
            sock.close()
        conns = conns[2:]
        for _ in range(2):
            end = time.monotonic() + 5
            while True:
                try:
                    conns.append(ws_handshake(srv, timeout=2))
                    break
                except (AssertionError, EOFError, ConnectionError, ssl.SSLError, OSError):
                    assert time.monotonic() < end, "no new connection accepted after closing two"
                    time.sleep(0.1)
        for sock, reader in conns:
            sock.sendall(fast_frame(OP_TEXT, b"y"))
            assert read_frame(reader, 3)[4] == b"y"
        # Full again: the next one is rejected.
        closed, data = _rejected(srv)
        assert closed, "connection beyond the limit accepted after refilling"
    finally:
        for sock, _ in conns:
            sock.close()


# --------------------------------------------------------------------------
# 7. graceful shutdown
# --------------------------------------------------------------------------

def test_graceful_shutdown_sends_1001_and_exits_0(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo")

    async def main():
        clients = [await ws_connect(srv, ping_interval=None) for _ in range(3)]
        for i, c in enumerate(clients):
            await c.send(f"hi {i}")
            assert await asyncio.wait_for(c.recv(), 3) == f"hi {i}"
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(c.wait_closed() for c in clients)), 3)
        codes = [(c.close_code, c.close_reason) for c in clients]
        return codes, t0

    codes, t0 = run(main(), 15)
    for code, reason in codes:
        assert code == 1001, f"client closed with {code} {reason!r}, expected 1001"
        assert reason == "server shutting down", reason
    rc = srv.proc.wait(5)
    el = time.monotonic() - t0
    assert rc == 0, f"exit code {rc}"
    assert el <= 2.0, f"server took {el:.2f} s to exit after SIGTERM"


def test_graceful_shutdown_with_unresponsive_client(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo", "--shutdown-timeout", "2")
    sock, reader = ws_handshake(srv)
    try:
        t0 = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        code, reason = expect_close(reader, 3)  # read it, but never answer
        assert code == 1001, (code, reason)
        # Stopped accepting: a new connection is refused or closed without service.
        time.sleep(0.3)
        try:
            with socket.create_connection((srv.host, srv.port), timeout=2) as s2:
                if srv.tls:
                    try:
                        s2 = srv.client_ssl.wrap_socket(s2, server_hostname="localhost")
                    except (ssl.SSLError, OSError):
                        s2 = None
                if s2 is not None:
                    req, _ = upgrade_request()
                    try:
                        s2.sendall(req.encode())
                    except OSError:
                        pass
                    data, closed = recv_until_closed(s2, 2.0)
                    assert not data.startswith(b"HTTP/1.1 101"), "upgrade accepted during shutdown"
        except ConnectionRefusedError:
            pass
        try:
            rc = srv.proc.wait(2 + 1.5)
        except subprocess.TimeoutExpired:
            pytest.fail("server still running 3.5 s after SIGTERM with --shutdown-timeout 2")
        el = time.monotonic() - t0
        assert rc == 0, f"exit code {rc}"
        assert el <= 3.0 + 0.3, f"exit after {el:.2f} s"
    finally:
        sock.close()


# --------------------------------------------------------------------------
# 8. SIGHUP certificate reload
# --------------------------------------------------------------------------

def test_sighup_reloads_certificate(server_factory, certs, tmp_path):
    d = tmp_path / "reload-certs"
    d.mkdir()
    for f in ("ca.pem", "ca.key", "cert.pem", "key.pem"):
        shutil.copy(certs / f, d / f)
    srv = server_factory("wss", "--app", "echo", cert_args=["--cert", str(d / "cert.pem"),
                                                             "--key", str(d / "key.pem")])
    old_ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
    old_ca = (d / "ca.pem").read_bytes()

    async def open_a():
        return await ws_connect(srv, ping_interval=None)

    loop = asyncio.new_event_loop()
    try:
        a = loop.run_until_complete(asyncio.wait_for(open_a(), 5))

        def a_echo(msg):
            async def go():
                await a.send(msg)
                return await asyncio.wait_for(a.recv(), 3)
            return loop.run_until_complete(asyncio.wait_for(go(), 5))

        assert a_echo("A before") == "A before"
        serial_a = x509_serial(a)
        assert serial_a == serial_of_pem(d / "cert.pem")

        # Regenerate in place: generate.sh only regenerates when files are missing/invalid,
        # and then makes all four (a new CA too).
        (d / "cert.pem").unlink()
        (d / "key.pem").unlink()
        r = subprocess.run(["bash", str(GENERATE), str(d)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        new_serial = serial_of_pem(d / "cert.pem")
        assert new_serial != serial_a
        new_ctx = ssl.create_default_context(cafile=str(d / "ca.pem"))
        both_ctx = ssl.create_default_context(cadata=old_ca.decode() + (d / "ca.pem").read_text())

        srv.proc.send_signal(signal.SIGHUP)
        serial_b = wait_until(lambda: (lambda s: s if s != serial_a else None)(peer_serial(srv, both_ctx)),
                              5.0, 0.1)
        assert serial_b == new_serial, f"after SIGHUP new connections still get serial {serial_a:x}"
        # B verifies against the new CA only and works.
        b_srv = type("S", (), {})()
        b_srv.__dict__.update(srv.__dict__)
        b_srv.client_ssl = new_ctx
        b_srv.scheme, b_srv.tls = "wss", True
        assert raw_echo(b_srv, b"B after reload") < 1.0
        with pytest.raises(ssl.SSLCertVerificationError):
            peer_serial(srv, old_ctx)
        assert a_echo("A after reload") == "A after reload"

        # Broken file: reload fails, last good certificate stays.
        (d / "cert.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
        srv.proc.send_signal(signal.SIGHUP)
        err = wait_until(lambda: [ln for ln in srv.stderr().splitlines()
                                  if "reload" in ln.lower() and ("error" in ln.lower() or "fail" in ln.lower())],
                         5.0, 0.1)
        assert err, f"no reload error logged; stderr tail:\n{srv.stderr()[-1500:]}"
        assert srv.alive()
        assert peer_serial(srv, both_ctx) == new_serial
        assert raw_echo(b_srv, b"B after failed reload") < 1.0
        assert a_echo("A after failed reload") == "A after failed reload"
        loop.run_until_complete(asyncio.wait_for(a.close(), 5))
    finally:
        loop.close()


def x509_serial(ws) -> int:
    from cryptography import x509
    sslobj = ws.transport.get_extra_info("ssl_object")
    return x509.load_der_x509_certificate(sslobj.getpeercert(binary_form=True)).serial_number


# --------------------------------------------------------------------------
# 9. --max-fragments / --max-frame-size
# --------------------------------------------------------------------------

def test_max_fragments(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo", "--max-fragments", "10", "--close-timeout", "2")
    # 10 frames in one message: fine.
    sock, reader = ws_handshake(srv)
    try:
        parts = [bytes([65 + i]) * 3 for i in range(10)]
        data = build_frame(OP_TEXT, parts[0], fin=False)
        data += b"".join(build_frame(OP_CONT, p, fin=(i == 9)) for i, p in enumerate(parts[1:], 1))
        sock.sendall(data)
        fin, _, op, _, payload = read_frame(reader, 3)
        assert op == OP_TEXT and payload == b"".join(parts)
    finally:
        sock.close()
    # Start frame + 11 continuation frames (none final) -> 1009.
    sock, reader = ws_handshake(srv)
    try:
        data = build_frame(OP_TEXT, b"s", fin=False) + b"".join(build_frame(OP_CONT, b"c", fin=False)
                                                                for _ in range(11))
        sock.sendall(data)
        assert_close_then_eof(sock, reader, 1009, 5.0)
    finally:
        sock.close()
    # Exactly 11 frames (last one final) -> 1009 as well.
    sock, reader = ws_handshake(srv)
    try:
        data = build_frame(OP_BIN, b"s", fin=False) + b"".join(build_frame(OP_CONT, b"c", fin=(i == 9))
                                                               for i in range(10))
        sock.sendall(data)
        assert_close_then_eof(sock, reader, 1009, 5.0)
    finally:
        sock.close()


def test_max_frame_size_decided_at_header(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo", "--max-frame-size", "1000", "--close-timeout", "2")
    sock, reader = ws_handshake(srv)
    try:
        sock.sendall(fast_frame(OP_BIN, b"z" * 1000))
        assert read_frame(reader, 3)[4] == b"z" * 1000
        # Header (126-length form) + mask key of a 1001-byte frame, no payload at all.
        t0 = time.monotonic()
        sock.sendall(struct.pack("!BBH", 0x80 | OP_BIN, 0x80 | 126, 1001) + os.urandom(4))
        code, reason = expect_close(reader, 3)
        el = time.monotonic() - t0
        assert code == 1009, f"close {code} {reason!r}, expected 1009"
        assert el < 1.0, f"1009 only after {el:.2f} s"
        _, closed = recv_until_closed(sock, 4)
        assert closed
    finally:
        sock.close()


# --------------------------------------------------------------------------
# 10. plain HTTP on the TLS port
# --------------------------------------------------------------------------

def test_plain_http_on_tls_port(server_factory):
    srv = server_factory("wss", "--app", "echo")
    other, oreader = ws_handshake(srv)
    try:
        t0 = time.monotonic()
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data, closed = recv_until_closed(s, 5.0)
        el = time.monotonic() - t0
        assert closed and el < 2.0, f"plain HTTP on TLS port not closed promptly (closed={closed}, {el:.2f}s)"
        assert not data.startswith(b"HTTP/1.1 200"), "served plain HTTP on the TLS port"
        other.sendall(fast_frame(OP_TEXT, b"unaffected"))
        assert read_frame(oreader, 3)[4] == b"unaffected"
        assert raw_echo(srv, b"new wss client") < 1.0
        assert srv.alive()
    finally:
        other.close()
