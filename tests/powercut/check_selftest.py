#!/usr/bin/env python3
"""The checker catches what it claims to: files written by the workload's own encoder
(`powercut_workload expect N [I]`) parse as generation N of file I, and truncated,
mislabelled, empty or another file's copies of them are rejected; a batch or snapshot
directory built from those files passes when whole and fails when a file is missing,
mixed in from another generation, or the pointer names nothing.
Usage: check_selftest.py PATH/TO/powercut_workload"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402

failures = 0


def expect(n, index=0):
    return subprocess.run([sys.argv[1], "expect", str(n), str(index)], capture_output=True,
                          check=True).stdout


def fail(message):
    global failures
    print(f"selftest: {message}")
    failures += 1


for n in (1, 2, 3, 4, 5, 77, 1311, 123456, 2**40):
    data = expect(n)
    gen, why = check.parse(data)
    if (gen, why) != (n, None):
        fail(f"generation {n} did not parse: {gen} {why}")
    relabel = data.replace(b"gen=%d " % n, b"gen=%d " % (n + 1), 1)
    flipped = data[:-1] + bytes([data[-1] ^ 1])
    for name, bad in (("short", data[:-1]), ("half", data[: len(data) // 2]), ("relabelled", relabel),
                      ("bit flip", flipped), ("empty", b""), ("zeros", bytes(len(data)))):
        if check.parse(bad)[1] is None:
            fail(f"{name} copy of generation {n} was accepted")
    for index in (1, 4):
        if check.parse(expect(n, index), index) != (n, None):
            fail(f"file {index} of generation {n} did not parse")
        if check.parse(expect(n, index), index - 1)[1] is None:
            fail(f"file {index} of generation {n} was accepted as file {index - 1}")


def result(acked):
    return {"violations": [], "lab_errors": [], "found": None}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def snapshot_dir(root, g, files=None):
    """ckpt -> ckpt.g holding files {index: generation} (default: the whole set of g)."""
    files = files or {i: g for i in range(1, check.FILES + 1)}
    for i, gen in files.items():
        write(os.path.join(root, f"ckpt.{g}", f"s{i}.dat"), expect(gen, i))
    os.symlink(f"ckpt.{g}", os.path.join(root, "ckpt"))


def case(name, build, checker, want_violation):
    with tempfile.TemporaryDirectory() as root:
        build(root)
        r = result(5)
        checker(root, r)
        if bool(r["violations"]) != want_violation:
            fail(f"{name}: violations {r['violations']}, expected {'some' if want_violation else 'none'}")


def batch_of(gens):
    return lambda root: [write(os.path.join(root, f"b{i}.dat"), expect(g, i)) for i, g in enumerate(gens, 1)]


case("whole snapshot", lambda d: snapshot_dir(d, 5), lambda d, r: check.check_snapshot(d, 5, r, "gen=5 ok"), False)
case("snapshot the reader saw differently", lambda d: snapshot_dir(d, 5),
     lambda d, r: check.check_snapshot(d, 5, r, "gen=4 ok"), True)
case("snapshot with a file of the last set", lambda d: snapshot_dir(d, 5, {1: 5, 2: 4, 3: 5, 4: 5}),
     lambda d, r: check.check_snapshot(d, 5, r, "gen=5 ok"), True)
case("snapshot missing a file", lambda d: snapshot_dir(d, 5, {1: 5, 2: 5, 3: 5}),
     lambda d, r: check.check_snapshot(d, 5, r, "gen=5 ok"), True)
case("snapshot rolled back", lambda d: snapshot_dir(d, 4), lambda d, r: check.check_snapshot(d, 5, r, "gen=4 ok"), True)
case("pointer naming nothing", lambda d: os.symlink("ckpt.5", os.path.join(d, "ckpt")),
     lambda d, r: check.check_snapshot(d, 5, r, "gen=5 ok"), True)
case("batch of two adjacent generations", batch_of([5, 6, 5, 6]), lambda d, r: check.check_batch(d, 5, r), False)
case("batch with a file rolled back", batch_of([5, 4, 5, 5]), lambda d, r: check.check_batch(d, 5, r), True)
case("batch missing a file", batch_of([5, 5, 5]), lambda d, r: check.check_batch(d, 5, r), True)
print(f"checker selftest: {'ok' if failures == 0 else f'{failures} failures'}")
sys.exit(1 if failures else 0)
