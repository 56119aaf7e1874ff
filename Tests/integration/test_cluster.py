"""Scale-out through Redis: several wss-server instances with --backplane on one real
redis-server (127.0.0.1, free ports). Every subscriber gets every message once, in
per-publisher order; Redis faults are survived and losses are counted, never silent."""
from __future__ import annotations

import asyncio
import subprocess
import threading
import time

import pytest

from clusterutil import Redis, drain, free_port, metrics, sync_all
from wsutil import run, ws_connect

PER_PUBLISHER = 400


@pytest.fixture
def redis():
    r = Redis().start()
    yield r
    r.kill()


def start_cluster(server_factory, scheme, redis_url, n=3, *extra):
    return [server_factory(scheme, "--app", "chat", "--threads", "2", "--backplane", redis_url, *extra)
            for _ in range(n)]


def check_stream(got: list, publishers: int, per: int, where: str):
    """Every publisher's messages, once each, in its order."""
    last = {}
    for m in got:
        assert isinstance(m, str), f"{where}: unexpected binary {m!r}"
        p, i = m.split(":")
        i = int(i)
        assert i == last.get(p, -1) + 1, f"{where}: from {p} got {i} after {last.get(p)} (lost, repeated or reordered)"
        last[p] = i
    assert len(last) == publishers and all(v == per - 1 for v in last.values()), f"{where}: ended at {last}"


def test_three_instances_every_subscriber_gets_every_message_once_in_order(server_factory, scheme, redis):
    servers = start_cluster(server_factory, scheme, redis.url)

    async def main():
        clients = [await ws_connect(s, "/chatsocket") for s in servers for _ in range(2)]
        await sync_all(clients, "t1")

        async def publish(k, c):
            for i in range(PER_PUBLISHER):
                await c.send(f"p{k}:{i}")
                if i % 50 == 0:
                    await asyncio.sleep(0)

        async def collect(c):
            got = []
            while len(got) < PER_PUBLISHER * len(clients):
                got.append(await asyncio.wait_for(c.recv(), 15))
            return got

        collectors = [asyncio.create_task(collect(c)) for c in clients]
        await asyncio.gather(*(publish(k, c) for k, c in enumerate(clients)))
        results = await asyncio.gather(*collectors)
        for k, got in enumerate(results):
            check_stream(got, len(clients), PER_PUBLISHER, f"client {k} on instance {k // 2}")
        for c in clients:
            assert await drain(c, 0.3) == [], "a message arrived twice"

        # Binary survives byte for byte across instances.
        blob = bytes(range(256)) + b"\x00\r\n\xff"
        await clients[0].send(blob)
        for c in clients:
            assert await asyncio.wait_for(c.recv(), 5) == blob
        for c in clients:
            await c.close()

    run(main(), timeout=120)
    for s in servers:
        m = metrics(s)
        assert m["wss_backplane_lost_total"] == 0 and m["wss_backplane_dropped_total"] == 0, m
        assert m["wss_backplane_received_total"] >= PER_PUBLISHER * 4, m


def test_redis_restart_mid_stream_resubscribes_and_counts_every_loss(server_factory, redis):
    servers = start_cluster(server_factory, "ws", redis.url, 2)
    per, killed_at = 600, 200

    async def main():
        a, b = await ws_connect(servers[0], "/chatsocket"), await ws_connect(servers[1], "/chatsocket")
        await sync_all([a, b], "t2")
        received = []

        async def collect():
            try:
                while True:
                    m = await asyncio.wait_for(b.recv(), 6)
                    if m == "a:end":
                        return
                    if m.startswith("a:"):
                        received.append(int(m[2:]))
            except asyncio.TimeoutError:
                return

        task = asyncio.create_task(collect())
        i = 0
        while i < per:
            if i == killed_at:
                redis.kill()
                for _ in range(100):  # published while Redis is away: queued or lost, never silent
                    await a.send(f"a:{i}")
                    i += 1
                    await asyncio.sleep(0.003)
                redis.start()
                t0 = time.monotonic()
                # Instances resubscribe within 2 s: a message from b reaches a again.
                while time.monotonic() - t0 < 2.0:
                    await b.send("probe")
                    if "probe" in await drain(a, 0.1):
                        break
                else:
                    pytest.fail("no resubscription within 2 s of Redis coming back")
            await a.send(f"a:{i}")
            i += 1
            await asyncio.sleep(0.001)
        await a.send("a:end")
        await task
        return received

    received = run(main(), timeout=60)
    received = [r for r in received if isinstance(r, int)]
    assert received == sorted(received) and len(set(received)) == len(received), "reordered or repeated"
    missing = per - len(received)
    # Every message B's instance did not get is counted there (sequence gaps), never silent.
    lost = metrics(servers[1])["wss_backplane_lost_total"]
    assert lost == missing, f"{missing} messages missing at B, {lost} reported"
    assert "resubscrib" in servers[1].stderr() or "subscribed to 1 active topic" in servers[1].stderr()


