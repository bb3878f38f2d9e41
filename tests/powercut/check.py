#!/usr/bin/env python3
"""Offline checker of one power-cut iteration.

Inputs: the serial log of the run that was killed (its "ACK <gen>" lines), the serial log
of the verify boot (which mounted a copy of the image, so that the guest kernel replayed
the journal/log, exported every file as a tar and ran the crate's `sweep`), and the
exported files.

The invariant checked, by workload (--work), once any commit was acknowledged; "valid"
means the header, length and FNV-1a sum hold and the payload is exactly that of its
generation and file index; "recent" means the generation is >= the last acknowledged one
and at most one more (that commit may have returned without its ACK reaching the console):

- single: state.dat exists, is valid and recent.
- batch: b1.dat..b4.dat each exist, are valid and recent (a Batch is not all-or-nothing:
  the four may be of two adjacent generations).
- snapshot: the pointer ckpt names ckpt.G with G recent; ckpt.G holds exactly
  s1.dat..s4.dat, all valid and all of generation G (one whole set); and the crate's own
  reader, run in the verify boot, saw the same generation G complete (its VIEW line).
  Older generations and one newer, unnamed generation (a writer killed between its rename
  and its pointer swap) are allowed.
- persisted, history: the crate's own reader (`view-persisted`, `view-history`: envelope
  or version checksum verified, value compared with the encoder) saw a recent generation.

Temp files (and a snapshot's transaction directories) are allowed, but counted, and must
all be removed by `sweep`.

The file format is documented in examples/powercut_workload.rs; `payload` below is the
same SplitMix64 construction, bit for bit.
"""
import argparse
import json
import os
import re
import sys

MASK = (1 << 64) - 1
SUFFIX = r"\.[a-z2-7]{12}\.(tmp|gen)$"
TEMP = {"single": re.compile(r"^\.state\.dat" + SUFFIX),
        "batch": re.compile(r"^\.b[1-4]\.dat" + SUFFIX),
        "snapshot": re.compile(r"^\.ckpt" + SUFFIX),
        "persisted": re.compile(r"^\.state\.json" + SUFFIX),
        "history": re.compile(r"^\.state(\.\d+|\.manifest)?\.json" + SUFFIX)}
FILES = 4
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


def parse(data, index=0):
    """(generation, None) when the file `index` is valid, else (generation or None, reason)."""
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
    if body != payload(gen ^ (index << 48)):
        return gen, "payload is not that of its generation and file"
    return gen, None


def check_file(path, index, acked, r, name):
    """The file `name` valid and recent; returns its generation, "invalid" or None."""
    if not os.path.exists(path):
        if acked > 0:
            r["violations"].append(f"{name} missing after {acked} acknowledged commits")
        return None
    gen, reason = parse(open(path, "rb").read(), index)
    if reason:
        r["violations"].append(f"{name} invalid: {reason}")
        return "invalid"
    if gen < acked:
        r["violations"].append(f"{name} rolled back: generation {gen} < acknowledged {acked}")
    elif gen > acked + 1:
        r["lab_errors"].append(f"{name}: generation {gen} > acknowledged {acked} + 1")
    return gen


def check_single(files, acked, r):
    r["found"] = check_file(os.path.join(files, "state.dat"), 0, acked, r, "state.dat")
    return {"state.dat"}


def check_batch(files, acked, r):
    names = [f"b{i}.dat" for i in range(1, FILES + 1)]
    gens = [check_file(os.path.join(files, n), i, acked, r, n) for i, n in enumerate(names, 1)]
    r["found"] = ",".join("-" if g is None else str(g) for g in gens)
    return set(names)


def check_snapshot(files, acked, r, view):
    pointer = os.path.join(files, "ckpt")
    generations = {int(m.group(1)) for m in map(re.compile(r"^ckpt\.(\d+)$").match, os.listdir(files)) if m}
    expected = {"ckpt", ".ckpt.lock"} | {f"ckpt.{g}" for g in generations}
    if not os.path.lexists(pointer):
        if acked > 0:
            r["violations"].append(f"pointer ckpt missing after {acked} acknowledged commits")
        if view != "none":
            r["violations"].append(f"the crate's reader saw {view!r} with no pointer")
        return expected
    target = os.readlink(pointer) if os.path.islink(pointer) else None
    m = re.match(r"^ckpt\.(\d+)$", target or "")
    if not m:
        r["violations"].append(f"pointer ckpt is not a link to a generation: {target!r}")
        return expected
    g = int(m.group(1))
    r["found"] = g
    if g < acked:
        r["violations"].append(f"rolled back: generation {g} < acknowledged {acked}")
    elif g > acked + 1:
        r["lab_errors"].append(f"generation {g} > acknowledged {acked} + 1")
    if any(other > g + 1 for other in generations):
        r["violations"].append(f"generations beyond the pointer's {g} + 1: {sorted(generations)}")
    gen_dir = os.path.join(files, target)
    if not os.path.isdir(gen_dir):
        r["violations"].append(f"pointer names {target}, which is not a directory")
        return expected
    names = [f"s{i}.dat" for i in range(1, FILES + 1)]
    present = sorted(os.listdir(gen_dir))
    if present != names:
        r["violations"].append(f"{target} holds {present}, not the set {names}")
    for i, n in enumerate(names, 1):
        path = os.path.join(gen_dir, n)
        if os.path.exists(path):
            found, reason = parse(open(path, "rb").read(), i)
            if reason or found != g:
                r["violations"].append(f"{target}/{n}: {reason or f'generation {found}, not {g}'}")
    if view != f"gen={g} ok":
        r["violations"].append(f"the crate's reader saw {view!r}, not gen={g} ok")
    return expected


