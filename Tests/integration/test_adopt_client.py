"""wss-client against the real server (pipe and interactive modes), and every tool's ordinary
errors: one line on stderr, exit status 1 (issue 15)."""
from __future__ import annotations

import asyncio
import os
import pty
import select
import socket
import subprocess
import time

import pytest

from conftest import SERVER_BIN

CLIENT_BIN = SERVER_BIN.parent / "wss-client"
BENCH_BIN = SERVER_BIN.parent / "wss-bench"
CRASH_MARKERS = ("Fatal error", "Backtrace", "Stack dump", "Current stack trace", "💣", "Segmentation")


def client(*args, stdin: bytes = b"", timeout: float = 15) -> subprocess.CompletedProcess:
    assert CLIENT_BIN.is_file(), f"missing {CLIENT_BIN}"
    return subprocess.run([str(CLIENT_BIN), *args], input=stdin, capture_output=True, timeout=timeout)


def tls_args(srv) -> list[str]:
    return ["--ca", str(srv.certs / "ca.pem")] if srv.tls else []


def client_url(srv, path: str = "/") -> str:
    # The certificate is for localhost; the server listens on 127.0.0.1.
    return f"{srv.scheme}://{'localhost' if srv.tls else '127.0.0.1'}:{srv.port}{path}"


@pytest.fixture
def echo(server_factory, scheme, certs):
    srv = server_factory(scheme, "--app", "echo")
    srv.certs = certs
    return srv


def test_pipe_mode_one_message_per_line(echo):
    lines = ["hello", "你好 🚀", "x" * 70000]
    r = client(*tls_args(echo), client_url(echo), stdin="".join(l + "\n" for l in lines).encode())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == lines
    assert r.stderr == b""


def test_pipe_mode_binary_and_count(echo):
    payload = bytes([0xff, 0x00, 0x80, 0x41])  # not UTF-8: only --binary may send it
    r = client(*tls_args(echo), "--binary", "--count", "2", client_url(echo),
               stdin=payload + b"\n" + b"second\nthird\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == payload + b"\nsecond\n", "--count 2 stops after two messages"


def test_headers_subprotocol_compress_reach_the_server():
    """Against python-websockets (a real peer that shows what it received)."""
    from websockets.asyncio.server import serve
    seen = {}

    async def handler(ws):
        seen["trace"] = ws.request.headers.get("X-Trace")
        seen["subprotocol"] = ws.subprotocol
        seen["extensions"] = ws.request.headers.get("Sec-WebSocket-Extensions", "")
        async for message in ws:
            await ws.send(message)

    async def main():
        async with serve(handler, "127.0.0.1", 0, subprotocols=["chat.v1"]) as server:
            port = server.sockets[0].getsockname()[1]
            proc = await asyncio.create_subprocess_exec(
                str(CLIENT_BIN), "--header", "X-Trace: abc 1", "--subprotocol", "other",
                "--subprotocol", "chat.v1", "--compress", "--ping-interval", "0.05",
                f"ws://127.0.0.1:{port}/", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(b"compressed?\n"), 15)
            return proc.returncode, out, err

    rc, out, err = asyncio.run(main())
    assert rc == 0, err
    assert out == b"compressed?\n"
    assert seen == {"trace": "abc 1", "subprotocol": "chat.v1",
                    "extensions": seen["extensions"]} and "permessage-deflate" in seen["extensions"]


def test_bad_header_refused():
    r = client("--header", "Bad Name: x", "ws://127.0.0.1:1/")
    assert_one_line_error(r, "wss-client", "token")


def test_close_code_becomes_exit_status(server_factory):
    # 1009: a message over --max-message-size. Exit status 10 + (1009 - 1000) = 19.
    srv = server_factory("ws", "--app", "echo", "--max-message-size", "16")
    r = client(client_url(srv), stdin=b"this line is longer than sixteen bytes\n")
    assert r.returncode == 19, (r.returncode, r.stderr)
    assert b"closed with 1009" in r.stderr


def test_interactive_mode_markers(echo):
    """stdin is a terminal: '> ' prompt, '< ' before each message, Ctrl-D closes with 1000."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(CLIENT_BIN), [str(CLIENT_BIN), *tls_args(echo), client_url(echo)])
    out = b""

    def read_until(marker: bytes, timeout: float = 10):
        nonlocal out
        end = time.monotonic() + timeout
        while marker not in out and time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        assert marker in out, out

    read_until(b"> ")
    os.write(fd, "hi there 你好\n".encode())
    read_until("< hi there 你好".encode())
    os.write(fd, b"\x04")  # Ctrl-D: end of input
    read_until(b"closed with 1000")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status


def assert_one_line_error(r: subprocess.CompletedProcess, tool: str, mentions: str):
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 1, (r.returncode, err)
    for marker in CRASH_MARKERS:
        assert marker not in err, err
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{tool}: error: ") and mentions in lines[0], lines[0]


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


@pytest.fixture
def other_ca(tmp_path_factory):
    from conftest import GENERATE
    d = tmp_path_factory.mktemp("other-ca")
    subprocess.run(["bash", str(GENERATE), str(d)], check=True, capture_output=True, timeout=60)
    return d / "ca.pem"


@pytest.mark.parametrize("tool", ["wss-client", "wss-bench"])
def test_client_tools_ordinary_errors_are_one_line(tool, server_factory, certs, other_ca):
    binary = SERVER_BIN.parent / tool
    extra = ["-T", "1", "-W", "0", "-c", "2"] if tool == "wss-bench" else []
    run = lambda *a: subprocess.run([str(binary), *extra, *a], input=b"", capture_output=True, timeout=20)
    assert_one_line_error(run(f"ws://127.0.0.1:{free_port()}/"), tool, "refused")
    assert_one_line_error(run("http://example.test/"), tool, "ws://")
    assert_one_line_error(run("--no-such-flag", "ws://127.0.0.1:1/"), tool, "--no-such-flag")
    srv = server_factory("wss")
    assert_one_line_error(run("--ca", str(other_ca), f"wss://localhost:{srv.port}/"), tool, "certificate verify failed")
    assert_one_line_error(run("--ca", "/nonexistent/ca.pem", f"wss://localhost:{srv.port}/"), tool, "/nonexistent/ca.pem")


def test_server_ordinary_errors_are_one_line(server_factory, tmp_path):
    srv = server_factory("ws")
    run = lambda *a: subprocess.run([str(SERVER_BIN), *a], capture_output=True, timeout=20)
    assert_one_line_error(run("--host", "127.0.0.1", "--port", str(srv.port)), "wss-server", str(srv.port))
    assert_one_line_error(run("--port", "0", "--cert", str(tmp_path / "missing.pem")), "wss-server", "missing.pem")
    assert_one_line_error(run("--no-such-flag"), "wss-server", "--no-such-flag")
    assert_one_line_error(run("--port", "70000"), "wss-server", "--port")


def test_insecure_is_loud(server_factory):
    srv = server_factory("wss")
    r = client("--insecure", f"wss://localhost:{srv.port}/", stdin=b"x\n")
    assert r.returncode == 0, r.stderr
    assert b"WARNING" in r.stderr and b"NOT verified" in r.stderr
