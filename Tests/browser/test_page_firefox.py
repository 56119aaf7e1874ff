"""The page in headless Firefox over https/wss, driven through WebDriver BiDi (bidi.py; no
geckodriver in Debian). The CA is trusted the real way: cert9.db in the Firefox profile.

Run: WSS_SERVER=.build/release/wss-server python3 -m pytest -q -p no:cacheprovider Tests/browser/test_page_firefox.py
"""

import os
import time

import pytest

from browserutil import failure_watch, nss_trust, save_failure_screenshot
from browserutil import certs, start_server  # noqa: F401 (fixtures)

FIREFOX = os.environ.get("FIREFOX_BINARY", "/usr/bin/firefox-esr")
if not os.access(FIREFOX, os.X_OK):
    if os.environ.get("WSS_REQUIRE_BROWSER") == "1":
        raise RuntimeError("firefox-esr missing and WSS_REQUIRE_BROWSER=1")
    pytest.skip("firefox-esr not installed", allow_module_level=True)

from bidi import BiDiError, Firefox  # noqa: E402

WAIT = 15.0
MESSAGE = "你好 🚀"
REPLY = MESSAGE + "响应"


@pytest.fixture
def firefox(certs, tmp_path, request):
    started = []
    failed = failure_watch(request)

    def make(trust=True):
        profile = tmp_path / f"ff-profile{len(started)}"
        profile.mkdir()
        if trust:
            nss_trust(profile, certs / "ca.pem")
        ff = Firefox(profile)
        started.append(ff)
        return ff

    yield make
    for ff in started:
        save_failure_screenshot(failed, ff.screenshot)
        ff.quit()


def wait(ff, expr, what, server):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if ff.evaluate(expr):
            return
        time.sleep(0.1)
    content = ff.evaluate("document.getElementById('content').textContent")
    pytest.fail(f"timed out waiting for {what}: #content={content!r}\n{server.stderr_tail()}")


@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
def test_firefox_page_round_trip_over_wss(firefox, start_server, transport):
    server = start_server("--app", "reply")
    ff = firefox()
    ff.navigate(server.origin + "/?transport=" + transport)
    assert ff.evaluate("location.protocol") == "https:"
    wait(ff, "document.getElementById('status').dataset.state === 'open'", "status open", server)
    assert ff.evaluate("document.getElementById('transport').textContent") == transport
    assert ff.evaluate("socket.url").startswith("wss://localhost:" if transport == "websocket" else "https://localhost:")
    ff.evaluate("(document.getElementById('txt').value = '%s', document.getElementById('btn').click(), 1)" % MESSAGE)
    wait(ff, f"document.getElementById('content').textContent.includes('{REPLY}')", "the reply", server)
    ff.evaluate("(document.getElementById('close').click(), 1)")
    wait(ff, "document.getElementById('content').textContent.includes('【关闭连接】')", "the close line", server)
    assert ff.evaluate("document.getElementById('btn').disabled") is True


def test_firefox_refuses_an_untrusted_ca(firefox, start_server):
    """Negative control: without our CA in cert9.db the page must not load."""
    server = start_server("--app", "reply")
    ff = firefox(trust=False)
    with pytest.raises(BiDiError) as err:
        ff.navigate(server.origin + "/")
    assert "SEC_ERROR_UNKNOWN_ISSUER" in str(err.value), err.value
