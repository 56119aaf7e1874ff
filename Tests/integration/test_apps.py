"""Application behaviour (reply / echo / chat) through the websockets client, ws and wss."""
from __future__ import annotations

import asyncio
import os
import random
import uuid

import pytest
from websockets.exceptions import ConnectionClosed

from wsutil import (OP_BIN, OP_PING, OP_PONG, OP_TEXT, Reader, build_frame, raw_connect, read_frame,
                    read_http_response, run, upgrade_request, ws_connect, ws_handshake)

RECV = 5.0


async def recv(ws, timeout=RECV):
    return await asyncio.wait_for(ws.recv(), timeout)


def random_text(n_chars: int, seed: int = 1) -> str:
    rnd = random.Random(seed)
    alphabet = "abcXYZ 019\n\t" + "éüßñ" + "响应中文字符" + "Ωλж" + "😀🚀𝄞" + "\u0000\u007f\u0800\uffff"
    return "".join(rnd.choice(alphabet) for _ in range(n_chars))


# ---------------------------------------------------------------- reply (default app)

def test_reply_text(server):
    async def go():
        async with ws_connect(server) as ws:
            await ws.send("hello")
            assert await recv(ws) == "hello响应"
    run(go())


def test_reply_non_ascii_and_empty(server):
    async def go():
        async with ws_connect(server, "/") as ws:
            for msg in ["héllo wörld 😀", "响应", ""]:
                await ws.send(msg)
                got = await recv(ws)
                assert isinstance(got, str)
                assert got == msg + "响应"
    run(go())


def test_reply_binary_unchanged(server):
    async def go():
        async with ws_connect(server) as ws:
            for data in [b"\x00\x01\xff\xfe binary", bytes(range(256)), b""]:
                await ws.send(data)
                got = await recv(ws)
                assert isinstance(got, bytes)
                assert got == data
    run(go())


# ---------------------------------------------------------------- echo

def test_echo_text_and_binary_exact(echo_server):
    async def go():
        async with ws_connect(echo_server) as ws:
            for msg in ["hello", "响应 ☃ 😀", "", b"\x00\xff\x80", bytes(range(256)) * 3]:
                await ws.send(msg)
                got = await recv(ws)
                assert type(got) is type(msg)
                assert got == msg
    run(go())


def test_echo_1mib_binary(echo_server):
    data = os.urandom(1024 * 1024)

    async def go():
        async with ws_connect(echo_server) as ws:
            await ws.send(data)
            got = await recv(ws, 20)
            assert len(got) == len(data)
            assert got == data
    run(go(), 40)


def test_large_and_small_echoes_keep_order_with_a_slow_reader(server_factory, scheme):
    """Large messages go from the application's buffer straight to the socket (writev or TLS
    records sealed in place); what the socket does not take is queued. A reader that waits
    before reading must still get every echo whole and in order, small ones included."""
    import time
    # A high-water mark above the total, so the server reads everything while we do not read.
    srv = server_factory(scheme, "--app", "echo", "--high-water-mark", str(64 << 20),
                         "--max-backpressure", str(128 << 20))
    # A small receive buffer (set before connecting) so the server's writes go partial.
    import socket as socketmod
    sock = socketmod.socket(socketmod.AF_INET, socketmod.SOCK_STREAM)
    sock.setsockopt(socketmod.SOL_SOCKET, socketmod.SO_RCVBUF, 64 << 10)
    sock.settimeout(10)
    sock.connect((srv.host, srv.port))
    if srv.tls:
        sock = srv.client_ssl.wrap_socket(sock, server_hostname="localhost")
    req, key = upgrade_request("/")
    sock.sendall(req.encode())
    reader = Reader(sock)
    assert read_http_response(reader).status == 101
    msgs = []
    for i in range(3):  # two large in a row: the second is written directly, and only partly
        msgs += [(OP_BIN, os.urandom((3 << 20) + i)), (OP_BIN, os.urandom((2 << 20) + i)),
                 (OP_TEXT, f"small {i}".encode())]
    sock.sendall(b"".join(build_frame(op, payload) for op, payload in msgs))
    time.sleep(0.5)  # the server's socket fills; later echoes queue behind the partial one
    for op, payload in msgs:
        fin, _, got_op, masked, got = read_frame(reader, timeout=20)
        assert (fin, got_op, masked) == (True, op, False)
        assert got == payload, f"{len(payload)}-byte echo differs or out of order"
    sock.close()


def test_echo_200kb_non_ascii_text(echo_server):
    text = random_text(110_000, seed=7)
    assert len(text.encode()) > 200_000

    async def go():
        async with ws_connect(echo_server) as ws:
            await ws.send(text)
            got = await recv(ws, 20)
            assert got == text
    run(go(), 40)


