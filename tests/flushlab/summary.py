#!/usr/bin/env python3
"""Summary line and verdict of one flush-lab run: summary.py [options] POINT_JSON...

Each JSON is tests/powercut/check.py's result for one replay point. A point violates when
check.py found a violation, except that with Durability::Data a file one generation behind
the last acknowledged commit is the documented loss (its rename was not synced) and is
counted apart. Exit: 0 no violation, 1 a violation, 2 a lab error.
"""
import argparse
import json
import re
import sys
from collections import Counter

BEHIND = re.compile(r"rolled back: generation (\d+) < acknowledged (\d+)")
# A file missing after one acknowledged commit is generation 0: one behind as well.
FIRST_LOST = re.compile(r"missing after 1 acknowledged commits")


def kind(v):
    m = BEHIND.search(v)
    if m:
        return "rolled back by 1" if int(m.group(2)) - int(m.group(1)) == 1 else "rolled back by >1"
    if FIRST_LOST.search(v):
        return "rolled back by 1"
    for word in ("missing", "invalid", "debris", "unexpected", "reader", "pointer", "holds"):
        if word in v:
            return word
    return "other"


def main():
    p = argparse.ArgumentParser()
    for a in ("fs", "workload", "dur", "seed", "recover", "info", "seconds", "lab"):
        p.add_argument("--" + a, required=True)
    p.add_argument("points", nargs="*")
    a = p.parse_args()
    points = [json.load(open(f)) for f in a.points]
    kinds, fsck = Counter(), Counter()
    violations = documented = lab = 0
    for r in points:
        fsck[r["fsck"]] += 1
        if r["lab_errors"]:
            lab += 1
        ks = {kind(v) for v in r["violations"]}
        if not ks:
            continue
        if a.dur == "data" and ks == {"rolled back by 1"}:
            documented += 1
            continue
        violations += 1
        kinds.update(ks)
    lab = max(lab, int(a.lab))
    info = dict(x.split("=") for x in a.info.split())
    print(
        f"SUMMARY flushlab fs={a.fs} workload={a.workload} recover={a.recover} seed={a.seed} points={len(points)} "
        f"violations={violations} kinds={','.join(f'{k}:{n}' for k, n in sorted(kinds.items())) or '-'} "
        f"documented_loss={documented} fsck={','.join(f'{k}:{n}' for k, n in sorted(fsck.items()))} "
        f"lab_errors={lab} log_entries={info.get('entries')} log_flushes={info.get('flush')} "
        f"log_fua={info.get('fua')} seconds={a.seconds}"
    )
    sys.exit(2 if lab else (1 if violations else 0))


if __name__ == "__main__":
    main()
