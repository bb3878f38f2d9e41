#!/usr/bin/env python3
"""Markdown table of power-cut results: summarize.py RESULTS_FILE...

Reads the per-iteration lines that run.sh appends to $APWL_RESULTS (lines starting with
"seed=... iter=") and counts, per filesystem x durability: iterations, iterations that
had acknowledged commits, acknowledged commits, violations (by kind), temp files seen;
per workload (single, batch, snapshot: lines without work= are the single-file runs).
"""
import re
import sys
from collections import defaultdict

FIELD = re.compile(r"(\w+)=(\S+)")


def rollback(detail):
    m = re.search(r"generation (\d+) < acknowledged (\d+)", detail)
    return "rolled back by 1" if m and int(m.group(2)) - int(m.group(1)) == 1 else "rolled back by >1"


rows = defaultdict(lambda: {"n": 0, "with_ack": 0, "acked": 0, "viol": 0, "kinds": defaultdict(int),
                            "temps": 0, "lab": 0, "seeds": set()})
for path in sys.argv[1:]:
    for line in open(path):
        if " iter=" not in line or "verdict=" not in line:
            continue
        head, _, detail = line.partition(" | ")
        f = dict(FIELD.findall(head))
        r = rows[(f.get("work", "single"), f["fs"], f["dur"])]
        r["seeds"].add(f.get("seed", "?"))
        if f["verdict"] == "LAB-ERROR" or f["verdict"] == "lab-error":
            r["lab"] += 1
            continue
        r["n"] += 1
        acked = int(f["acked"])
        r["acked"] += acked
        r["with_ack"] += acked > 0
        r["temps"] += int(f["temps"])
        if f["verdict"] == "VIOLATION":
            r["viol"] += 1
            kind = ("not one set" if "holds" in detail or ", not " in detail or "reader saw" in detail
                    else "missing" if "missing" in detail else "empty" if "empty" in detail
                    else rollback(detail) if "rolled back" in detail else "torn/invalid" if "invalid" in detail
                    else "debris" if "debris" in detail or "temp" in detail else "other")
            r["kinds"][kind] += 1

order = {"full": 0, "data": 1, "none": 2}
fs_order = {"ext4": 0, "ext4-noauto": 1, "xfs": 2, "btrfs": 3}
work_order = {"single": 0, "batch": 1, "snapshot": 2}
print("| workload | filesystem | durability | iterations | with ACKs | ACKed commits | violations | kinds | temps seen | lab errors |")
print("|---|---|---|---:|---:|---:|---:|---|---:|---:|")
for (work, fs, dur), r in sorted(rows.items(), key=lambda k: (work_order.get(k[0][0], 9), order.get(k[0][2], 9),
                                                             fs_order.get(k[0][1], 9))):
    kinds = ", ".join(f"{k}: {v}" for k, v in sorted(r["kinds"].items())) or "-"
    name = "ext4 -o noauto_da_alloc" if fs == "ext4-noauto" else fs
    print(f"| {work} | {name} | {dur.capitalize()} | {r['n']} | {r['with_ack']} | {r['acked']} | {r['viol']} | {kinds} | {r['temps']} | {r['lab']} |")