def test_redis_unreachable_at_start_then_reached(server_factory):
    redis = Redis()  # port chosen, nothing listening yet
    servers = start_cluster(server_factory, "ws", redis.url, 2)
    try:
        async def main():
            a1, a2 = await ws_connect(servers[0], "/chatsocket"), await ws_connect(servers[0], "/chatsocket")
            await a1.send("local works")
            assert await asyncio.wait_for(a2.recv(), 5) == "local works"
            b = await ws_connect(servers[1], "/chatsocket")
            redis.start()
            t0 = time.monotonic()
            while time.monotonic() - t0 < 5:
                await b.send("across")
                if "across" in await drain(a1, 0.2):
                    return time.monotonic() - t0
            pytest.fail("instances never met through Redis")

        took = run(main(), timeout=30)
        assert took < 3.0, f"took {took:.2f} s after Redis came up"
        assert "cannot reach redis://127.0.0.1" in servers[0].stderr()
        assert servers[0].stderr().count("cannot reach redis://127.0.0.1") <= 2, "one line per outage and connection"
    finally:
        redis.kill()


def test_slow_redis_never_stalls_local_delivery_and_overflow_is_counted(server_factory, redis):
    srv, other = [server_factory("ws", "--app", "chat", "--threads", "2", "--backplane", redis.url,
                                 "--backplane-queue-limit", "65536") for _ in range(2)]

    async def main():
        a, b = await ws_connect(srv, "/chatsocket"), await ws_connect(srv, "/chatsocket")
        c = await ws_connect(other, "/chatsocket")
        await sync_all([a, b, c], "t4")
        sleeper = threading.Thread(target=lambda: redis.cli("DEBUG", "SLEEP", "4"))
        sleeper.start()
        await asyncio.sleep(0.2)
        worst = 0.0
        blob = "x" * 16000
        seen_by_c = []

        async def discard():  # the sender is subscribed too: keep reading its copies
            while True:
                await a.recv()

        async def remote():
            while (m := await c.recv()) != "final":
                seen_by_c.append(m)

        tasks = [asyncio.create_task(discard()), asyncio.create_task(remote())]
        # ~20 MB for Redis while it sleeps: more than the kernel's socket buffers absorb,
        # so the 64 KiB queue overflows. A small probe measures local delivery meanwhile.
        sent = 0
        for i in range(1250):
            await a.send(blob)
            sent += 1
            if i % 50 == 0:
                t = time.monotonic()
                await a.send(f"probe {i}")
                sent += 1
                while (m := await asyncio.wait_for(b.recv(), 2)) != f"probe {i}":
                    assert m == blob
                worst = max(worst, time.monotonic() - t)
        sleeper.join()
        # Redis is awake, but the backlog it slept through still has to drain: a "final" sent
        # while the outgoing queue is still above its limit would be dropped like the rest
        # (and counted). Send it once every publish so far is forwarded or dropped.
        deadline = time.monotonic() + 15
        while True:
            m = await asyncio.to_thread(metrics, srv)
            if m["wss_backplane_forwarded_total"] + m["wss_backplane_dropped_total"] >= m["wss_backplane_published_total"]:
                break
            assert time.monotonic() < deadline, f"the backlog never drained: {m}"
            await asyncio.sleep(0.05)
        await a.send("final")
        await asyncio.wait_for(tasks[1], 20)
        tasks[0].cancel()
        return worst, sent - len(seen_by_c)

    worst, missing_remotely = run(main(), timeout=60)
    assert worst < 0.25, f"local delivery took {worst * 1000:.0f} ms while Redis slept"
    m = metrics(srv)
    assert m["wss_backplane_dropped_total"] > 0, m
    assert srv.stderr().count("outgoing queue full") == 1, srv.stderr()
    # What the full queue dropped is exactly what the other instance reports lost.
    assert missing_remotely == m["wss_backplane_dropped_total"] == metrics(other)["wss_backplane_lost_total"]


