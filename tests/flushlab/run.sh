#!/usr/bin/env bash
# Crash states at every flush: see RELIABILITY.md ("Every flush point").
#
#   tests/flushlab/run.sh FILESYSTEM WORKLOAD [--points N] [--commits K] [--recover host|guest]
#     FILESYSTEM  ext4 | ext4-noauto (ext4 mounted -o noauto_da_alloc) | xfs | btrfs
#     WORKLOAD    single-full | single-data | batch-full | snapshot-full | persisted-full
#                 (an enveloped Persisted) | history-full (a History keeping 3): the crate's saves
#                 single-none | single-nofilesync (controls: they must be caught)
#     --points N  torn points (between flushes, part of the writes since the last flush
#                 lost), drawn at random; default 20. Every flush point is checked.
#     --commits K commits the workload makes; default 12.
#     --recover   who mounts each rebuilt image and so replays its journal: the host's
#                 kernel (default: fast) or the guest's, in a verify boot per point (the
#                 recording kernel's own recovery; about 4 s a point under TCG).
#   env: APWL_SEED (default: the time; printed), APWL_RESULTS (append the lines here),
#        APWL_DIRTY, APWL_CACHE as for tests/powercut/run.sh.
#
# One guest boot records every write of the workload's filesystem, in the order the disk
# made it stable, with dm-log-writes (a mark "ack-<n>" after each acknowledged commit).
# Then, on the host, for every flush point and N torn points: rebuild the disk image as a
# power cut there would have left it, mount it, check the files against the last
# acknowledged commit with tests/powercut/check.py, fsck it read-only. Summary line last.
# Exit code: 0 when every point holds (Data: only its documented loss, the last rename),
# 1 when one does not, 2 on a lab error.
set -uo pipefail
fs=${1:?usage: run.sh FILESYSTEM WORKLOAD [--points N] [--commits K]}
workload=${2:?usage: run.sh FILESYSTEM WORKLOAD [--points N] [--commits K]}
shift 2
torn=20 commits=12 FL_RECOVER=host
while [ $# -gt 0 ]; do
  case "$1" in
    --points) torn=${2:?}; shift 2 ;;
    --commits) commits=${2:?}; shift 2 ;;
    --recover) FL_RECOVER=${2:?}; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

case "$FL_RECOVER" in host | guest) ;; *) echo "--recover host or guest" >&2; exit 2 ;; esac
export FL_RECOVER
. "$(dirname "$0")/lib.sh"
apwl_fs "$fs" && fl_workload "$workload" || exit 2
FL_FS=$fs
seed=${APWL_SEED:-$(date +%s)}
fl_setup || exit 2

dir=$FL_RUNS/$(date -u +%Y%m%dT%H%M%S)-$workload-$fs
mkdir -p "$dir/points"
log "flushlab fs=$fs workload=$workload commits=$commits torn=$torn recover=$FL_RECOVER seed=$seed -> $dir"
t0=$SECONDS
fl_record "$fs" "$workload" "$commits" "$dir" || exit 2
info=$("$FL_REPLAY" info "$dir/log.img") || exit 2
log "recorded in $((SECONDS - t0)) s: $info"
"$FL_REPLAY" plan "$dir/log.img" mkfs "$torn" "$seed" > "$dir/plan.txt" || exit 2

# The base image advances through the log; a torn point's writes go to its copy only.
at=0 n=0 lab=0
while read -r _ entry kind stable pseed mark; do
  n=$((n + 1))
  upto=$entry
  [ "$kind" = torn ] && upto=$stable
  if [ "$upto" -gt "$at" ]; then
    "$FL_REPLAY" apply "$dir/log.img" "$dir/base.img" "$at" "$upto" || exit 2
    at=$upto
  fi
  line=$(fl_point "$dir" "$n" "$entry" "$kind" "$stable" "$pseed" "$mark")
  rc=$?
  echo "$line" >> "$dir/results.txt"
  [ -n "${APWL_RESULTS:-}" ] && echo "seed=$seed $line" >> "$APWL_RESULTS"
  [ $rc -eq 0 ] || echo "$line"
  [ $rc -eq 2 ] && lab=$((lab + 1))
done < "$dir/plan.txt"
rm -rf "$dir/point"

python3 "$FL_HERE/summary.py" --fs "$fs" --workload "$workload" --dur "$FL_DUR" --seed "$seed" --recover "$FL_RECOVER" \
  --info "$info" --seconds $((SECONDS - t0)) --lab "$lab" "$dir"/points/*.json | tee -a "$dir/results.txt"
rc=${PIPESTATUS[0]}
[ -n "${APWL_RESULTS:-}" ] && tail -1 "$dir/results.txt" >> "$APWL_RESULTS"
[ $rc -eq 0 ] && [ -z "${APWL_KEEP:-}" ] && rm -f "$dir/base.img" "$dir/log.img"
exit $rc
