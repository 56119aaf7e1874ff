"""TLS record layer: TLS 1.3 connections switch to the server's own record layer after the
handshake (RFC 8446 §5), TLS 1.2 and --openssl-records stay on OpenSSL's. Real clients only:
Python's ssl (OpenSSL), `openssl s_client` for KeyUpdate, raw bytes for tampering."""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time

import pytest

from conftest import SERVER_BIN
from wsutil import (OP_BIN, OP_CLOSE, OP_TEXT, Reader, build_frame, close_payload, raw_connect, read_frame,
                    recv_until_closed, upgrade_request, accept_for, read_http_response)


def tls_connect(server, ctx: ssl.SSLContext):
    sock = socket.create_connection((server.host, server.port), timeout=5)
    return ctx.wrap_socket(sock, server_hostname="localhost")


def upgrade_on(sock, path="/"):
    req, key = upgrade_request(path)
    sock.sendall(req.encode())
    reader = Reader(sock)
    resp = read_http_response(reader)
    assert resp.status == 101, resp
    assert resp.get("sec-websocket-accept") == accept_for(key)
    return reader


def echo_round_trips(sock, reader, sizes=(5, 70_000, 1 << 20)):
    for n in sizes:
        payload = os.urandom(n)
        sock.sendall(build_frame(OP_BIN, payload))
        fin, _, op, masked, got = read_frame(reader, timeout=10)
        assert (fin, op, masked) == (True, OP_BIN, False)
        assert got == payload, f"{n}-byte echo differs"


def close_cleanly(sock, reader):
    sock.sendall(build_frame(OP_CLOSE, close_payload(1000)))
    _, _, op, _, payload = read_frame(reader)
    assert op == OP_CLOSE and payload[:2] == b"\x03\xe8"
    sock.close()


def test_tls13_echo_ticket_and_resumption_with_native_records(server_factory, client_ssl):
    """Issue 12 item 10: OpenSSL writes its one ticket before the handover, our record layer
    continues after it; a reconnect with the ticket resumes and is counted in /metrics."""
    srv = server_factory("wss", "--app", "echo")
    sock = tls_connect(srv, client_ssl)
    assert sock.version() == "TLSv1.3"
    # AES-128-GCM is the server's first choice.
    assert sock.cipher()[0] == "TLS_AES_128_GCM_SHA256", sock.cipher()
    reader = upgrade_on(sock)
    echo_round_trips(sock, reader)  # the ticket record and ours decrypt in sequence
    session = sock.session
    assert session.has_ticket, "one session ticket with native records"
    close_cleanly(sock, reader)
    again = socket.create_connection((srv.host, srv.port), timeout=5)
    again = client_ssl.wrap_socket(again, server_hostname="localhost", session=session)
    assert again.session_reused, "the ticket was accepted"
    reader = upgrade_on(again)
    echo_round_trips(again, reader, sizes=(5, 70_000))
    close_cleanly(again, reader)
    m = tls_connect(srv, client_ssl)
    m.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    body = recv_all(m)
    assert 'wss_tls_handshakes_total{kind="resumed"} 1' in body, body[-1500:]


def recv_all(sock) -> str:
    out = b""
    sock.settimeout(5)
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (ssl.SSLError, OSError):
        pass
    return out.decode(errors="replace")


@pytest.mark.parametrize("mode", [[], ["--openssl-records"]])
def test_close_notify_after_a_clean_close(server_factory, client_ssl, mode):
    """RFC 8446 §6.1: after the WebSocket close (1000) the server's TLS ends with close_notify,
    not a bare FIN (which OpenSSL 3 clients report as "unexpected eof")."""
    srv = server_factory("wss", "--app", "echo", *mode)
    raw = socket.create_connection((srv.host, srv.port), timeout=5)
    sock = client_ssl.wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False)
    reader = upgrade_on(sock)
    sock.sendall(build_frame(OP_CLOSE, close_payload(1000)))
    _, _, op, _, payload = read_frame(reader)
    assert op == OP_CLOSE
    sock.settimeout(5)
    # With suppress_ragged_eofs=False a FIN without close_notify raises SSLEOFError.
    assert sock.recv(100) == b"", "close_notify expected"
    sock.close()


