#!/usr/bin/env python3
"""Summarize an Autobahn|Testsuite fuzzingclient report (index.json).

Usage: summarize.py [--label NAME] [--counts FILE] reports/<transport>/index.json

Prints a per-section table, the total duration of section 9, every case whose
behavior or behaviorClose is not OK/INFORMATIONAL, and a final line
"<label>: N passed, M failed". Exits non-zero if any case is not
OK/INFORMATIONAL or if no cases were found.
--counts FILE writes "N M" (passed, failed) to FILE for the caller.
"""
import argparse
import json
import os
import re
import sys

GOOD = {"OK", "INFORMATIONAL"}
COLUMNS = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]


def case_key(case_id):
    parts = []
    for p in case_id.split("."):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return parts


def clean(text, limit):
    text = " ".join(re.sub(r"<[^>]*>", " ", text or "").split())
    return text[:limit] + ("..." if len(text) > limit else "")


def details(report_dir, result):
    """(description, result text) from the per-case report file, if present."""
    name = result.get("reportfile")
    if not name:
        return "", ""
    try:
        with open(os.path.join(report_dir, name), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return "", ""
    why = clean(data.get("result"), 200)
    if data.get("resultClose") and result.get("behaviorClose") not in GOOD:
        why += " | close: " + clean(data.get("resultClose"), 200)
    return clean(data.get("description"), 160), why


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("index")
    ap.add_argument("--label", default="conformance")
    ap.add_argument("--counts")
    args = ap.parse_args()

    def write_counts(passed, failed):
        if args.counts:
            with open(args.counts, "w") as f:
                f.write("%d %d\n" % (passed, failed))

    try:
        with open(args.index, encoding="utf-8") as f:
            index = json.load(f)
    except (OSError, ValueError) as e:
        print("summarize: error: cannot read %s: %s" % (args.index, e), file=sys.stderr)
        write_counts(0, 0)
        return 2

    cases = {}
    for agent, results in index.items():
        for case_id, result in results.items():
            cases[case_id] = result
    if not cases:
        print("summarize: error: no cases found in %s" % args.index, file=sys.stderr)
        write_counts(0, 0)
        return 2

    report_dir = os.path.dirname(os.path.abspath(args.index))
    sections = {}
    bad = []
    sec9_ms = 0
    for case_id in sorted(cases, key=case_key):
        r = cases[case_id]
        beh = r.get("behavior", "?")
        close = r.get("behaviorClose", "?")
        sec = case_id.split(".")[0]
        row = sections.setdefault(sec, dict.fromkeys(["cases"] + COLUMNS, 0))
        row["cases"] += 1
        # A case counts under its worst verdict of behavior / behaviorClose.
        verdict = beh
        for v in ("FAILED", "UNIMPLEMENTED", "NON-STRICT"):
            if v in (beh, close):
                verdict = v
                break
        if verdict in row:
            row[verdict] += 1
        if sec == "9":
            sec9_ms += r.get("duration") or 0
        if beh not in GOOD or close not in GOOD:
            bad.append((case_id, beh, close, r))

    header = ["section", "cases"] + COLUMNS
    widths = [max(len(h), 7) for h in header]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    totals = dict.fromkeys(["cases"] + COLUMNS, 0)
    for sec in sorted(sections, key=int):
        row = sections[sec]
        for k in totals:
            totals[k] += row[k]
        print("  ".join(str(v).rjust(w) for v, w in
                        zip([sec] + [row[k] for k in header[1:]], widths)))
    print("-" * len(line))
    print("  ".join(str(v).rjust(w) for v, w in
                    zip(["total"] + [totals[k] for k in header[1:]], widths)))
    print("section 9 time: %.1f s" % (sec9_ms / 1000.0))

    if bad:
        print("cases not OK/INFORMATIONAL:")
        for case_id, beh, close, r in bad:
            desc, why = details(report_dir, r)
            print("  %-8s behavior=%s behaviorClose=%s%s" % (
                case_id, beh, close, ("  -- " + desc) if desc else ""))
            if why:
                print("           result: %s" % why)

    passed = len(cases) - len(bad)
    failed = len(bad)
    write_counts(passed, failed)
    print("%s: %d passed, %d failed" % (args.label, passed, failed))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
