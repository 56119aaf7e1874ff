"""make cluster's own HAProxy config (share/cluster/haproxy.cfg: HTTP mode, TLS terminated,
sessions sticky by id) in front of three real instances sharing a real Redis, all on free
127.0.0.1 ports: an SSE and a long-polling session survive many requests through HAProxy,
each on a fresh connection (a request routed to another instance would get 404: only the
instance that created a session knows it), and chat reaches them from WebSocket clients on
the other instances through Redis, and goes back."""
from __future__ import annotations

import asyncio
import socket
import time
from types import SimpleNamespace

import pytest

from clusterutil import ClusterHAProxy, Redis
from fallbackutil import SSE, Client, LongPoll, encode
from wsutil import run, ws_connect

REQUESTS = 20


@pytest.fixture
def redis():
    r = Redis().start()
    yield r
    r.kill()


def front(hap, client_ssl):
    return SimpleNamespace(scheme="wss", tls=True, host="127.0.0.1", port=hap.port, client_ssl=client_ssl,
                           url=f"wss://127.0.0.1:{hap.port}")


def wait_routed(fe, hap):
    end = time.monotonic() + 15
    while time.monotonic() < end:
        try:
            c = Client(fe, timeout=2)
            try:
                if c.request("GET", "/healthz").status == 200:
                    return
            finally:
                c.close()
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"HAProxy never routed: {hap.log.read_text()[-2000:]}")


def holder(servers, transport):
    """Index of the one instance that opened a session of `transport`."""
    found = [i for i, s in enumerate(servers) if f"fallback session ({transport}) opened" in s.stderr()]
    assert len(found) == 1, f"{transport} sessions opened on instances {found}"
    return found[0]


def post_fresh(fe, url, text):
    """One POST on a new connection through HAProxy (a new TLS session at the balancer)."""
    c = Client(fe)
    try:
        resp = c.request("POST", url, body=encode([("t", text)]))
        body = resp.read()
        return resp.status, body
    finally:
        c.close()


async def ws_direct(server):
    """A WebSocket client straight to one instance (with the PROXY v1 header it requires)."""
    sock = socket.create_connection((server.host, server.port), timeout=5)
    sock.sendall(b"PROXY TCP4 127.0.0.9 127.0.0.1 40000 443\r\n")
    sock.setblocking(False)
    return await ws_connect(server, "/chatsocket", sock=sock)


def texts(records):
    return [r[1].decode() for r in records if r[0] == "t"]


def test_fallback_sessions_stick_to_their_instance_and_chat_crosses_redis(server_factory, redis, tmp_path,
                                                                           certs, client_ssl):
    servers = [server_factory("wss", "--app", "chat", "--threads", "2", "--backplane", redis.url,
                              "--proxy-protocol", "--trusted-proxy", "127.0.0.1", "--log-level", "debug", "--poll-timeout", "2")
               for _ in range(3)]
    hap = ClusterHAProxy(tmp_path, [(s.host, s.port) for s in servers], certs)
    try:
        fe = front(hap, client_ssl)
        wait_routed(fe, hap)
        lp = LongPoll(fe)
        sse = SSE(fe)
        try:
            for i in range(REQUESTS):
                assert post_fresh(fe, lp.url, f"lp-{i}") == (204, b""), f"long-poll POST {i} left its instance"
                assert post_fresh(fe, sse.url, f"sse-{i}") == (204, b""), f"SSE POST {i} left its instance"
            got = []
            for _ in range(4 * REQUESTS):
                got += texts(lp.poll())  # every poll through HAProxy too
                if sum(t.endswith(f"-{REQUESTS - 1}") for t in got) == 2:
                    break
            for i in range(REQUESTS):
                assert any(t.endswith(f"lp-{i}") for t in got) and any(t.endswith(f"sse-{i}") for t in got), got
            streamed = [sse.message() for _ in range(2 * REQUESTS)]
            assert sum(isinstance(m, str) and "sse-" in m for m in streamed) == REQUESTS, streamed

            h_lp, h_sse = holder(servers, "longPolling"), holder(servers, "sse")
            others = [s for i, s in enumerate(servers) if i != h_lp and i != h_sse]
            assert others, "three instances, two sessions: at least one instance holds neither"
            run(chat_across(others, lp, sse), timeout=60)
        finally:
            lp.close()
            sse.close()
    finally:
        hap.stop()


async def chat_across(others, lp, sse):
    clients = [await ws_direct(s) for s in others]
    try:
        # Until the WebSocket's instance has subscribed to the room in Redis: sync messages.
        seen = []
        for r in range(50):
            await clients[0].send(f"sync-{r}")
            seen += texts(await asyncio.to_thread(lp.poll))
            if any(t.startswith("sync-") or "sync-" in t for t in seen):
                break
        assert any("sync-" in t for t in seen), "chat from another instance never reached the long-polling session"
        for k, c in enumerate(clients):
            await c.send(f"from-ws-{k} 你好")
        want = {f"from-ws-{k} 你好" for k in range(len(clients))}
        got = []
        for _ in range(20):
            got += texts(await asyncio.to_thread(lp.poll))
            if all(any(w in t for t in got) for w in want):
                break
        assert all(any(w in t for t in got) for w in want), got
        streamed = []
        while not all(any(isinstance(m, str) and w in m for m in streamed) for w in want):
            streamed.append(await asyncio.to_thread(sse.message))
        await asyncio.to_thread(lp.post, [("t", "from-lp 🚀")])
        await asyncio.to_thread(sse.post, [("t", "from-sse 🚀")])
        for c in clients:
            heard = []
            while not (any("from-lp 🚀" in m for m in heard) and any("from-sse 🚀" in m for m in heard)):
                m = await asyncio.wait_for(c.recv(), 10)
                heard.append(m if isinstance(m, str) else "")
    finally:
        for c in clients:
            await c.close()
