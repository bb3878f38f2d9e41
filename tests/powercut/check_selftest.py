#!/usr/bin/env python3
"""The checker catches what it claims to: files written by the workload's own encoder
(`powercut_workload expect N`) parse as generation N, and truncated, mislabelled or empty
copies of them are rejected. Usage: check_selftest.py PATH/TO/powercut_workload"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402

failures = 0
for n in (1, 2, 3, 4, 5, 77, 1311, 123456, 2**40):
    data = subprocess.run([sys.argv[1], "expect", str(n)], capture_output=True, check=True).stdout
    gen, why = check.parse(data)
    if (gen, why) != (n, None):
        print(f"selftest: generation {n} did not parse: {gen} {why}")
        failures += 1
    relabel = data.replace(b"gen=%d " % n, b"gen=%d " % (n + 1), 1)
    flipped = data[:-1] + bytes([data[-1] ^ 1])
    for name, bad in (("short", data[:-1]), ("half", data[: len(data) // 2]), ("relabelled", relabel),
                      ("bit flip", flipped), ("empty", b""), ("zeros", bytes(len(data)))):
        if check.parse(bad)[1] is None:
            print(f"selftest: {name} copy of generation {n} was accepted")
            failures += 1
print(f"checker selftest: {'ok' if failures == 0 else f'{failures} failures'}")
sys.exit(1 if failures else 0)
