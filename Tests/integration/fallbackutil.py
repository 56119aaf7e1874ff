"""Raw-HTTP clients of the SSE and long-polling fallbacks (README "Fallback transports"):
batches `<kind><length>:<payload>`, SSE events, keep-alive connections over ws or wss servers."""

import base64
import http.client
import socket
import ssl


def encode(records):
    """records: [("t", str) | ("b", bytes) | ("c", "1000 bye")] -> batch bytes."""
    out = bytearray()
    for kind, payload in records:
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        out += kind.encode() + str(len(data)).encode() + b":" + data
    return bytes(out)


def decode(body):
    """batch bytes -> [(kind, bytes)]; asserts the framing is exact."""
    out, i = [], 0
    while i < len(body):
        kind = chr(body[i])
        colon = body.index(b":", i + 1)
        n = int(body[i + 1:colon])
        assert str(n).encode() == body[i + 1:colon], f"non-canonical length in {body!r}"
        start = colon + 1
        assert start + n <= len(body), f"record cut short in {body!r}"
        out.append((kind, body[start:start + n]))
        i = start + n
    return out


class Client:
    """One keep-alive HTTP connection to the server (plain or TLS)."""

    def __init__(self, server, timeout=10.0, origin=None):
        self.server, self.origin = server, origin
        if server.tls:
            self.conn = http.client.HTTPSConnection(server.host, server.port, timeout=timeout,
                                                    context=server.client_ssl)
        else:
            self.conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)

    def request(self, method, target, body=None, headers=None):
        h = {"Host": f"{self.server.host}:{self.server.port}"}
        if self.origin:
            h["Origin"] = self.origin
        h.update(headers or {})
        self.conn.request(method, target, body=body, headers=h)
        resp = self.conn.getresponse()
        return resp

    def close(self):
        self.conn.close()


class LongPoll:
    """A long-polling session: open() reads the session record; poll() and post() use the
    session URL, each on its own keep-alive connection (a held poll blocks its connection)."""

    def __init__(self, server, path="/chatsocket", origin=None):
        self.server, self.path, self.origin = server, path, origin
        self.poller = Client(server, timeout=40, origin=origin)
        self.poster = Client(server, origin=origin)
        resp = self.poller.request("GET", f"{path}?transport=longpoll")
        body = resp.read()
        assert resp.status == 200, (resp.status, body)
        assert resp.getheader("Cache-Control") == "no-store"
        records = decode(body)
        assert records and records[0][0] == "s", records
        self.sid = records[0][1].decode()
        self.initial = records[1:]

    @property
    def url(self):
        return f"{self.path}?transport=longpoll&sid={self.sid}"

    def poll(self):
        resp = self.poller.request("GET", self.url)
        body = resp.read()
        assert resp.status == 200, (resp.status, body)
        return decode(body)

    def post(self, records, expect=204, headers=None):
        resp = self.poster.request("POST", self.url, body=encode(records),
                                   headers={"Content-Type": "application/octet-stream", **(headers or {})})
        body = resp.read()
        assert resp.status == expect, (resp.status, body)
        return resp

    def receive(self, n, polls=10):
        """Polls until n records arrived."""
        got = []
        for _ in range(polls):
            got += self.poll()
            if len(got) >= n:
                return got
        raise AssertionError(f"only {len(got)} of {n} records after {polls} polls: {got!r}")

    def close(self):
        self.poller.close()
        self.poster.close()


class SSE:
    """An SSE stream read event by event from a raw socket (chunked decoding by hand, so the
    test sees exactly what a browser's EventSource would)."""

    def __init__(self, server, path="/chatsocket", origin=None, timeout=10.0):
        self.server, self.path = server, path
        raw = socket.create_connection((server.host, server.port), timeout=timeout)
        if server.tls:
            raw = server.client_ssl.wrap_socket(raw, server_hostname=server.host)
        self.sock = raw
        req = f"GET {path}?transport=sse HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nAccept: text/event-stream\r\n"
        if origin:
            req += f"Origin: {origin}\r\n"
        self.sock.sendall((req + "\r\n").encode())
        self.buf = b""
        head = self._read_until(b"\r\n\r\n").decode()
        self.status_line, *lines = head.split("\r\n")
        self.headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines if l)}
        assert " 200 " in self.status_line, head
        self.text = b""  # de-chunked stream bytes not yet parsed into events
        kind, data = self.event()
        assert kind == "session", (kind, data)
        self.sid = data
        self.poster = Client(server, origin=origin)

    def _read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"stream ended; buffered {self.buf!r}")
            self.buf += chunk
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("stream ended")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _next_chunk(self):
        size = int(self._read_until(b"\r\n"), 16)
        if size == 0:
            raise EOFError("last chunk")
        data = self._read_exact(size)
        assert self._read_exact(2) == b"\r\n"
        self.text += data

    def event(self, skip_comments=True):
        """Next event as (type, data str); comments as ("comment", text) unless skipped."""
        while True:
            while b"\n\n" not in self.text:
                self._next_chunk()
            block, self.text = self.text.split(b"\n\n", 1)
            lines = block.decode().split("\n")
            if all(l.startswith(":") for l in lines):
                if skip_comments:
                    continue
                return "comment", "\n".join(l[1:].strip() for l in lines)
            kind, data = "message", []
            for l in lines:
                field, _, value = l.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    kind = value
                elif field == "data":
                    data.append(value)
            return kind, "\n".join(data)

    def message(self):
        """Next message decoded as EventSource + the page would: str, bytes, or ("close", ...)."""
        kind, data = self.event()
        if kind == "message":
            return data
        if kind == "text64":
            return base64.b64decode(data).decode()
        if kind == "binary":
            return base64.b64decode(data)
        return (kind, data)

    @property
    def url(self):
        return f"{self.path}?transport=sse&sid={self.sid}"

    def post(self, records, expect=204):
        resp = self.poster.request("POST", self.url, body=encode(records))
        body = resp.read()
        assert resp.status == expect, (resp.status, body)
        return resp

    def close(self):
        self.sock.close()
        self.poster.close()
