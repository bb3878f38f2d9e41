#!/usr/bin/env bash
# CI-sized flush lab: ext4 with the crate's Durability::Full save (every flush point and
# some torn points must hold), and two controls that must be caught: Durability::None and
# a hand-made save that skips the file's fsync, both on ext4 -o noauto_da_alloc. Prints
# "flushlab: N passed, N failed" last; exit 0 only if all three came out as they must.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export APWL_SEED=${APWL_SEED:-$(date +%s)}
t0=$SECONDS
passed=0 failed=0

"$here/run.sh" ext4 single-full --commits "${FL_SMOKE_COMMITS:-8}" --points "${FL_SMOKE_TORN:-16}"
case $? in
  0) passed=$((passed + 1)); echo "smoke: ext4 Durability::Full held at every replay point" ;;
  *) failed=$((failed + 1)); echo "smoke: FAILED: ext4 Durability::Full violated the invariant or the lab failed" ;;
esac

for control in single-none single-nofilesync; do
  "$here/run.sh" ext4-noauto "$control" --commits 6 --points 8
  case $? in
    1) passed=$((passed + 1)); echo "smoke: the control $control was caught, as it must be" ;;
    0) failed=$((failed + 1)); echo "smoke: FAILED: the control $control was never caught: the lab cannot see it" ;;
    *) failed=$((failed + 1)); echo "smoke: FAILED: lab error in the control $control" ;;
  esac
done

echo "smoke: $((SECONDS - t0)) s"
echo "flushlab: $passed passed, $failed failed"
[ $failed -eq 0 ]
