#!/usr/bin/env python3
"""tlsfuzzer against wss-server, with `openssl s_server` as the reference (issue 12).

Starts, on 127.0.0.1 and ephemeral ports, our server in its default mode (native TLS 1.3
records) and with --openssl-records, and `openssl s_server -www` with the same certificate
(an ECDSA one from certs/generate.sh and a throw-away RSA-2048 one, both in a temporary
directory), runs every script of scripts.conf against each, prints a table and fails when ours
fails a case that s_server passes. A case that fails on both must be listed, with its reason,
in expected-failures.txt.

Environment: WSS_SERVER (binary, default .build/release/wss-server), TLSFUZZER_DIR (the
tlsfuzzer checkout), TLSFUZZER_PYTHON (a Python with tlslite-ng and ecdsa), TLSFUZZ_TIMEOUT
(seconds per script run, default 240), TLSFUZZ_JOBS (scripts run at once, default 3).
"""
import ast, fnmatch, os, re, shutil, signal, socket, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# TLS 1.2 profile of TLSContext (Mozilla "intermediate", AEAD only), for the 1.2 reference.
TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
                 "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
GROUPS = "X25519:P-256:P-384"
TARGETS = ["native", "openssl-records", "s_server"]
TICKETS = {"native": 1, "openssl-records": 1, "s_server": 2}
CHILDREN = set()  # running tlsfuzzer scripts, killed if we are stopped


def die(msg):
    print(f"tlsfuzz: {msg}", file=sys.stderr)
    sys.exit(1)


def find_tlsfuzzer():
    for d in [os.environ.get("TLSFUZZER_DIR", ""), os.path.join(REPO, "..", "shared", "tools", "tlsfuzzer"),
              os.path.join(REPO, "..", "..", "shared", "tools", "tlsfuzzer"), "/work/shared/tools/tlsfuzzer"]:
        if d and os.path.isfile(os.path.join(d, "tlsfuzzer", "_apps", "test_tls13_conversation.py")):
            return os.path.abspath(d)
    die("tlsfuzzer not found: set TLSFUZZER_DIR to a tlsfuzzer checkout")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, log, seconds=20):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            die(f"server exited early; see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    die(f"server did not listen on {port}; see {log}")


class Servers:
    """Starts each (target, certificate, protocol) server once, on first use."""

    def __init__(self, tmp, binary, certs):
        self.tmp, self.binary, self.certs, self.running = tmp, binary, certs, {}

    def port(self, target, cert, proto):
        key = (target, cert, "")
        if key not in self.running:
            self.running[key] = self.start(*key)
        return self.running[key][1]

    def private(self, cert, proto, name):
        """A fresh s_server for one script run: it serves one connection at a time, so two
        scripts sharing one would time each other out."""
        return self.start("s_server", cert, proto, name)

    def start(self, target, cert, proto, name=""):
        crt, k = self.certs[cert]
        log = os.path.join(self.tmp, f"server-{target}-{name or cert}.log")
        out = open(log, "w")
        if target == "s_server":
            port = free_port()
            version = ["-tls1_3"] if proto == "tls13" else ["-tls1_2", "-cipher", TLS12_CIPHERS]
            cmd = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-www", *version,
                   "-groups", GROUPS, "-key", k, "-cert", crt]
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            wait_listening(port, proc, log)
            return proc, port
        cmd = [self.binary, "--host", "127.0.0.1", "--port", "0", "--cert", crt, "--key", k,
               "--log-level", "info", "--no-page"] + (["--openssl-records"] if target == "openssl-records" else [])
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out, stdin=subprocess.DEVNULL, text=True)
        line = proc.stdout.readline().strip()
        m = re.match(r"listening on wss://127\.0\.0\.1:(\d+)$", line)
        if not m:
            proc.kill()
            die(f"{' '.join(cmd)} printed {line!r}; see {log}")
        # Keep its stdout drained.
        ThreadPoolExecutor(1).submit(lambda: [None for _ in proc.stdout])
        return proc, int(m.group(1))

    def stop(self):
        for proc, _ in self.running.values():
            proc.terminate()
        for proc, _ in self.running.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


def make_certs(tmp):
    ecdsa = os.path.join(tmp, "ecdsa")
    subprocess.run([os.path.join(REPO, "certs", "generate.sh"), ecdsa], check=True, stdout=subprocess.DEVNULL)
    rsa = os.path.join(tmp, "rsa")
    os.makedirs(rsa)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", f"{rsa}/key.pem", "-out", f"{rsa}/cert.pem"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return {"ecdsa": (f"{ecdsa}/cert.pem", f"{ecdsa}/key.pem"), "rsa": (f"{rsa}/cert.pem", f"{rsa}/key.pem")}


