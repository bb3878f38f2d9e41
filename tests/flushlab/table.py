#!/usr/bin/env python3
"""Markdown table of flush-lab runs: table.py RESULTS_FILE...

Reads the SUMMARY lines that run.sh appends to $APWL_RESULTS and prints one row per
filesystem x workload, and the points checked per filesystem.
"""
import re
import sys
from collections import defaultdict

FIELD = re.compile(r"(\w+)=(\S+)")
rows, per_fs = [], defaultdict(int)
for path in sys.argv[1:]:
    for line in open(path):
        if line.startswith("SUMMARY flushlab"):
            f = dict(FIELD.findall(line))
            rows.append(f)
            per_fs[f["fs"]] += int(f["points"])

print("| filesystem | workload | log entries | flushes | FUA | points checked | violations | kinds | Data's documented loss | fsck | lab errors |")
print("|---|---|---:|---:|---:|---:|---:|---|---:|---|---:|")
for f in rows:
    print(f"| {f['fs']} | {f['workload']} | {f['log_entries']} | {f['log_flushes']} | {f['log_fua']} "
          f"| {f['points']} | {f['violations']} | {f['kinds']} | {f['documented_loss']} "
          f"| {f['fsck'].replace(',', ', ')} | {f['lab_errors']} |")
print()
print("Points checked per filesystem: " + ", ".join(f"{fs} {n:,}" for fs, n in per_fs.items()) + ".")
