"""RFC 6455 error handling over raw (masked) frames, ws and wss.

For every case: parse the server's close frame, assert the code, then assert the
server closes the TCP connection within a bounded time.
"""
from __future__ import annotations

import asyncio
import struct
import time

import pytest

from wsutil import (OP_BIN, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, assert_close_then_eof,
                    build_frame, close_payload, expect_close, read_frame, recv_until_closed, run, ws_connect,
                    ws_handshake)

# Short close timeout so a server waiting for the (never sent) client close reply still
# drops TCP well within our EOF deadline.
CLOSE_ARGS = ("--close-timeout", "2")


@pytest.fixture
def proto_server(server_factory, scheme):
    return server_factory(scheme, "--app", "echo", *CLOSE_ARGS)


def _check(server, data: bytes, code: int, path="/chatsocket"):
    sock, reader = ws_handshake(server, path)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # server may already have failed the connection
        assert_close_then_eof(sock, reader, code)
    finally:
        sock.close()


CASES = {
    "invalid_utf8_text": (build_frame(OP_TEXT, b"ok \xff\xfe bad"), 1007),
    "invalid_utf8_overlong": (build_frame(OP_TEXT, b"\xc0\xaf"), 1007),
    "invalid_utf8_surrogate": (build_frame(OP_TEXT, b"\xed\xa0\x80"), 1007),
    "invalid_utf8_fragmented": (build_frame(OP_TEXT, b"abc", fin=False)
                                + build_frame(OP_CONT, b"\xf0\x28\x8c\x28"), 1007),
    "truncated_utf8_at_end": (build_frame(OP_TEXT, "响".encode()[:2]), 1007),
    "unmasked_client_frame": (build_frame(OP_TEXT, b"hello", mask=False), 1002),
    "reserved_opcode_3": (build_frame(3, b"x"), 1002),
    "reserved_opcode_11": (build_frame(0xB, b""), 1002),
    "rsv1_set": (build_frame(OP_TEXT, b"hello", rsv=4), 1002),
    "rsv3_set": (build_frame(OP_BIN, b"hello", rsv=1), 1002),
    "close_1_byte_payload": (build_frame(OP_CLOSE, b"\x03"), 1002),
    "close_code_1005": (build_frame(OP_CLOSE, close_payload(1005)), 1002),
    "close_code_999": (build_frame(OP_CLOSE, close_payload(999)), 1002),
    "close_code_1006": (build_frame(OP_CLOSE, close_payload(1006)), 1002),
    "close_code_5000": (build_frame(OP_CLOSE, close_payload(5000)), 1002),
    "ping_126_bytes": (build_frame(OP_PING, b"p" * 126), 1002),
    "fragmented_ping": (build_frame(OP_PING, b"abc", fin=False), 1002),
    "fragmented_close": (build_frame(OP_CLOSE, close_payload(1000), fin=False), 1002),
    "continuation_without_start": (build_frame(OP_CONT, b"orphan"), 1002),
    "new_message_inside_fragmented": (build_frame(OP_TEXT, b"a", fin=False)
                                      + build_frame(OP_TEXT, b"b"), 1002),
}


@pytest.mark.parametrize("case", list(CASES))
def test_protocol_error_close_code(proto_server, case):
    data, code = CASES[case]
    _check(proto_server, data, code)


def test_close_reason_invalid_utf8(proto_server):
    """Close reason must be UTF-8; 1007 (invalid data) or 1002 are both reasonable."""
    sock, reader = ws_handshake(proto_server)
    try:
        sock.sendall(build_frame(OP_CLOSE, close_payload(1000, b"bad \xff reason")))
        code, _ = expect_close(reader)
        assert code in (1002, 1007), code
        _, closed = recv_until_closed(sock, 8)
        assert closed
    finally:
        sock.close()


def test_protocol_error_on_root_path(proto_server):
    _check(proto_server, build_frame(3, b"x"), 1002, path="/")


