"""permessage-deflate (RFC 7692) against python-websockets, which offers it by default."""
from __future__ import annotations

import asyncio
import json
import os
import struct

from wsutil import run, ws_connect


def _json_message(i: int) -> str:
    return json.dumps({"id": i, "sym": "ABC", "price": 101.25 + i, "side": "buy",
                       "tags": ["alpha", "beta", "gamma"], "note": "x" * 40})


def test_python_client_negotiates_deflate_and_round_trips(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo")

    async def go():
        async with ws_connect(srv) as ws:
            ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
            assert ext.startswith("permessage-deflate"), ext
            assert "server_max_window_bits=12" in ext  # our default window
            for i in range(50):
                m = _json_message(i)
                await ws.send(m)
                assert await ws.recv() == m
            blob = os.urandom(200_000)  # incompressible: still correct
            await ws.send(blob)
            assert await ws.recv() == blob
            big = "κόσμε " * 100_000  # 1.2 MB of text, compresses well
            await ws.send(big)
            assert await ws.recv() == big
    run(go())


def test_no_deflate_flag_declines(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo", "--no-deflate")

    async def go():
        async with ws_connect(srv) as ws:
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
            await ws.send("plain")
            assert await ws.recv() == "plain"
    run(go())


def test_malformed_offer_means_no_compression_not_failure(server_factory):
    srv = server_factory("ws", "--app", "echo")

    async def go():
        from websockets.asyncio.client import connect
        # An unknown parameter makes the only offer unacceptable: the handshake still succeeds.
        async with connect(f"{srv.url}/chatsocket", compression=None, additional_headers={
                "Sec-WebSocket-Extensions": "permessage-deflate; bogus_param=1"}) as ws:
            assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
            await ws.send("x")
            assert await ws.recv() == "x"
    run(go())


def test_zip_bomb_closes_1009(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo", "--max-message-size", "100000")

    async def go():
        async with ws_connect(srv, max_size=None) as ws:
            await ws.send(b"\0" * 5_000_000)  # ~5 KB on the wire, 5 MB inflated
            try:
                await ws.recv()
                raise AssertionError("the server echoed a message over its limit")
            except Exception as e:  # ConnectionClosedError
                assert ws.close_code == 1009, (ws.close_code, e)
    run(go())


def test_compression_shrinks_json_on_the_wire(server_factory):
    """Counts bytes the server sends for 100 JSON messages with and without deflate."""
    srv = server_factory("ws", "--app", "echo")

    # A raw socket client that offers deflate (or not) and counts the server's bytes exactly.
    import base64
    import socket
    import zlib

    def run_raw(offer: bool) -> int:
        s = socket.create_connection((srv.host, srv.port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        ext = "Sec-WebSocket-Extensions: permessage-deflate\r\n" if offer else ""
        s.sendall(f"GET /chatsocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert (b"permessage-deflate" in head) == offer, head
        total = 0
        inflater = zlib.decompressobj(-15)
        for i in range(100):
            payload = _json_message(i).encode()
            mask = os.urandom(4)
            masked = bytes(b ^ mask[j % 4] for j, b in enumerate(payload))
            s.sendall(bytes([0x81, 0x80 | 126]) + struct.pack("!H", len(payload)) + mask + masked)
            hdr = s.recv(2, socket.MSG_WAITALL)
            n = hdr[1] & 0x7F
            ext_len = b""
            if n == 126:
                ext_len = s.recv(2, socket.MSG_WAITALL)
                n = struct.unpack("!H", ext_len)[0]
            body = s.recv(n, socket.MSG_WAITALL) if n else b""
            total += 2 + len(ext_len) + n
            if hdr[0] & 0x40:
                body = inflater.decompress(body + b"\x00\x00\xff\xff")
            assert body == payload
        s.close()
        return total

    plain = run_raw(False)
    compressed = run_raw(True)
    print(f"\n[deflate] 100 JSON messages of ~{len(_json_message(0))} B: {plain} B plain, {compressed} B compressed")
    assert compressed < plain * 0.6, (plain, compressed)


def _rsv1_spy(seen: list, **params):
    """A python-websockets permessage-deflate client extension that records RSV1 of every data
    frame it decodes (the library inflates transparently, so this is how a test sees it)."""
    from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, PerMessageDeflate
    from websockets.frames import Opcode

    class Spy(PerMessageDeflate):
        def decode(self, frame, *, max_size=None):
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY):
                seen.append(frame.rsv1)
            return super().decode(frame, max_size=max_size)

    class SpyFactory(ClientPerMessageDeflateFactory):
        def process_response_params(self, params, accepted):
            ext = super().process_response_params(params, accepted)
            ext.__class__ = Spy
            return ext

    return SpyFactory(**params)


def test_chat_publishes_compressed_to_no_context_subscribers(server_factory, scheme):
    # Pub/sub compresses each message once, for subscribers that negotiated
    # server_no_context_takeover (RFC 7692 §7.1.1.1); the others get it uncompressed.
    srv = server_factory(scheme, "--app", "chat", "--threads", "2")
    no_context, takeover = [], []

    async def go():
        a = await ws_connect(srv, "/chatsocket", compression=None,
                             extensions=[_rsv1_spy(no_context, server_no_context_takeover=True)])
        b = await ws_connect(srv, "/chatsocket", compression=None, extensions=[_rsv1_spy(takeover)])
        plain = await ws_connect(srv, "/chatsocket", compression=None)
        try:
            assert "server_no_context_takeover" in a.response.headers["Sec-WebSocket-Extensions"]
            assert "server_no_context_takeover" not in b.response.headers["Sec-WebSocket-Extensions"]
            for ws in (a, b, plain):  # every subscription is in place once each sees its own sync
                for i in range(50):
                    await ws.send(f"sync-{i}")
                    try:
                        if (await asyncio.wait_for(ws.recv(), 0.2)).startswith("sync-"):
                            break
                    except asyncio.TimeoutError:
                        pass
            for ws in (a, b, plain):  # drain the other clients' syncs
                while True:
                    try:
                        await asyncio.wait_for(ws.recv(), 0.3)
                    except asyncio.TimeoutError:
                        break
            no_context.clear(); takeover.clear()
            for i in range(5):
                m = _json_message(i) * 4
                await plain.send(m)  # from the client without compression
                assert [await ws.recv() for ws in (a, b, plain)] == [m, m, m]
        finally:
            for ws in (a, b, plain):
                await ws.close()
    run(go(), 60)
    assert no_context == [True] * 5, no_context
    assert takeover == [False] * 5, takeover
