"""The served page as a product, in headless Chromium over https/wss with the CA trusted
through NSS: header, status and transport indicator, your messages beside the replies with
timestamps, send disabled while closed, reconnect with backoff after the server comes back,
the chat app's nickname, the favicon, no external resources, a phone-width layout.

Run: WSS_SERVER=.build/release/wss-server python3 -m pytest -q -p no:cacheprovider Tests/browser/test_page.py
"""

import asyncio
import json
import os
import re
import ssl
import time

import pytest

from browserutil import failure_watch, save_failure_screenshot
from browserutil import certs, chromium_home, start_server  # noqa: F401 (fixtures)

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/lib/chromium/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
if not all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER)):
    if os.environ.get("WSS_REQUIRE_BROWSER") == "1":
        raise RuntimeError("Chromium/chromedriver missing and WSS_REQUIRE_BROWSER=1")
    pytest.skip("Chromium or chromedriver not installed", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT = 10.0
MESSAGE = "你好 🚀"
REPLY = MESSAGE + "响应"


def make_chromium(home, profile, width=1024, height=768, mobile=False):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    env = dict(os.environ, HOME=str(home))
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, env=env), options=options)
    driver.set_page_load_timeout(30)
    if mobile:  # headless windows cannot be narrower than 500 px: emulate the phone's viewport
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True})
    return driver


@pytest.fixture
def chromium(chromium_home, tmp_path, request):
    drivers = []
    failed = failure_watch(request)

    def make(**kw):
        d = make_chromium(chromium_home, tmp_path / f"profile{len(drivers)}", **kw)
        drivers.append(d)
        return d

    yield make
    for d in drivers:
        save_failure_screenshot(failed, d.save_screenshot)
        d.quit()


def js(d, expr):
    return d.execute_script("return " + expr)


def wait(d, cond, what, server=None):
    try:
        return WebDriverWait(d, WAIT, poll_frequency=0.1).until(lambda _: cond())
    except Exception:
        content = js(d, "document.getElementById('content').textContent")
        status = js(d, "document.getElementById('status').textContent")
        tail = server.stderr_tail() if server else ""
        pytest.fail(f"timed out waiting for {what}\n#content: {content!r}\nstatus: {status!r}\nserver stderr:\n{tail}")


def state(d):
    return js(d, "document.getElementById('status').getAttribute('data-state')")


def open_page(d, server, query=""):
    d.get(f"{server.origin}/{query}")
    assert d.title.startswith("wss-server"), f"not the page: {d.title!r}"
    wait(d, lambda: state(d) == "open", "status open", server)


def send(d, text):
    d.execute_script("document.getElementById('txt').value = arguments[0];", text)
    d.find_element(By.ID, "btn").click()


def bubbles(d, cls):
    return js(d, f"Array.from(document.querySelectorAll('#content .msg.{cls} .text')).map(e => e.textContent)")


def test_header_status_bubbles_timestamps_and_closed_state(chromium, start_server):
    server = start_server("--app", "reply")
    d = chromium()
    open_page(d, server)
    assert js(d, "document.querySelector('h1').textContent").split() == ["wss-server", "reply"]
    assert js(d, "document.getElementById('transport').textContent") == "websocket"
    assert "WebSocket" in js(d, "document.getElementById('status').textContent")
    assert js(d, "document.getElementById('btn').disabled") is False
    send(d, MESSAGE)
    wait(d, lambda: REPLY in bubbles(d, "them"), "the reply bubble", server)
    assert bubbles(d, "me") == [MESSAGE], "your own message is shown, once, on your side"
    metas = js(d, "Array.from(document.querySelectorAll('#content .msg .meta')).map(e => e.textContent)")
    assert metas and all(re.match(r"^\d\d:\d\d:\d\d", m) for m in metas), metas
    # Own messages on the right, replies on the left.
    me = js(d, "document.querySelector('.msg.me').getBoundingClientRect().right")
    them = js(d, "document.querySelector('.msg.them').getBoundingClientRect().left")
    content = js(d, "document.getElementById('content').getBoundingClientRect()")
    assert me > content["left"] + content["width"] * 0.6 and them < content["left"] + content["width"] * 0.4
    # Labels in English and Chinese.
    assert js(d, "document.getElementById('btn').value") == "Send 提交"
    assert "关闭连接" in js(d, "document.getElementById('close').value")

    d.find_element(By.ID, "close").click()
    wait(d, lambda: state(d) == "closed", "status closed")
    assert js(d, "document.getElementById('btn').disabled") is True, "send must be disabled while closed"
    assert js(d, "document.getElementById('reconnect').hidden") is False
    time.sleep(1.2)
    assert state(d) == "closed", "a close by the user is not undone by the reconnect logic"
    d.find_element(By.ID, "reconnect").click()
    wait(d, lambda: state(d) == "open", "open again after Reconnect", server)


@pytest.mark.parametrize("transport", ["websocket", "sse", "longpoll"])
def test_forced_transport_round_trip(chromium, start_server, transport):
    server = start_server("--app", "reply")
    d = chromium()
    open_page(d, server, f"?transport={transport}")
    assert js(d, "document.getElementById('transport').textContent") == transport
    assert js(d, "socket.kind") == transport
    for text in (MESSAGE, "second 第二"):
        send(d, text)
        wait(d, lambda: text + "响应" in bubbles(d, "them"), f"the reply to {text!r} over {transport}", server)
    if transport != "websocket":
        ws = js(d, "performance.getEntriesByType('resource').filter(e => e.name.startsWith('wss:')).length")
        assert ws == 0, "a forced fallback must not try WebSocket"
    d.find_element(By.ID, "close").click()
    wait(d, lambda: state(d) == "closed", "closed")
    assert "【关闭连接】" in js(d, "document.getElementById('content').textContent")


