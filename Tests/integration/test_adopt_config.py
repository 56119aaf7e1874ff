"""--config FILE (TOML): keys are the flag names, flags override the file, unknown keys are a
one-line error naming the key and line; --print-config round-trips every flag (issue 15)."""
from __future__ import annotations

import asyncio
import json
import subprocess
import tomllib

import pytest
from websockets.asyncio.client import connect

from conftest import LISTEN_RE, SERVER_BIN

# A valid, non-default value for every flag that takes one (flags are simply set).
SAMPLE = {
    "host": "127.0.0.1", "port": 9123, "cert": "/etc/wss/cert.pem", "key": "/etc/wss/key.pem", "app": "chat",
    "threads": 3, "max-message-size": 65536, "idle-timeout": 30.5, "handshake-timeout": 4.0,
    "close-timeout": 2.0, "max-frame-size": 4096, "max-fragments": 64, "max-queued-pongs": 8,
    "max-connections": 1000, "high-water-mark": 65536, "max-backpressure": 131072,
    "shutdown-timeout": 1.5, "max-header-size": 4096, "max-headers": 50,
    "allowed-origin": ["https://a.example", "https://b.example"], "deflate-window-bits": 10,
    "deflate-mem-level": 4, "deflate-level": 3, "deflate-min-size": 128, "log-level": "debug",
    "log-format": "json", "access-log": "/var/log/wss/access.log",
    "metrics-listen": "127.0.0.1:9100", "metrics-allow": ["10.0.0.0/8", "::1/128"],
    "backplane": "redis://127.0.0.1:6390/2", "backplane-queue-limit": 1048576, "backplane-channel-prefix": "t:",
    "backplane-password-file": "/etc/wss/redis.pw",
    "history-size": 50, "history-ttl": 60.0, "history-meta-ttl": 3600.0, "trusted-proxy": ["10.1.0.0/16", "fd00::/8"],
    "session-timeout": 30.0, "poll-timeout": 10.0, "max-sessions": 500, "max-post-body": 65536,
    "max-post-messages": 10, "post-timeout": 5.0, "ticket-key-file": "/etc/wss/ticket.key",
}
NOT_SETTINGS = {"config", "print-config", "help", "version"}


def run(*args, timeout=10):
    return subprocess.run([str(SERVER_BIN), *args], capture_output=True, text=True, timeout=timeout)


def options():
    """(name, kind, repeating, default) of every long option, from the parser itself."""
    info = json.loads(run("--experimental-dump-help").stdout)
    for a in info["command"]["arguments"]:
        longs = [n["name"] for n in a.get("names", []) if n["kind"] == "long"]
        if longs and longs[0] not in NOT_SETTINGS:
            yield longs[0], a["kind"], a.get("isRepeating", False), a.get("defaultValue")


def sample_arguments():
    args, expected = [], {}
    for name, kind, repeating, default in options():
        if kind == "flag":
            args.append(f"--{name}")
            expected[name] = True
            continue
        if name in SAMPLE:
            value = SAMPLE[name]
        elif default is not None:
            value = default            # added by another engineer: at least its default must round-trip
        else:
            pytest.fail(f"--{name} has no sample value: add one to SAMPLE in {__file__}")
        for v in (value if isinstance(value, list) else [value]):
            args += [f"--{name}", str(v)]
        expected[name] = value
    return args, expected


def test_print_config_round_trips_every_flag(tmp_path):
    args, expected = sample_arguments()
    first = run(*args, "--print-config")
    assert first.returncode == 0, first.stderr
    parsed = tomllib.loads(first.stdout)
    for name, value in expected.items():
        assert name in parsed, f"--print-config lacks {name}"
        got = parsed[name]
        if isinstance(value, str) and not isinstance(got, str):
            got = str(got)
        if isinstance(value, float) or isinstance(got, float):
            assert float(got) == float(value), (name, got, value)
        else:
            assert got == value, (name, got, value)
    assert set(parsed) == set(expected), set(parsed) ^ set(expected)
    cfg = tmp_path / "all.toml"
    cfg.write_text(first.stdout)
    second = run("--config", str(cfg), "--print-config")
    assert second.returncode == 0, second.stderr
    assert second.stdout == first.stdout


def test_flags_override_the_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('port = 9000\nallowed-origin = ["https://file.example"]\napp = "echo"\n')
    out = tomllib.loads(run("--config", str(cfg), "--port", "9001", "--allowed-origin", "https://cli.example",
                            "--print-config").stdout)
    assert out["port"] == 9001 and out["allowed-origin"] == ["https://cli.example"] and out["app"] == "echo"


@pytest.mark.parametrize("text, expected", [
    ('port = 0\n\n# comment\nmax-mesage-size = 5\n', "config {path}:4: unknown key 'max-mesage-size'"),
    ('port = 0\n[section]\nx = 1\n', "config {path}:2: 'section' must be a number, string, boolean or list"),
    ('port = \n', "config {path}:1: "),
    ('port = "abc"\n', "config {path}:1: The value 'abc' is invalid for '--port <port>'"),
    ('max-message-size = 0\n', "--max-message-size must be positive"),
])
def test_bad_config_is_one_line_and_exit_1(tmp_path, text, expected):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    r = run("--config", str(cfg))
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wss-server: error: "), r.stderr
    assert expected.format(path=cfg) in lines[0], lines[0]


def test_missing_config_file(tmp_path):
    r = run("--config", str(tmp_path / "none.toml"))
    assert r.returncode == 1 and "none.toml" in r.stderr and r.stderr.count("\n") == 1


def test_config_file_runs_the_server(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('host = "127.0.0.1"\nport = 0\napp = "echo"\nmax-message-size = 8\naccess-log = "off"\n')
    proc = subprocess.Popen([str(SERVER_BIN), "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        m = LISTEN_RE.match(proc.stdout.readline().decode().strip())
        assert m, proc.stderr.read1().decode()

        async def scenario():
            async with connect(f"ws://127.0.0.1:{m.group(3)}/") as ws:
                await ws.send("short")
                assert await ws.recv() == "short"
                await ws.send("longer than eight")
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except Exception:
                    pass
                return ws.close_code
        assert asyncio.run(scenario()) == 1009, "max-message-size from the file applies"
    finally:
        proc.terminate()
        proc.wait(10)