def test_echo_fragmented_message_reassembled(echo_server):
    # "响" is split across two fragments on purpose: UTF-8 must be validated per message.
    whole = "frag-one|响应|frag-three"
    raw = whole.encode()
    cut = raw.index("响".encode()) + 1
    parts_bin = [raw[:cut], raw[cut:cut + 5], raw[cut + 5:]]

    async def go():
        async with ws_connect(echo_server) as ws:
            await ws.send(["frag-one|", "响应", "|frag-three"])
            assert await recv(ws) == whole
            await ws.send([b"\x01\x02", b"", b"\x03" * 1000])
            assert await recv(ws) == b"\x01\x02" + b"\x03" * 1000
        # raw fragments that split a multibyte character
        sock, reader = ws_handshake(echo_server)
        try:
            sock.sendall(build_frame(OP_TEXT, parts_bin[0], fin=False)
                         + build_frame(OP_PING, b"mid")  # control frame interleaved
                         + build_frame(0, parts_bin[1], fin=False)
                         + build_frame(0, parts_bin[2], fin=True))
            frames = [read_frame(reader), read_frame(reader)]
            ops = {f[2]: f for f in frames}
            assert set(ops) == {OP_PONG, OP_TEXT}, frames
            assert ops[OP_PONG][4] == b"mid"
            assert ops[OP_TEXT][4].decode() == whole
        finally:
            sock.close()
    run(go())


def test_ping_pong(echo_server):
    async def go():
        async with ws_connect(echo_server, ping_interval=None) as ws:
            waiter = await ws.ping(b"abc")
            await asyncio.wait_for(waiter, RECV)  # resolves only on a pong with payload b"abc"
            await ws.send("still works")
            assert await recv(ws) == "still works"
    run(go())


def test_ping_pong_raw_payload(echo_server):
    sock, reader = ws_handshake(echo_server)
    try:
        payload = bytes(range(125))
        sock.sendall(build_frame(OP_PING, payload))
        fin, rsv, op, masked, got = read_frame(reader)
        assert (fin, rsv, op, masked) == (True, 0, OP_PONG, False)
        assert got == payload
        sock.sendall(build_frame(OP_BIN, b"after-ping"))
        assert read_frame(reader)[2:] == (OP_BIN, False, b"after-ping")
    finally:
        sock.close()


# ---------------------------------------------------------------- close codes

@pytest.mark.parametrize("code,reason", [(1000, ""), (4000, "custom reason 响")])
def test_close_code_echoed(echo_server, code, reason):
    async def go():
        ws = await ws_connect(echo_server)
        await ws.send("x")
        assert await recv(ws) == "x"
        await asyncio.wait_for(ws.close(code, reason), 10)
        assert ws.protocol.close_sent.code == code
        assert ws.protocol.close_rcvd is not None, "server sent no close frame"
        assert ws.protocol.close_rcvd.code == code
        assert ws.close_code == code
    run(go())


# ---------------------------------------------------------------- chat

async def _sync_clients(sender, clients, tag):
    """Sender repeats a sync message until every client saw one (all registered)."""
    seen = [False] * len(clients)
    for i in range(50):
        await sender.send(f"{tag}-sync-{i}")
        await asyncio.sleep(0.1)
        for k, c in enumerate(clients):
            while True:
                try:
                    m = await asyncio.wait_for(c.recv(), 0.05)
                except asyncio.TimeoutError:
                    break
                if isinstance(m, str) and m.startswith(f"{tag}-sync-"):
                    seen[k] = True
        if all(seen):
            break
    assert all(seen), f"not all chat clients registered: {seen}"
    for c in clients:  # drain stragglers
        while True:
            try:
                await asyncio.wait_for(c.recv(), 0.3)
            except asyncio.TimeoutError:
                break


async def _next_non_sync(ws, timeout=RECV):
    while True:
        m = await asyncio.wait_for(ws.recv(), timeout)
        if not (isinstance(m, str) and "-sync-" in m):
            return m


@pytest.mark.parametrize("n", [2, 3, 6])
def test_chat_broadcast_to_all_including_sender(server_factory, scheme, n):
    srv = server_factory(scheme, "--app", "chat", "--threads", "2")

    async def go():
        clients = [await ws_connect(srv, "/chatsocket") for _ in range(n)]
        try:
            await _sync_clients(clients[0], clients, "a")
            for idx in (0, n - 1):
                msg = f"hello from {idx} 响应 {uuid.uuid4()}"
                await clients[idx].send(msg)
                got = await asyncio.gather(*[_next_non_sync(c) for c in clients])
                assert got == [msg] * n
            data = os.urandom(300)
            await clients[1].send(data)
            got = await asyncio.gather(*[_next_non_sync(c) for c in clients])
            assert got == [data] * n
        finally:
            for c in clients:
                await c.close()
    run(go(), 60)


