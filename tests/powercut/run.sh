#!/usr/bin/env bash
# Real power cuts under qemu: see RELIABILITY.md ("Power cuts").
#
#   tests/powercut/run.sh FILESYSTEM ITERATIONS DURABILITY [WORKLOAD]
#     FILESYSTEM  ext4 | ext4-noauto (ext4 mounted -o noauto_da_alloc) | xfs | btrfs
#     DURABILITY  full | data | none   (none is the control: it is expected to fail)
#     WORKLOAD    single (default: write_atomic of one file) | batch (a Batch of 4 files)
#                 | snapshot (a Snapshot commit of 4 files, keep 2)
#   env: APWL_SEED (default: the time; printed), APWL_KILL_MIN / APWL_KILL_MAX (seconds after
#        the workload's START, default 0.2 / 15), APWL_CACHE (qemu cache mode, default unsafe),
#        APWL_DIRTY=hold|default (guest writeback, default hold), APWL_KEEP=1 (keep images),
#        APWL_RESULTS (append results lines to this file), APWL_UNTIL_VIOLATION=1 (stop at
#        the first violation: for showing that the control fails).
#
# Each iteration: mkfs a fresh 1 GiB sparse raw image, boot the guest (kernel + busybox
# initramfs + the static workload) with the image as its virtio disk, wait for the
# workload's START, SIGKILL qemu after a random delay, boot again on a copy of the image
# to let the guest kernel replay its journal and export the files, check them on the host.
# Exit code: 0 when no iteration violated the invariant, 1 when one did, 2 on a lab error.
set -uo pipefail
fs=${1:?usage: run.sh FILESYSTEM ITERATIONS DURABILITY}
iterations=${2:?usage: run.sh FILESYSTEM ITERATIONS DURABILITY}
dur=${3:?usage: run.sh FILESYSTEM ITERATIONS DURABILITY}
work=${4:-single}
case "$dur" in full | data | none) ;; *) echo "durability: full, data or none" >&2; exit 2 ;; esac
case "$work" in single | batch | snapshot) ;; *) echo "workload: single, batch or snapshot" >&2; exit 2 ;; esac

. "$(dirname "$0")/lib.sh"
apwl_fs "$fs" || exit 2
seed=${APWL_SEED:-$(date +%s)}
apwl_setup || exit 2
python3 "$APWL_HERE/check_selftest.py" "$APWL_BIN" >&2 || exit 2

runs=$APWL_WORK/runs/$(date -u +%Y%m%dT%H%M%S)-$work-$fs-$dur
mkdir -p "$runs"
log "workload=$work fs=$fs durability=$dur iterations=$iterations seed=$seed cache=$APWL_CACHE dirty=${APWL_DIRTY:-hold} -> $runs"
n=0 acked=0 violations=0 lab=0 temps=0 t0=$SECONDS
for ((i = 1; i <= iterations; i++)); do
  line=$(apwl_iteration "$fs" "$dur" "$i" "$seed" "$runs/$i" "$work")
  rc=$?
  echo "$line"
  echo "$line" >> "$runs/results.txt"
  [ -n "${APWL_RESULTS:-}" ] && echo "seed=$seed $line" >> "$APWL_RESULTS"
  if [ $rc -eq 2 ]; then lab=$((lab + 1)); continue; fi
  n=$((n + 1))
  [ $rc -eq 1 ] && violations=$((violations + 1))
  a=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["acked"], r["temps"])' "$runs/$i/result.json")
  acked=$((acked + ${a% *})) temps=$((temps + ${a#* }))
  [ $rc -eq 1 ] && [ -n "${APWL_UNTIL_VIOLATION:-}" ] && break
done
summary="SUMMARY work=$work fs=$fs dur=$dur kernel=$APWL_KVER cache=$APWL_CACHE seed=$seed iterations=$n acked_commits=$acked violations=$violations temps_seen=$temps lab_errors=$lab seconds=$((SECONDS - t0))"
echo "$summary"
echo "$summary" >> "$runs/results.txt"
[ -n "${APWL_RESULTS:-}" ] && echo "$summary" >> "$APWL_RESULTS"
if [ $lab -gt 0 ]; then exit 2; fi
if [ $violations -gt 0 ]; then exit 1; fi
exit 0
