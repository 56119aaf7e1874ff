#!/usr/bin/env python3
"""Server CPU per TLS 1.3 connection, full handshake vs resumed (session ticket), on our
native record layer: N connections each (handshake, GET /healthz, close) from Python's ssl
client, the server's utime+stime read from /proc before and after. A measurement printed,
not a test: the numbers depend on the machine and its load.
Usage: WSS_SERVER=bin Tests/tlsfuzz/handshake_cpu.py [N] [--openssl-records]"""
import os, re, socket, ssl, subprocess, sys, tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    n = int(next((a for a in sys.argv[1:] if a.isdigit()), "500"))
    extra = [a for a in sys.argv[1:] if a.startswith("--")]
    binary = os.environ.get("WSS_SERVER", os.path.join(REPO, ".build/release/wss-server"))
    tmp = tempfile.mkdtemp()
    subprocess.run([os.path.join(REPO, "certs/generate.sh"), tmp], check=True, stdout=subprocess.DEVNULL)
    srv = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", "0", "--threads", "1", "--cert", f"{tmp}/cert.pem",
                            "--key", f"{tmp}/key.pem", "--log-level", "warning", *extra],
                           stdout=subprocess.PIPE, text=True)
    port = int(re.search(r":(\d+)$", srv.stdout.readline().strip()).group(1))
    ctx = ssl.create_default_context(cafile=f"{tmp}/ca.pem")
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    def connect(session=None):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost", session=session)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
        reused, sess = s.session_reused, s.session
        s.close()
        return reused, sess

    try:
        _, session = connect()  # warm-up, and the ticket
        results = {}
        for kind in ("full", "resumed"):
            before, reused = cpu_seconds(srv.pid), 0
            for _ in range(n):
                r, s = connect(session if kind == "resumed" else None)
                reused += r
                if kind == "resumed" and s.has_ticket:
                    session = s
            results[kind] = (cpu_seconds(srv.pid) - before) / n * 1e6
            print(f"{kind:8} {n} connections, {reused} resumed: server CPU {results[kind]:.0f} us per connection")
        print(f"resumption saves {results['full'] - results['resumed']:.0f} us of server CPU per connection "
              f"({' '.join(extra) or 'native records'}; noisy on a loaded machine)")
    finally:
        srv.terminate()
        srv.wait(5)


if __name__ == "__main__":
    main()
