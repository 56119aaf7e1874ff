#!/usr/bin/env python3
"""Prints issue 16's side-by-side table from Tests/bench/peers.sh's results.

Input: one line per run, tab-separated: scenario, client, transport, server (ours|uws|tcp),
repetition, and the client's last line (RESULT … or wsload: …, space-separated key=value).
Efficiency = messages (MiB for 1 MiB, handshakes) per server CPU-second; the server CPU is the
client's `server_cpu` (from /proc/PID/stat at the start and end of its window). Every cell is
the median over repetitions; ratio = ours ÷ uWebSockets'. Exit status 1 if any run had errors.
"""
import argparse
import statistics
import sys
from collections import defaultdict

GOAL_SPEED = 1.15        # ≥ 1.15 × uWebSockets' efficiency on every echo row
GOAL_HS = {"ws": 1.15, "wss": 1.3}
GOAL_IDLE_WS, GOAL_IDLE_WSS = 256, 1536
GOAL_AES = 0.5           # 1 MiB wss within 2 × of the AES-GCM limit

ECHO = [("64B d1", "64 B, 100 conns, depth 1", "msgs"),
        ("64B d16", "64 B, 100 conns, depth 16", "msgs"),
        ("1MiB d1", "1 MiB, 4 conns, depth 1 (MiB/s per server CPU-s)", "mib")]


def kv(line):
    out = {}
    for part in line.split():
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def num(d, key):
    try:
        return float(d.get(key, "nan"))
    except ValueError:
        return float("nan")


def ok(x):
    return x is not None and x == x and x >= 0


def efficiency(r, unit):
    cpu = num(r, "server_cpu")
    rate = num(r, {"msgs": "msgs_per_s", "mib": "mib_per_s", "hs": "hs_per_s"}[unit])
    return rate / cpu if ok(cpu) and cpu > 0 and ok(rate) else None


def median(xs):
    xs = [x for x in xs if ok(x)]
    return statistics.median(xs) if xs else None


def fmt_rate(x):
    if not ok(x):
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e4:
        return f"{x / 1e3:.1f}k"
    return f"{x:,.0f}"


def fmt_bytes(x):
    if not ok(x):
        return "-"
    return f"{x:.0f} B" if x < 1000 else f"{x / 1000:.1f} KB"


def ratio(a, b):
    return a / b if ok(a) and ok(b) and b > 0 else None


def fmt_ratio(x):
    return "-" if not ok(x) else f"**{x:.2f}**" if x < 1 else f"{x:.2f}"


class Runs:
    def __init__(self, path):
        self.by = defaultdict(dict)   # (scen, client, tr, srv) → {rep: fields}
        self.bad = []
        with open(path) as f:
            for raw in f:
                parts = raw.rstrip("\n").split("\t")
                if len(parts) < 6:
                    continue
                scen, client, tr, srv, rep, line = parts[:6]
                r = kv(line)
                self.by[(scen, client, tr, srv)][rep] = r
                if r.get("errors", "-1") != "0" or r.get("mismatches", "0") != "0":
                    self.bad.append(f"{scen} / {client} / {srv} {tr} / run {rep}: {line}")

    def eff(self, scen, client, tr, srv, unit):
        return median(efficiency(r, unit) for r in self.by[(scen, client, tr, srv)].values())

    def per_tcp(self, scen, tr, srv):
        """Median over repetitions of efficiency ÷ tcpecho's efficiency in the same repetition."""
        mine, tcp = self.by[(scen, "wsload", tr, srv)], self.by[(scen, "wsload", "tcp", "tcp")]
        return median(ratio(efficiency(mine[k], "msgs"), efficiency(tcp[k], "msgs")) for k in mine if k in tcp)

    def value(self, scen, client, tr, srv, key):
        return median(num(r, key) for r in self.by[(scen, client, tr, srv)].values())

    def has(self, scen, client):
        return any(k[0] == scen and k[1] == client for k in self.by)


def row(cells):
    print("| " + " | ".join(cells) + " |")


