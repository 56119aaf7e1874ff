"""SSE and long-polling fallbacks against the real server (ws and wss): messages both ways,
UTF-8, binary, order, the same handlers as WebSocket (reply, echo, chat with a WebSocket
client), two polls at once, session timeout, limits and their status codes, forged and
expired ids, keep-alive, HEAD, CORS, loops handing requests over, slowloris on POST bodies."""

import asyncio
import socket
import threading
import time

import pytest
import websockets

from fallbackutil import SSE, Client, LongPoll, decode, encode

HELLO = "你好 🚀"


def test_longpoll_reply_app_both_ways(server):
    lp = LongPoll(server)
    try:
        assert len(lp.sid) == 24 and lp.sid.endswith("A")
        lp.post([("t", HELLO), ("b", b"\x00\xff\x01"), ("t", "")])
        got = lp.receive(3)
        assert got == [("t", (HELLO + "响应").encode()), ("b", b"\x00\xff\x01"), ("t", "响应".encode())]
    finally:
        lp.close()


def test_sse_reply_app_both_ways(server):
    sse = SSE(server)
    try:
        assert sse.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert sse.headers["cache-control"] == "no-store"
        assert sse.headers["x-accel-buffering"] == "no"
        sse.post([("t", HELLO), ("t", "two\nlines"), ("t", "cr\r\nlf"), ("b", bytes(range(256)))])
        assert sse.message() == HELLO + "响应"
        assert sse.message() == "two\nlines响应", "multi-line text arrives whole"
        assert sse.message() == "cr\r\nlf响应", "CR survives (text64)"
        assert sse.message() == bytes(range(256))
    finally:
        sse.close()


def test_order_is_kept_across_posts_and_batches(server_factory):
    srv = server_factory("ws", "--app", "echo")
    lp = LongPoll(srv)
    try:
        sent = []
        for p in range(5):
            batch = [("t", f"m{p}-{i}-响") for i in range(20)]
            sent += batch
            lp.post(batch)
        got = lp.receive(len(sent))
        assert [r[1].decode() for r in got] == [s[1] for s in sent]
    finally:
        lp.close()


def test_two_polls_at_once_the_first_is_answered_empty(server):
    lp = LongPoll(server)
    try:
        first = {}

        def held():
            t0 = time.monotonic()
            first["records"] = lp.poll()
            first["after"] = time.monotonic() - t0

        t = threading.Thread(target=held)
        t.start()
        time.sleep(0.5)
        second = Client(server, timeout=40)
        second.conn.request("GET", lp.url)  # sent; its answer is read below
        t.join(5)
        assert not t.is_alive(), "the held poll was not answered when the second one came"
        assert first["records"] == [] and first["after"] < 3, first
        lp.post([("t", "x")])
        resp = second.conn.getresponse()
        body = resp.read()
        assert resp.status == 200 and decode(body) == [("t", "x响应".encode())]
        second.close()
    finally:
        lp.close()


def test_chat_between_websocket_and_long_polling(server_factory):
    srv = server_factory("ws", "--app", "chat")

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{srv.port}/chatsocket") as ws:
            lp = await asyncio.to_thread(LongPoll, srv)
            try:
                await asyncio.sleep(0.2)
                await ws.send("from ws 你好")
                got = await asyncio.to_thread(lp.receive, 1)
                assert got == [("t", "from ws 你好".encode())]
                assert await asyncio.wait_for(ws.recv(), 5) == "from ws 你好", "the sender is in the room"
                await asyncio.to_thread(lp.post, [("t", "from longpoll 🚀")])
                assert await asyncio.wait_for(ws.recv(), 5) == "from longpoll 🚀"
                got = await asyncio.to_thread(lp.receive, 1)
                assert got == [("t", "from longpoll 🚀".encode())], "the poster is in the room too"
            finally:
                lp.close()

    asyncio.run(run())


def test_chat_over_sse_reaches_websocket(server_factory):
    srv = server_factory("ws", "--app", "chat")

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{srv.port}/chatsocket") as ws:
            sse = await asyncio.to_thread(SSE, srv)
            try:
                await asyncio.sleep(0.2)
                await asyncio.to_thread(sse.post, [("t", "from sse")])
                assert await asyncio.wait_for(ws.recv(), 5) == "from sse"
                await ws.send("to sse")
                assert await asyncio.to_thread(sse.message) == "from sse"
                assert await asyncio.to_thread(sse.message) == "to sse"
            finally:
                sse.close()

    asyncio.run(run())


def test_client_close_ends_the_session(server):
    lp = LongPoll(server)
    try:
        lp.post([("c", "1000 bye")])
        assert lp.poll() == [("c", b"1000 bye")], "the close is echoed, as a close frame is"
        resp = Client(server).request("GET", lp.url)
        assert resp.status == 404, "the session is gone after its close"
    finally:
        lp.close()


def test_forged_and_expired_ids_get_the_same_404(server_factory):
    srv = server_factory("ws", "--session-timeout", "1", "--poll-timeout", "0.5")
    lp = LongPoll(srv)
    c = Client(srv)
    try:
        answers = []
        forged = lp.sid[:5] + ("B" if lp.sid[5] != "B" else "C") + lp.sid[6:]
        for target in (f"/chatsocket?transport=longpoll&sid={forged}",
                       "/chatsocket?transport=longpoll&sid=nonsense",
                       f"/chatsocket?transport=sse&sid={lp.sid}"):  # right id, wrong transport
            resp = c.request("GET", target)
            answers.append((resp.status, resp.read()))
        time.sleep(2.0)  # no request attached: the session expires (idle connections close too)
        c.close()
        c = Client(srv)
        resp = c.request("GET", lp.url)
        answers.append((resp.status, resp.read()))
        assert all(a == (404, b"no such session\n") for a in answers), answers
    finally:
        c.close()
        lp.close()


