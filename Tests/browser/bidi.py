"""A small WebDriver BiDi client for headless Firefox (Debian ships no geckodriver).

Firefox started with `--remote-debugging-port 0` prints "WebDriver BiDi listening on
ws://127.0.0.1:PORT"; we open ws://.../session and speak the W3C WebDriver BiDi protocol
(https://w3c.github.io/webdriver-bidi/): session.new, browsingContext.navigate,
script.evaluate, browsingContext.captureScreenshot. Only what the page tests need.
"""

import base64
import itertools
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from websockets.sync.client import connect

FIREFOX = os.environ.get("FIREFOX_BINARY", "/usr/bin/firefox-esr")
LISTEN_RE = re.compile(r"WebDriver BiDi listening on (ws://\S+)")


class BiDiError(RuntimeError):
    pass


class Firefox:
    """Headless Firefox with a private profile (cert9.db there decides which CAs it trusts)."""

    def __init__(self, profile: Path, width=1024, height=768, start_timeout=60.0):
        self.profile = profile
        self.stderr_path = profile.parent / (profile.name + ".stderr")
        (profile / "user.js").write_text(
            'user_pref("browser.shell.checkDefaultBrowser", false);\n'
            'user_pref("datareporting.policy.dataSubmissionEnabled", false);\n'
            'user_pref("network.proxy.type", 0);\n'
            'user_pref("browser.startup.homepage_override.mstone", "ignore");\n')
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [FIREFOX, "--headless", "--no-remote", "--profile", str(profile),
             f"--width={width}", f"--height={height}", "--remote-debugging-port", "0", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._err, start_new_session=True)
        url = self._wait_for_endpoint(start_timeout)
        self._conn = connect(url + "/session", max_size=64 << 20, open_timeout=20)
        self.ws = self._conn.__enter__()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.command("session.new", {"capabilities": {"alwaysMatch": {"acceptInsecureCerts": False}}})
        tree = self.command("browsingContext.getTree", {})
        self.context = tree["contexts"][0]["context"]

    def _wait_for_endpoint(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BiDiError(f"firefox exited ({self.proc.returncode}): {self.stderr_tail()}")
            m = LISTEN_RE.search(self.stderr_path.read_text(errors="replace"))
            if m:
                return m.group(1)
            time.sleep(0.1)
        raise BiDiError(f"firefox printed no BiDi endpoint within {timeout}s: {self.stderr_tail()}")

    def stderr_tail(self, n=20):
        return "\n".join(self.stderr_path.read_text(errors="replace").splitlines()[-n:])

    def command(self, method, params, timeout=30.0):
        with self._lock:
            ident = next(self._ids)
            self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BiDiError(f"{method}: no answer within {timeout}s")
                msg = json.loads(self.ws.recv(timeout=left))
                if msg.get("id") != ident:
                    continue  # an event or another answer
                if msg.get("type") == "error":
                    raise BiDiError(f"{method}: {msg.get('error')}: {msg.get('message')}")
                return msg["result"]

    def navigate(self, url):
        return self.command("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    def evaluate(self, expression):
        """Runs `expression` in the page (promises awaited) and returns its JSON value."""
        wrapped = f"(async () => JSON.stringify(await ({expression})))()"
        res = self.command("script.evaluate", {"expression": wrapped, "target": {"context": self.context},
                                               "awaitPromise": True, "resultOwnership": "none"})
        if res.get("type") == "exception":
            raise BiDiError(f"page script failed: {res['exceptionDetails'].get('text')}")
        value = res["result"].get("value")
        return None if value is None or value == "undefined" else json.loads(value)

    def screenshot(self, path: Path):
        res = self.command("browsingContext.captureScreenshot", {"context": self.context})
        path.write_bytes(base64.b64decode(res["data"]))

    def quit(self):
        try:
            self.command("session.end", {}, timeout=5)
        except Exception:
            pass
        try:
            self._conn.__exit__(None, None, None)
        except Exception:
            pass
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._err.close()