def test_tls12_bad_record_behind_good_data_closes_at_once(server_factory, certs):
    """Issue 12 item 5: a TLS 1.2 client (OpenSSL's record layer) sends a good record and a
    forged one in one segment: the alert and the close come at once, not at the 10 s
    handshake timeout."""
    srv = server_factory("wss", "--app", "echo", "--handshake-timeout", "10")
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    obj, inc, out, raw = _memory_bio_client(srv, ctx)
    obj.write(b"GET / HTTP/1.1\r\nHost: localhost")  # a request head in progress
    good = out.read()
    forged = bytes([23, 3, 3, 0, 40]) + os.urandom(40)
    t0 = time.time()
    raw.sendall(good + forged)
    raw.settimeout(8)
    got = b""
    while chunk := raw.recv(4096):
        got += chunk
    elapsed = time.time() - t0
    assert elapsed < 3, f"closed only after {elapsed:.1f} s"
    assert got[:1] == b"\x15", f"an alert record first, got {got[:8]!r}"


@pytest.mark.parametrize("args, ok", [
    (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], True),
    (["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"], True),
    (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"], False),  # CBC (LUCKY13)
    (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384"], False),
    (["-tls1_2", "-cipher", "AES128-GCM-SHA256"], False),  # RSA key exchange
    (["-tls1_3", "-groups", "X25519"], True),
    (["-tls1_3", "-groups", "P-384"], True),
    (["-tls1_3", "-groups", "X448"], False),
    (["-tls1_3", "-groups", "P-521"], False),
    (["-tls1_2", "-groups", "P-521"], False),
    (["-tls1_3", "-groups", "ffdhe2048"], False),
])
def test_tls_profile_probed_with_s_client(server_factory, certs, args, ok):
    """Issue 12 item 9: TLS 1.2 offers only ECDHE + AEAD (Mozilla intermediate), and both
    versions only X25519, P-256, P-384 (the CI check; testssl.sh is `make testssl`)."""
    srv = server_factory("wss", "--app", "echo")
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-CAfile", str(certs / "ca.pem"),
                        "-servername", "localhost", *args], input=b"", capture_output=True, timeout=20)
    out = r.stdout.decode(errors="replace")
    # s_client prints "Cipher is (NONE)" for a refused handshake, the suite for a completed one.
    agreed = "Cipher is " in out and "Cipher is (NONE)" not in out
    assert agreed == ok, out[-1500:] + r.stderr.decode(errors="replace")[-800:]


def test_openssl_records_flag_keeps_openssl_and_sends_a_ticket(server_factory, client_ssl):
    srv = server_factory("wss", "--app", "echo", "--openssl-records")
    sock = tls_connect(srv, client_ssl)
    reader = upgrade_on(sock)
    echo_round_trips(sock, reader)
    assert sock.session.has_ticket, "with OpenSSL's record layer one session ticket is sent"
    close_cleanly(sock, reader)


def test_tls12_client_is_served_by_openssl_records(server_factory, certs):
    srv = server_factory("wss", "--app", "echo")
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    sock = tls_connect(srv, ctx)
    assert sock.version() == "TLSv1.2"
    reader = upgrade_on(sock)
    echo_round_trips(sock, reader)
    close_cleanly(sock, reader)


def test_key_update_from_openssl_s_client(server_factory, certs):
    """RFC 8446 §4.6.3: the client updates its keys and asks the server to (s_client's 'K'
    command); the server answers with its own KeyUpdate and echoes under the new keys."""
    srv = server_factory("wss", "--app", "echo")
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-CAfile",
                          str(certs / "ca.pem"), "-servername", "localhost", "-msg", "-tls1_3"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        req, _ = upgrade_request("/")
        p.stdin.write(req.encode())
        p.stdin.flush()
        time.sleep(0.5)
        p.stdin.write(b"K\n")  # s_client: KeyUpdate with update_requested
        p.stdin.flush()
        time.sleep(0.3)
        payload = b"echo after KeyUpdate"
        p.stdin.write(build_frame(OP_TEXT, payload))
        p.stdin.flush()
        time.sleep(0.7)
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=10)
    assert b"101 Switching Protocols" in out
    lines = out.decode(errors="replace").splitlines()
    assert any(">>> TLS 1.3, Handshake" in l and "KeyUpdate" in l for l in lines), "s_client sent no KeyUpdate"
    assert any("<<< TLS 1.3, Handshake" in l and "KeyUpdate" in l for l in lines), "server did not update its keys"
    assert payload in out, "no echo after the key update"
    assert srv.alive()


def _upgraded_raw(srv, client_ssl):
    sock = tls_connect(srv, client_ssl)
    reader = upgrade_on(sock)
    raw = socket.socket(fileno=os.dup(sock.fileno()))  # the TCP stream under TLS
    return sock, reader, raw