def check_typed(files, acked, r, view, work):
    """persisted / history: the crate's own reader (its VIEW line, which verified the
    envelope or the version's checksum and compared the value with the encoder) saw a
    recent generation; the files are the value, its lock and, for a history, its versions
    and manifest."""
    expected = {"state.json", ".state.json.lock"}
    if work == "history":
        expected |= {"state.manifest.json"} | {
            n for n in os.listdir(files) if re.match(r"^state\.\d+\.json$", n)}
    if view in (None, "none"):
        if acked > 0:
            r["violations"].append(f"state.json missing after {acked} acknowledged commits")
        return expected
    m = re.match(r"^gen=(\d+) ok$", view)
    if not m:
        r["violations"].append(f"the crate's reader saw {view!r}")
        return expected
    g = r["found"] = int(m.group(1))
    if g < acked:
        r["violations"].append(f"state.json rolled back: generation {g} < acknowledged {acked}")
    elif g > acked + 1:
        r["lab_errors"].append(f"state.json: generation {g} > acknowledged {acked} + 1")
    return expected


def main():
    p = argparse.ArgumentParser()
    for a in ("iter", "work", "fs", "dur", "delay", "early", "fsck", "run-log", "verify-log", "files", "json"):
        p.add_argument("--" + a, required=a not in ("json", "work"))
    a = p.parse_args()
    work = a.work or "single"

    run = open(a.run_log, "rb").read().decode("utf-8", "replace")
    acks = [int(x) for x in re.findall(r"^ACK (\d+)\r?$", run, re.M)]
    acked = max(acks, default=0)
    errors = re.findall(r"^(ERROR .*|APWL FAIL .*)$", run, re.M)
    verify = open(a.verify_log, "rb").read().decode("utf-8", "replace")
    done = "APWL VERIFY-DONE" in verify
    swept = re.search(r"^APWL SWEEP removed=(\d+)", verify, re.M)
    left = re.search(r"^APWL LEFT (\d+)", verify, re.M)
    view = re.search(r"^APWL VIEW (.*?)\r?$", verify, re.M)

    r = {
        "iter": int(a.iter), "work": work, "fs": a.fs, "dur": a.dur, "kill_after_s": float(a.delay),
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
        temps = [n for n in names if n.endswith((".tmp", ".gen"))]
        r["temps"] = len(temps)
        r["swept"] = int(swept.group(1)) if swept else None
        odd = [n for n in temps if not TEMP[work].match(n)]
        if odd:
            r["violations"].append(f"temp files sweep does not recognise: {odd}")
        if left is None or int(left.group(1)) != 0 or r["swept"] != len(temps):
            r["violations"].append(
                f"debris after sweep: {len(temps)} temps, swept {r['swept']}, left {left and left.group(1)}")
        if work == "snapshot":
            expected = check_snapshot(a.files, acked, r, view and view.group(1))
        elif work in ("persisted", "history"):
            expected = check_typed(a.files, acked, r, view and view.group(1), work)
        elif work == "batch":
            expected = check_batch(a.files, acked, r)
        else:
            expected = check_single(a.files, acked, r)
        other = [n for n in names if n not in temps and n not in expected | {"lost+found", "."}]
        if other:
            r["violations"].append(f"unexpected files {other}")

    verdict = "LAB-ERROR" if r["lab_errors"] else ("VIOLATION" if r["violations"] else "ok")
    r["verdict"] = verdict
    found = "missing" if r["found"] is None else str(r["found"])
    print(f"iter={r['iter']} work={work} fs={a.fs} dur={a.dur} kill_after={a.delay}s acked={acked} "
          f"found={found} temps={r['temps']} swept={r['swept']} fsck={a.fsck} verdict={verdict}"
          + "".join(f" | {v}" for v in r["violations"] + r["lab_errors"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f)
    sys.exit(2 if r["lab_errors"] else (1 if r["violations"] else 0))


if __name__ == "__main__":
    main()
