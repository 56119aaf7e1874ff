"""/metrics is private: on the service port only --metrics-allow clients (default loopback
127.0.0.1/32 and ::1/128) get it, others 404; --metrics-listen serves it separately (issue 15)."""
from __future__ import annotations

import http.client
import re
import subprocess
import time

from conftest import SERVER_BIN


def get(port, path="/metrics", source="127.0.0.1", method="GET", ctx=None):
    cls = http.client.HTTPSConnection if ctx else http.client.HTTPConnection
    kw = {"context": ctx} if ctx else {}
    c = cls("localhost" if ctx else "127.0.0.1", port, timeout=5, source_address=(source, 0), **kw)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.read().decode()
    finally:
        c.close()


def test_metrics_refused_outside_the_allow_list(server_factory, scheme, client_ssl):
    srv = server_factory(scheme)
    ctx = client_ssl if srv.tls else None
    status, body = get(srv.port, source="127.0.0.5", ctx=ctx)   # outside 127.0.0.1/32
    assert status == 404 and "wss_" not in body, (status, body[:200])
    status, body = get(srv.port, source="127.0.0.1", ctx=ctx)
    assert status == 200 and "wss_build_info{" in body


def test_metrics_allow_widens_the_list(server_factory):
    srv = server_factory("ws", "--metrics-allow", "127.0.0.0/29")
    assert get(srv.port, source="127.0.0.5")[0] == 200
    assert get(srv.port, source="127.0.0.9")[0] == 404


def test_metrics_listen_serves_a_separate_port(server_factory):
    srv = server_factory("ws", "--metrics-listen", "127.0.0.1:0")
    port = None
    end = time.monotonic() + 5
    while port is None and time.monotonic() < end:
        m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", srv.stderr())
        port = int(m.group(1)) if m else None
        time.sleep(0.05)
    assert port and port != srv.port, srv.stderr()[-1000:]
    status, body = get(port, source="127.0.0.5")          # any client that reaches this listener
    assert status == 200 and "wss_connections_accepted_total" in body
    assert get(port, "/other")[0] == 404
    assert get(port, method="POST")[0] == 405
    assert get(srv.port, source="127.0.0.5")[0] == 404    # the service port keeps its allow-list


def test_bad_metrics_flags_are_one_line_errors():
    for args, mention in [(["--metrics-allow", "10.0.0.1/8"], "did you mean 10.0.0.0/8"),
                          (["--metrics-allow", "nonsense"], "nonsense"),
                          (["--metrics-listen", "9100"], "--metrics-listen")]:
        r = subprocess.run([str(SERVER_BIN), "--port", "0", *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1 and r.stderr.count("\n") == 1 and mention in r.stderr, (args, r.stderr)
