"""Instances behind a real HAProxy (TCP mode, PROXY protocol, leastconn, /healthz checks),
all on 127.0.0.1 and free ports: the real client address reaches the server, untrusted or
malformed PROXY headers are refused, and SIGTERM drains one instance while the chat goes on."""
from __future__ import annotations

import asyncio
import re
import signal
import socket
import time
from types import SimpleNamespace

import pytest

from clusterutil import HAProxy, Redis, drain, sync_all
from wsutil import http_request, run, ws_connect


@pytest.fixture
def redis():
    r = Redis().start()
    yield r
    r.kill()


def front(haproxy, scheme, client_ssl):
    return SimpleNamespace(scheme=scheme, host="127.0.0.1", port=haproxy.port, client_ssl=client_ssl,
                           url=f"{scheme}://127.0.0.1:{haproxy.port}")


def instances(server_factory, scheme, redis, n, *extra):
    return [server_factory(scheme, "--app", "chat", "--threads", "2", "--backplane", redis.url,
                           "--proxy-protocol", "--trusted-proxy", "127.0.0.1", "--log-level", "debug", *extra)
            for _ in range(n)]


def wait_healthy(haproxy, fe, count=10):
    """Until HAProxy routes: a chat client can open through it."""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            async def probe():
                async with ws_connect(fe, "/chatsocket"):
                    return True
            if run(probe(), timeout=3):
                return
        except Exception:
            time.sleep(0.2)
    pytest.fail(f"HAProxy never routed: {haproxy.log.read_text()[-2000:]}")


@pytest.mark.parametrize("scheme,send_proxy", [("ws", "send-proxy"), ("ws", "send-proxy-v2"), ("wss", "send-proxy-v2")])
def test_the_upgrade_sees_the_real_client_address_and_chat_crosses_instances(
        server_factory, redis, tmp_path, client_ssl, scheme, send_proxy):
    servers = instances(server_factory, scheme, redis, 2)
    hap = HAProxy(tmp_path, [(s.host, s.port) for s in servers], send_proxy, tls=scheme == "wss")
    try:
        fe = front(hap, scheme, client_ssl)
        wait_healthy(hap, fe)

        async def main():
            # Clients from 127.0.0.2 and 127.0.0.3: HAProxy connects from 127.0.0.1.
            clients = [await ws_connect(fe, "/chatsocket", local_addr=(f"127.0.0.{2 + k % 2}", 0)) for k in range(4)]
            ports = [c.local_address[1] for c in clients]
            await sync_all(clients, "hp")
            await clients[0].send("hello across")
            for c in clients:
                assert "hello across" in await drain(c, 0.5)
            return ports

        ports = run(main(), timeout=60)
        logs = "".join(s.stderr() for s in servers)
        for k, p in enumerate(ports):
            assert f"client 127.0.0.{2 + k % 2}:{p}" in logs, f"client {k} (port {p}) not seen by its address"
        for s in servers:
            assert re.search(r"client 127\.0\.0\.[23]:", s.stderr()), "leastconn used both instances"
            assert "(balancer's own check)" in s.stderr() or send_proxy == "send-proxy", "health checks carry PROXY LOCAL"
    finally:
        hap.stop()


def test_untrusted_balancer_and_missing_header_are_refused(server_factory, redis, tmp_path, client_ssl):
    strict = server_factory("ws", "--app", "chat", "--proxy-protocol", "--trusted-proxy", "10.0.0.0/8")
    hap = HAProxy(tmp_path, [(strict.host, strict.port)], "send-proxy-v2")
    try:
        fe = front(hap, "ws", client_ssl)

        async def main():
            with pytest.raises(Exception):
                async with ws_connect(fe, "/chatsocket", open_timeout=3):
                    pass
        run(main(), timeout=20)
        # A client straight to the instance (no PROXY header): refused at once, no HTTP answer.
        with socket.create_connection((strict.host, strict.port), timeout=3) as s:
            try:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(100) == b"", "no HTTP answer without a PROXY header"
            except ConnectionResetError:
                pass  # closed with our request unread: a reset, equally a refusal
        time.sleep(0.2)
        err = strict.stderr()
        assert "PROXY protocol: refused 127.0.0.1" in err and "not a --trusted-proxy" in err, err[-2000:]
    finally:
        hap.stop()


def healthz_via_proxy(server) -> int:
    """GET /healthz straight to an instance, with the PROXY v1 header it requires."""
    with socket.create_connection((server.host, server.port), timeout=3) as s:
        s.sendall(b"PROXY TCP4 127.0.0.9 127.0.0.1 40000 80\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(200)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ")[1]) if data else 0


def test_sigterm_drains_one_instance_and_its_clients_move_to_the_others(server_factory, redis, tmp_path, client_ssl):
    servers = instances(server_factory, "ws", redis, 3, "--shutdown-timeout", "3")
    hap = HAProxy(tmp_path, [(s.host, s.port) for s in servers])
    try:
        fe = front(hap, "ws", client_ssl)
        wait_healthy(hap, fe)
        assert healthz_via_proxy(servers[0]) == 200

        async def main():
            clients = [await ws_connect(fe, "/chatsocket") for _ in range(6)]
            await sync_all(clients, "d1")
            # A raw client on instance 0 that never answers close: the drain then lasts.
            raw = socket.create_connection((servers[0].host, servers[0].port))
            raw.sendall(b"PROXY TCP4 127.0.0.9 127.0.0.1 40001 80\r\nGET /chatsocket HTTP/1.1\r\nHost: x\r\n"
                        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        b"Sec-WebSocket-Version: 13\r\n\r\n")
            assert raw.recv(12) == b"HTTP/1.1 101"
            servers[0].proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert healthz_via_proxy(servers[0]) == 503, "a draining instance fails its health check"
            moved = []
            for k, c in enumerate(clients):
                try:
                    await asyncio.wait_for(c.recv(), 1.0)
                except asyncio.TimeoutError:
                    continue
                except Exception:
                    assert c.close_code == 1001, c.close_code
                    moved.append(k)
            assert len(moved) == 2, f"leastconn put 2 of 6 on instance 0; {moved} were closed"
            await asyncio.sleep(0.7)  # HAProxy marks it down (inter 300 ms, fall 1)
            for k in moved:
                clients[k] = await ws_connect(fe, "/chatsocket")
            await sync_all(clients, "d2")
            await clients[0].send("still chatting")
            for c in clients:
                assert "still chatting" in await drain(c, 0.5)
            raw.close()

        run(main(), timeout=60)
        servers[0].proc.wait(6)
        assert servers[0].proc.returncode == 0
    finally:
        hap.stop()