def test_valid_close_with_empty_payload_gets_close(proto_server):
    """Close without status: server replies with a close frame (empty or 1000), then EOF."""
    sock, reader = ws_handshake(proto_server)
    try:
        sock.sendall(build_frame(OP_CLOSE, b""))
        fin, rsv, op, masked, payload = read_frame(reader)
        assert op == OP_CLOSE and not masked
        assert payload == b"" or struct.unpack("!H", payload[:2])[0] == 1000, payload
        _, closed = recv_until_closed(sock, 5)
        assert closed
    finally:
        sock.close()


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
def test_raw_close_code_echoed(proto_server, code):
    sock, reader = ws_handshake(proto_server)
    try:
        sock.sendall(build_frame(OP_CLOSE, close_payload(code, b"bye")))
        assert_close_then_eof(sock, reader, code, eof_timeout=5)
    finally:
        sock.close()


def test_pong_unsolicited_is_ignored(proto_server):
    sock, reader = ws_handshake(proto_server)
    try:
        sock.sendall(build_frame(OP_PONG, b"unsolicited") + build_frame(OP_TEXT, b"still here"))
        fin, rsv, op, masked, payload = read_frame(reader)
        assert (op, payload) == (OP_TEXT, b"still here")
    finally:
        sock.close()


# ---------------------------------------------------------------- message size limit

@pytest.fixture
def small_server(server_factory, scheme):
    return server_factory(scheme, "--app", "echo", "--max-message-size", "1024", *CLOSE_ARGS)


def test_max_size_exact_limit_ok(small_server):
    sock, reader = ws_handshake(small_server)
    try:
        sock.sendall(build_frame(OP_BIN, b"a" * 1024))
        assert read_frame(reader)[2:] == (OP_BIN, False, b"a" * 1024)
    finally:
        sock.close()


def test_max_size_exceeded_single_frame(small_server):
    _check(small_server, build_frame(OP_BIN, b"x" * 2000), 1009)


def test_max_size_exceeded_text(small_server):
    _check(small_server, build_frame(OP_TEXT, "响".encode() * 700), 1009)


def test_max_size_exceeded_across_fragments(small_server):
    data = (build_frame(OP_BIN, b"x" * 600, fin=False)
            + build_frame(OP_CONT, b"y" * 600, fin=True))
    _check(small_server, data, 1009)


def test_max_size_rejected_at_header(small_server):
    """Only the header of a 1 GiB frame is sent: the server must not wait for the payload."""
    sock, reader = ws_handshake(small_server)
    try:
        header = struct.pack("!BBQ", 0x80 | OP_BIN, 0x80 | 127, 1 << 30) + b"\x01\x02\x03\x04"
        t0 = time.monotonic()
        sock.sendall(header)
        assert_close_then_eof(sock, reader, 1009, eof_timeout=8)
        assert time.monotonic() - t0 < 9
    finally:
        sock.close()


def test_max_size_default_allows_1mib_via_client(server_factory, scheme):
    srv = server_factory(scheme, "--app", "echo")

    async def go():
        async with ws_connect(srv) as ws:
            await ws.send(b"z" * (2 * 1024 * 1024))
            got = await asyncio.wait_for(ws.recv(), 20)
            assert got == b"z" * (2 * 1024 * 1024)
    run(go(), 40)


def test_frame_length_with_msb_set_rejected(proto_server):
    """64-bit length with the most significant bit set is invalid (RFC 6455 5.2)."""
    sock, reader = ws_handshake(proto_server)
    try:
        header = struct.pack("!BBQ", 0x80 | OP_BIN, 0x80 | 127, 1 << 63) + b"\x00\x00\x00\x00"
        sock.sendall(header)
        code, _ = expect_close(reader)
        assert code in (1002, 1009), code
        _, closed = recv_until_closed(sock, 8)
        assert closed
    finally:
        sock.close()
