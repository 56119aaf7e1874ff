"""`make run` says what to open and how to trust the CA; `make trust-ca` and the README's
one-liner trust certs/ca.pem in a fresh Chromium NSS db and in Firefox profiles (issue 15)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess

import pytest

from conftest import REPO, SERVER_BIN

pytestmark = pytest.mark.skipif(shutil.which("certutil") is None, reason="certutil (libnss3-tools) not installed")


def trusted(db) -> bool:
    out = subprocess.run(["certutil", "-d", f"sql:{db}", "-L"], capture_output=True, text=True).stdout
    return re.search(r"^wss-server-ca\s+C,,", out, re.M) is not None


def test_make_run_prints_url_and_trust_command():
    # SWIFT=true: the binary under test is already built (WSS_SERVER); port 0: never a fixed port.
    proc = subprocess.Popen(["make", "-s", "-C", str(REPO), "run", "SWIFT=true", f"BIN={SERVER_BIN}",
                             "RUN_ARGS=--host 127.0.0.1 --port 0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        lines = []
        for _ in range(20):
            line = proc.stdout.readline().decode()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if line.startswith("open "):
                break
        listening = next(l for l in lines if l.startswith("listening on wss://"))
        port = listening.rsplit(":", 1)[1]
        hint = lines[lines.index(listening) + 1]
        assert hint.startswith(f"open https://localhost:{port}/") and "make trust-ca" in hint, hint
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_trust_ca_fresh_home_and_firefox_profile(tmp_path):
    profile = tmp_path / ".mozilla" / "firefox" / "abcd.default-release"
    profile.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{profile}", "--empty-password"], check=True)
    (tmp_path / ".mozilla" / "firefox" / "no-db").mkdir()          # not a profile: skipped
    r = subprocess.run(["make", "-s", "-C", str(REPO), "trust-ca", f"HOME={tmp_path}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert trusted(tmp_path / ".pki" / "nssdb"), "Chromium's NSS db (created fresh) lacks the CA"
    assert trusted(profile), "Firefox profile lacks the CA"
    assert not (tmp_path / ".mozilla" / "firefox" / "no-db" / "cert9.db").exists()
    again = subprocess.run(["make", "-s", "-C", str(REPO), "trust-ca", f"HOME={tmp_path}"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr                     # idempotent


def test_readme_one_liner_on_a_fresh_profile(tmp_path):
    readme = (REPO / "README.md").read_text()
    m = re.search(r"`(mkdir -p ~/\.pki/nssdb && certutil [^`]+)`", readme)
    assert m, "README lost its trust one-liner"
    subprocess.run(["make", "-s", "-C", str(REPO), "certs"], check=True, capture_output=True)
    r = subprocess.run(["sh", "-c", m.group(1)], cwd=REPO, env=dict(os.environ, HOME=str(tmp_path)),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert trusted(tmp_path / ".pki" / "nssdb")