def echo_rows(runs):
    for scen, label, unit in ECHO:
        for client in ("wss-bench", "wsload"):
            if not runs.has(scen, client):
                continue
            cells, ratios = [label, client], []
            for tr in ("ws", "wss"):
                o, u = (runs.eff(scen, client, tr, s, unit) for s in ("ours", "uws"))
                show = fmt_rate if unit == "msgs" else (lambda x: "-" if not ok(x) else f"{x:,.0f}")
                if client == "wsload" and scen.startswith("64B"):
                    to, tu = runs.per_tcp(scen, tr, "ours"), runs.per_tcp(scen, tr, "uws")
                    cells += [f"{show(o)} ({to:.2f}×tcp)" if ok(to) else show(o),
                              f"{show(u)} ({tu:.2f}×tcp)" if ok(tu) else show(u)]
                else:
                    cells += [show(o), show(u)]
                ratios.append(ratio(o, u))
                cells.append(fmt_ratio(ratios[-1]))
            met = all(ok(r) and r >= GOAL_SPEED for r in ratios)
            cells.append("met" if met else f"missed (≥ {GOAL_SPEED})")
            row(cells)
    if runs.has("64B d1", "wsload"):
        d1, d16 = (runs.eff(s, "wsload", "tcp", "tcp", "msgs") for s in ("64B d1", "64B d16"))
        row(["tcpecho ceiling (raw TCP echo): depth 1 / depth 16", "wsload", fmt_rate(d1), fmt_rate(d16),
             "-", "-", "-", "-", "ceiling"])
    if runs.has("64B d1", "wsload") and runs.by.get(("64B d1", "wsload", "tcp", "uring")):
        # Same raw echo on io_uring: its ratio to tcpecho is what a completion loop buys here.
        u1, u16 = (runs.eff(s, "wsload", "tcp", "uring", "msgs") for s in ("64B d1", "64B d16"))
        t1, t16 = (runs.eff(s, "wsload", "tcp", "tcp", "msgs") for s in ("64B d1", "64B d16"))
        row(["uring-echo (raw TCP echo on io_uring): depth 1 / depth 16; ratio = ÷ tcpecho", "wsload",
             fmt_rate(u1), fmt_rate(u16), f"{fmt_ratio(ratio(u1, t1))} / {fmt_ratio(ratio(u16, t16))}",
             "-", "-", "-", "io_uring vs epoll"])


def handshake_rows(runs):
    for client in ("wss-bench", "wsload"):
        if not runs.has("handshakes", client):
            continue
        cells, verdict = ["handshakes per server CPU-s, 32 at once", client], []
        for tr in ("ws", "wss"):
            o, u = (runs.eff("handshakes", client, tr, s, "hs") for s in ("ours", "uws"))
            r = ratio(o, u)
            cells += [fmt_rate(o), fmt_rate(u), fmt_ratio(r)]
            verdict.append(ok(r) and r >= GOAL_HS[tr])
        cells.append("met" if all(verdict) else "missed (ws ≥ 1.15, wss ≥ 1.3)")
        row(cells)


def idle_row(runs, conns, ours="ours", what=""):
    """`ours`: the server name in the results (ourslog: our server with the default logging)."""
    if not runs.has("idle", "wsload") or not any(k[0] == "idle" and k[3] == ours for k in runs.by):
        return
    cells = [f"RSS per idle connection, {conns:,} conns{what} (lower is better)", "wsload --idle"]
    vals = {}
    for tr in ("ws", "wss"):
        o, u = (runs.value("idle", "wsload", tr, s, "per_conn_bytes") for s in (ours, "uws"))
        vals[tr] = (o, u)
        r = ratio(o, u)
        cells += [fmt_bytes(o), fmt_bytes(u),
                  "-" if not ok(r) else (f"{r:.2f}× more" if r > 1 else f"{1 / r:.1f}× less" if r > 0 else "-")]
    (ow, uw), (os_, _) = vals["ws"], vals["wss"]
    met = ok(ow) and ok(uw) and ow <= min(GOAL_IDLE_WS, uw) and ok(os_) and os_ <= GOAL_IDLE_WSS
    cells.append("met" if met else f"missed (ws ≤ {GOAL_IDLE_WS} B and ≤ uWS, wss ≤ 1.5 KB)")
    row(cells)


def aes_row(runs, aes_mib):
    if aes_mib <= 0 or not runs.has("1MiB d1", "wss-bench"):
        return
    limit = aes_mib / 2   # every echoed byte is decrypted once and encrypted once
    cells = [f"1 MiB wss ÷ AES-128-GCM limit ({aes_mib:,.0f} MiB/s ÷ 2 = {limit:,.0f} echoed MiB per CPU-s)",
             "wss-bench", "", "", ""]
    o, u = (runs.eff("1MiB d1", "wss-bench", "wss", s, "mib") for s in ("ours", "uws"))
    fo, fu = ratio(o, limit), ratio(u, limit)
    suites = {r.get("tls", "-") for r in runs.by[("1MiB d1", "wsload", "wss", "ours")].values()}
    cells += ["-" if not ok(fo) else f"{fo:.2f}", "-" if not ok(fu) else f"{fu:.2f}", fmt_ratio(ratio(fo, fu)),
              ("met" if ok(fo) and fo >= GOAL_AES else f"missed (≥ {GOAL_AES})")
              + (f"; wsload negotiated {', '.join(sorted(suites))}" if suites - {"-"} else "")]
    row(cells)


