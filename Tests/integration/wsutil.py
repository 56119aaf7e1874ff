"""Shared helpers for the wss-server integration suite.

Raw socket helpers (HTTP requests, masked WebSocket frames) and a tiny wrapper
around the websockets asyncio client. No pytest plugin needed: async code is
run with asyncio.run() inside plain sync tests (see `run`).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import os
import socket
import ssl
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def run(coro, timeout: float = 30.0):
    """Run a coroutine with a hard upper bound so a broken server fails fast."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


# --------------------------------------------------------------------------
# raw sockets
# --------------------------------------------------------------------------

def raw_connect(server, timeout: float = 5.0):
    """TCP (or TLS, verified against ca.pem as 'localhost') socket to server."""
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    if server.scheme == "wss":
        sock = server.client_ssl.wrap_socket(sock, server_hostname="localhost")
        sock.settimeout(timeout)
    return sock


def recv_until_closed(sock, deadline_s: float = 8.0) -> tuple[bytes, bool]:
    """Read until EOF; return (data, closed). closed=False if deadline hit."""
    data = b""
    end = time.monotonic() + deadline_s
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return data, True
        except ssl.SSLError as e:  # abrupt TLS teardown also means "closed"
            if "EOF" in str(e) or "closed" in str(e).lower():
                return data, True
            raise
        if not chunk:
            return data, True
        data += chunk


class HTTPResponse:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, raw_head: bytes):
        self.status = status
        self.reason = reason
        self.header_list = headers
        self.headers = {}
        for k, v in headers:  # repeated fields combine into one comma list (RFC 9110 5.3)
            k = k.lower()
            self.headers[k] = f"{self.headers[k]}, {v}" if k in self.headers else v
        self.body = body
        self.raw_head = raw_head

    def get(self, name: str, default=None):
        return self.headers.get(name.lower(), default)

    def __repr__(self):
        return f"<HTTP {self.status} {self.reason} {self.headers} body={self.body[:200]!r}>"


class Reader:
    """Buffered reader over a (possibly TLS) socket, bounded by timeouts."""

    def __init__(self, sock, buf: bytes = b""):
        self.sock = sock
        self.buf = buf

    def _fill(self, timeout: float) -> bool:
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            chunk = b""
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_exact(self, n: int, timeout: float = 5.0) -> bytes:
        end = time.monotonic() + timeout
        while len(self.buf) < n:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"wanted {n} bytes, have {len(self.buf)}")
            if not self._fill(left):
                raise EOFError(f"connection closed: wanted {n} bytes, have {len(self.buf)}")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_until(self, marker: bytes, timeout: float = 5.0, limit: int = 1 << 20) -> bytes:
        end = time.monotonic() + timeout
        while marker not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {marker!r} in {self.buf[:300]!r}")
            if len(self.buf) > limit:
                raise ValueError("response head too large")
            if not self._fill(left):
                raise EOFError(f"closed before {marker!r}; got {self.buf[:300]!r}")
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_to_eof(self, timeout: float = 5.0) -> bytes:
        data, _ = recv_until_closed(self.sock, timeout)
        out, self.buf = self.buf + data, b""
        return out


def parse_head(head: bytes):
    lines = head.decode("latin-1").split("\r\n")
    proto, status, *reason = lines[0].split(" ", 2)
    assert proto.startswith("HTTP/1."), f"bad status line {lines[0]!r}"
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return int(status), (reason[0] if reason else ""), headers


def read_http_response(reader: Reader, method: str = "GET", timeout: float = 5.0) -> HTTPResponse:
    head = reader.read_until(b"\r\n\r\n", timeout)
    status, reason, headers = parse_head(head)
    hd = {k.lower(): v for k, v in headers}
    body = b""
    if method != "HEAD" and status not in (101, 204, 304):
        if "content-length" in hd:
            body = reader.read_exact(int(hd["content-length"]), timeout)
        elif "chunked" in hd.get("transfer-encoding", "").lower():
            while True:
                size = int(reader.read_until(b"\r\n", timeout).strip().split(b";")[0], 16)
                chunk = reader.read_exact(size + 2, timeout)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = reader.read_to_eof(timeout)
    return HTTPResponse(status, reason, headers, body, head)


def http_request(server, raw: bytes | str, method: str = "GET", timeout: float = 5.0):
    """Send a raw request, return (response, reader, sock). Caller closes sock."""
    if isinstance(raw, str):
        raw = raw.encode("latin-1")
    sock = raw_connect(server, timeout)
    sock.sendall(raw)
    reader = Reader(sock)
    return read_http_response(reader, method, timeout), reader, sock


def upgrade_request(path="/chatsocket", host="localhost", key=None, version="13",
                    extra: str = "", omit: tuple = ()) -> tuple[str, str]:
    key = new_key() if key is None else key
    hdrs = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in hdrs if k not in omit]
    return "\r\n".join(lines) + "\r\n" + extra + "\r\n", key


def ws_handshake(server, path="/chatsocket", timeout=5.0):
    """Raw upgrade; asserts 101 and a correct accept. Returns (sock, reader)."""
    req, key = upgrade_request(path)
    resp, reader, sock = http_request(server, req, timeout=timeout)
    assert resp.status == 101, resp
    assert resp.get("sec-websocket-accept") == accept_for(key), resp
    return sock, reader


# --------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------

def build_frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True,
                rsv: int = 0, declared_len: int | None = None) -> bytes:
    n = len(payload) if declared_len is None else declared_len
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def close_payload(code: int | None, reason: bytes = b"") -> bytes:
    return b"" if code is None else struct.pack("!H", code) + reason


def read_frame(reader: Reader, timeout: float = 5.0):
    """Returns (fin, rsv, opcode, masked, payload)."""
    b0, b1 = reader.read_exact(2, timeout)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", reader.read_exact(2, timeout))[0]
    elif n == 127:
        n = struct.unpack("!Q", reader.read_exact(8, timeout))[0]
    key = reader.read_exact(4, timeout) if b1 & 0x80 else None
    payload = reader.read_exact(n, timeout)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, bool(b1 & 0x80), payload


def expect_close(reader: Reader, timeout: float = 5.0, max_frames: int = 50):
    """Skip data/ping frames until the server's close frame; return (code, reason)."""
    for _ in range(max_frames):
        fin, rsv, op, masked, payload = read_frame(reader, timeout)
        if op == OP_CLOSE:
            assert not masked, "server frames must not be masked"
            assert fin and rsv == 0
            if len(payload) < 2:
                return None, b""
            return struct.unpack("!H", payload[:2])[0], payload[2:]
    raise AssertionError("no close frame from server")


def assert_close_then_eof(sock, reader: Reader, expected_code: int, eof_timeout: float = 8.0):
    code, reason = expect_close(reader)
    assert code == expected_code, f"close code {code} (reason {reason!r}), expected {expected_code}"
    rest, closed = recv_until_closed(sock, eof_timeout)
    assert closed, f"server did not close TCP within {eof_timeout}s after close {code}"
    return code, reason


# --------------------------------------------------------------------------
# websockets client
# --------------------------------------------------------------------------

def ws_connect(server, path="/chatsocket", **kw):
    from websockets.asyncio.client import connect

    opts = dict(open_timeout=5, close_timeout=5, max_size=64 * 1024 * 1024)
    if "proxy" in inspect.signature(connect.__init__).parameters:  # websockets >= 15
        opts["proxy"] = None  # never route 127.0.0.1 through an environment proxy
    if server.scheme == "wss":
        opts.update(ssl=server.client_ssl, server_hostname="localhost")
    opts.update(kw)
    return connect(f"{server.url}{path}", **opts)
