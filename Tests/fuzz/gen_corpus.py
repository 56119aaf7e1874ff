#!/usr/bin/env python3
"""Regenerates the seed corpus in Tests/fuzz/corpus/ (small valid and invalid inputs)."""
import os, struct

HERE = os.path.dirname(os.path.abspath(__file__))

def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
HS = (b"GET /chat?room=1 HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n"
      b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " + KEY + b"\r\n"
      b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
      b"Origin: https://localhost\r\n\r\n")

http = {
    "get-simple": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "get-bare-lf": b"GET /x HTTP/1.0\nHost: a\nAccept: */*\n\n",
    "leading-crlf": b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "pipelined": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n\x81\x85\x00\x00\x00\x00hello",
    "handshake": HS,
    "partial": b"GET /partial HTTP/1.1\r\nHost: a\r\nX-Long: " + b"v" * 40,
    "bad-version": b"GET / HTTP/1.x\r\nHost: a\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    "ctl-in-value": b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
    "many-headers": b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(8)) + b"\r\n",
    "long-head": b"POST /" + b"a" * 320 + b" HTTP/1.1\r\n\r\n",
    "empty-lines": b"\r\n\r\n",
}
for k, v in http.items():
    write("http", k, v)

def hs(replace=None, drop=None, add=b""):
    lines = HS.split(b"\r\n")[:-2]
    out = []
    for l in lines:
        if drop and l.lower().startswith(drop.lower()):
            continue
        if replace and l.lower().startswith(replace[0].lower()):
            l = replace[1]
        out.append(l)
    return b"\r\n".join(out) + b"\r\n" + add + b"\r\n"

