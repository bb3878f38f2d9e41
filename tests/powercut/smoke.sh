#!/usr/bin/env bash
# CI-sized power-cut smoke: a few real power cuts on ext4 with Durability::Full (must hold),
# of one file, of a Batch and of a Snapshot, and the control (Durability::None on ext4
# mounted -o noauto_da_alloc) that must be seen failing. Installs what it needs. Prints
# "powercut: N passed, N failed" last.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
full_iterations=${APWL_SMOKE_FULL:-3}
control_iterations=${APWL_SMOKE_CONTROL:-3}
set_iterations=${APWL_SMOKE_SETS:-1}
t0=$SECONDS
passed=0 failed=0

# 1. Durability::Full must survive every cut.
"$here/run.sh" ext4 "$full_iterations" full
case $? in
  0) passed=$((passed + 1)); echo "smoke: ext4 Durability::Full held through $full_iterations power cuts" ;;
  *) failed=$((failed + 1)); echo "smoke: FAILED: ext4 Durability::Full violated the invariant or the lab failed" ;;
esac

# 2. So must a Batch and a Snapshot of four files.
for work in batch snapshot; do
  "$here/run.sh" ext4 "$set_iterations" full "$work"
  case $? in
    0) passed=$((passed + 1)); echo "smoke: ext4 $work at Durability::Full held through $set_iterations power cuts" ;;
    *) failed=$((failed + 1)); echo "smoke: FAILED: ext4 $work at Durability::Full violated the invariant or the lab failed" ;;
  esac
done

# 3. The control must fail: the lab has to see a missing fsync. The kill comes at least
# 1.5 s after START so that commits were acknowledged; stop at the first violation.
APWL_UNTIL_VIOLATION=1 APWL_KILL_MIN=${APWL_KILL_MIN:-1.5} "$here/run.sh" ext4-noauto "$control_iterations" none
case $? in
  1) passed=$((passed + 1)); echo "smoke: the control (Durability::None) was caught failing, as it must" ;;
  0) failed=$((failed + 1)); echo "smoke: FAILED: the control never failed: the lab cannot see a missing fsync" ;;
  *) failed=$((failed + 1)); echo "smoke: FAILED: lab error in the control run" ;;
esac

echo "smoke: $((SECONDS - t0)) s"
echo "powercut: $passed passed, $failed failed"
[ $failed -eq 0 ]
