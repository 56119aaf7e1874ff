"""Recovery of missed messages (issue 13, Centrifugo's model) through the chat app and the
page's query parameters (?room=, since=, epoch=): in process on one instance, and over Redis
Streams on three instances with Redis killed and restarted mid-stream. Every missed message
comes back once, in order, then live ones; an incomplete recovery is reported, never silent."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.parse

import pytest

from clusterutil import Redis, metrics
from fallbackutil import Client, decode
from wsutil import run, ws_connect


class Reader:
    """A chat client in a room that keeps its last position, like the page does."""

    def __init__(self, server, room: str):
        self.server, self.room = server, room
        self.offset = self.epoch = None
        self.messages: list[tuple[int, str]] = []
        self.recoveries: list[dict] = []
        self.ws = None

    def query(self) -> str:
        q = {"room": self.room}
        if self.offset is not None:
            q.update(since=str(self.offset), epoch=self.epoch)
        return "/chatsocket?" + urllib.parse.urlencode(q)

    async def connect(self, server=None):
        self.server = server or self.server
        self.ws = await ws_connect(self.server, self.query())

    def take(self, raw: str):
        m = json.loads(raw)
        if m["offset"] is not None:
            self.offset, self.epoch = m["offset"], m["epoch"]
        if m["type"] == "message":
            self.messages.append((m["offset"], m["data"]))
        else:
            assert m["type"] == "recovery", m
            self.recoveries.append(m)

    async def until(self, n_messages: int, recoveries: int | None = None, timeout: float = 15):
        async def loop():
            while len(self.messages) < n_messages or (recoveries is not None and len(self.recoveries) < recoveries):
                self.take(await self.ws.recv())
        await asyncio.wait_for(loop(), timeout)

    async def quiet(self, t: float = 0.3):
        try:
            while True:
                self.take(await asyncio.wait_for(self.ws.recv(), t))
        except asyncio.TimeoutError:
            pass


def check_all(reader: Reader, texts: list[str], where: str):
    """Every message once, in order, with contiguous offsets."""
    assert [d for _, d in reader.messages] == texts, f"{where}: {reader.messages}"
    offsets = [o for o, _ in reader.messages]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), f"{where}: offsets {offsets}"


async def send_all(ws, texts):
    for t in texts:
        await ws.send(t)


def chat(server_factory, *extra):
    return server_factory("ws", "--app", "chat", "--threads", "2", *extra)


def test_single_instance_resumes_in_order_then_live_and_reports_a_gap_older_than_history(server_factory):
    server = chat(server_factory, "--history-size", "20", "--history-ttl", "60")

    async def main():
        pub = await ws_connect(server, "/chatsocket?room=a")
        r = Reader(server, "a")
        await r.connect()
        await r.until(0, recoveries=1)
        assert r.recoveries[0]["recovered"] is True and r.recoveries[0]["offset"] == 0
        await send_all(pub, [f"m{i}" for i in range(5)])
        await r.until(5)
        await r.ws.close()
        await send_all(pub, [f"m{i}" for i in range(5, 15)])  # missed
        await asyncio.sleep(0.2)
        await r.connect()
        await r.until(15, recoveries=2)
        assert r.recoveries[1] == {"type": "recovery", "recovered": True, "count": 10, "offset": 15,
                                   "epoch": r.epoch, "resync": False}
        await send_all(pub, ["live"])
        await r.until(16)
        check_all(r, [f"m{i}" for i in range(15)] + ["live"], "resumed")
        await r.quiet()
        assert len(r.messages) == 16, "nothing twice"

        await r.ws.close()
        await send_all(pub, [f"g{i}" for i in range(30)])  # more than the 20 kept
        await asyncio.sleep(0.2)
        r.messages = []
        await r.connect()
        await r.until(20, recoveries=3)
        assert r.recoveries[2]["recovered"] is False, "a gap older than the history is reported"
        check_all(r, [f"g{i}" for i in range(10, 30)], "partial")
        await r.ws.close()
        await pub.close()

    run(main(), timeout=60)


def test_without_history_a_resume_is_reported_incomplete_and_bad_positions_refused(server_factory):
    server = chat(server_factory)

    async def main():
        r = Reader(server, "b")
        await r.connect()
        await r.until(0, recoveries=1)
        assert r.recoveries[0]["offset"] is None, "no history, no positions"
        await r.ws.send("hello")
        await r.until(1)
        assert r.messages == [(None, "hello")]
        await r.ws.close()
        back = await ws_connect(server, "/chatsocket?room=b&since=4&epoch=abc")
        m = json.loads(await asyncio.wait_for(back.recv(), 5))
        assert m["type"] == "recovery" and m["recovered"] is False
        await back.close()
        for bad in ("room=b&since=4", "room=b&since=-1&epoch=e", "room=%ff", "room=b&since=1&epoch=" + "e" * 65):
            with pytest.raises(Exception) as e:
                async with ws_connect(server, "/chatsocket?" + bad):
                    pass
            assert "400" in str(e.value), (bad, e.value)

    run(main(), timeout=30)
    assert "since and epoch go together" in server.stderr(), server.stderr()


def test_long_polling_client_resumes_from_its_offset(server_factory):
    """The same recovery on a fallback session (TopicSubscriber behind long polling)."""
    server = chat(server_factory, "--history-size", "50")

    async def publish(texts):
        async with ws_connect(server, "/chatsocket?room=lp") as pub:
            await pub.recv()  # its recovery line: subscribed
            await send_all(pub, texts)
            for _ in texts:
                await pub.recv()

    run(publish([f"m{i}" for i in range(3)]))
    first = Client(server)
    resp = first.request("GET", "/chatsocket?room=lp&transport=longpoll")
    body = resp.read()
    assert resp.status == 200, body
    records = decode(body)
    sid = records[0][1].decode()
    lines = [json.loads(p) for k, p in records[1:] if k == "t"]
    while not lines:
        lines = [json.loads(p) for k, p in decode(first.request("GET", f"/chatsocket?transport=longpoll&sid={sid}").read()) if k == "t"]
    epoch = lines[0]["epoch"]
    assert lines[0]["type"] == "recovery" and lines[0]["offset"] == 3
    first.close()

    run(publish([f"n{i}" for i in range(4)]))
    again = Client(server)
    resp = again.request("GET", f"/chatsocket?room=lp&since=3&epoch={epoch}&transport=longpoll")
    records = decode(resp.read())
    sid = records[0][1].decode()
    got = [json.loads(p) for k, p in records[1:] if k == "t"]
    for _ in range(10):
        if len(got) >= 5:
            break
        got += [json.loads(p) for k, p in decode(again.request("GET", f"/chatsocket?transport=longpoll&sid={sid}").read()) if k == "t"]
    assert [(m["type"], m["offset"], m.get("data")) for m in got] == \
        [("message", 4 + i, f"n{i}") for i in range(4)] + [("recovery", 7, None)]
    assert got[-1]["recovered"] is True
    again.close()


@pytest.mark.parametrize("persist", [True, False], ids=["aof", "no-persistence"])
def test_redis_killed_and_restarted_mid_stream_clients_resume_from_their_last_offset(server_factory, tmp_path, persist):
    extra = ("--dir", str(tmp_path), "--appendonly", "yes", "--appendfsync", "always") if persist else ()
    redis = Redis(None, *extra).start()
    try:
        servers = [chat(server_factory, "--backplane", redis.url, "--history-size", "1000", "--history-ttl", "300")
                   for _ in range(3)]
        run(cluster_outage(servers, redis, extra, persist), timeout=90)
    finally:
        redis.kill()


async def cluster_outage(servers, redis, extra, persist):
    pub = await ws_connect(servers[0], "/chatsocket?room=z")
    readers = [Reader(s, "z") for s in servers]
    for r in readers:
        await r.connect()
        await r.until(0, recoveries=1)
    first = [f"m{i}" for i in range(20)]
    await send_all(pub, first)
    for r in readers:
        await r.until(20)

    for r in readers[1:]:
        await r.ws.close()  # away during the outage
    resubscribed = [metrics(s).get("wss_backplane_resubscribes_total", 0) for s in servers]
    redis.kill()
    await asyncio.sleep(0.3)
    during = [f"m{i}" for i in range(20, 40)]
    await send_all(pub, during)  # queued on instance 0 for Redis
    await asyncio.sleep(0.3)
    redis.start()
    for _ in range(200):
        # Instance 0 (the only one with subscribers left) resubscribed, and every instance's two
        # connections (publish, subscribe) are back: 6 clients plus redis-cli itself.
        if metrics(servers[0]).get("wss_backplane_resubscribes_total", 0) > resubscribed[0] \
                and len(redis.cli("CLIENT", "LIST").splitlines()) >= 7:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("instances did not reconnect to Redis")
    await asyncio.sleep(0.3)  # instance 0's backlog reaches the stream
    after = [f"m{i}" for i in range(40, 60)]
    await send_all(pub, after)
    # The two that were away come back on other instances than before, with their last offset.
    await readers[1].connect(servers[2])
    await readers[2].connect(servers[0])
    tail = ["m60", "m61"]
    if persist:
        for r in readers[1:]:
            await r.until(60, recoveries=2)
            assert r.recoveries[-1]["recovered"] is True, r.recoveries
        await send_all(pub, tail)
        for k, r in enumerate(readers):
            await r.until(62)
            await r.quiet()
            check_all(r, first + during + after + tail, f"reader {k}")
        # The one that stayed connected on the publisher's instance filled the gap itself.
        assert any(x["resync"] and x["recovered"] for x in readers[0].recoveries), readers[0].recoveries
    else:
        # The stream died with Redis: the resume says so, and what the new stream holds comes
        # in order (the outage's backlog first, once forwarded).
        for r in readers[1:]:
            await r.until(20, recoveries=2)
            assert r.recoveries[-1]["recovered"] is False, r.recoveries
        await send_all(pub, tail)
        for k, r in enumerate(readers[1:]):
            await r.until(22 + len(after))
            await r.quiet()
            got = [d for _, d in r.messages[20:]]
            assert got[-2:] == tail and got[-len(tail) - len(after):-len(tail)] == after, f"reader {k + 1}: {got}"
            assert sorted(set(got)) == sorted(got), f"reader {k + 1}: repeats in {got}"
    for r in readers:
        await r.ws.close()
    await pub.close()


def test_redis_without_history_a_resume_after_an_outage_is_reported_incomplete(server_factory):
    """No history: nothing to replay, so a client that comes back with a position is told so
    (and the instances count what they missed in wss_backplane_lost_total)."""
    redis = Redis().start()
    try:
        servers = [chat(server_factory, "--backplane", redis.url) for _ in range(2)]

        async def main():
            pub = await ws_connect(servers[0], "/chatsocket?room=n")
            r = Reader(servers[1], "n")
            await r.connect()
            await r.until(0, recoveries=1)
            for _ in range(100):  # until instance 1's subscription carries instance 0's messages
                await pub.send("probe")
                try:
                    r.take(await asyncio.wait_for(r.ws.recv(), 0.1))
                    break
                except asyncio.TimeoutError:
                    pass
            assert r.messages and r.messages[0] == (None, "probe"), "no positions without history"
            await r.ws.close()
            redis.kill()
            await send_all(pub, [f"lost{i}" for i in range(5)])
            redis.start()
            back = await ws_connect(servers[1], "/chatsocket?room=n&since=1&epoch=e0")
            m = json.loads(await asyncio.wait_for(back.recv(), 5))
            assert m["type"] == "recovery" and m["recovered"] is False and m["count"] == 0, m
            await back.close()
            await pub.close()

        run(main(), timeout=30)
    finally:
        redis.kill()



class SlowRelay:
    """A TCP relay to 127.0.0.1:`port` that holds each new connection `delay` seconds before it
    relays anything: a distant Redis, whose answer to the login (AUTH) takes that long."""

    def __init__(self, port: int, delay: float):
        self.port, self.delay = port, delay
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url_port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.relay, args=(c,), daemon=True).start()

    def relay(self, c):
        time.sleep(self.delay)
        try:
            up = socket.create_connection(("127.0.0.1", self.port))
        except OSError:
            c.close()
            return

        def pump(a, b):
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        threading.Thread(target=pump, args=(up, c), daemon=True).start()
        pump(c, up)

    def close(self):
        self.sock.close()


def test_a_fresh_instance_recovers_at_once_after_listening(server_factory):
    """Rolling restart: a client resumes on an instance that has just printed "listening on",
    its Redis 0.3 s away (a relay delays the login's answer). The start waited for the Redis
    connections (--backplane-ready-timeout), so the first recovery is complete and the next
    live message carries its offset."""
    redis = Redis(None, "--requirepass", "pw").start_auth("pw")
    relay = SlowRelay(redis.port, 0.3)
    try:
        flags = ("--backplane", f"redis://:pw@127.0.0.1:{relay.url_port}", "--history-size", "100", "--history-ttl", "60")
        old = chat(server_factory, *flags)

        async def main():
            r = Reader(old, "f")
            await r.connect()
            await r.until(0, recoveries=1)
            await send_all(r.ws, ["m1", "m2", "m3"])
            await r.until(3)
            await r.ws.close()
            r.messages = r.messages[:1]
            r.offset = r.messages[0][0]  # resume after m1
            fresh = chat(server_factory, *flags)
            await r.connect(fresh)
            await r.until(1, recoveries=2)  # the replayed messages come before the recovery line
            assert r.recoveries[-1]["recovered"] is True, r.recoveries
            check_all(r, ["m1", "m2", "m3"], "resumed on the fresh instance")
            await r.ws.send("m4")
            await r.until(4)
            assert r.messages[-1] == (r.messages[-2][0] + 1, "m4"), r.messages
            await r.ws.close()

        run(main(), timeout=30)
    finally:
        relay.close()
        redis.kill()