def ceiling_rows(runs):
    """The kernel's share of each server's CPU, and the ratio ours would reach with no
    user-space CPU at all (ours ÷ uWS ÷ ours' kernel share): where that is below the goal, no
    user-space work can meet it; only less kernel work per message can."""
    lines = []
    rows = [(s, c, label, unit) for s, label, unit in ECHO for c in ("wss-bench", "wsload")]
    rows += [("handshakes", c, "handshakes", "hs") for c in ("wss-bench", "wsload")]
    for scen, client, label, unit in rows:
        if not runs.has(scen, client):
            continue
        cells = [label, client]
        for tr in ("ws", "wss"):
            ko, ku = (runs.value(scen, client, tr, s, "srv_sys_share") for s in ("ours", "uws"))
            r = ratio(*(runs.eff(scen, client, tr, s, unit) for s in ("ours", "uws")))
            top = r / ko if ok(r) and ok(ko) and ko > 0 else None
            cells += ["-" if not ok(ko) else f"{ko:.1%}", "-" if not ok(ku) else f"{ku:.1%}", fmt_ratio(top)]
        lines.append(cells)
    if not lines:
        return
    print("\nkernel share of server CPU (utime/stime from /proc/PID/stat over each whole run) and the ceiling:"
          "\nthe ratio ours would reach with zero user-space CPU (ratio ÷ ours' kernel share)\n")
    row(["scenario", "client", "ours ws kernel", "uWS ws kernel", "ws ceiling",
         "ours wss kernel", "uWS wss kernel", "wss ceiling"])
    row(["---"] * 8)
    for cells in lines:
        row(cells)


NOISE = 0.05  # share of the window a process waited for a CPU: above it, other work competed


def noise_note(runs):
    """Which measurements had a busy machine (median server or client run-queue wait > NOISE)."""
    noisy = []
    for (scen, client, tr, srv), reps in sorted(runs.by.items()):
        waits = [max(num(r, "server_runq"), num(r, "client_runq")) for r in reps.values()]
        w = median(waits)
        if ok(w) and w > NOISE:
            noisy.append(f"{scen}/{client}/{srv} {tr} {w:.2f}")
    if noisy:
        print(f"\nbusy machine (median run-queue wait > {NOISE}; those cells are noise): " + ", ".join(noisy))
    else:
        print(f"\nquiet machine: every measurement's median run-queue wait ≤ {NOISE}")


def run_list(runs):
    print("\nruns (rate, server CPU cores, client CPU cores, server/client run-queue wait share):")
    for (scen, client, tr, srv), reps in sorted(runs.by.items()):
        for rep, r in sorted(reps.items()):
            rate = r.get("msgs_per_s") or r.get("hs_per_s") or r.get("per_conn_bytes", "-")
            if scen.startswith("1MiB"):
                rate = r.get("mib_per_s", "-") + " MiB/s"
            print(f"  {scen:10} {client:9} {srv:4} {tr:3} #{rep}: {rate:>10}  srv {r.get('server_cpu', '-'):>5}"
                  f"  cli {r.get('client_cpu', '-'):>5}  runq {r.get('server_runq', '-')}/{r.get('client_runq', '-')}"
                  f"  errors {r.get('errors', '?')}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--aes-mib", type=float, default=0, help="openssl speed aes-128-gcm, MiB/s at 16 KiB")
    ap.add_argument("--idle", type=int, default=10000, help="idle connections per run")
    a = ap.parse_args()
    runs = Runs(a.results)
    print()
    row(["scenario", "client", "ours ws", "uWS ws", "ratio", "ours wss", "uWS wss", "ratio", "goal"])
    row(["---"] * 9)
    echo_rows(runs)
    handshake_rows(runs)
    idle_row(runs, a.idle)
    idle_row(runs, a.idle, "ourslog", ", ours with default logging (access log on)")
    aes_row(runs, a.aes_mib)
    print("\nefficiency = messages (MiB, handshakes) per second of server CPU, median of the runs; ratio = ours ÷ uWS"
          " (bold: below 1); N×tcp = that efficiency ÷ tcpecho's in the same repetition")
    ceiling_rows(runs)
    noise_note(runs)
    run_list(runs)
    if runs.bad:
        print("\nruns with errors:")
        for b in runs.bad:
            print("  " + b)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