def test_other_origin_cannot_use_a_session(server):
    lp = LongPoll(server, origin=f"http://127.0.0.1:{server.port}" if not server.tls else f"https://127.0.0.1:{server.port}")
    try:
        other = Client(server, origin="https://evil.example")
        resp = other.request("POST", lp.url, body=encode([("t", "x")]))
        assert (resp.status, resp.read()) == (404, b"no such session\n")
        resp = other.request("GET", "/chatsocket?transport=longpoll")
        assert resp.status == 403, "a new session from a foreign origin is refused like an upgrade"
        resp.read()
    finally:
        lp.close()


def test_limits_and_their_status_codes(server_factory):
    srv = server_factory("ws", "--app", "echo", "--max-post-body", "1000", "--max-post-messages", "3",
                         "--max-sessions", "2")
    a = LongPoll(srv)
    b = LongPoll(srv)
    try:
        resp = Client(srv).request("GET", "/chatsocket?transport=longpoll")
        assert resp.status == 503 and resp.getheader("Retry-After"), resp.status
        resp.read()
        a.post([("t", "x" * 1001)], expect=413)
        b.post([("t", "1"), ("t", "2"), ("t", "3"), ("t", "4")], expect=413)
        b2 = Client(srv)
        resp = b2.request("POST", b.url, body=b"t5:abc")
        assert resp.status == 400, resp.status
        resp.read()
        bad_utf8 = Client(srv)
        resp = bad_utf8.request("POST", b.url, body=b"t2:\xc3\x28")
        assert resp.status == 400
        resp.read()
    finally:
        a.close()
        b.close()


def test_keep_alive_several_requests_on_one_connection(server_factory):
    srv = server_factory("ws", "--app", "echo")
    lp = LongPoll(srv)
    try:
        lp.post([("t", "k")])
        sock_before = lp.poster.conn.sock
        assert sock_before is not None
        for i in range(5):
            lp.post([("t", f"k{i}")])
            assert lp.poster.conn.sock is sock_before, "the POST connection was not kept"
        assert [r[1] for r in lp.receive(6)] == [b"k"] + [f"k{i}".encode() for i in range(5)]
        # The page on a connection that carried fallback requests: handed back, still served.
        resp = lp.poster.request("GET", "/")
        assert resp.status == 200 and b"<!DOCTYPE html>" in resp.read()
    finally:
        lp.close()


def test_head_and_cors(server_factory):
    srv = server_factory("ws", "--allowed-origin", "https://app.example")
    c = Client(srv, origin="https://app.example")
    try:
        resp = c.request("HEAD", "/chatsocket?transport=sse")
        assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
        assert resp.read() == b""
        resp = c.request("OPTIONS", "/chatsocket?transport=longpoll",
                         headers={"Access-Control-Request-Method": "POST"})
        assert resp.status == 204
        assert resp.getheader("Access-Control-Allow-Origin") == "https://app.example"
        assert "POST" in resp.getheader("Access-Control-Allow-Methods")
        resp.read()
        lp = LongPoll(srv, origin="https://app.example")
        resp = lp.post([("t", "x")])
        assert resp.getheader("Access-Control-Allow-Origin") == "https://app.example"
        lp.close()
        other = Client(srv, origin="https://other.example")
        resp = other.request("OPTIONS", "/chatsocket?transport=longpoll")
        assert resp.status == 403 and resp.getheader("Access-Control-Allow-Origin") is None
        resp.read()
    finally:
        c.close()


def test_sessions_on_every_loop_are_reached_from_any_connection(server_factory):
    """With 4 loops, each new TCP connection lands on a loop chosen by the kernel; requests for
    a session on another loop are moved to it. 40 sessions, each polled on fresh connections."""
    srv = server_factory("ws", "--app", "echo", "--threads", "4")
    sessions = [LongPoll(srv) for _ in range(40)]
    try:
        loops = {s.sid[:2] for s in sessions}
        assert len(loops) > 1, f"all sessions on one loop: {loops}"
        for i, s in enumerate(sessions):
            fresh = Client(srv)
            resp = fresh.request("POST", s.url, body=encode([("t", f"s{i}")]))
            assert resp.status == 204
            resp.read()
            fresh.close()
        for i, s in enumerate(sessions):
            assert s.receive(1) == [("t", f"s{i}".encode())]
    finally:
        for s in sessions:
            s.close()


def test_slowloris_post_body_is_cut(server_factory):
    srv = server_factory("ws", "--post-timeout", "1")
    lp = LongPoll(srv)
    try:
        s = socket.create_connection((srv.host, srv.port), timeout=10)
        s.sendall(f"POST {lp.url} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nt1:".encode())
        t0 = time.monotonic()
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"HTTP/1.1 408 "), data
        assert time.monotonic() - t0 < 5
        s.close()
        lp.post([("t", "still alive")])
    finally:
        lp.close()


def test_sse_heartbeat_and_server_close(server_factory):
    srv = server_factory("ws", "--app", "echo", "--max-message-size", "100")
    sse = SSE(srv)
    try:
        sse.post([("t", "x" * 101)], expect=413)
    finally:
        sse.close()
