#!/usr/bin/env python3
"""Markdown table of flush-lab runs: table.py RESULTS_FILE...

Reads the SUMMARY lines that run.sh appends to $APWL_RESULTS (gzipped or not) and prints one row per
filesystem x workload (the runs of a row summed), and the points checked per filesystem.
"""
import gzip
import re
import sys
from collections import Counter, defaultdict

FIELD = re.compile(r"(\w+)=(\S+)")
NUMBERS = ("log_entries", "log_flushes", "log_fua", "points", "violations", "documented_loss", "lab_errors")


def counts(text):
    return Counter({k: int(n) for k, n in (x.split(":") for x in text.split(",") if ":" in x)})


rows = defaultdict(lambda: {"runs": 0, "seeds": [], "kinds": Counter(), "fsck": Counter(),
                            **{k: 0 for k in NUMBERS}})
torn = Counter()
for path in sys.argv[1:]:
    for line in (gzip.open(path, "rt") if path.endswith(".gz") else open(path)):
        if " kind=torn " in line:
            f = dict(FIELD.findall(line.partition(" | ")[0]))
            torn[(f["fs"], f"{f['work']}-{f['dur']}", f.get("recover", "host"))] += 1
        if not line.startswith("SUMMARY flushlab"):
            continue
        f = dict(FIELD.findall(line))
        r = rows[(f["fs"], f["workload"], f.get("recover", "host"))]
        r["runs"] += 1
        r["seeds"].append(f["seed"])
        for k in NUMBERS:
            r[k] += int(f[k])
        r["kinds"] += counts(f["kinds"])
        r["fsck"] += counts(f["fsck"])

print("| filesystem | workload | recovered by | runs | log entries | flushes | FUA | points checked (torn) | violations | kinds | Data's documented loss | fsck | lab errors |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|")
per_fs = Counter()
for (fs, work, recover), r in rows.items():
    per_fs[fs] += r["points"]
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(r["kinds"].items())) or "-"
    fsck = ", ".join(f"{k}: {n}" for k, n in sorted(r["fsck"].items()))
    print(f"| {fs} | {work} | {recover} | {r['runs']} | {r['log_entries']} | {r['log_flushes']} | {r['log_fua']} "
          f"| {r['points']} ({torn[(fs, work, recover)]}) | {r['violations']} | {kinds} | {r['documented_loss']} | {fsck} | {r['lab_errors']} |")
print()
print("Points checked per filesystem: " + ", ".join(f"{fs} {n:,}" for fs, n in per_fs.items()) + ".")
