"""Logs: --log-format json (JSON Lines, stable keys, ms UTC timestamps), an access line for
every HTTP request and WebSocket session, --access-log off|stderr|FILE with reopen on SIGHUP
(issue 15)."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import time
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ACCESS_KEYS = ["ts", "level", "msg", "kind", "conn", "remote_addr", "remote_port", "method", "path", "status",
               "close_code", "bytes_in", "bytes_out", "duration_ms", "tls_version", "tls_cipher", "subprotocol",
               "compression", "user_agent"]


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    return pred()


def get(srv, path, ctx=None):
    try:
        return urllib.request.urlopen(urllib.request.Request(f"{srv.url.replace('ws', 'http', 1)}{path}",
                                                             headers={"User-Agent": "adopt-test/1 \"q\""}),
                                      timeout=5, context=ctx).status
    except urllib.error.HTTPError as e:
        return e.code


def access_lines(text: str) -> list[dict]:
    return [d for d in (json.loads(l) for l in text.splitlines() if l.strip()) if d.get("msg") == "access"]


def test_json_logs_and_access_lines(server_factory, scheme, client_ssl):
    srv = server_factory(scheme, "--log-format", "json", "--app", "echo")
    ctx = client_ssl if srv.tls else None
    host_url = srv.url.replace("127.0.0.1", "localhost") if srv.tls else srv.url
    srv.url = host_url
    assert get(srv, "/healthz", ctx) == 200
    assert get(srv, "/missing", ctx) == 404

    async def ws():
        async with connect(host_url + "/chatsocket", ssl=ctx, subprotocols=None,
                           user_agent_header="adopt-ws/1") as c:
            await c.send("x")
            assert await c.recv() == "x"
    asyncio.run(ws())

    lines = wait_for(lambda: [l for l in access_lines(srv.stderr()) if l["kind"] == "websocket"] and access_lines(srv.stderr()))
    for raw in srv.stderr().splitlines():                     # every line is JSON with the base keys
        d = json.loads(raw)
        assert TS.match(d["ts"]) and d["level"] and d["msg"], raw
    by_path = {(l["kind"], l["path"]): l for l in lines}
    for entry in lines:
        assert list(entry) == ACCESS_KEYS, list(entry)
    ok, missing, sess = by_path[("http", "/healthz")], by_path[("http", "/missing")], by_path[("websocket", "/chatsocket")]
    assert (ok["status"], missing["status"], sess["status"], sess["close_code"]) == (200, 404, 101, 1000)
    assert ok["method"] == "GET" and ok["remote_addr"] == "127.0.0.1" and ok["remote_port"] > 0
    assert ok["user_agent"] == 'adopt-test/1 "q"' and sess["user_agent"] == "adopt-ws/1"
    assert ok["bytes_in"] > 50 and ok["bytes_out"] > 50 and ok["duration_ms"] >= 0
    assert sess["compression"] is True            # python-websockets offers permessage-deflate
    if srv.tls:
        assert ok["tls_version"] == "TLSv1.3" and ok["tls_cipher"].startswith("TLS_")
    else:
        assert ok["tls_version"] is None and ok["tls_cipher"] is None


@pytest.mark.parametrize("scheme_, extra, tls12", [("ws", [], False), ("wss", [], False),
                                                    ("wss", ["--openssl-records"], False), ("wss", [], True)],
                         ids=["ws", "wss", "wss-openssl-records", "wss-tls1.2"])
def test_websocket_line_counts_the_whole_connection(server_factory, certs, scheme_, extra, tls12):
    """A WebSocket's access line counts the bytes of the connection's whole life (TCP payload,
    handshake and every frame; with TLS the records), not just the handshake, and its
    duration from accept to close; tls_cipher is filled on every TLS path."""
    srv = server_factory(scheme_, "--log-format", "json", "--app", "echo", "--no-deflate", *extra)
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem")) if srv.tls else None
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    url = (srv.url.replace("127.0.0.1", "localhost") if srv.tls else srv.url) + "/chatsocket"
    chunk, rounds = os.urandom(20_000), 10

    async def ws():
        async with connect(url, ssl=ctx, compression=None, max_size=None) as c:
            for _ in range(rounds):
                await c.send(chunk)
                assert await c.recv() == chunk
            await asyncio.sleep(0.3)
    t0 = time.monotonic()
    asyncio.run(ws())
    elapsed_ms = (time.monotonic() - t0) * 1000
    sess = wait_for(lambda: next((l for l in access_lines(srv.stderr()) if l["kind"] == "websocket"), None))
    assert sess, srv.stderr()[-2000:]
    payload = len(chunk) * rounds
    assert sess["close_code"] == 1000
    # At least every payload byte and the handshake; at most that plus frame and record overhead.
    for key in ("bytes_in", "bytes_out"):
        assert payload + 100 < sess[key] < payload * 1.05 + 8_000, (key, sess)
    assert 300 <= sess["duration_ms"] <= elapsed_ms + 1000, sess
    if srv.tls:
        assert sess["tls_version"] == ("TLSv1.2" if tls12 else "TLSv1.3"), sess
        want = "TLS_ECDHE_ECDSA_WITH_" if tls12 else "TLS_AES_"
        assert sess["tls_cipher"] and sess["tls_cipher"].startswith(want), sess
    else:
        assert sess["tls_cipher"] is None


def test_text_format_and_access_log_off(server_factory):
    srv = server_factory("ws")
    assert get(srv, "/healthz") == 200
    line = wait_for(lambda: next((l for l in srv.stderr().splitlines() if " info access " in l), None))
    assert line and TS.match(line.split(" ", 1)[0]) and "kind=http" in line and "status=200" in line, line
    quiet = server_factory("ws", "--access-log", "off")
    assert get(quiet, "/healthz") == 200
    time.sleep(0.3)
    assert " access " not in quiet.stderr()


def test_access_log_file_reopened_on_sighup(server_factory, tmp_path):
    path = tmp_path / "access.log"
    srv = server_factory("ws", "--access-log", str(path), "--log-format", "json")
    assert get(srv, "/one") == 404
    assert wait_for(lambda: path.exists() and "/one" in path.read_text())
    os.rename(path, tmp_path / "access.log.1")           # what logrotate does
    assert get(srv, "/two") == 404                       # still into the renamed file
    assert wait_for(lambda: "/two" in (tmp_path / "access.log.1").read_text())
    srv.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert get(srv, "/three") == 404
    assert wait_for(lambda: path.exists() and "/three" in path.read_text()), srv.stderr()[-1000:]
    assert "/three" not in (tmp_path / "access.log.1").read_text()
    assert [l["path"] for l in access_lines(path.read_text())] == ["/three"]
    assert " access" not in srv.stderr() and '"msg":"access"' not in srv.stderr()


def test_unwritable_access_log_is_one_line_error():
    import subprocess
    from conftest import SERVER_BIN
    r = subprocess.run([str(SERVER_BIN), "--port", "0", "--access-log", "/nonexistent-dir/a.log"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "/nonexistent-dir/a.log" in r.stderr, r.stderr


def test_query_is_logged_with_sensitive_values_redacted(server_factory, tmp_path):
    """The path field is the request target as sent (query included, like nginx's $request_uri),
    with the values of sensitive parameters replaced by ***: the default names, or those of
    --access-log-redact (listed in --help)."""
    import subprocess
    from conftest import SERVER_BIN
    path = tmp_path / "access.log"
    srv = server_factory("ws", "--access-log", str(path), "--log-format", "json", "--app", "echo")
    assert get(srv, "/healthz?token=t0pS3cret&room=a&API_KEY=k3y&signature=s1gn&x") == 200

    async def ws():
        async with connect(srv.url + "/chatsocket?room=lobby&access_token=abcDEF&password=pw%21") as c:
            await c.send("x")
            assert await c.recv() == "x"
    asyncio.run(ws())
    lines = wait_for(lambda: [l for l in access_lines(path.read_text()) if l["kind"] == "websocket"] and
                     access_lines(path.read_text()))
    paths = [l["path"] for l in lines]
    assert "/healthz?token=***&room=a&API_KEY=***&signature=***&x" in paths, paths
    assert "/chatsocket?room=lobby&access_token=***&password=***" in paths, paths
    text = path.read_text()
    assert not any(s in text for s in ("t0pS3cret", "k3y", "s1gn", "abcDEF", "pw%21")), text
    # Another list: only these names are redacted; '' redacts nothing.
    path2 = tmp_path / "access2.log"
    srv2 = server_factory("ws", "--access-log", str(path2), "--log-format", "json", "--access-log-redact", "room,Sid")
    assert get(srv2, "/healthz?room=a&sid=b&token=c") == 200
    assert wait_for(lambda: path2.exists() and access_lines(path2.read_text()))
    assert access_lines(path2.read_text())[0]["path"] == "/healthz?room=***&sid=***&token=c"
    help_text = subprocess.run([str(SERVER_BIN), "--help"], capture_output=True, text=True, timeout=10).stdout
    assert "--access-log-redact" in help_text and "access_token" in help_text, help_text
