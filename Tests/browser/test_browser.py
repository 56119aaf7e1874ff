"""Real-browser test: headless Chromium talks to wss-server over https:// and wss://.

The CA made by certs/generate.sh is trusted the real way (a private HOME with an NSS
database holding the CA) -- no --ignore-certificate-errors. The test drives the chat
page served by the server (GET /) and checks the reply app's round trip and a clean close.

Environment:
  WSS_SERVER           server binary (default: <repo>/.build/release/wss-server)
  CHROMIUM_BINARY      default /usr/lib/chromium/chromium
  CHROMEDRIVER         default /usr/bin/chromedriver
  WSS_REQUIRE_BROWSER  if set to 1, a missing Chromium/chromedriver is a failure, not a skip

Run: python3 -m pytest -q Tests/browser     (from the repository root)
"""

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
CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/lib/chromium/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")

_missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
if _missing:
    _reason = "browser not installed: " + ", ".join(_missing) + \
        " (Debian: apt-get install chromium chromium-driver libnss3-tools)"
    if os.environ.get("WSS_REQUIRE_BROWSER") == "1":
        raise RuntimeError(_reason + " and WSS_REQUIRE_BROWSER=1")
    pytest.skip(_reason, allow_module_level=True)

# Imported only once we know the browser exists; CI installs selenium with pip.
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import InsecureCertificateException, WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SERVER_START_TIMEOUT = 20.0   # seconds to wait for the "listening on" line
UI_TIMEOUT = 10.0             # seconds for each wait on the page
PAGE_LOAD_TIMEOUT = 30.0
LISTEN_RE = re.compile(r"listening on wss://127\.0\.0\.1:(\d+)\s*$")

CONNECTED = "【连接成功】"
CLOSED = "【关闭连接】"
MESSAGE = "你好 🚀"
REPLY = MESSAGE + "响应"

# Installed before any page script runs: wraps WebSocket so the test can see every socket the
# page opens, every message it sends and how each one closed, whatever the page calls them.
WS_HOOK = r"""
(function () {
  if (window.__wssTestHooked) return;
  window.__wssTestHooked = true;
  window.__wsSockets = [];
  window.__wsSent = [];
  window.__wsCloses = [];
  const Orig = window.WebSocket;
  class HookedWebSocket extends Orig {
    constructor(...args) {
      super(...args);
      const me = this;
      window.__wsSockets.push(me);
      me.addEventListener('close', function (e) {
        window.__wsCloses.push({url: me.url, wasClean: e.wasClean, code: e.code, reason: e.reason});
      });
    }
    send(data) {
      window.__wsSent.push(typeof data === 'string' ? data : '[binary]');
      return super.send(data);
    }
  }
  window.WebSocket = HookedWebSocket;
})();
"""


# ---------------------------------------------------------------- helpers

def _run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60, **kw)


def _make_nss_home(home: Path, ca_pem: Path = None) -> Path:
    """A private HOME whose NSS database (read by Chromium) trusts ca_pem (if given)."""
    certutil = shutil.which("certutil")
    assert certutil, "certutil not found (Debian: apt-get install libnss3-tools)"
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    _run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"])
    if ca_pem is not None:
        _run([certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "wss-server-test-ca", "-i", str(ca_pem)])
        listing = _run([certutil, "-d", f"sql:{nssdb}", "-L"]).stdout
        assert "wss-server-test-ca" in listing, listing
    return home


class ServerProcess:
    def __init__(self, proc, port, stderr_path):
        self.proc, self.port, self.stderr_path = proc, port, stderr_path

    def stderr_tail(self, n=40):
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no stderr)"
        return "\n".join(lines[-n:]) or "(empty stderr)"


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _content(driver):
    return driver.execute_script(
        "var c = document.getElementById('content'); return c ? c.textContent : null;") or ""


def _console(driver):
    try:
        return "\n".join(f"  {e.get('level')}: {e.get('message')}" for e in driver.get_log("browser"))
    except WebDriverException:
        return "  (unavailable)"


