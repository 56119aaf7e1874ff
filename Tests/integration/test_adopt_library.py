"""The library shuts down cleanly: Examples/ChatRoom (Server.runUntilSignalled) closes its
clients with 1001 on SIGTERM/SIGINT and exits 0 (issue 15)."""
from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest
from websockets.asyncio.client import connect

from conftest import SERVER_BIN

EXAMPLE = SERVER_BIN.parent / "chat-room-example"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_chat_room_example_drains_on_signal(sig):
    assert EXAMPLE.is_file(), f"missing {EXAMPLE} (swift build builds the examples)"
    proc = subprocess.Popen([str(EXAMPLE), "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode().strip()
        assert line.startswith("chat room on ws://127.0.0.1:"), line
        url = line.removeprefix("chat room on ")

        async def scenario():
            async with connect(url + "?user=ann&token=letmein") as ann, \
                       connect(url + "?user=bob&token=hunter2") as bob:
                assert await asyncio.wait_for(ann.recv(), 5) == "* ann joined"
                await bob.send("hello")
                while (m := await asyncio.wait_for(ann.recv(), 5)) != "bob: hello":
                    pass
                proc.send_signal(sig)
                codes = []
                for ws in (ann, bob):
                    try:
                        while True:
                            await asyncio.wait_for(ws.recv(), 5)
                    except Exception:
                        pass
                    codes.append(ws.close_code)
                return codes

        assert asyncio.run(scenario()) == [1001, 1001]
        assert proc.wait(10) == 0, proc.stderr.read().decode()
        assert b"every client said goodbye" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_chat_room_example_ignores_sigpipe():
    """A client that vanishes mid-stream must not kill a library app through SIGPIPE."""
    proc = subprocess.Popen([str(EXAMPLE), "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdout.readline()
        # The handler replaced SIGPIPE's default action: /proc shows it ignored.
        status = open(f"/proc/{proc.pid}/status").read()
        ignored = int(next(l for l in status.splitlines() if l.startswith("SigIgn:")).split()[1], 16)
        assert ignored & (1 << (signal.SIGPIPE - 1)), "SIGPIPE not ignored"
        caught = int(next(l for l in status.splitlines() if l.startswith("SigCgt:")).split()[1], 16)
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            assert caught & (1 << (s - 1)), f"{s!r} not handled"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