def read_conf(name):
    rows = []
    for line in open(os.path.join(HERE, name)):
        line = line.split("#", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if line:
            rows.append([f.strip() for f in line.split("|")])
    return rows


def parse(log_text):
    """(passed, total, failed case names) from a script's summary; None if it has none."""
    total = re.search(r"^TOTAL: (\d+)$", log_text, re.M)
    passed = re.search(r"^PASS: (\d+)$", log_text, re.M)
    if not total or not passed:
        return None
    failed = set()
    m = re.search(r"^FAILED:\n((?:\t.*\n?)*)", log_text, re.M)
    if m:
        failed = {ast.literal_eval(l.strip()) for l in m.group(1).splitlines() if l.strip()}
    return int(passed.group(1)), int(total.group(1)), failed


def run_one(python, tf, logs, servers, script, cert, proto, args, target, timeout):
    own = servers.private(cert, proto, script) if target == "s_server" else None
    port = own[1] if own else servers.port(target, cert, proto)
    if own:
        CHILDREN.add(own[0])
    # scripts/*.py are symlinks to _stub.py in tlsfuzzer (plain files in some snapshots): run the app module.
    argv = [python, "-m", "tlsfuzzer._apps." + script.replace("-", "_"), "-h", "127.0.0.1", "-p", str(port)]
    argv += args.replace("{tickets}", str(TICKETS[target])).split()
    log = os.path.join(logs, f"{script}.{target}.log")
    t0 = time.time()
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=tf), stdin=subprocess.DEVNULL)
        CHILDREN.add(proc)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            out.write(f"\ntlsfuzz: timed out after {timeout} s\n")
        CHILDREN.discard(proc)
    if own:
        own[0].terminate()
        own[0].wait(5)
        CHILDREN.discard(own[0])
    return script, target, parse(open(log).read()), time.time() - t0


def main():
    only = sys.argv[1:]
    binary = os.environ.get("WSS_SERVER", os.path.join(REPO, ".build", "release", "wss-server"))
    if not os.access(binary, os.X_OK):
        die(f"no server binary at {binary} (swift build -c release, or set WSS_SERVER)")
    tf = find_tlsfuzzer()
    python = os.environ.get("TLSFUZZER_PYTHON",
                            os.path.expanduser("~/.cache/wss-server/tlsfuzzer-venv/bin/python"))
    if subprocess.run([python, "-c", "import tlslite, ecdsa"], capture_output=True).returncode != 0:
        die(f"{python} lacks tlslite-ng/ecdsa (Tests/install-deps.sh sets up the venv)")
    timeout = int(os.environ.get("TLSFUZZ_TIMEOUT", "240"))
    scripts = [r for r in read_conf("scripts.conf") if not only or r[0] in only]
    expected = {(r[0], r[1]): r[2] for r in read_conf("expected-failures.txt")}
    out_dir = os.environ.get("TLSFUZZ_OUT", os.path.join(REPO, "reports", "tlsfuzz"))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    tmp = tempfile.mkdtemp(prefix="wss-tlsfuzz-")
    servers = Servers(out_dir, binary, make_certs(tmp))
    results, t0 = {}, time.time()
    try:
        jobs = [(s, c, p, a[0] if a else "", t) for s, c, p, *a in scripts for t in TARGETS]
        for s, c, p, _, t in jobs:  # start our servers up front, not from worker threads
            if t != "s_server":
                servers.port(t, c, p)
        with ThreadPoolExecutor(int(os.environ.get("TLSFUZZ_JOBS", "3"))) as pool:
            futures = [pool.submit(run_one, python, tf, out_dir, servers, s, c, p, a, t, timeout)
                       for s, c, p, a, t in jobs]
            for f in futures:
                script, target, res, secs = f.result()
                results[(script, target)] = res
                print(f"  {script} on {target}: " + (f"{res[0]}/{res[1]}" if res else "no summary")
                      + f" ({secs:.0f} s)", flush=True)
    finally:
        for proc in list(CHILDREN):
            proc.kill()
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return report([s[0] for s in scripts], results, expected, time.time() - t0, out_dir)


def listed(expected, script, case):
    """The expected-failures entry (script, pattern) that covers `case`, if any (fnmatch)."""
    return next(((s, p) for (s, p) in expected if s == script and fnmatch.fnmatchcase(case, p)), None)


def report(scripts, results, expected, seconds, out_dir):
    problems, used = [], set()
    print(f"\n{'script':34} {'ours native':>14} {'ours --openssl-records':>23} {'s_server':>10}")
    for script in scripts:
        cells = []
        for t in TARGETS:
            r = results.get((script, t))
            cells.append(f"{r[0]}/{r[1]}" if r else "ERROR")
        print(f"{script:34} {cells[0]:>14} {cells[1]:>23} {cells[2]:>10}")
        ref = results.get((script, "s_server"))
        if ref is None:
            problems.append(f"{script}: no result against s_server (see {out_dir})")
            continue
        for t in TARGETS[:2]:
            ours = results.get((script, t))
            if ours is None:
                problems.append(f"{script} on {t}: no summary (crash or timeout; see {out_dir}/{script}.{t}.log)")
                continue
            for case in sorted(ours[2]):
                if case not in ref[2]:
                    problems.append(f"{script} on {t}: '{case}' fails, passes on s_server")
                elif (key := listed(expected, script, case)):
                    used.add(key)
                else:
                    problems.append(f"{script} on {t}: '{case}' fails (on s_server too): list it in expected-failures.txt with its reason")
    for (script, case), reason in sorted(expected.items()):
        if (script, case) in used:
            print(f"expected failure (s_server fails it too): {script}: '{case}': {reason}")
    print(f"\ntlsfuzz: {len(scripts)} scripts x {len(TARGETS)} targets in {seconds:.0f} s; logs in {out_dir}")
    for p in problems:
        print(f"tlsfuzz: FAIL {p}")
    print(f"tlsfuzz: {'FAILED' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on the way out
    sys.exit(main())