def _wait(driver, cond, what, server=None):
    """Bounded wait; on timeout fail with the page content, console and server stderr."""
    try:
        return WebDriverWait(driver, UI_TIMEOUT, poll_frequency=0.1).until(lambda d: cond(d))
    except Exception as exc:  # TimeoutException or a WebDriver error while polling
        error = f"{type(exc).__name__}: {str(exc).strip()}"
    msg = (f"timed out after {UI_TIMEOUT}s waiting for {what} ({error})\n"
           f"#content: {_content(driver)!r}\nbrowser console:\n{_console(driver)}")
    if server is not None:
        msg += f"\nserver alive: {server.proc.poll() is None}\nserver stderr:\n{server.stderr_tail()}"
    pytest.fail(msg)


def _interstitial(driver):
    """Return a description if Chromium shows a certificate/network error page instead of the app."""
    title = driver.title or ""
    src = driver.page_source or ""
    url = driver.current_url or ""
    for marker in ("ERR_CERT", "NET::ERR", "Privacy error", "Your connection is not private"):
        if marker in title or marker in src:
            found = re.search(r"NET::ERR_[A-Z_]+|ERR_CERT_[A-Z_]+", src)
            return f"certificate interstitial ({found.group(0) if found else marker}); title={title!r}"
    if url.startswith("chrome-error://"):
        found = re.search(r"ERR_[A-Z_]+", src)
        return f"network error page ({found.group(0) if found else 'unknown'}); title={title!r}"
    return None


def _load(driver, url):
    try:
        driver.get(url)
    except InsecureCertificateException as exc:
        return f"certificate rejected by the browser: {exc.msg}"
    return _interstitial(driver)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    out = tmp_path_factory.mktemp("certs")
    _run(["bash", str(GENERATE), str(out)])
    for name in ("ca.pem", "ca.key", "cert.pem", "key.pem"):
        assert (out / name).is_file(), f"{GENERATE} did not write {name}"
    return out


@pytest.fixture(scope="module")
def trusted_home(certs, tmp_path_factory):
    return _make_nss_home(tmp_path_factory.mktemp("home-trusting"), certs / "ca.pem")


