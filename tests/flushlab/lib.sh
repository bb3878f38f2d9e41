# The flush lab's steps, on top of the power-cut lab's guest (tests/powercut/lib.sh).
# shellcheck shell=bash

FL_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The guest (kernel, workload build) is the power-cut lab's, in its work directory; the
# flush lab's runs go apart.
. "$FL_HERE/../powercut/lib.sh"
FL_RUNS=${FL_RUNS:-$APWL_ROOT/target/flushlab/runs}

# The guest also needs dm-log-writes and dmsetup (with the shared libraries it links).
apwl_initrd_extra() {
  local dir=$1 lib
  apwl_modules dm_log_writes > "$dir/modules/dm" || return 1
  for m in $(cat "$dir/modules/dm"); do
    mkdir -p "$dir/lib/modules/$(dirname "$m")"
    cp "$APWL_KDIR/root/lib/modules/$APWL_KVER/$m" "$dir/lib/modules/$m"
  done
  cp "$(command -v dmsetup)" "$dir/bin/dmsetup"
  for lib in $(ldd "$(command -v dmsetup)" | grep -o '/[^ ]*'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
}

fl_install() {
  apwl_install dmsetup:dmsetup e2fsck:e2fsprogs
  command -v dmsetup >/dev/null || { log "dmsetup could not be installed"; return 1; }
}

fl_setup() {
  mkdir -p "$APWL_GUEST"
  fl_install || return 1
  apwl_kernel || return 1
  apwl_build || return 1
  apwl_initrd || return 1
  log "building the replay tool"
  (cd "$FL_HERE/../.." && cargo build -q --release -p flushlab-replay) || return 1
  FL_REPLAY=$(cd "$FL_HERE/../.." && pwd)/target/release/flushlab-replay
  log "guest ready: kernel $APWL_KVER, qemu $(qemu-system-x86_64 --version | head -1 | awk '{print $4}')"
}

# Workload name -> the power-cut workload's kind and level.
fl_workload() {
  case "$1" in
    single-full | single-data | single-none | single-nofilesync)
      FL_WORK=single FL_DUR=${1#single-} ;;
    batch-full | snapshot-full | persisted-full | history-full) FL_WORK=${1%-full} FL_DUR=full ;;
    *) log "unknown workload $1 (single-full|single-data|single-none|single-nofilesync|batch-full|snapshot-full|persisted-full|history-full)"; return 1 ;;
  esac
}

# Record: boot the guest on a fresh filesystem with its disk behind dm-log-writes, let it
# make COUNT commits, wait for it to power off. Leaves $dir/base.img (the filesystem as
# made on the host, before the log's first entry) and $dir/log.img.
fl_record() { # fs workload count dir
  local fs=$1 count=$3 dir=$4
  apwl_fs "$fs" && fl_workload "$2" || return 2
  mkdir -p "$dir"
  apwl_mkfs "$APWL_FSTYPE" "$dir/disk.img" || return 2
  # The replay starts from a copy of the disk as mkfs left it: the log holds every write
  # made after that.
  cp --sparse=always "$dir/disk.img" "$dir/base.img"
  rm -f "$dir/log.img" && truncate -s 4G "$dir/log.img"
  local args="apwl.mode=record apwl.fs=$APWL_FSTYPE apwl.opts=$APWL_MOPTS apwl.dur=$FL_DUR apwl.dirty=${APWL_DIRTY:-hold} apwl.work=$FL_WORK apwl.count=$count"
  apwl_boot_two 900 "$dir/record.log" "$args" "$dir/disk.img" "$dir/log.img"
  rm -f "$dir/disk.img"
  if ! grep -q '^APWL RECORD-DONE' "$dir/record.log" || ! grep -q '^APWL WORKLOAD-EXIT 0' "$dir/record.log"; then
    log "the record boot failed: $(grep -a '^APWL\|^ERROR' "$dir/record.log" | tr '\n' '|' | tail -c 400)"
    return 2
  fi
}

# Check one replay point: copy the base image (already replayed up to the point, or up to
# its last flush for a torn point), add a torn point's surviving writes, mount it on the
# host (the kernel replays the journal/log as after a reboot), keep a copy of the files,
# run the crate's sweep (and a reader), unmount, run the filesystem's checker read-only,
# and hand it all to the power-cut lab's checker. Prints its results line. With
# FL_RECOVER=guest the guest's kernel recovers and exports it instead (a boot per point).
fl_point() { # dir n entry kind stable seed mark
  local dir=$1 n=$2 entry=$3 kind=$4 stable=$5 seed=$6 mark=$7
  local p=$dir/point img=$dir/point/disk.img
  rm -rf "$p" && mkdir -p "$p/mnt" "$p/files"
  cp --sparse=always "$dir/base.img" "$img"
  if [ "$kind" = torn ]; then
    "$FL_REPLAY" torn "$dir/log.img" "$img" "$stable" "$entry" "$seed" || return 2
  fi
  local acked=0
  case "$mark" in ack-*) acked=${mark#ack-} ;; esac
  echo "ACK $acked" > "$p/run.log"
  local verify=$p/verify.log
  : > "$verify"
  if [ "${FL_RECOVER:-host}" = guest ]; then
    # The guest's own kernel recovers it, in the power-cut lab's verify boot.
    apwl_verify_boot "$img" "$p/export.img" "$verify" "$p/files" \
      "apwl.fs=$APWL_FSTYPE apwl.opts=$APWL_MOPTS apwl.dur=$FL_DUR apwl.work=$FL_WORK"
  elif mount -t "$APWL_FSTYPE" -o "loop${APWL_MOPTS:+,$APWL_MOPTS}" "$img" "$p/mnt" 2>"$p/mount.err"; then
    cp -a "$p/mnt/." "$p/files/"
    "$APWL_BIN" sweep "$p/mnt" | sed 's/^/APWL /' >> "$verify"
    echo "APWL LEFT $(ls -a "$p/mnt" | grep -cE '^\..*\.(tmp|gen)$')" >> "$verify"
    case "$FL_WORK" in
      snapshot) "$APWL_BIN" view "$p/mnt" | sed 's/^/APWL /' >> "$verify" ;;
      persisted | history) "$APWL_BIN" "view-$FL_WORK" "$p/mnt" | sed 's/^/APWL /' >> "$verify" ;;
    esac
    umount "$p/mnt" || { log "umount failed at entry $entry"; return 2; }
    echo "APWL VERIFY-DONE" >> "$verify"
  else
    echo "APWL FAIL mount: $(tr '\n' ' ' < "$p/mount.err")" >> "$verify"
  fi
  local fsck line
  fsck=$(apwl_fsck "$img")
  line=$(python3 "$APWL_HERE/check.py" --iter "$n" --work "$FL_WORK" --fs "$FL_FS" --dur "$FL_DUR" \
    --delay 0 --early 0 --fsck "$fsck" --run-log "$p/run.log" --verify-log "$verify" \
    --files "$p/files" --json "$dir/points/$n.json")
  local rc=$?
  echo "entry=$entry kind=$kind stable=$stable recover=${FL_RECOVER:-host} $line"
  return $rc
}