def test_chat_paths_are_separate_rooms(server_factory, scheme):
    srv = server_factory(scheme, "--app", "chat", "--threads", "2")

    async def go():
        room = [await ws_connect(srv, "/chatsocket") for _ in range(3)]
        root = [await ws_connect(srv, "/") for _ in range(2)]
        try:
            await _sync_clients(room[0], room, "room")
            await _sync_clients(root[0], root, "root")  # sender included => registered
            msg = f"only-chatsocket-{uuid.uuid4()}"
            await room[1].send(msg)
            assert await asyncio.gather(*[_next_non_sync(c) for c in room]) == [msg] * 3
            for c in root:
                with pytest.raises(asyncio.TimeoutError):
                    extra = await asyncio.wait_for(c.recv(), 1.0)
                    pytest.fail(f"client on / received {extra!r} sent on /chatsocket")
            msg2 = f"only-root-{uuid.uuid4()}"
            await root[1].send(msg2)
            assert await asyncio.gather(*[_next_non_sync(c) for c in root]) == [msg2] * 2
            for c in room:
                with pytest.raises(asyncio.TimeoutError):
                    extra = await asyncio.wait_for(c.recv(), 1.0)
                    pytest.fail(f"client on /chatsocket received {extra!r} sent on /")
        finally:
            for c in room + root:
                await c.close()
    run(go(), 60)


def test_chat_survives_departed_client(server_factory, scheme):
    srv = server_factory(scheme, "--app", "chat", "--threads", "2")

    async def go():
        clients = [await ws_connect(srv, "/chatsocket") for _ in range(3)]
        await _sync_clients(clients[0], clients, "d")
        await clients[2].close()
        # abruptly drop another one at TCP level (no close frame)
        clients[1].transport.abort()
        await asyncio.sleep(0.3)
        for i in range(3):
            msg = f"after-leave-{i}"
            await clients[0].send(msg)
            assert await _next_non_sync(clients[0]) == msg
        late = await ws_connect(srv, "/chatsocket")
        await _sync_clients(clients[0], [clients[0], late], "late")
        await late.send("from late")
        assert await _next_non_sync(clients[0]) == "from late"
        assert await _next_non_sync(late) == "from late"
        await late.close()
        await clients[0].close()
    run(go(), 60)


# ---------------------------------------------------------------- robustness

def test_server_keeps_serving_while_client_sends_garbage(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo")

    async def go():
        async with ws_connect(srv) as good:
            await good.send("before")
            assert await recv(good) == "before"
            # 1) garbage instead of an HTTP request
            s1 = raw_connect(srv)
            s1.sendall(os.urandom(4096))
            # 2) garbage frames after a valid handshake
            s2, _ = ws_handshake(srv)
            s2.sendall(os.urandom(4096))
            # 3) a silent connection that never sends anything
            s3 = raw_connect(srv)
            try:
                for i in range(5):
                    msg = f"during-{i}-响"
                    await good.send(msg)
                    assert await recv(good) == msg
                async with ws_connect(srv) as other:
                    await other.send(b"new client")
                    assert await recv(other) == b"new client"
            finally:
                for s in (s1, s2, s3):
                    s.close()
            await good.send("after")
            assert await recv(good) == "after"
    run(go())
    assert srv.alive(), "server died"


def test_recv_after_server_close_is_clean(echo_server):
    """After a normal close, the connection is reported closed with code 1000 (no abrupt drop)."""
    async def go():
        ws = await ws_connect(echo_server)
        await ws.close()
        with pytest.raises(ConnectionClosed) as ei:
            await recv(ws)
        assert ei.value.rcvd is not None and ei.value.rcvd.code == 1000
    run(go())


def test_many_concurrent_clients_in_order(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo", "--threads", "2")

    async def client(i):
        async with ws_connect(srv, "/chatsocket" if i % 2 else "/") as ws:
            msgs = [f"c{i}-m{k}-响" if k % 2 else os.urandom(k * 37) for k in range(40)]
            for m in msgs:
                await ws.send(m)
            got = [await recv(ws) for _ in msgs]
            assert got == msgs, f"client {i}: echoed messages differ or out of order"

    async def go():
        await asyncio.gather(*[client(i) for i in range(20)])
    run(go(), 60)