@pytest.fixture
def server(certs, tmp_path):
    binary = os.environ.get("WSS_SERVER", str(REPO / ".build" / "release" / "wss-server"))
    assert os.access(binary, os.X_OK), \
        f"server binary {binary} not found; build it with `swift build -c release` or set WSS_SERVER"
    stderr_path = tmp_path / "server.stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", "0",
             "--cert", str(certs / "cert.pem"), "--key", str(certs / "key.pem"), "--app", "reply"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    try:
        lines = queue.Queue()

        def pump():  # keep draining stdout so the server can never block on it
            for raw in proc.stdout:
                lines.put(raw.decode("utf-8", "replace"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        port, seen = None, []
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while port is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:  # stdout closed: the server exited
                break
            seen.append(line)
            m = LISTEN_RE.search(line)
            if m:
                port = int(m.group(1))
        srv = ServerProcess(proc, port, stderr_path)
        if port is None:
            proc.poll()
            pytest.fail(f"server did not print 'listening on wss://127.0.0.1:PORT' within "
                        f"{SERVER_START_TIMEOUT}s (exit code {proc.returncode}); stdout={seen!r}\n"
                        f"stderr:\n{srv.stderr_tail()}")
        assert port > 0
        yield srv
    finally:
        _stop(proc)


def _make_driver(home: Path, profile: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--window-size=1024,768"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = dict(os.environ)
    env["HOME"] = str(home)  # Chromium reads trusted roots from $HOME/.pki/nssdb
    service = Service(executable_path=CHROMEDRIVER, env=env)
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        driver.set_script_timeout(UI_TIMEOUT)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WS_HOOK})
    except BaseException:
        driver.quit()
        raise
    return driver


@pytest.fixture
def browser(trusted_home, tmp_path):
    driver = _make_driver(trusted_home, tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def untrusting_browser(tmp_path):
    home = _make_nss_home(tmp_path / "home-untrusting")  # empty NSS db: our CA is unknown
    driver = _make_driver(home, tmp_path / "profile-untrusting")
    try:
        yield driver
    finally:
        driver.quit()


# ---------------------------------------------------------------- tests

def _open_chat(browser, server):
    url = f"https://localhost:{server.port}/"
    problem = _load(browser, url)
    if problem:
        pytest.fail(f"loading {url}: {problem}\nserver stderr:\n{server.stderr_tail()}")
    _wait(browser, lambda d: CONNECTED in _content(d), f"{CONNECTED} in #content", server)


def test_chat_roundtrip_over_wss(browser, server):
    _open_chat(browser, server)

    txt = browser.find_element(By.ID, "txt")
    txt.clear()
    # chromedriver's send_keys can only type BMP characters: type the Chinese part, add the emoji via JS.
    txt.send_keys("你好")
    if txt.get_property("value") != "你好":
        browser.execute_script("arguments[0].value = '你好';", txt)
    browser.execute_script(
        "arguments[0].value += ' \\u{1F680}';"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));", txt)
    assert txt.get_property("value") == MESSAGE

    browser.find_element(By.ID, "btn").click()
    _wait(browser, lambda d: REPLY in _content(d), f"{REPLY!r} in #content", server)
    sent = browser.execute_script("return window.__wsSent;")
    assert MESSAGE in sent, f"the page sent {sent!r}, expected {MESSAGE!r}"

    browser.find_element(By.ID, "close").click()
    _wait(browser, lambda d: CLOSED in _content(d), f"{CLOSED} in #content", server)
    closes = _wait(browser, lambda d: d.execute_script("return window.__wsCloses;"),
                   "the WebSocket close event", server)
    assert len(closes) == 1, closes
    close = closes[0]
    assert close["wasClean"] is True, f"WebSocket did not close cleanly: {close}\n{server.stderr_tail()}"
    assert close["code"] in (1000, 1005), f"unexpected close code: {close}"

    # The server must survive a client's close and keep serving.
    time.sleep(0.2)
    assert server.proc.poll() is None, f"server exited ({server.proc.returncode}):\n{server.stderr_tail()}"


def test_https_page_connects_with_wss(browser, server):
    _open_chat(browser, server)
    info = browser.execute_script("""
        return {
          protocol: location.protocol,
          secure: window.isSecureContext,
          globalUrl: (typeof socket !== 'undefined' && socket && socket.url) ? socket.url : null,
          urls: window.__wsSockets.map(function (s) { return s.url; }),
          states: window.__wsSockets.map(function (s) { return s.readyState; }),
          extensions: window.__wsSockets.map(function (s) { return s.extensions; })
        };""")
    assert info["protocol"] == "https:", info
    assert info["secure"] is True, info
    expected = f"wss://localhost:{server.port}/chatsocket"
    assert info["urls"], f"the page opened no WebSocket: {info}"
    for u in info["urls"]:
        assert u.startswith("wss://"), f"page opened a non-wss WebSocket: {info}"
    assert expected in info["urls"], f"expected a socket to {expected}: {info}"
    assert 1 in info["states"], f"no socket is OPEN: {info}"
    if info["globalUrl"] is not None:  # the page exposes `var socket`
        assert info["globalUrl"].startswith("wss://"), info
    # Chromium always offers permessage-deflate; the server accepts it (RFC 7692).
    assert any(e.startswith("permessage-deflate") for e in info["extensions"]), info


def test_untrusted_ca_shows_interstitial(untrusting_browser, server):
    """Negative control: without the CA in the NSS db the page must not load; proves the
    interstitial check above is real and that the trust comes from the NSS database."""
    problem = _load(untrusting_browser, f"https://localhost:{server.port}/")
    assert problem, "page loaded although the CA is not trusted: the trust test proves nothing"
    assert "CERT" in problem or "certificate" in problem, problem