@pytest.mark.parametrize("garbage, logged, alert", [
    # An application_data record whose tag cannot verify.
    (bytes([23, 3, 3, 0, 40]) + os.urandom(40), "bad_record_mac", "ALERT_BAD_RECORD_MAC"),
    # A plaintext handshake record after the handshake.
    (bytes([22, 3, 3, 0, 4, 1, 0, 0, 0]), "unexpected TLS message", "ALERT_UNEXPECTED_MESSAGE"),
    # Longer than 2^14 + 256: refused from the header alone.
    (bytes([23, 3, 3, 0x48, 0x00]), "record_overflow", "ALERT_RECORD_OVERFLOW"),
])
def test_bad_records_get_an_alert_and_a_log_line(server_factory, client_ssl, garbage, logged, alert):
    srv = server_factory("wss", "--app", "echo", "--log-level", "debug")
    other = tls_connect(srv, client_ssl)
    other_reader = upgrade_on(other)
    sock, reader, raw = _upgraded_raw(srv, client_ssl)
    raw.sendall(garbage)
    raw.close()
    # The server sends a fatal alert and closes: the client's TLS layer reports it.
    with pytest.raises(ssl.SSLError) as info:
        sock.settimeout(5)
        while sock.recv(100):
            pass
    assert alert in str(info.value), info.value
    sock.close()
    deadline = time.time() + 5
    while logged not in srv.stderr() and time.time() < deadline:
        time.sleep(0.05)
    assert logged in srv.stderr(), srv.stderr()[-2000:]
    # Other connections are unharmed.
    echo_round_trips(other, other_reader, sizes=(10,))
    close_cleanly(other, other_reader)


def _memory_bio_client(srv, client_ssl):
    """A TLS client over memory BIOs (the version is client_ssl's): its records are ours to send however we like."""
    out, inc = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ssl.wrap_bio(inc, out, server_hostname="localhost")
    raw = socket.create_connection((srv.host, srv.port), timeout=5)
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            raw.sendall(out.read())
            data = raw.recv(65536)
            assert data
            inc.write(data)
    raw.sendall(out.read())
    return obj, inc, out, raw


def _read_plaintext(obj, inc, raw, want: int) -> tuple[bytes, Exception | None]:
    got = b""
    raw.settimeout(5)
    while len(got) < want:
        try:
            got += obj.read(65536)
            continue
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as e:
            return got, e
        data = raw.recv(65536)
        if not data:
            break
        inc.write(data)
    return got, None


@pytest.mark.parametrize("bad, alert", [
    (bytes([23, 3, 3, 0, 40]) + bytes(40), "BAD_RECORD_MAC"),
    (bytes([22, 3, 3, 0, 4, 1, 0, 0, 0]), "UNEXPECTED_MESSAGE"),
], ids=["bad_mac", "wrong_type"])
def test_good_records_before_a_bad_one_are_answered_before_the_alert(server_factory, client_ssl, bad, alert):
    """Three good records (each a WebSocket frame) and a bad record in ONE write: the server's
    own record layer opens the good ones, the echo answers all three, and only then comes the
    fatal alert (RFC 8446 §6.2). Before, the good records of that read were dropped."""
    srv = server_factory("wss", "--app", "echo")
    obj, inc, out, raw = _memory_bio_client(srv, client_ssl)
    assert obj.version() == "TLSv1.3"
    req, key = upgrade_request("/")
    obj.write(req.encode())
    raw.sendall(out.read())
    head, _ = _read_plaintext(obj, inc, raw, 1)
    while b"\r\n\r\n" not in head:
        more, _ = _read_plaintext(obj, inc, raw, 1)
        assert more
        head += more
    assert head.startswith(b"HTTP/1.1 101"), head
    payloads = [b"first", b"second", b"third"]
    for p in payloads:
        obj.write(build_frame(OP_TEXT, p))  # one record each
    raw.sendall(out.read() + bad)
    expected = b"".join(build_frame(OP_TEXT, p, mask=False) for p in payloads)
    got, err = _read_plaintext(obj, inc, raw, len(expected) + 1)
    assert got == expected, got
    assert err is not None and alert in str(err), err
    raw.close()
    assert srv.alive()