handshake = {
    "valid": HS,
    "valid-minimal": b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\nConnection: upgrade\r\n"
                     b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    "post": hs(replace=(b"GET", b"POST /chat HTTP/1.1")),
    "http10": hs(replace=(b"GET", b"GET /chat HTTP/1.0")),
    "no-host": hs(drop=b"Host"),
    "two-hosts": hs(add=b"Host: other\r\n"),
    "no-upgrade": hs(drop=b"Upgrade"),
    "no-connection": hs(drop=b"Connection"),
    "version-8": hs(replace=(b"Sec-WebSocket-Version", b"Sec-WebSocket-Version: 8")),
    "no-version": hs(drop=b"Sec-WebSocket-Version"),
    "no-key": hs(drop=b"Sec-WebSocket-Key"),
    "short-key": hs(replace=(b"Sec-WebSocket-Key", b"Sec-WebSocket-Key: dGhlIHNhbXBsZQ==")),
    "two-keys": hs(add=b"Sec-WebSocket-Key: " + KEY + b"\r\n"),
    "key-nonzero-pad-bits": hs(replace=(b"Sec-WebSocket-Key", b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==")),
}
def ext(value):
    return HS.replace(b"\r\n\r\n", b"\r\nSec-WebSocket-Extensions: " + value + b"\r\n\r\n")

handshake.update({
    "deflate-offer": ext(b"permessage-deflate; client_max_window_bits"),
    "deflate-offers": ext(b"permessage-deflate; server_max_window_bits=8, permessage-deflate; "
                          b"client_max_window_bits=9; server_no_context_takeover, x-webkit-deflate-frame"),
    "deflate-quoted": ext(b'permessage-deflate; client_max_window_bits="10"; client_no_context_takeover'),
    "deflate-bad": ext(b"permessage-deflate; server_max_window_bits=08; foo"),
})
for k, v in handshake.items():
    write("handshake", k, v)

def frame(op, payload=b"", fin=True, mask=b"\x00\x00\x00\x00", rsv=0, length=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload) if length is None else length
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        h = bytes([b0, mbit | n])
    elif n <= 0xFFFF:
        h = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask is None:
        return h + payload
    masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return h + mask + masked

def flags(small=False, close_after=None, sizes=(), deflate=False):
    f = (1 if small else 0) | (len(sizes) << 5) | (0x10 if deflate else 0)
    if close_after is not None:
        f |= 2 | (close_after << 2)
    return bytes([f]) + bytes(sizes)

frames = {
    "text-hello": flags(sizes=(3, 7)) + frame(1, b"Hello"),
    "text-masked": flags(sizes=(5,)) + frame(1, b"Hello, \xe2\x82\xac!", mask=b"\x37\xfa\x21\x3d"),
    "binary-126": flags(sizes=(100, 1)) + frame(2, bytes(range(200))),
    "fragmented-text": flags(sizes=(2, 0, 9)) + frame(1, b"Hel\xe2", fin=False) + frame(9, b"ping") + frame(0, b"\x82\xaclo"),
    "ping-pong-close": flags() + frame(9, b"p") + frame(10, b"q") + frame(8, b"\x03\xe8bye"),
    "close-empty": flags(sizes=(1,)) + frame(8),
    "close-after-0": flags(close_after=0, sizes=(4,)) + frame(1, b"dropped") + frame(9) + frame(8, b"\x03\xe8"),
    "close-after-1": flags(close_after=1, sizes=(6, 1)) + frame(2, b"ab") + frame(9, b"x") + frame(8, b"\x0f\xa0ok"),
    "small-limits-too-big": flags(small=True, sizes=(50,)) + frame(2, b"z" * 400),
    "small-many-fragments": flags(small=True, sizes=(3,)) + frame(2, b"a", fin=False) + b"".join(frame(0, b"b", fin=False) for _ in range(9)),
    "bad-utf8": flags(sizes=(2,)) + frame(1, b"ok\xc0\xafno"),
    "unmasked": flags(sizes=(1,)) + frame(1, b"hi", mask=None),
    "rsv1": flags() + frame(1, b"hi", rsv=4),
    "reserved-opcode": flags() + frame(3, b"hi"),
    "len64-msb": flags(sizes=(1, 2)) + frame(2, length=1 << 63)[:14],
    "control-too-long": flags(sizes=(200,)) + frame(9, b"x" * 126),
    "bad-close-code": flags() + frame(8, b"\x03\xed"),
    "close-1-byte": flags() + frame(8, b"\x03"),
    "continuation-first": flags() + frame(0, b"x"),
    "empty-chunks": flags(sizes=(0, 1, 0, 2)) + frame(1, b"") + frame(2, b"", fin=False) + frame(0, b""),
}
import zlib
def pmd(data, wbits=15):
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]

frames.update({
    "deflate-text": flags(deflate=True, sizes=(5, 3)) + frame(1, pmd(b"Hello, hello, hello!"), rsv=4),
    "deflate-fragmented": flags(deflate=True, sizes=(7,)) + frame(2, pmd(b"x" * 300)[:5], rsv=4, fin=False)
        + frame(0, pmd(b"x" * 300)[5:]),
    "deflate-plain-and-compressed": flags(deflate=True, sizes=(64,)) + frame(1, b"plain") + frame(1, pmd(b"\xe2\x82\xac" * 30), rsv=4),
    "deflate-bfinal": flags(deflate=True) + frame(2, bytes.fromhex("f248cdc9c90700"), rsv=4)
        + frame(2, zlib.compress(b"abc")[2:-4], rsv=4),
    "deflate-small-window": flags(small=True, deflate=True, sizes=(9, 1)) + frame(1, pmd(b"abcabcabc" * 40, 9), rsv=4),
    "deflate-bad-data": flags(deflate=True) + frame(1, b"\xff\xff\xff", rsv=4),
    "deflate-bomb": flags(small=True, deflate=True, sizes=(20,)) + frame(2, pmd(b"\x00" * 5000), rsv=4),
    "deflate-rsv1-continuation": flags(deflate=True) + frame(1, pmd(b"a"), rsv=4, fin=False) + frame(0, b"", rsv=4),
    "deflate-rsv1-ping": flags(deflate=True) + frame(9, b"", rsv=4),
    "echo-then-close": flags(close_after=2, sizes=(11,)) + frame(1, b"one") + frame(2, b"two") + frame(1, b"three"),
})

for k, v in frames.items():
    write("frames", k, v)