def test_redis_password_from_a_file_or_the_environment_stays_out_of_ps(server_factory, tmp_path, monkeypatch):
    import secrets
    password = "pw-" + secrets.token_hex(12)
    redis = Redis(None, "--requirepass", password).start_auth(password)
    try:
        pwfile = tmp_path / "redis.pw"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        a = server_factory("ws", "--app", "chat", "--backplane", redis.url, "--backplane-password-file", str(pwfile))
        monkeypatch.setenv("WSS_BACKPLANE_PASSWORD", password)
        b = server_factory("ws", "--app", "chat", "--backplane", redis.url)
        monkeypatch.delenv("WSS_BACKPLANE_PASSWORD")
        for s in (a, b):
            for name in ("cmdline", "environ"):
                with open(f"/proc/{s.proc.pid}/{name}", "rb") as f:
                    assert password.encode() not in f.read(), f"the password shows in /proc/PID/{name}"

        async def main():
            ca = await ws_connect(a, "/chatsocket")
            cb = await ws_connect(b, "/chatsocket")
            await sync_all([ca, cb], "auth")  # only through an authenticated Redis
            await ca.close()
            await cb.close()

        run(main(), timeout=30)
        for s in (a, b):
            assert "WRONGPASS" not in s.stderr() and "NOAUTH" not in s.stderr(), s.stderr()

        wrong = tmp_path / "wrong.pw"
        wrong.write_text("not-it\n")
        wrong.chmod(0o600)
        c = server_factory("ws", "--app", "chat", "--backplane", redis.url, "--backplane-password-file", str(wrong))
        end = time.monotonic() + 5
        while time.monotonic() < end and "WRONGPASS" not in c.stderr() and "invalid" not in c.stderr():
            time.sleep(0.05)
        assert "WRONGPASS" in c.stderr() or "invalid" in c.stderr(), c.stderr()
        assert password not in c.stderr() and "not-it" not in c.stderr(), "a password in the log"
    finally:
        redis.kill()


def test_redis_password_given_twice_or_unreadable_is_one_line_and_exit_1(tmp_path):
    from conftest import SERVER_BIN
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    cases = [
        (["--backplane", "redis://:inline@127.0.0.1:1", "--backplane-password-file", str(pw)], "given twice"),
        (["--backplane", "redis://127.0.0.1:1", "--backplane-password-file", str(tmp_path / "missing")], "cannot open"),
        (["--backplane-password-file", str(pw)], "needs --backplane"),
    ]
    for args, expect in cases:
        r = subprocess.run([str(SERVER_BIN), "--port", "0", *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 1, (args, r)
        # One error line (a password in the URL also draws the argv warning, a line of its own).
        errors = [l for l in r.stderr.splitlines() if l.strip() and not l.startswith("wss-server: warning:")]
        assert len(errors) == 1 and errors[0].startswith("wss-server: error:") and expect in errors[0], (args, r.stderr)
        assert "inline" not in r.stderr, "the password echoed"


def test_connection_gauge_counts_no_redis_descriptor(server_factory, redis):
    """/metrics' wss_connections_open counts client connections only: the backplane's two Redis
    connections and its timer are not clients, whichever loop they sit on (one loop and two)."""
    from fallbackutil import Client
    from test_fallback_edges import settled_gauge
    for threads in ("1", "2"):
        srv = server_factory("ws", "--app", "chat", "--threads", threads, "--backplane", redis.url,
                             "--history-size", "10")
        m = Client(srv)
        try:
            # The /metrics keep-alive connection is the only client.
            assert settled_gauge(m, 1) == 1, f"threads={threads}: Redis counted as a connection"

            async def main():
                ws = await ws_connect(srv, "/chatsocket")
                await sync_all([ws], "gauge")
                assert await asyncio.to_thread(settled_gauge, m, 2) == 2, f"threads={threads}"
                await ws.close()

            run(main(), timeout=30)
            assert settled_gauge(m, 1) == 1, f"threads={threads}"
        finally:
            m.close()