def test_no_external_resources_and_inline_favicon(chromium, start_server):
    server = start_server("--app", "reply")
    d = chromium()
    open_page(d, server)
    icon = js(d, "document.querySelector('link[rel=icon]').getAttribute('href')")
    assert icon.startswith("data:image/svg+xml,"), icon
    urls = js(d, "performance.getEntriesByType('resource').map(e => e.name)")
    assert all(u.startswith(server.origin) or u.startswith("wss://localhost") for u in urls), urls
    refs = js(d, "Array.from(document.querySelectorAll('[src],[href]')).map(e => e.getAttribute('src') || e.getAttribute('href'))")
    assert all(r.startswith("data:") or r.startswith("/") for r in refs), refs


def test_phone_width_fits(chromium, start_server):
    server = start_server("--app", "reply")
    d = chromium(width=375, height=700, mobile=True)
    open_page(d, server)
    send(d, "a long message " * 12)
    wait(d, lambda: len(bubbles(d, "them")) == 1, "the reply", server)
    assert js(d, "window.innerWidth") == 375
    assert js(d, "document.documentElement.scrollWidth") <= 375, "horizontal scrolling on a phone"
    for ident in ("txt", "btn", "close", "transport", "status"):
        r = js(d, f"document.getElementById('{ident}').getBoundingClientRect()")
        assert r["left"] >= 0 and r["right"] <= 375 and r["width"] > 0, (ident, r)


def test_reconnects_with_backoff_after_the_server_returns(chromium, start_server):
    server = start_server("--app", "reply")
    d = chromium()
    open_page(d, server)
    server.stop()
    wait(d, lambda: state(d) in ("closed", "connecting"), "the page to notice the server is gone")
    assert js(d, "document.getElementById('btn').disabled") is True
    wait(d, lambda: "reconnecting in" in js(d, "document.getElementById('hint').textContent"), "a reconnect countdown")
    server.start()  # same port, found at run time by the first start
    wait(d, lambda: state(d) == "open", "reconnected", server)
    assert js(d, "document.getElementById('transport').textContent") == "websocket"
    send(d, MESSAGE)
    wait(d, lambda: bubbles(d, "them").count(REPLY) == 1, "a reply over the new connection", server)
    assert js(d, "document.getElementById('content').textContent").count("【连接成功】") == 2


def test_chat_nickname_reaches_a_python_client(chromium, start_server, certs):
    server = start_server("--app", "chat")
    d = chromium()
    open_page(d, server)
    assert js(d, "document.getElementById('nick') !== null && document.getElementById('room') !== null")
    d.execute_script("document.getElementById('nick').value = 'ann';")
    import websockets

    async def talk():
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        async with websockets.connect(f"wss://localhost:{server.port}/chatsocket?room=lobby", ssl=ctx,
                                      origin=server.origin) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["type"] == "recovery"  # subscribed
            send(d, MESSAGE)
            envelope = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
            assert envelope["type"] == "message", envelope
            got = json.loads(envelope["data"])
            assert got["nick"] == "ann" and got["text"] == MESSAGE, got
            await ws.send(json.dumps({"nick": "bob", "text": "hi ann"}))
            await asyncio.sleep(0.5)

    asyncio.run(talk())
    wait(d, lambda: "hi ann" in bubbles(d, "them"), "bob's message in the page", server)
    who = js(d, "Array.from(document.querySelectorAll('#content .msg.them .meta')).map(e => e.textContent)")
    assert any(w.endswith("· bob") for w in who), who
    assert bubbles(d, "me") == [MESSAGE], "own chat message shown once (its broadcast copy is not repeated)"


def test_chat_page_resumes_from_its_last_offset_and_says_when_it_could_not(chromium, start_server, certs):
    """History on: the page keeps the last offset of its room and reconnects with since=&epoch=;
    what was missed appears in order, and an incomplete recovery shows a notice."""
    server = start_server("--app", "chat", "--history-size", "3")
    d = chromium()
    open_page(d, server)
    import websockets

    async def say(texts):
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        async with websockets.connect(f"wss://localhost:{server.port}/chatsocket?room=lobby", ssl=ctx,
                                      origin=server.origin) as ws:
            await asyncio.wait_for(ws.recv(), WAIT)  # subscribed
            for t in texts:
                await ws.send(json.dumps({"nick": "bob", "text": t}))
            for _ in texts:
                await asyncio.wait_for(ws.recv(), WAIT)

    asyncio.run(say(["one"]))
    wait(d, lambda: bubbles(d, "them") == ["one"], "a live message", server)
    d.find_element(By.ID, "close").click()
    asyncio.run(say(["two", "three"]))  # missed while closed
    d.find_element(By.ID, "reconnect").click()
    wait(d, lambda: bubbles(d, "them") == ["one", "two", "three"], "the missed messages, in order", server)
    wait(d, lambda: any("recovered 2 missed" in t for t in bubbles(d, "sys")), "the recovered notice", server)

    d.find_element(By.ID, "close").click()
    asyncio.run(say([f"x{i}" for i in range(6)]))  # more than the 3 kept
    d.find_element(By.ID, "reconnect").click()
    wait(d, lambda: bubbles(d, "them")[-3:] == ["x3", "x4", "x5"], "what the history still had", server)
    wait(d, lambda: any("could not be recovered" in t for t in bubbles(d, "sys")), "the incomplete notice", server)
