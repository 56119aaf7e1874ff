"""Command line behaviour: startup line, cert/key handling, port in use, signals."""
from __future__ import annotations

import asyncio
import re
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import SERVER_BIN, start_process
from wsutil import run, ws_connect


def run_fail(args, timeout=5.0):
    """Run the server expecting it to exit by itself; returns (rc, stdout, stderr)."""
    if not SERVER_BIN.is_file():
        pytest.fail(f"server binary not found: {SERVER_BIN}", pytrace=False)
    proc = subprocess.Popen([str(SERVER_BIN), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=5)
        pytest.fail(f"server {args} still running after {timeout}s (expected an error exit); "
                    f"stdout={out!r} stderr={err[-2000:]!r}")
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def assert_clean_error(rc, out, err, must_mention):
    assert rc != 0, f"exit code 0; stderr={err!r}"
    assert rc > 0, f"killed by signal {-rc} (crash?); stderr={err[-2000:]!r}"
    assert "listening on" not in out
    for bad in ("Fatal error", "Stack", "Backtrace", "Segmentation", "💣", "Current stack trace"):
        assert bad not in err, f"crash-like output in stderr: {err[-2000:]!r}"
    assert must_mention in err, f"stderr does not mention {must_mention!r}: {err!r}"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 5, f"expected a short error message, got {len(lines)} lines: {err[-2000:]!r}"


def reply_roundtrip(srv):
    async def go():
        async with ws_connect(srv) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 5) == "hi响应"
    run(go())


# ---------------------------------------------------------------- startup line

@pytest.mark.parametrize("sch", ["ws", "wss"])
def test_listening_line_format(server_factory, sch):
    srv = server_factory(sch)
    assert re.fullmatch(rf"listening on {sch}://127\.0\.0\.1:\d+", srv.line), srv.line
    assert 0 < srv.port < 65536
    reply_roundtrip(srv)


def test_ipv6_listening_line(server_factory):
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv = server_factory("ws", host="::1")
    assert re.fullmatch(r"listening on ws://\[::1\]:\d+", srv.line), srv.line
    reply_roundtrip(srv)


# ---------------------------------------------------------------- certificates

def test_nonexistent_cert(tmp_path):
    rc, out, err = run_fail(["--host", "127.0.0.1", "--port", "0", "--cert", "/nonexistent.pem"])
    assert_clean_error(rc, out, err, "/nonexistent.pem")


def test_nonexistent_key(certs):
    rc, out, err = run_fail(["--host", "127.0.0.1", "--port", "0", "--cert", str(certs / "cert.pem"),
                             "--key", "/nonexistent-key.pem"])
    assert_clean_error(rc, out, err, "/nonexistent-key.pem")


def test_cert_file_is_garbage(tmp_path, certs):
    bad = tmp_path / "garbage.pem"
    bad.write_text("this is not a certificate\n")
    rc, out, err = run_fail(["--host", "127.0.0.1", "--port", "0", "--cert", str(bad),
                             "--key", str(certs / "key.pem")])
    assert_clean_error(rc, out, err, "garbage.pem")


def test_mismatched_key(tmp_path, certs):
    other = tmp_path / "other-key.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(other)], check=True, capture_output=True, timeout=30)
    rc, out, err = run_fail(["--host", "127.0.0.1", "--port", "0", "--cert", str(certs / "cert.pem"),
                             "--key", str(other)])
    assert rc > 0, f"rc={rc}, stderr={err!r}"
    assert "key" in err.lower(), f"unclear message: {err!r}"
    assert_clean_error(rc, out, err, "")
    assert ("match" in err.lower() or "other-key.pem" in err), f"message does not say what is wrong: {err!r}"


def test_cert_alone_uses_key_pem_beside_it(tmp_path, certs, server_factory):
    d = tmp_path / "pair"
    d.mkdir()
    shutil.copy(certs / "cert.pem", d / "cert.pem")
    shutil.copy(certs / "key.pem", d / "key.pem")
    srv = server_factory("wss", cert_args=["--cert", str(d / "cert.pem")])
    reply_roundtrip(srv)


def test_cert_alone_combined_file(tmp_path, certs, server_factory):
    d = tmp_path / "combined"
    d.mkdir()
    (d / "both.pem").write_text((certs / "cert.pem").read_text() + (certs / "key.pem").read_text())
    srv = server_factory("wss", cert_args=["--cert", str(d / "both.pem")])
    reply_roundtrip(srv)


def test_cert_alone_without_any_key(tmp_path, certs):
    d = tmp_path / "nokey"
    d.mkdir()
    shutil.copy(certs / "cert.pem", d / "cert.pem")
    rc, out, err = run_fail(["--host", "127.0.0.1", "--port", "0", "--cert", str(d / "cert.pem")])
    assert_clean_error(rc, out, err, "key")


