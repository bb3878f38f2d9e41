# Shared by run.sh and smoke.sh: install, kernel, workload, initramfs, one iteration.
# shellcheck shell=bash

APWL_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
APWL_ROOT=$(cd "$APWL_HERE/../.." && pwd)
APWL_WORK=${APWL_WORK:-$APWL_ROOT/target/powercut}
APWL_GUEST=$APWL_WORK/guest

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# Debian packages the lab needs; installed only when a tool is missing. Arguments add
# COMMAND:PACKAGE pairs (what a lab built on this one needs besides).
apwl_install() {
  local missing=() extra
  for extra in "$@"; do
    command -v "${extra%%:*}" >/dev/null || missing+=("${extra#*:}")
  done
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  [ -x /bin/busybox ] && /bin/busybox --help 2>/dev/null | grep -q 'static' ||
    dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
  command -v depmod >/dev/null || missing+=(kmod)
  command -v cpio >/dev/null || missing+=(cpio)
  command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
  command -v mkfs.xfs >/dev/null || missing+=(xfsprogs)
  command -v mkfs.btrfs >/dev/null || missing+=(btrfs-progs)
  command -v python3 >/dev/null || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# The guest kernel: Debian's cloud kernel (small; virtio_blk, xfs and btrfs are modules,
# ext4 is built in). The versioned package is the one linux-image-cloud-amd64 points at,
# unless APWL_KERNEL_PKG names one.
apwl_kernel() {
  local pkg=${APWL_KERNEL_PKG:-}
  if [ -z "$pkg" ]; then
    if [ -f "$APWL_GUEST/kernel.pkg" ]; then
      pkg=$(cat "$APWL_GUEST/kernel.pkg")
    else
      pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
      if [ -z "$pkg" ]; then
        apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
        pkg=$(apt-cache depends linux-image-cloud-amd64 |
          awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
      fi
    fi
  fi
  [ -n "$pkg" ] || { log "no kernel package found"; return 1; }
  local dir=$APWL_GUEST/$pkg
  if [ ! -f "$dir/ok" ]; then
    log "fetching kernel $pkg"
    rm -rf "$dir" && mkdir -p "$dir/deb"
    local try
    for try in "$pkg" "$pkg-unsigned"; do
      rm -rf "$dir/root" "$dir"/deb/*.deb
      (cd "$dir/deb" && apt-get download "$try" >/dev/null 2>&1) || continue
      dpkg -x "$dir"/deb/*.deb "$dir/root"
      ls "$dir"/root/boot/vmlinuz-* >/dev/null 2>&1 && break
    done
    ls "$dir"/root/boot/vmlinuz-* >/dev/null 2>&1 || { log "no vmlinuz in $pkg"; return 1; }
    local kver
    kver=$(basename "$(ls -d "$dir"/root/lib/modules/*)")
    depmod -b "$dir/root" "$kver"
    echo "$kver" > "$dir/kver"
    rm -rf "$dir/deb"
    touch "$dir/ok"
  fi
  echo "$pkg" > "$APWL_GUEST/kernel.pkg"
  APWL_KDIR=$dir
  APWL_KVER=$(cat "$dir/kver")
  APWL_VMLINUZ=$(ls "$dir"/root/boot/vmlinuz-*)
}

# The workload: a static binary built apart from the normal target dir.
apwl_build() {
  log "building the workload (static)"
  (cd "$APWL_HERE/workload" &&
    CARGO_TARGET_DIR=$APWL_WORK/cargo RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build -q --release --target x86_64-unknown-linux-gnu)
  APWL_BIN=$APWL_WORK/cargo/x86_64-unknown-linux-gnu/release/powercut_workload
}

# Modules of $1 and their dependencies, dependencies first (from modules.dep).
apwl_modules() {
  python3 - "$APWL_KDIR/root/lib/modules/$APWL_KVER/modules.dep" "$@" <<'PY'
import sys
deps = {}
for line in open(sys.argv[1]):
    path, _, rest = line.partition(":")
    deps[path] = rest.split()
by_name = {p.rsplit("/", 1)[1].split(".ko")[0].replace("-", "_"): p for p in deps}
out = []
def visit(p):
    if p in out:
        return
    for d in reversed(deps[p]):
        visit(d)
    out.append(p)
for name in sys.argv[2:]:
    visit(by_name[name])
print("\n".join(out))
PY
}

# The initramfs: busybox, /init, the workload, the modules each filesystem needs.
apwl_initrd() {
  local dir=$APWL_GUEST/initrd.d
  rm -rf "$dir" && mkdir -p "$dir"/{bin,proc,sys,dev,mnt,modules,lib/modules}
  cp /bin/busybox "$dir/bin/busybox"
  cp "$APWL_HERE/init" "$dir/init" && chmod 755 "$dir/init"
  cp "$APWL_BIN" "$dir/powercut_workload"
  apwl_modules virtio_pci virtio_blk > "$dir/modules/base"
  : > "$dir/modules/ext4"
  apwl_modules xfs > "$dir/modules/xfs"
  apwl_modules xxhash_generic blake2b_generic btrfs > "$dir/modules/btrfs"
  local m
  for m in $(cat "$dir"/modules/*); do
    mkdir -p "$dir/lib/modules/$(dirname "$m")"
    cp "$APWL_KDIR/root/lib/modules/$APWL_KVER/$m" "$dir/lib/modules/$m"
  done
  # A lab built on this one (tests/flushlab/) adds its own tools here.
  if declare -F apwl_initrd_extra >/dev/null; then apwl_initrd_extra "$dir" || return 1; fi
  (cd "$dir" && find . | cpio -o -H newc --quiet | gzip -1) > "$APWL_GUEST/initrd.gz"
  APWL_INITRD=$APWL_GUEST/initrd.gz
}

apwl_setup() {
  mkdir -p "$APWL_GUEST"
  apwl_install
  apwl_kernel
  apwl_build
  apwl_initrd
  log "guest ready: kernel $APWL_KVER ($(basename "$APWL_KDIR")), qemu $(qemu-system-x86_64 --version | head -1 | awk '{print $4}')"
}

# Filesystem name -> mkfs command and mount options.
apwl_fs() {
  case "$1" in
    ext4) APWL_FSTYPE=ext4 APWL_MOPTS= ;;
    ext4-noauto) APWL_FSTYPE=ext4 APWL_MOPTS=noauto_da_alloc ;;
    xfs) APWL_FSTYPE=xfs APWL_MOPTS= ;;
    btrfs) APWL_FSTYPE=btrfs APWL_MOPTS= ;;
    *) log "unknown filesystem $1 (ext4, ext4-noauto, xfs, btrfs)"; return 1 ;;
  esac
}

apwl_mkfs() {
  rm -f "$2" && truncate -s 1G "$2"
  case "$1" in
    ext4) mkfs.ext4 -q -F "$2" ;;
    xfs) mkfs.xfs -q -f "$2" ;;
    btrfs) mkfs.btrfs -q -f "$2" >/dev/null ;;
  esac
}

# The qemu cache mode: "unsafe" by default (see RELIABILITY.md: the guest sees a disk with
# a write cache and sends its flushes; qemu hands every write to the host at once and only
# skips the host fsync that a flush would cost; killing qemu keeps all it handed over).
APWL_CACHE=${APWL_CACHE:-unsafe}

apwl_qemu() { # serial-log append drive-args...
  local serial=$1 append=$2
  shift 2
  exec qemu-system-x86_64 -accel tcg -machine pc -m 384 -smp 1 -nodefaults -no-reboot \
    -display none -monitor none -serial "file:$serial" \
    -kernel "$APWL_VMLINUZ" -initrd "$APWL_INITRD" \
    -append "console=ttyS0 quiet loglevel=1 panic=-1 $append" "$@"
}

# Seconds from the workload's START to the kill: uniform in [APWL_KILL_MIN, APWL_KILL_MAX],
# a function of the seed and the iteration.
apwl_delay() {
  python3 -c "import random,sys; r=random.Random(sys.argv[1]); print('%.2f' % r.uniform(float(sys.argv[2]), float(sys.argv[3])))" \
    "$1" "${APWL_KILL_MIN:-0.2}" "${APWL_KILL_MAX:-15}"
}

wait_for() { # file pattern timeout-seconds pid
  local t=0
  while ! grep -q "$2" "$1" 2>/dev/null; do
    kill -0 "$4" 2>/dev/null || return 2
    sleep 0.05
    t=$((t + 1))
    [ $t -ge $(($3 * 20)) ] && return 1
  done
  return 0
}

# Boots the guest with two raw virtio disks and waits until it powers off, killing it
# after SECONDS.
apwl_boot_two() { # seconds serial-log append disk1 disk2
  local limit=$(($1 * 10)) serial=$2 append=$3
  (apwl_qemu "$serial" "$append" \
    -drive "file=$4,if=virtio,format=raw,cache=$APWL_CACHE" \
    -drive "file=$5,if=virtio,format=raw,cache=$APWL_CACHE") &
  local pid=$! t=0
  while kill -0 "$pid" 2>/dev/null && [ $t -lt $limit ]; do sleep 0.1; t=$((t + 1)); done
  kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}

# The verify boot: the guest mounts IMAGE (its kernel replays the journal or log, as after
# a reboot), exports the files as a tar on EXPORT, runs the crate's sweep (and a reader),
# powers off; the serial log goes to LOG and the files are unpacked into DIR.
apwl_verify_boot() { # image export log dir args
  local image=$1 export=$2 serial=$3 files=$4 args=$5
  rm -f "$export" && truncate -s 64M "$export"
  apwl_boot_two 300 "$serial" "apwl.mode=verify $args" "$image" "$export"
  rm -rf "$files" && mkdir -p "$files"
  tar xf "$export" -C "$files" 2>/dev/null || true
}

# The filesystem's own checker, read-only, on IMAGE: prints clean or rc<exit code>.
apwl_fsck() { # image
  case "$APWL_FSTYPE" in
    ext4) e2fsck -fn "$1" >/dev/null 2>&1 && echo clean || echo "rc$?" ;;
    xfs) xfs_repair -n "$1" >/dev/null 2>&1 && echo clean || echo "rc$?" ;;
    btrfs) btrfs check --readonly "$1" >/dev/null 2>&1 && echo clean || echo "rc$?" ;;
    *) echo skip ;;
  esac
}

# One iteration: mkfs, boot, run, kill at a random moment, verify in a second boot on a
# copy of the image, check on the host. Prints the checker's results line; returns its
# code (0 ok, 1 violation, 2 lab error).
apwl_iteration() { # fs durability iteration seed dir [workload]
  local fs=$1 dur=$2 iter=$3 seed=$4 dir=$5 work=${6:-single}
  apwl_fs "$fs" || return 2
  mkdir -p "$dir"
  local img=$dir/disk.img copy=$dir/after.img export=$dir/export.img
  apwl_mkfs "$APWL_FSTYPE" "$img" || return 2
  local delay
  # The single-file workload keeps the kill moments of the runs recorded before the others.
  local key="$seed:$fs:$dur:$iter"
  [ "$work" = single ] || key="$key:$work"
  delay=$(apwl_delay "$key")
  local args="apwl.fs=$APWL_FSTYPE apwl.opts=$APWL_MOPTS apwl.dur=$dur apwl.dirty=${APWL_DIRTY:-hold} apwl.work=$work"
  local t0=$SECONDS
  (apwl_qemu "$dir/run.log" "apwl.mode=run $args" \
    -drive "file=$img,if=virtio,format=raw,cache=$APWL_CACHE") &
  local pid=$!
  local rc=0
  wait_for "$dir/run.log" '^START' 180 "$pid" || rc=$?
  if [ $rc -ne 0 ]; then
    kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    echo "iter=$iter work=$work fs=$fs dur=$dur verdict=lab-error reason=no-START(rc=$rc)"
    return 2
  fi
  sleep "$delay"
  local early=0
  kill -0 "$pid" 2>/dev/null || early=1
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  local boot=$((SECONDS - t0))

  cp --sparse=always "$img" "$copy"
  apwl_verify_boot "$copy" "$export" "$dir/verify.log" "$dir/files" "$args"
  # An independent look at the recovered filesystem (after the guest's own recovery).
  local fsck
  fsck=$(apwl_fsck "$copy")

  python3 "$APWL_HERE/check.py" --iter "$iter" --work "$work" --fs "$fs" --dur "$dur" --delay "$delay" \
    --early "$early" --fsck "$fsck" --run-log "$dir/run.log" --verify-log "$dir/verify.log" \
    --files "$dir/files" --json "$dir/result.json"
  rc=$?
  log "iteration $iter: $((SECONDS - t0)) s (run boot+workload ${boot} s)"
  if [ $rc -eq 0 ] && [ -z "${APWL_KEEP:-}" ]; then rm -f "$img" "$copy" "$export"; fi
  return $rc
}