@pytest.mark.parametrize("bad, alert", [
    (bytes([23, 3, 3, 0, 40]) + bytes(40), "BAD_RECORD_MAC"),
], ids=["bad_mac"])
def test_a_large_message_read_in_place_is_answered_before_the_alert(server_factory, client_ssl, bad, alert):
    """A 700 KB message whose payload the server decrypts straight into the message buffer
    (it is inside a large frame when the rest arrives), its last records and a bad record in
    one write: the whole message is echoed intact, then comes the alert."""
    srv = server_factory("wss", "--app", "echo")
    obj, inc, out, raw = _memory_bio_client(srv, client_ssl)
    req, key = upgrade_request("/")
    obj.write(req.encode())
    raw.sendall(out.read())
    head, _ = _read_plaintext(obj, inc, raw, 1)
    while b"\r\n\r\n" not in head:
        more, _ = _read_plaintext(obj, inc, raw, 1)
        assert more
        head += more
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = os.urandom(700_000)
    wire = build_frame(OP_BIN, payload)
    obj.write(wire[:100_000])
    raw.sendall(out.read())
    time.sleep(0.3)  # the server reads the start: it is inside the frame, 600 KB to come
    obj.write(wire[100_000:])
    raw.sendall(out.read() + bad)
    expected = build_frame(OP_BIN, payload, mask=False)
    got, err = _read_plaintext(obj, inc, raw, len(expected) + 1)
    assert len(got) == len(expected) and got == expected, len(got)
    assert err is not None and alert in str(err), err
    raw.close()
    assert srv.alive()


def _s_client(srv, certs, *args, timeout=15):
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.port}", "-servername", "localhost",
                        "-CAfile", str(certs / "ca.pem"), "-tls1_3", "-ign_eof", *args],
                       input=b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                       capture_output=True, timeout=timeout)
    return r.stdout.decode(errors="replace")


def test_ticket_key_file_lets_two_servers_resume_each_others_sessions(server_factory, certs, tmp_path):
    """--ticket-key-file: two instances that share the secret file (a cluster behind a load
    balancer) accept each other's tickets; an instance with its own random secret does not."""
    key = tmp_path / "ticket.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    a = server_factory("wss", "--ticket-key-file", str(key))
    b = server_factory("wss", "--ticket-key-file", str(key))
    other = server_factory("wss")
    sess = tmp_path / "a.sess"
    first = _s_client(a, certs, "-sess_out", str(sess))
    assert "New, TLSv1.3" in first and "ok" in first, first[-1500:]
    assert sess.stat().st_size > 0, "s_client saved no session (no ticket from server a)"
    on_b = _s_client(b, certs, "-sess_in", str(sess))
    assert "Reused, TLSv1.3" in on_b, on_b[-1500:]
    on_other = _s_client(other, certs, "-sess_in", str(sess))
    assert "New, TLSv1.3" in on_other, on_other[-1500:]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_ticket_key_file_readable_by_others_is_refused(certs, tmp_path, mode):
    key = tmp_path / "ticket.key"
    key.write_bytes(os.urandom(32))
    key.chmod(mode)
    r = subprocess.run([str(SERVER_BIN), "--host", "127.0.0.1",
                        "--port", "0", "--cert", str(certs / "cert.pem"), "--key", str(certs / "key.pem"),
                        "--ticket-key-file", str(key)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("wss-server: error:") and "accessible by group or others" in lines[0], lines
    assert "chmod 600" in lines[0]


def test_wss_client_sends_close_notify_after_the_close_handshake(certs, tmp_path):
    """RFC 8446 §6.1: the client ends its TLS writing with close_notify of its own, not just a
    TCP FIN. A Python TLS server answers the upgrade and the close frame, keeps TCP open, and
    must then read a close_notify (recv() == b"") rather than an EOF without one (SSLEOFError)."""
    import base64, hashlib, threading
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(certs / "cert.pem"), str(certs / "key.pem"))
    ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # a bare FIN must be an error, not b""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen = {}

    def serve():
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True, suppress_ragged_eofs=False) as s:
            s.settimeout(10)
            reader = Reader(s)
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(4096)
            key = next(l.split(b":", 1)[1].strip() for l in head.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key"))
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            _, _, op, _, payload = read_frame(reader, timeout=10)
            s.sendall(build_frame(op, payload, mask=False))  # echo the message
            _, _, op, _, payload = read_frame(reader, timeout=10)
            seen["close"] = (op, payload[:2])
            s.sendall(build_frame(OP_CLOSE, payload[:2], mask=False))
            try:
                seen["after"] = s.recv(100)  # b"": close_notify
            except ssl.SSLError as e:
                seen["after"] = e

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    client = str(SERVER_BIN.parent / "wss-client")
    r = subprocess.run([client, f"wss://localhost:{port}/", "--ca", str(certs / "ca.pem"), "--count", "1"],
                       input=b"hello\n", capture_output=True, timeout=20)
    t.join(15)
    listener.close()
    assert r.returncode == 0, r
    assert b"hello" in r.stdout, r
    assert seen.get("close") == (OP_CLOSE, b"\x03\xe8"), seen
    assert seen.get("after") == b"", f"no close_notify from the client: {seen.get('after')!r}"
