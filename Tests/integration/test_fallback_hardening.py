"""Fallback hardening: 1,000 held polls and 1,000 open SSE streams at once stay within the
documented memory per idle session (README "Fallback transports": budget 4 KiB per session,
measured as the server's RSS growth divided by the sessions, kernel socket buffers excluded),
and every one of them still answers afterwards."""

import re
import socket
import time

import pytest

N = 1000
BUDGET_PER_SESSION = 4 * 1024


def rss(pid):
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode(), rest


def open_many(srv, transport):
    socks, sids = [], []
    for _ in range(N):
        s = socket.create_connection((srv.host, srv.port), timeout=20)
        s.sendall(f"GET /chatsocket?transport={transport} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        socks.append(s)
    for s in socks:
        head, rest = read_head(s)
        assert " 200 " in head.split("\r\n")[0], head
        if transport == "longpoll":
            n = int(re.search(r"Content-Length: (\d+)", head).group(1))
            while len(rest) < n:
                rest += s.recv(4096)
            assert rest[:4] == b"s24:"
            sid = rest[4:28].decode()
            sids.append(sid)
            s.sendall(f"GET /chatsocket?transport=longpoll&sid={sid} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        else:
            while b"data: " not in rest or not rest.split(b"data: ", 1)[1].count(b"\n"):
                rest += s.recv(4096)
            sids.append(rest.split(b"data: ", 1)[1].split(b"\n", 1)[0].decode())
    return socks, sids


@pytest.mark.parametrize("transport", ["longpoll", "sse"])
def test_a_thousand_idle_sessions_fit_the_budget(server_factory, transport):
    srv = server_factory("ws", "--app", "echo", "--threads", "2", "--max-connections", "5000")
    time.sleep(0.3)
    before = rss(srv.proc.pid)
    socks, sids = open_many(srv, transport)
    time.sleep(1.0)  # let every held poll settle
    after = rss(srv.proc.pid)
    per = (after - before) / N
    print(f"\n{transport}: {N} idle sessions, RSS +{(after - before) / 1024:.0f} KiB, {per:.0f} B per session")
    assert per <= BUDGET_PER_SESSION, f"{per:.0f} B per idle {transport} session > {BUDGET_PER_SESSION}"
    # All still alive: a message to the last session comes back on its held request.
    post = socket.create_connection((srv.host, srv.port), timeout=10)
    body = b"t4:ping"
    post.sendall(f"POST /chatsocket?transport={transport}&sid={sids[-1]} HTTP/1.1\r\nHost: x\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    head, _ = read_head(post)
    assert " 204 " in head, head
    got = b""
    deadline = time.monotonic() + 10
    while b"ping" not in got and time.monotonic() < deadline:
        got += socks[-1].recv(4096)
    assert b"ping" in got, got
    for s in socks:
        s.close()
    post.close()
    assert srv.alive()
