"""Helpers for the scale-out tests: a real redis-server on a free 127.0.0.1 port, metrics
scraping, and chat traffic checks. No fixed ports anywhere."""
from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time

from wsutil import http_request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """redis-server on 127.0.0.1:<port>, no persistence; start/kill/restart at will."""

    def __init__(self, port: int | None = None, *extra: str):
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc: subprocess.Popen | None = None
        assert shutil.which("redis-server"), "redis-server missing (Tests/install-deps.sh installs it)"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--enable-debug-command", "local", *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.cli("PING").strip() == "PONG":
                return self
            time.sleep(0.05)
        raise AssertionError(f"redis-server did not answer on {self.port}")

    def start_auth(self, password: str, timeout: float = 10.0):
        """start() for a redis-server run with --requirepass."""
        self.password = password
        return self.start(timeout)

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        auth = ["--no-auth-warning", "-a", self.password] if getattr(self, "password", None) else []
        r = subprocess.run(["redis-cli", "-p", str(self.port), *auth, *args], capture_output=True, text=True, timeout=timeout)
        return r.stdout

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


def metrics(server) -> dict[str, float]:
    resp, _, sock = http_request(server, "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    sock.close()
    assert resp.status == 200, resp
    out = {}
    for line in resp.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def drain(ws, quiet: float = 0.3) -> list:
    got = []
    while True:
        try:
            got.append(await asyncio.wait_for(ws.recv(), quiet))
        except asyncio.TimeoutError:
            return got


async def sync_all(clients, tag: str, rounds: int = 100):
    """Every client sends sync messages until every client saw one from every client: all
    subscriptions are up on every instance. Then drains."""
    n = len(clients)
    seen = [set() for _ in clients]
    for r in range(rounds):
        for k, c in enumerate(clients):
            if len(seen[k]) < n or any(k not in s for s in seen):
                await c.send(f"{tag}-sync-{k}-{r}")
        await asyncio.sleep(0.1)
        for k, c in enumerate(clients):
            for m in await drain(c, 0.02):
                if isinstance(m, str) and m.startswith(f"{tag}-sync-"):
                    seen[k].add(int(m.split("-")[-2]))
        if all(len(s) == n for s in seen):
            break
    assert all(len(s) == n for s in seen), f"subscriptions not up everywhere: {[sorted(s) for s in seen]}"
    for c in clients:
        await drain(c, 0.3)


def wait_listening(port: int, proc: subprocess.Popen, log, timeout: float = 10.0):
    """Until something accepts on 127.0.0.1:port; fails at once if `proc` exits (with its log)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert proc.poll() is None, f"haproxy exited: {log.read_text()}"
            time.sleep(0.05)
    raise AssertionError(f"haproxy did not listen on {port}")


class HAProxy:
    """haproxy in TCP mode in front of `backends` [(host, port)], on a free 127.0.0.1 port,
    health checks on /healthz (with the PROXY header when `send_proxy` is set)."""

    def __init__(self, tmp_path, backends, send_proxy: str | None = "send-proxy-v2", tls: bool = False):
        assert shutil.which("haproxy"), "haproxy missing (Tests/install-deps.sh installs it)"
        self.port = free_port()
        proxy = f"{send_proxy} check-send-proxy" if send_proxy else ""
        ssl_check = "check-ssl verify none" if tls else ""
        servers = "\n".join(f"  server s{i} {h}:{p} check" for i, (h, p) in enumerate(backends))
        self.cfg = tmp_path / f"haproxy-{self.port}.cfg"
        self.cfg.write_text(f"""global
  maxconn 4096
defaults
  mode tcp
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  retries 3
  option redispatch
frontend front
  bind 127.0.0.1:{self.port}
  default_backend instances
backend instances
  balance leastconn
  option httpchk GET /healthz
  http-check expect status 200
  default-server inter 300ms fall 1 rise 2 {proxy} {ssl_check}
{servers}
""")
        self.log = tmp_path / f"haproxy-{self.port}.log"
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(self.cfg)], stdout=open(self.log, "wb"),
                                     stderr=subprocess.STDOUT)
        wait_listening(self.port, self.proc, self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


class ClusterHAProxy(HAProxy):
    """HAProxy running make cluster's own config (share/cluster/haproxy.cfg: HTTP mode, TLS
    terminated, sticky fallback sessions) on a free 127.0.0.1 port, in front of three TLS
    instances with --proxy-protocol; `certs` holds cert.pem, key.pem and ca.pem."""

    def __init__(self, tmp_path, backends, certs):
        import os
        from pathlib import Path
        config = Path(__file__).resolve().parents[2] / "share" / "cluster" / "haproxy.cfg"
        assert shutil.which("haproxy"), "haproxy missing (Tests/install-deps.sh installs it)"
        assert len(backends) == 3, "the config names three instances"
        self.port = free_port()
        pem = tmp_path / f"haproxy-{self.port}.pem"
        pem.write_bytes((certs / "cert.pem").read_bytes() + (certs / "key.pem").read_bytes())
        pem.chmod(0o600)
        env = {**os.environ, "WSS_CLUSTER_FRONT": f"127.0.0.1:{self.port}",
               "WSS_CLUSTER_PEM": str(pem), "WSS_CLUSTER_CA": str(certs / "ca.pem")}
        for name, (h, p) in zip("ABC", backends):
            env[f"WSS_CLUSTER_{name}"] = f"{h}:{p}"
        self.log = tmp_path / f"haproxy-{self.port}.log"
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(config)], env=env,
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        wait_listening(self.port, self.proc, self.log)
