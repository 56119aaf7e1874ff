"""Automatic fallback through a real reverse proxy that does not pass Upgrade: Debian's nginx,
started by the test on a port found at run time with a generated config (TLS with the test CA,
proxy_http_version 1.1, no Upgrade/Connection headers set, so the upgrade never reaches the
server). Headless Chromium loads the page through it: the WebSocket cannot open, the page
falls back and ends on SSE or long polling, and the 响应 reply appears.

Run: WSS_SERVER=.build/release/wss-server python3 -m pytest -q -p no:cacheprovider Tests/browser/test_nginx_fallback.py
"""

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from browserutil import failure_watch, save_failure_screenshot
from browserutil import certs, chromium_home, start_server  # noqa: F401 (fixtures)
from test_page import bubbles, js, make_chromium, send, state, wait

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
if not os.access(NGINX, os.X_OK):
    pytest.skip("nginx not installed", allow_module_level=True)

CONFIG = """
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 256; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {certs}/cert.pem;
    ssl_certificate_key {certs}/key.pem;
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_set_header Host $http_host;
      proxy_set_header Connection "";
      proxy_read_timeout 60s;
    }}
  }}
}}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nginx(tmp_path, certs):
    procs = []

    def start(upstream):
        d = tmp_path / "nginx"
        d.mkdir()
        port = free_port()
        (d / "nginx.conf").write_text(CONFIG.format(d=d, port=port, certs=certs, upstream=upstream))
        proc = subprocess.Popen([NGINX, "-p", str(d), "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"nginx exited: {proc.stderr.read().decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return port, d
            except OSError:
                time.sleep(0.1)
        pytest.fail("nginx did not listen")

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture
def chromium(chromium_home, tmp_path, request):
    failed = failure_watch(request)
    d = make_chromium(chromium_home, tmp_path / "profile")
    yield d
    save_failure_screenshot(failed, d.save_screenshot)
    d.quit()


def test_page_falls_back_through_a_proxy_that_strips_upgrade(start_server, nginx, chromium):
    upstream = start_server("--app", "reply", tls=False)
    # The server must accept the page's origin (https://localhost:<nginx port>), known only once
    # nginx has its port: start nginx, then restart the server on its own port with the origin.
    nginx_port, d = nginx(upstream.port)
    upstream.args += ["--allowed-origin", f"https://localhost:{nginx_port}"]
    upstream.restart()
    chromium.get(f"https://localhost:{nginx_port}/")
    assert chromium.title.startswith("wss-server"), chromium.title
    wait(chromium, lambda: state(chromium) == "open", "the page open over a fallback", upstream)
    transport = js(chromium, "document.getElementById('transport').textContent")
    assert transport in ("sse", "longpoll"), transport
    notes = js(chromium, "document.getElementById('content').textContent")
    assert "websocket failed" in notes, notes
    send(chromium, "你好 🚀")
    wait(chromium, lambda: "你好 🚀响应" in bubbles(chromium, "them"), "the reply through nginx", upstream)
    log = (d / "access.log").read_text()
    assert f"transport={transport}" in log, "the fallback went through nginx"
    # The page's WebSocket request reached the server without Upgrade (refused 400: nginx
    # stripped it), so the browser saw the upgrade fail.
    assert re.search(r'"GET /chatsocket HTTP/1\.1" 4(00|26) ', log), log
