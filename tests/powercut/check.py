#!/usr/bin/env python3
"""Offline checker of one power-cut iteration.

Inputs: the serial log of the run that was killed (its "ACK <gen>" lines), the serial log
of the verify boot (which mounted a copy of the image, so that the guest kernel replayed
the journal/log, exported every file as a tar and ran the crate's `sweep`), and the
exported files.

The invariant checked: once any commit was acknowledged, state.dat exists, is complete
and valid (header, length, FNV-1a sum, and the payload is exactly that of its
generation), and its generation is >= the last acknowledged one (and at most one more:
that commit may have returned without its ACK reaching the console). Temp files are
allowed, but counted, and must all be removed by `sweep`.

The file format is documented in examples/powercut_workload.rs; `payload` below is the
same SplitMix64 construction, bit for bit.
"""
import argparse
import json
import os
import re
import sys

MASK = (1 << 64) - 1
TEMP = re.compile(r"^\.state\.dat\.[a-z2-7]{12}\.tmp$")
HEADER = re.compile(rb"^apwl1 gen=(\d+) len=(\d+) sum=([0-9a-f]{16})\n")


def splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def payload(n):
    state, pick = splitmix(n)
    kind = pick % 4
    if kind == 0:
        length = (pick >> 2) & 0xFF
    elif kind == 1:
        length = (pick >> 2) % 4096
    elif kind == 2:
        length = (pick >> 2) % (64 * 1024)
    else:
        length = (pick >> 2) % (256 * 1024)
    length += 1
    out = bytearray()
    while len(out) < length:
        state, word = splitmix(state)
        out += word.to_bytes(8, "little")
    return bytes(out[:length])


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def parse(data):
    """(generation, None) when the file is valid, else (generation or None, reason)."""
    if not data:
        return None, "empty"
    m = HEADER.match(data)
    if not m:
        return None, f"bad header {data[:40]!r}"
    gen, length, checksum = int(m.group(1)), int(m.group(2)), int(m.group(3), 16)
    body = data[m.end():]
    if len(body) != length:
        return gen, f"length {len(body)} != {length}"
    if fnv1a64(body) != checksum:
        return gen, "checksum mismatch"
    if body != payload(gen):
        return gen, "payload is not that of its generation"
    return gen, None


def main():
    p = argparse.ArgumentParser()
    for a in ("iter", "fs", "dur", "delay", "early", "fsck", "run-log", "verify-log", "files", "json"):
        p.add_argument("--" + a, required=a != "json")
    a = p.parse_args()

    run = open(a.run_log, "rb").read().decode("utf-8", "replace")
    acks = [int(x) for x in re.findall(r"^ACK (\d+)\r?$", run, re.M)]
    acked = max(acks, default=0)
    errors = re.findall(r"^(ERROR .*|APWL FAIL .*)$", run, re.M)
    verify = open(a.verify_log, "rb").read().decode("utf-8", "replace")
    done = "APWL VERIFY-DONE" in verify
    swept = re.search(r"^APWL SWEEP removed=(\d+)", verify, re.M)
    left = re.search(r"^APWL LEFT (\d+)", verify, re.M)

    r = {
        "iter": int(a.iter), "fs": a.fs, "dur": a.dur, "kill_after_s": float(a.delay),
        "acked": acked, "found": None, "temps": 0, "swept": None, "fsck": a.fsck,
        "violations": [], "lab_errors": [],
    }
    if a.early == "1":
        r["lab_errors"].append("qemu exited before the kill")
    if errors:
        r["lab_errors"] += errors
    if not done:
        r["lab_errors"].append("verify boot did not finish: " + " | ".join(
            line for line in verify.splitlines() if line.startswith("APWL"))[-200:])

    if done:
        names = os.listdir(a.files)
        temps = [n for n in names if n.endswith(".tmp")]
        r["temps"] = len(temps)
        r["swept"] = int(swept.group(1)) if swept else None
        odd = [n for n in temps if not TEMP.match(n)]
        if odd:
            r["violations"].append(f"temp files sweep does not recognise: {odd}")
        if left is None or int(left.group(1)) != 0 or r["swept"] != len(temps):
            r["violations"].append(
                f"debris after sweep: {len(temps)} temps, swept {r['swept']}, left {left and left.group(1)}")
        other = [n for n in names if n not in temps and n not in ("state.dat", "lost+found", ".")]
        if other:
            r["violations"].append(f"unexpected files {other}")
        path = os.path.join(a.files, "state.dat")
        if os.path.exists(path):
            gen, reason = parse(open(path, "rb").read())
            r["found"] = gen if not reason else (reason if gen is None else f"{gen}(invalid)")
            if reason:
                r["violations"].append(f"state.dat invalid: {reason}")
            elif gen < acked:
                r["violations"].append(f"rolled back: generation {gen} < acknowledged {acked}")
            elif gen > acked + 1:
                r["lab_errors"].append(f"generation {gen} > acknowledged {acked} + 1")
        elif acked > 0:
            r["violations"].append(f"state.dat missing after {acked} acknowledged commits")

    verdict = "LAB-ERROR" if r["lab_errors"] else ("VIOLATION" if r["violations"] else "ok")
    r["verdict"] = verdict
    found = "missing" if r["found"] is None else str(r["found"]).split(" ")[0]
    print(f"iter={r['iter']} fs={a.fs} dur={a.dur} kill_after={a.delay}s acked={acked} "
          f"found={found} temps={r['temps']} swept={r['swept']} fsck={a.fsck} verdict={verdict}"
          + "".join(f" | {v}" for v in r["violations"] + r["lab_errors"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f)
    sys.exit(2 if r["lab_errors"] else (1 if r["violations"] else 0))


if __name__ == "__main__":
    main()
