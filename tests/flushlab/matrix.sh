#!/usr/bin/env bash
# The flush lab's record runs (RELIABILITY.md, "Every flush point"): per filesystem, the
# crate's saves (write_atomic at Full and Data, a Batch, a Snapshot, an enveloped
# Persisted, a History keeping 3) and the two controls.
#   tests/flushlab/matrix.sh RESULTS_FILE [FILESYSTEM...]   (default: all four)
# Appends every point's line and each run's SUMMARY line to RESULTS_FILE.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: matrix.sh RESULTS_FILE [FILESYSTEM...]}
shift
[ $# -gt 0 ] || set -- ext4 ext4-noauto xfs btrfs
export APWL_RESULTS=$out APWL_SEED=${APWL_SEED:-20261204}
for fs in "$@"; do
  "$here/run.sh" "$fs" single-full --commits 60 --points 60
  "$here/run.sh" "$fs" single-data --commits 15 --points 20
  "$here/run.sh" "$fs" batch-full --commits 20 --points 30
  "$here/run.sh" "$fs" snapshot-full --commits 15 --points 30
  "$here/run.sh" "$fs" persisted-full --commits 20 --points 20
  "$here/run.sh" "$fs" history-full --commits 15 --points 20
  "$here/run.sh" "$fs" single-none --commits 8 --points 10
  "$here/run.sh" "$fs" single-nofilesync --commits 8 --points 10
  # Two more records of single saves, with other torn points drawn.
  APWL_SEED=$((APWL_SEED + 1)) "$here/run.sh" "$fs" single-full --commits 20 --points 20
  APWL_SEED=$((APWL_SEED + 2)) "$here/run.sh" "$fs" single-full --commits 20 --points 20
done
grep '^SUMMARY' "$out"
