"""Helpers and fixtures of the page tests (test_page.py, test_page_firefox.py,
test_nginx_fallback.py): certificates, a server started per test on an ephemeral port,
Chromium's NSS home trusting the CA, and a screenshot saved when a test fails. Imported by
name, not a conftest.py: Tests/integration's tests `from conftest import ...`, and a second
conftest module here would shadow theirs when both folders run in one pytest."""

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATE = REPO / "certs" / "generate.sh"
LISTEN_RE = re.compile(r"listening on (wss?)://127\.0\.0\.1:(\d+)\s*$")
ARTIFACTS = Path(os.environ.get("WSS_BROWSER_ARTIFACTS", "/tmp/wss-browser-artifacts"))


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60, **kw)


def nss_trust(db_dir: Path, ca_pem: Path):
    """Creates an NSS database in db_dir (cert9.db) trusting ca_pem for TLS servers."""
    certutil = shutil.which("certutil")
    assert certutil, "certutil not found (Debian: apt-get install libnss3-tools)"
    db_dir.mkdir(parents=True, exist_ok=True)
    run([certutil, "-d", f"sql:{db_dir}", "-N", "--empty-password"])
    run([certutil, "-d", f"sql:{db_dir}", "-A", "-t", "C,,", "-n", "wss-server-test-ca", "-i", str(ca_pem)])
    assert "wss-server-test-ca" in run([certutil, "-d", f"sql:{db_dir}", "-L"]).stdout


class Server:
    """wss-server started by a test; `restart()` brings it back on the same port."""

    def __init__(self, certs: Path, tmp: Path, args):
        self.binary = os.environ.get("WSS_SERVER", str(REPO / ".build" / "release" / "wss-server"))
        assert os.access(self.binary, os.X_OK), f"server binary {self.binary} not found (swift build -c release)"
        self.certs, self.tmp, self.args = certs, tmp, list(args)
        self.port, self.proc, self.runs = 0, None, 0
        self.start()

    def start(self):
        self.runs += 1
        self.stderr_path = self.tmp / f"server{self.runs}.stderr"
        cmd = [self.binary, "--host", "127.0.0.1", "--port", str(self.port)]
        if self.certs is not None:
            cmd += ["--cert", str(self.certs / "cert.pem"), "--key", str(self.certs / "key.pem")]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(cmd + self.args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, start_new_session=True)
        lines = queue.Queue()

        def pump(proc=self.proc):
            for raw in proc.stdout:
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            m = LISTEN_RE.search(line)
            if m:
                self.scheme, self.port = m.group(1), int(m.group(2))
                return
        self.stop()
        pytest.fail(f"server did not start: {self.stderr_tail()}")

    @property
    def origin(self):
        return f"{'https' if self.scheme == 'wss' else 'http'}://localhost:{self.port}"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def restart(self):
        self.stop()
        self.start()

    def stderr_tail(self, n=30):
        try:
            return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:]) or "(empty)"
        except OSError:
            return "(no stderr)"


class failure_watch:
    """Made at a fixture's setup; at teardown, `failed()` tells whether the test failed (the
    session's failure count grows when the call phase's report is logged, before teardown)."""

    def __init__(self, request):
        self.request, self.before = request, request.session.testsfailed

    def failed(self):
        return self.request.session.testsfailed > self.before


def save_failure_screenshot(watch, take):
    """Calls take(path) if the watched test failed; prints the path."""
    if not watch.failed():
        return
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]", "_", watch.request.node.name) + ".png")
    try:
        take(path)
        print(f"\nscreenshot of the failed page: {path}")
    except Exception as exc:  # the browser may be gone
        print(f"\nno screenshot ({exc})")


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    run(["bash", str(GENERATE), str(out)])
    return out


@pytest.fixture(scope="module")
def chromium_home(certs, tmp_path_factory):
    home = tmp_path_factory.mktemp("chromium-home")
    nss_trust(home / ".pki" / "nssdb", certs / "ca.pem")
    return home


@pytest.fixture
def start_server(certs, tmp_path):
    started = []

    def start(*args, tls=True):
        srv = Server(certs if tls else None, tmp_path, args)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


