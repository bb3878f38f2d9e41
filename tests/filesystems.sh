#!/usr/bin/env bash
# The engine, typed-value, history, batch and snapshot suites again on the filesystems
# the README names beyond ext4 and tmpfs: xfs and btrfs (loop images) and overlayfs
# (Docker's default storage; upper layer on the disk). Run as root (it mounts); each
# suite's temporary directories go to the mount through TMPDIR. Installs xfsprogs and
# btrfs-progs when missing; a filesystem that cannot be made or mounted fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
suites=(edge_cases symlinks no_clobber sweep readers typed_persisted history batch snapshot recover)
work=$(mktemp -d "${TMPDIR:-/tmp}/atomic-persist-fs.XXXXXX")
mounts=()
cleanup() {
  for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

need=()
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
if [ ${#need[@]} -gt 0 ]; then
  (apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      --no-install-recommends "${need[@]}") >/dev/null 2>&1 ||
    { echo "filesystems: could not install ${need[*]}" >&2; exit 1; }
fi

mount_fs() { # name -> prints the mount point
  local name=$1 dir=$work/$1
  mkdir -p "$dir/mnt"
  case "$name" in
    xfs | btrfs)
      truncate -s 1G "$dir/disk.img"
      if [ "$name" = xfs ]; then mkfs.xfs -q -f "$dir/disk.img"; else mkfs.btrfs -q -f "$dir/disk.img" >/dev/null; fi
      mount -o loop "$dir/disk.img" "$dir/mnt"
      ;;
    overlay)
      mkdir -p "$dir/lower" "$dir/upper" "$dir/work"
      mount -t overlay overlay -o "lowerdir=$dir/lower,upperdir=$dir/upper,workdir=$dir/work" "$dir/mnt"
      ;;
  esac
  mounts+=("$dir/mnt")
}

args=()
for s in "${suites[@]}"; do args+=(--test "$s"); done
cargo test --quiet --all-features --no-run "${args[@]}" 2>/dev/null
for fs in xfs btrfs overlay; do
  mount_fs "$fs" || { echo "filesystems: could not make and mount $fs" >&2; exit 1; }
  mnt=$work/$fs/mnt
  kind=$(stat -f -c %T "$mnt")
  t0=$SECONDS
  if ! TMPDIR=$mnt ATOMIC_PERSIST_NO_SKIP=1 cargo test --quiet --all-features "${args[@]}" >"$work/$fs.log" 2>&1; then
    cat "$work/$fs.log"
    echo "filesystems: the suites failed on $fs ($kind)" >&2
    exit 1
  fi
  passed=$(grep -o '[0-9]* passed' "$work/$fs.log" | awk '{s += $1} END {print s}')
  echo "filesystems: $fs ($kind): ${#suites[@]} suites, $passed tests passed in $((SECONDS - t0)) s"
done
