"""Plain HTTP / HTTPS answers on the WebSocket port, over raw sockets (ws -> http, wss -> https)."""
from __future__ import annotations

import re

import pytest

from wsutil import (accept_for, http_request, new_key, raw_connect, recv_until_closed,
                    upgrade_request)


def get(server, path, method="GET", extra=""):
    req = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
    resp, reader, sock = http_request(server, req, method=method)
    sock.close()
    return resp


def assert_error_closes(resp, reader, sock, status):
    assert resp.status == status, resp
    tokens = [t.strip().lower() for t in resp.get("connection", "").split(",")]
    assert "close" in tokens, f"error answer without 'Connection: close': {resp}"
    _, closed = recv_until_closed(sock, 5)
    assert closed, f"server kept the connection open after {status}"


def send_and_expect_error(server, raw, status):
    resp, reader, sock = http_request(server, raw)
    try:
        assert_error_closes(resp, reader, sock, status)
    finally:
        sock.close()
    return resp


# ---------------------------------------------------------------- plain pages

def test_get_root_serves_chat_page(server):
    resp = get(server, "/")
    assert resp.status == 200, resp
    ctype = resp.get("content-type", "")
    assert ctype.lower().replace(" ", "") == "text/html;charset=utf-8", ctype
    body = resp.body.decode("utf-8")
    for ident in ("txt", "btn", "close", "content"):
        assert re.search(r"""id\s*=\s*["']?%s["'\s>]""" % ident, body), f"no id={ident} in page"
    assert "/chatsocket" in body
    assert "【连接成功】" in body and "【关闭连接】" in body
    assert len(resp.body) == int(resp.get("content-length", len(resp.body)))


def test_head_root(server):
    req = "HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    resp, reader, sock = http_request(server, req, method="HEAD")
    try:
        assert resp.status == 200, resp
        assert resp.get("content-type", "").startswith("text/html")
        rest, closed = recv_until_closed(sock, 5)
        assert rest == b"", f"HEAD answer carried a body: {rest[:100]!r}"
    finally:
        sock.close()


def test_healthz(server):
    resp = get(server, "/healthz")
    assert resp.status == 200, resp
    assert resp.body.strip() == b"ok"


def test_keep_alive_two_requests_one_connection(server):
    from wsutil import Reader, read_http_response
    sock = raw_connect(server)
    try:
        reader = Reader(sock)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r1 = read_http_response(reader)
        if r1.get("connection", "").lower() == "close":
            pytest.skip("server closes after each response (allowed)")
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        r2 = read_http_response(reader)
        assert (r1.status, r1.body.strip(), r2.status, r2.body.strip()) == (200, b"ok", 200, b"ok")
    finally:
        sock.close()


@pytest.mark.parametrize("path", ["/nope", "/chatsocket/extra", "/healthz2"])
def test_unknown_path_404(server, path):
    resp = get(server, path)
    assert resp.status == 404, resp


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_other_methods_405(server, method):
    raw = (f"{method} / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\nabc")
    resp = send_and_expect_error(server, raw, 405)
    allow = [m.strip().upper() for m in resp.get("allow", "").split(",")]
    assert "GET" in allow, resp
    assert method not in allow


# ---------------------------------------------------------------- upgrade handshake

@pytest.mark.parametrize("path", ["/chatsocket", "/"])
def test_101_accept_computed(server, path):
    req, key = upgrade_request(path)
    resp, reader, sock = http_request(server, req)
    try:
        assert resp.status == 101, resp
        assert resp.get("upgrade", "").lower() == "websocket"
        assert "upgrade" in resp.get("connection", "").lower()
        assert resp.get("sec-websocket-accept") == accept_for(key)
        assert "sec-websocket-extensions" not in resp.headers or resp.get("sec-websocket-extensions")
    finally:
        sock.close()