# ---------------------------------------------------------------- port / args

@pytest.mark.parametrize("tls", [False, True])
def test_port_in_use(certs, tls):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        args = ["--host", "127.0.0.1", "--port", str(port)]
        if tls:
            args += ["--cert", str(certs / "cert.pem"), "--key", str(certs / "key.pem")]
        rc, out, err = run_fail(args)
        assert_clean_error(rc, out, err, str(port))
    finally:
        blocker.close()


@pytest.mark.parametrize("args", [["--app", "bogus"], ["--port", "notaport"], ["--port", "70000"],
                                  ["--max-message-size", "-5"], ["--no-such-flag"]])
def test_invalid_arguments_exit_nonzero(args):
    rc, out, err = run_fail(["--host", "127.0.0.1", "--port", "0", *args])
    assert rc > 0, f"rc={rc} for {args}; stderr={err!r}"
    assert "listening on" not in out
    assert "Fatal error" not in err and err.strip(), err


def _tool(name):
    path = SERVER_BIN.parent / name
    if not path.is_file():
        pytest.fail(f"{name} not found beside {SERVER_BIN}", pytrace=False)
    return str(path)


@pytest.mark.parametrize("tool, args", [
    ("wss-server", ["--no-such-flag"]), ("wss-server", ["--port", "notaport"]), ("wss-server", ["--port", "70000"]),
    ("wss-server", ["--app", "bogus"]), ("wss-server", ["--threads", "0"]), ("wss-server", ["--port"]),
    ("wss-server", ["--key", "k.pem"]), ("wss-server", ["--ticket-key-file", "t.key"]),
    ("wss-server", ["--config", "/nonexistent/wss.toml"]),
    ("wss-client", ["--no-such-flag", "ws://127.0.0.1:1/"]), ("wss-client", []),
    ("wss-client", ["not a url"]),
    ("wss-bench", ["--no-such-flag", "ws://127.0.0.1:1/"]), ("wss-bench", []),
    ("wss-bench", ["--connections", "abc", "ws://127.0.0.1:1/"]),
])
def test_every_bad_flag_is_one_line_and_exit_1(tool, args):
    """COMMON rule: an ordinary error of a tool is ONE line, "TOOL: error: reason", and exit
    status 1 (not ArgumentParser's 64 and its usage block); --help still exits 0."""
    r = subprocess.run([_tool(tool), *args], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    assert r.returncode == 1, f"{tool} {args}: rc={r.returncode}; stderr={r.stderr!r}"
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{tool} {args}: {r.stderr!r}"
    assert lines[0].startswith(f"{tool}: error: "), lines[0]
    assert "Usage:" not in r.stderr + r.stdout


@pytest.mark.parametrize("tool, args", [
    ("wss-server", ["--port", "0"]), ("wss-client", ["ws://127.0.0.1:1/"]),
    ("wss-bench", ["--duration", "0.1", "ws://127.0.0.1:1/"]),
])
def test_bad_wss_io_is_one_line_and_exit_1(tool, args):
    """WSS_IO names the event-loop backend for every tool: a value that names none is an
    error, not a silent epoll."""
    import os
    env = dict(os.environ, WSS_IO="io-urnig")
    r = subprocess.run([_tool(tool), *args], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL,
                       env=env)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1, f"{tool}: rc={r.returncode} {r.stderr!r}"
    assert lines[0].startswith(f"{tool}: error: ") and "WSS_IO" in lines[0] and "io-urnig" in lines[0], lines[0]


@pytest.mark.parametrize("tool", ["wss-server", "wss-client", "wss-bench"])
def test_help_exits_0(tool):
    r = subprocess.run([_tool(tool), "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "USAGE:" in r.stdout.upper(), r


# ---------------------------------------------------------------- signals

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("sch", ["ws", "wss"])
def test_signal_stops_server(tmp_path, certs, sig, sch):
    args = ["--host", "127.0.0.1", "--port", "0"]
    if sch == "wss":
        args += ["--cert", str(certs / "cert.pem"), "--key", str(certs / "key.pem")]
    proc, line = start_process(args, tmp_path / "sig.stderr")
    try:
        assert line and line.startswith(f"listening on {sch}://"), line
        port = int(line.rsplit(":", 1)[1])
        # an open idle connection must not keep the server alive
        idle = socket.create_connection(("127.0.0.1", port), timeout=5)
        proc.send_signal(sig)
        try:
            rc = proc.wait(5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server ignored {sig.name} for 5s")
        assert rc in (0, -sig, 128 + sig), rc
        idle.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


# ---------------------------------------------------------------- timeouts

@pytest.mark.parametrize("sch", ["ws", "wss"])
def test_handshake_timeout_drops_silent_and_partial_clients(server_factory, sch):
    from wsutil import raw_connect, recv_until_closed
    srv = server_factory(sch, "--handshake-timeout", "1")
    silent = raw_connect(srv)
    partial = raw_connect(srv)
    try:
        partial.sendall(b"GET /chatsocket HTTP/1.1\r\nHost: localhost\r\n")  # never finished
        for s in (silent, partial):
            data, closed = recv_until_closed(s, 6)
            assert closed, "connection without a complete handshake survived the handshake timeout"
    finally:
        silent.close()
        partial.close()
    reply_roundtrip(srv)  # a fast client is unaffected


@pytest.mark.parametrize("sch", ["ws", "wss"])
def test_idle_timeout_pings_and_responsive_client_survives(server_factory, sch):
    from wsutil import OP_PING, read_frame, ws_handshake
    srv = server_factory(sch, "--app", "echo", "--idle-timeout", "1")
    # A raw client that stays silent sees a ping (or is dropped) within a few seconds.
    sock, reader = ws_handshake(srv)
    try:
        try:
            fin, rsv, op, masked, payload = read_frame(reader, timeout=6)
            assert op == OP_PING, f"expected a ping from the idle server, got opcode {op}"
        except EOFError:
            pass  # dropped without a ping: also acceptable idle handling
    finally:
        sock.close()

    async def go():  # websockets answers pings automatically, so this one must stay open
        async with ws_connect(srv, ping_interval=None) as ws:
            await asyncio.sleep(3.5)
            await ws.send("still alive")
            assert await asyncio.wait_for(ws.recv(), 5) == "still alive"
    run(go())


# ---------------------------------------------------------------- TLS sanity

def test_wss_cert_verified_and_untrusted_rejected(server_factory):
    import ssl
    from wsutil import raw_connect
    srv = server_factory("wss")
    tls = raw_connect(srv)  # verified against ca.pem as "localhost"
    try:
        peer = tls.getpeercert()
        sans = {v for _, v in peer.get("subjectAltName", ())}
        assert {"localhost", "127.0.0.1"} <= sans, peer
        assert tls.version() in ("TLSv1.2", "TLSv1.3"), tls.version()
    finally:
        tls.close()
    plain_ctx = ssl.create_default_context()  # system roots only: must not trust our CA
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        plain_ctx.wrap_socket(s, server_hostname="localhost")
    s.close()


def test_plain_http_on_tls_port_not_served(server_factory):
    from wsutil import recv_until_closed
    srv = server_factory("wss")
    s = socket.create_connection((srv.host, srv.port), timeout=5)
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data, closed = recv_until_closed(s, 6)
        assert b"\r\n\r\nok" not in data and not data.startswith(b"HTTP/1.1 200"), data[:200]
        assert closed, "server kept a plaintext connection on the TLS port open"
    finally:
        s.close()
    reply_roundtrip(srv)


def test_password_on_the_command_line_is_warned_about_and_never_printed(tmp_path):
    """A --backplane password on the command line is readable by any local user (ps): one
    warning line that points to --backplane-password-file and a 0600 --config file, without the secret; from a config file,
    no warning."""
    secret = "s3cr3t-pw"
    r = subprocess.run([str(SERVER_BIN), "--backplane", f"redis://:{secret}@127.0.0.1:1/0", "--print-config"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r
    warnings = [l for l in r.stderr.splitlines() if "warning" in l]
    assert len(warnings) == 1 and "--config" in warnings[0] and "ps" in warnings[0], r.stderr
    assert "--backplane-password-file" in warnings[0], r.stderr
    assert secret not in r.stderr
    r = subprocess.run([str(SERVER_BIN), f"--backplane=redis://user:{secret}@127.0.0.1:1", "--print-config"],
                       capture_output=True, text=True, timeout=10)
    assert "warning" in r.stderr and secret not in r.stderr, r.stderr
    conf = tmp_path / "wss.toml"
    conf.write_text(f'backplane = "redis://:{secret}@127.0.0.1:1/0"\n')
    conf.chmod(0o600)
    r = subprocess.run([str(SERVER_BIN), "--config", str(conf), "--print-config"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "warning" not in r.stderr, r
    r = subprocess.run([str(SERVER_BIN), "--backplane", "redis://127.0.0.1:1/0", "--print-config"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "warning" not in r.stderr, r


def test_print_config_never_prints_a_secret(tmp_path, monkeypatch, certs):
    """--print-config round-trips the settings but no secret: a URL password (from the command
    line or a --config file) becomes a placeholder with a comment saying where the password must
    come from; the password file, WSS_BACKPLANE_PASSWORD, the ticket key and the TLS key are
    shown as paths or not at all."""
    import tomllib
    secret = "s3cr3t-" + "pw42"
    pwfile = tmp_path / "redis.pw"
    pwfile.write_text("file-" + secret + "\n")
    pwfile.chmod(0o600)
    ticket = tmp_path / "ticket.key"
    ticket.write_bytes(b"T" * 32)
    ticket.chmod(0o600)
    conf = tmp_path / "wss.toml"
    conf.write_text(f'backplane = "redis://ops:{secret}@127.0.0.1:1/0"\n')
    conf.chmod(0o600)
    for args in (["--backplane", f"redis://:{secret}@127.0.0.1:1/0"],
                 ["--backplane", f"redis://ops:{secret}@[::1]:6380/2"],
                 ["--config", str(conf)]):
        r = subprocess.run([str(SERVER_BIN), *args, "--print-config"], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r
        assert secret not in r.stdout and secret not in r.stderr, r.stdout
        comments = [l for l in r.stdout.splitlines() if l.startswith("#")]
        assert len(comments) == 1 and "backplane-password-file" in comments[0] \
            and "WSS_BACKPLANE_PASSWORD" in comments[0], r.stdout
        printed = tomllib.loads(r.stdout)["backplane"]
        assert printed.startswith("redis://") and "(redacted)@" in printed, printed
        again = tmp_path / "again.toml"
        again.write_text(r.stdout)
        r2 = subprocess.run([str(SERVER_BIN), "--config", str(again), "--print-config"],
                            capture_output=True, text=True, timeout=10)
        assert r2.returncode == 0 and r2.stdout == r.stdout, r2
    # The placeholder itself is never sent as a password: without another source, one line, exit 1.
    r = subprocess.run([str(SERVER_BIN), "--config", str(again), "--port", "0"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "(redacted)" in r.stderr \
        and "--backplane-password-file" in r.stderr, r
    monkeypatch.setenv("WSS_BACKPLANE_PASSWORD", "env-" + secret)
    r = subprocess.run([str(SERVER_BIN), "--cert", str(certs / "cert.pem"), "--ticket-key-file", str(ticket),
                        "--backplane", "redis://127.0.0.1:1/0", "--backplane-password-file", str(pwfile),
                        "--print-config"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r
    assert secret not in r.stdout + r.stderr and "TTTT" not in r.stdout, r.stdout
    out = tomllib.loads(r.stdout)
    assert out["backplane-password-file"] == str(pwfile) and out["ticket-key-file"] == str(ticket), out
    assert "PRIVATE KEY" not in r.stdout


@pytest.mark.parametrize("flag,value,bounds", [
    ("--backplane-ready-timeout", v, "0–300") for v in ["-1", "301", "nan"]] + [
    ("--backplane-reply-timeout", v, "0.5–300") for v in ["0", "0.4", "301", "nan"]] + [
    ("--backplane-keepalive", v, "0 (off) or 0.5–3600") for v in ["-1", "0.4", "3601", "nan"]])
def test_backplane_timeout_out_of_range_is_refused_by_name(flag, value, bounds):
    r = subprocess.run([str(SERVER_BIN), "--port", "0", f"{flag}={value}"],
                       capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1 and len(lines) == 1, r
    assert f"{flag} must be {bounds} seconds" in lines[0], lines[0]


def test_a_silent_redis_holds_the_start_for_the_bound_then_warns(server_factory):
    """A Redis that accepts TCP but never answers the login (AUTH): the server waits
    --backplane-ready-timeout before it listens, then listens anyway with one warning."""
    import time
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # the kernel completes the handshakes; nobody ever reads
    try:
        began = time.monotonic()
        srv = server_factory("ws", "--backplane", f"redis://:pw@127.0.0.1:{silent.getsockname()[1]}",
                             "--backplane-ready-timeout", "0.5")
        took = time.monotonic() - began
        assert took >= 0.5, f"listening after {took:.2f} s: the start did not wait"
        warned = [ln for ln in srv.stderr().splitlines() if "backplane not connected after 0.5 s" in ln]
        assert len(warned) == 1 and "recoveries report incomplete" in warned[0], srv.stderr()
    finally:
        silent.close()


def test_a_refused_redis_does_not_hold_the_start(server_factory):
    """Redis down (refused at once) is an outage from the start: no wait, no readiness warning."""
    import time
    began = time.monotonic()
    srv = server_factory("ws", "--backplane", "redis://127.0.0.1:1", "--backplane-ready-timeout", "20")
    assert time.monotonic() - began < 5
    assert "cannot reach" in srv.stderr() and "backplane not connected" not in srv.stderr(), srv.stderr()
