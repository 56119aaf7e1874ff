"""Fixtures for driving the real wss-server binary over real sockets.

Env: WSS_SERVER (default <repo>/.build/release/wss-server).
"""
from __future__ import annotations

import os
import queue
import re
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[2]
SERVER_BIN = Path(os.environ.get("WSS_SERVER", REPO / ".build" / "release" / "wss-server"))
GENERATE = REPO / "certs" / "generate.sh"
LISTEN_RE = re.compile(r"^listening on (wss?)://(\[[0-9a-fA-F:.]+\]|[^:/\s]+):(\d+)$")
START_TIMEOUT = 10.0


class Server:
    def __init__(self, proc: subprocess.Popen, line: str, stderr_path: Path, client_ssl):
        m = LISTEN_RE.match(line)
        assert m, f"unexpected first stdout line: {line!r}"
        self.proc = proc
        self.line = line
        self.scheme = m.group(1)
        self.url_host = m.group(2)
        self.host = self.url_host.strip("[]")
        self.port = int(m.group(3))
        self.url = f"{self.scheme}://{self.url_host}:{self.port}"
        self.stderr_path = stderr_path
        self.client_ssl = client_ssl

    @property
    def tls(self) -> bool:
        return self.scheme == "wss"

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _require_binary():
    if not SERVER_BIN.is_file() or not os.access(SERVER_BIN, os.X_OK):
        pytest.fail(f"server binary not found: {SERVER_BIN} (build with `swift build -c release` "
                    f"or set WSS_SERVER)", pytrace=False)


def start_process(args, stderr_path: Path, timeout: float = START_TIMEOUT):
    """Start the binary; return (proc, first stdout line or None, exited?)."""
    _require_binary()
    errf = open(stderr_path, "wb")
    proc = subprocess.Popen([str(SERVER_BIN), *args], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=errf)
    errf.close()
    lines: queue.Queue = queue.Queue()

    def pump():  # keeps draining stdout so the server never blocks on it
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace").rstrip("\r\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        line = lines.get(timeout=timeout)
    except queue.Empty:
        line = None
    return proc, line


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Path:
    """ca.pem/ca.key/cert.pem/key.pem made once per session by certs/generate.sh."""
    d = tmp_path_factory.mktemp("certs")
    assert GENERATE.is_file(), f"missing {GENERATE}"
    r = subprocess.run(["bash", str(GENERATE), str(d)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"generate.sh failed: {r.stdout}\n{r.stderr}"
    for f in ("ca.pem", "ca.key", "cert.pem", "key.pem"):
        assert (d / f).is_file(), f"generate.sh did not write {f}"
    return d


@pytest.fixture(scope="session")
def client_ssl(certs) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


@pytest.fixture
def server_factory(certs, client_ssl, tmp_path):
    """start(scheme="ws", *extra_args, cert_args=None, host="127.0.0.1") -> Server."""
    started: list[Server] = []
    counter = [0]

    def start(scheme: str = "ws", *extra: str, cert_args=None, host: str = "127.0.0.1") -> Server:
        args = ["--host", host, "--port", "0"]
        if scheme == "wss":
            args += cert_args if cert_args is not None else [
                "--cert", str(certs / "cert.pem"), "--key", str(certs / "key.pem")]
        args += list(extra)
        counter[0] += 1
        errp = tmp_path / f"server{counter[0]}.stderr"
        proc, line = start_process(args, errp)
        if line is None:
            proc.kill()
            proc.wait(5)
            pytest.fail(f"server {args} did not print 'listening on' within {START_TIMEOUT}s; "
                        f"exit={proc.returncode}; stderr:\n{errp.read_text(errors='replace')[-3000:]}")
        try:
            srv = Server(proc, line, errp, client_ssl)
        except AssertionError:
            proc.kill()
            proc.wait(5)
            raise
        started.append(srv)
        assert srv.scheme == scheme, f"asked for {scheme}, server says {line!r}"
        return srv

    yield start
    for s in started:
        s.stop()


@pytest.fixture(params=["ws", "wss"])
def scheme(request) -> str:
    return request.param


@pytest.fixture
def server(server_factory, scheme) -> Server:
    """Default server (reply app) over ws and wss."""
    return server_factory(scheme)


@pytest.fixture
def echo_server(server_factory, scheme) -> Server:
    return server_factory(scheme, "--app", "echo")