def test_101_rfc_sample_key(server):
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    assert accept_for(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    req, _ = upgrade_request("/chatsocket", key=key)
    resp, reader, sock = http_request(server, req)
    sock.close()
    assert resp.status == 101, resp
    assert resp.get("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_101_header_names_case_insensitive(server):
    key = new_key()
    raw = ("GET /chatsocket HTTP/1.1\r\nhost: localhost\r\nUPGRADE: WebSocket\r\n"
           f"connection: keep-alive, Upgrade\r\nsec-websocket-key: {key}\r\n"
           "SEC-WEBSOCKET-VERSION: 13\r\n\r\n")
    resp, reader, sock = http_request(server, raw)
    sock.close()
    assert resp.status == 101, resp
    assert resp.get("sec-websocket-accept") == accept_for(key)


@pytest.mark.parametrize("version", ["8", "12", "14"])
def test_wrong_version_426(server, version):
    req, _ = upgrade_request(version=version)
    resp = send_and_expect_error(server, req, 426)
    versions = [(k, v) for k, v in resp.header_list if k.lower() == "sec-websocket-version"]
    assert versions and versions[0][1].strip() == "13", resp


def test_missing_version_is_rejected(server):
    req, _ = upgrade_request(omit=("Sec-WebSocket-Version",))
    resp, reader, sock = http_request(server, req)
    try:
        assert resp.status in (400, 426), resp
    finally:
        sock.close()


@pytest.mark.parametrize("key", ["abc", "", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",  # 21 bytes
                                 "!!!!notbase64!!!!!!!!!=="])
def test_bad_key_400(server, key):
    req, _ = upgrade_request(key=key)
    send_and_expect_error(server, req, 400)


def test_missing_key_400(server):
    req, _ = upgrade_request(omit=("Sec-WebSocket-Key",))
    send_and_expect_error(server, req, 400)


def test_missing_host_400(server):
    req, _ = upgrade_request(omit=("Host",))
    send_and_expect_error(server, req, 400)


def test_missing_connection_upgrade_400(server):
    req, _ = upgrade_request(omit=("Connection",))
    send_and_expect_error(server, req, 400)


def test_http10_upgrade_400(server):
    req, _ = upgrade_request()
    send_and_expect_error(server, req.replace("HTTP/1.1", "HTTP/1.0", 1), 400)


def test_chatsocket_without_upgrade_426(server):
    raw = "GET /chatsocket HTTP/1.1\r\nHost: localhost\r\n\r\n"
    resp = send_and_expect_error(server, raw, 426)
    assert resp.get("upgrade", "").lower() == "websocket", resp


def test_upgrade_with_post_rejected(server):
    req, _ = upgrade_request()
    resp, reader, sock = http_request(server, req.replace("GET", "POST", 1))
    try:
        assert resp.status in (400, 405), resp
    finally:
        sock.close()


# ---------------------------------------------------------------- limits

def test_header_block_over_8k_431(server):
    big = "X-Filler: " + "a" * 9000 + "\r\n"
    raw = f"GET / HTTP/1.1\r\nHost: localhost\r\n{big}\r\n"
    send_and_expect_error(server, raw, 431)


def test_header_block_many_small_lines_431(server):
    lines = "".join(f"X-H{i}: {'b' * 100}\r\n" for i in range(90))  # ~9.5 KiB, < 100 lines
    send_and_expect_error(server, f"GET / HTTP/1.1\r\nHost: localhost\r\n{lines}\r\n", 431)


def test_more_than_100_header_lines_431(server):
    lines = "".join(f"X-H{i}: v\r\n" for i in range(120))  # ~1.3 KiB
    send_and_expect_error(server, f"GET / HTTP/1.1\r\nHost: localhost\r\n{lines}\r\n", 431)


def test_header_block_just_under_limit_ok(server):
    filler = "X-Filler: " + "a" * 6000 + "\r\n"
    resp = get(server, "/healthz", extra=filler)
    assert resp.status == 200, resp


def test_garbage_request_line_is_400_or_closed(server):
    sock = raw_connect(server)
    try:
        sock.sendall(b"\x16\x03\x01garbage garbage\r\n\r\n")
        data, closed = recv_until_closed(sock, 5)
        assert closed, "server kept a garbage connection open"
        if data:
            assert data.startswith(b"HTTP/1.1 400"), data[:100]
    finally:
        sock.close()
