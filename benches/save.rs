//! Durable replace-saves through the bare-syscall floor, this crate and its peers.
//!
//! One run measures every implementation at every size, interleaved: each round saves
//! once through every implementation (starting at a different one each round), so a
//! slow moment of the machine hits all of them alike. Each implementation replaces its
//! own, already existing, file of the same size in the same directory.
//!
//! ```sh
//! cargo bench --bench save                       # the full run, a few minutes
//! BENCH_ROUNDS_64M=5 cargo bench --bench save    # fewer rounds where saves are slow
//! ```
//!
//! Environment variables (all optional):
//!
//! - `BENCH_ROUNDS_1K`, `BENCH_ROUNDS_64K`, `BENCH_ROUNDS_4M`, `BENCH_ROUNDS_64M`: rounds
//!   per size on disk (a size with 0 rounds is skipped);
//! - `BENCH_ROUNDS_TMPFS`: rounds of 1 KiB saves on tmpfs; `BENCH_ROUNDS_SYSCALL`:
//!   repetitions of each single syscall timed on tmpfs;
//! - `BENCH_DIR`: the directory on disk (default: a fresh directory under Cargo's
//!   `CARGO_TARGET_TMPDIR`, that is on the disk that holds `target/`);
//! - `BENCH_TMPFS_DIR`: the tmpfs directory (default `/dev/shm`; skipped if absent);
//! - `BENCH_DISK_EXTRAS=1`: also run the tmpfs-only variants (the floor plus each of the
//!   crate's extra syscalls) on disk;
//! - `BENCH_ONLY=N`: no timing; save 1 KiB 100 times through implementation `N` (0 is the
//!   floor, in the order of the tables) in `BENCH_DIR`, to count its syscalls:
//!   `BENCH_ONLY=4 BENCH_DIR=/dev/shm strace -f -c target/release/deps/save-* --bench`.
//!
//! Without `--bench` (as `cargo test --benches` runs it) it only checks that every
//! implementation saves the right bytes, once, and exits.

use std::error::Error;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use atomic_persist::{Durability, WriteOptions};

#[path = "common/env.rs"]
mod env;
#[path = "common/stats.rs"]
mod stats;
use stats::{paired_difference, paired_ratio};

type Res = Result<(), Box<dyn Error>>;

/// Which floor an implementation is compared with: the one that flushes what it flushes.
#[derive(Clone, Copy, PartialEq)]
enum Flushes {
    /// fsync of the file and of the directory.
    FileAndDir,
    /// fsync of the file only.
    File,
}

struct Impl {
    name: &'static str,
    flushes: Flushes,
    save: fn(&Path, &[u8]) -> Res,
}

const IMPLS: &[Impl] = &[
    Impl {
        name: "floor (std: O_EXCL, write, fdatasync, rename, fsync dir)",
        flushes: Flushes::FileAndDir,
        save: floor_full,
    },
    Impl {
        name: "floor, no dir fsync",
        flushes: Flushes::File,
        save: floor_no_dir_sync,
    },
    Impl {
        name: "floor with `fsync` (`sync_all`) of the file",
        flushes: Flushes::FileAndDir,
        save: floor_fsync,
    },
    Impl {
        name: "floor with `fsync` of the file, no dir fsync",
        flushes: Flushes::File,
        save: floor_fsync_no_dir_sync,
    },
    Impl {
        name: "atomic-persist `write_atomic` (Full)",
        flushes: Flushes::FileAndDir,
        save: crate_full,
    },
    Impl {
        name: "atomic-persist `Durability::Data`",
        flushes: Flushes::File,
        save: crate_data,
    },
    Impl {
        name: "atomic-persist `anonymous_temp(false)` (named temp, Full)",
        flushes: Flushes::FileAndDir,
        save: crate_named,
    },
    Impl {
        name: "atomic-write-file 0.3",
        flushes: Flushes::FileAndDir,
        save: peer_atomic_write_file,
    },
    Impl {
        name: "atomicwrites 0.4",
        flushes: Flushes::FileAndDir,
        save: peer_atomicwrites,
    },
    Impl {
        name: "tempfile 3 (`sync_all` + `persist`, no dir fsync)",
        flushes: Flushes::File,
        save: peer_tempfile,
    },
];

/// Measured on tmpfs only, to take the crate's overhead apart.
const TMPFS_EXTRAS: &[Impl] = &[
    Impl {
        name: "atomic-persist `preserve_permissions(false)` (Full)",
        flushes: Flushes::FileAndDir,
        save: crate_no_preserve,
    },
    Impl {
        name: "floor + `lstat` of the destination",
        flushes: Flushes::FileAndDir,
        save: floor_plus::<LSTAT>,
    },
    Impl {
        name: "floor + `fstat` of the temp file",
        flushes: Flushes::FileAndDir,
        save: floor_plus::<FSTAT>,
    },
    Impl {
        name: "floor + `flock` of the temp file",
        flushes: Flushes::FileAndDir,
        save: floor_plus::<FLOCK>,
    },
    Impl {
        name: "floor + `fchmod` of the temp file (the crate: only when the mode differs)",
        flushes: Flushes::FileAndDir,
        save: floor_plus::<FCHMOD>,
    },
    Impl {
        name: "floor + `lstat` + `flock` + `fstat` (the crate's extra syscalls)",
        flushes: Flushes::FileAndDir,
        save: floor_plus::<{ LSTAT | FLOCK | FSTAT }>,
    },
    Impl {
        name: "floor + those three + dir handle (= a crate Full save)",
        flushes: Flushes::FileAndDir,
        save: floor_plus::<CRATE_EXTRAS>,
    },
    Impl {
        name: "floor, no dir fsync + an open/close of the directory",
        flushes: Flushes::File,
        save: floor_plus::<{ NO_DIR_SYNC | DIR_HANDLE }>,
    },
    Impl {
        name: "floor, no dir fsync + all the above (= a crate Data save)",
        flushes: Flushes::File,
        save: floor_plus::<{ NO_DIR_SYNC | CRATE_EXTRAS }>,
    },
];

/// Everything measured on tmpfs: `IMPLS`, then `TMPFS_EXTRAS`.
fn all_impls() -> Vec<&'static Impl> {
    IMPLS.iter().chain(TMPFS_EXTRAS).collect()
}

/// Index of the floor for each kind of flushing, in `IMPLS`.
fn floor_of(flushes: Flushes) -> usize {
    match flushes {
        Flushes::FileAndDir => 0,
        Flushes::File => 1,
    }
}

// ---- the implementations ----------------------------------------------------------------

/// The std-only floor: what any durable replace has to do, and nothing more. `sync_all`
/// flushes the file with `fsync` instead of `fdatasync`, as the crate does when it
/// replaces a file (the copied mode is metadata) and as tempfile always does.
fn floor(path: &Path, bytes: &[u8], sync_dir: bool, sync_all: bool) -> Res {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // The pid once, not a getpid per save: the floor makes no syscall it does not need.
    static PID: OnceLock<u32> = OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    let dir = path.parent().ok_or("no parent")?;
    let name = path.file_name().ok_or("no file name")?.to_string_lossy();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.{pid}-{n}.tmp"));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    file.write_all(bytes)?;
    if sync_all {
        file.sync_all()?;
    } else {
        file.sync_data()?;
    }
    drop(file);
    fs::rename(&temp, path)?;
    if sync_dir {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn floor_full(path: &Path, bytes: &[u8]) -> Res {
    floor(path, bytes, true, false)
}

fn floor_fsync(path: &Path, bytes: &[u8]) -> Res {
    floor(path, bytes, true, true)
}

fn floor_fsync_no_dir_sync(path: &Path, bytes: &[u8]) -> Res {
    floor(path, bytes, false, true)
}

/// Extra syscalls a crate save makes beyond the floor, for [`floor_plus`].
const LSTAT: u8 = 1;
/// `fstat` of the new temp: did a sweep unlink it, and which owner and mode did it get.
const FSTAT: u8 = 2;
const FLOCK: u8 = 4;
const FCHMOD: u8 = 8;
/// Open the directory before the save and close it after (the crate's handle).
const DIR_HANDLE: u8 = 16;
/// `fsync` instead of `fdatasync` (the crate on a replace).
const FSYNC: u8 = 32;
/// No directory fsync (the floor of `Durability::Data`).
const NO_DIR_SYNC: u8 = 64;
/// Everything a crate save adds to the floor.
/// (A replace of one's own file whose mode the umask leaves alone: no chown, no chmod,
/// and so `fdatasync`, not `fsync`.)
const CRATE_EXTRAS: u8 = LSTAT | FLOCK | FSTAT | DIR_HANDLE;

/// The floor plus some of the syscalls a crate save adds to it (`EXTRA`, a set of the
/// flags above), each made as the crate makes it: on tmpfs, where no flush hides them,
/// this says what each one costs inside a save.
fn floor_plus<const EXTRA: u8>(path: &Path, bytes: &[u8]) -> Res {
    use rustix::fs::{AtFlags, Mode};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PID: OnceLock<u32> = OnceLock::new();
    let pid = *PID.get_or_init(std::process::id);
    let dir = path.parent().ok_or("no parent")?;
    let name = path.file_name().ok_or("no file name")?.to_string_lossy();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".{name}.{pid}-{n}.tmp"));
    let dir_handle = if EXTRA & DIR_HANDLE != 0 {
        Some(File::open(dir)?)
    } else {
        None
    };
    let mut mode = 0o644;
    if EXTRA & LSTAT != 0 {
        // Is the destination a symlink; its mode and owner.
        let st = rustix::fs::statat(rustix::fs::CWD, path, AtFlags::SYMLINK_NOFOLLOW)?;
        mode = st.st_mode & 0o7777;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    if EXTRA & FLOCK != 0 {
        file.try_lock().map_err(|e| e.to_string())?; // so that sweep skips it
    }
    if EXTRA & FSTAT != 0 {
        // Did a sweep unlink it first; which owner and mode did it get.
        std::hint::black_box(rustix::fs::fstat(&file)?);
    }
    if EXTRA & FCHMOD != 0 {
        rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))?;
    }
    file.write_all(bytes)?;
    if EXTRA & FSYNC != 0 {
        file.sync_all()?;
    } else {
        file.sync_data()?;
    }
    drop(file);
    fs::rename(&temp, path)?;
    if EXTRA & NO_DIR_SYNC == 0 {
        match &dir_handle {
            Some(d) => d.sync_all()?,
            None => File::open(dir)?.sync_all()?,
        }
    }
    drop(dir_handle);
    Ok(())
}

fn floor_no_dir_sync(path: &Path, bytes: &[u8]) -> Res {
    floor(path, bytes, false, false)
}

fn crate_full(path: &Path, bytes: &[u8]) -> Res {
    Ok(atomic_persist::write_atomic(path, bytes)?)
}

fn crate_data(path: &Path, bytes: &[u8]) -> Res {
    Ok(WriteOptions::new()
        .durability(Durability::Data)
        .write(path, bytes)?)
}

fn crate_no_preserve(path: &Path, bytes: &[u8]) -> Res {
    Ok(WriteOptions::new()
        .preserve_permissions(false)
        .write(path, bytes)?)
}

/// The default before the anonymous temp became the default on Linux.
fn crate_named(path: &Path, bytes: &[u8]) -> Res {
    Ok(WriteOptions::new()
        .anonymous_temp(false)
        .write(path, bytes)?)
}

fn peer_atomic_write_file(path: &Path, bytes: &[u8]) -> Res {
    let mut file = atomic_write_file::AtomicWriteFile::open(path)?;
    file.write_all(bytes)?;
    file.commit()?;
    Ok(())
}

fn peer_atomicwrites(path: &Path, bytes: &[u8]) -> Res {
    use atomicwrites::{AllowOverwrite, AtomicFile};
    AtomicFile::new(path, AllowOverwrite)
        .write(|f| f.write_all(bytes))
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn peer_tempfile(path: &Path, bytes: &[u8]) -> Res {
    let dir = path.parent().ok_or("no parent")?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path)?;
    Ok(())
}

// ---- measuring ---------------------------------------------------------------------------

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Sizes on disk, with their default number of rounds (a round saves once per
/// implementation). Tuned to finish in a few minutes on a 2-core VM with a virtual disk.
const DISK_SIZES: &[(usize, &str, &str, usize)] = &[
    (KIB, "1 KiB", "BENCH_ROUNDS_1K", 1000),
    (64 * KIB, "64 KiB", "BENCH_ROUNDS_64K", 500),
    (4 * MIB, "4 MiB", "BENCH_ROUNDS_4M", 80),
    (64 * MIB, "64 MiB", "BENCH_ROUNDS_64M", 12),
];
const TMPFS_ROUNDS: usize = 20_000;
const SYSCALL_ROUNDS: usize = 20_000;

/// Bytes that no filesystem can compress or deduplicate away.
fn payload(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn dest(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("impl{i}.dat"))
}

/// Saves `bytes` through every implementation `rounds` times, interleaved; returns the
/// durations per implementation, in round order (index `r` of each list is round `r`).
fn measure(
    impls: &[&Impl],
    dir: &Path,
    bytes: &[u8],
    rounds: usize,
) -> Result<Vec<Vec<Duration>>, Box<dyn Error>> {
    // Every destination exists before the first timed save: each save is a replace.
    for i in 0..impls.len() {
        fs::write(dest(dir, i), bytes)?;
    }
    let mut times = vec![Vec::with_capacity(rounds); impls.len()];
    // One untimed warm-up round, then `rounds` timed ones.
    for round in 0..=rounds {
        for k in 0..impls.len() {
            let i = (k + round) % impls.len();
            let path = dest(dir, i);
            let start = Instant::now();
            (impls[i].save)(&path, bytes).map_err(|e| format!("{}: {e}", impls[i].name))?;
            let elapsed = start.elapsed();
            if round > 0 {
                times[i].push(elapsed);
            }
        }
    }
    Ok(times)
}

fn sorted(times: &[Duration]) -> Vec<Duration> {
    let mut t = times.to_vec();
    t.sort_unstable();
    t
}

/// The `q`-quantile (0..=1) of sorted durations, nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn disk_table(label: &str, rounds: usize, impls: &[&Impl], times: &[Vec<Duration>]) {
    println!("\n#### {label}, {rounds} rounds\n");
    println!(
        "| implementation | median | p10 | p90 | median / floor | median / floor without dir fsync \
         | paired: median of per-round ratios to its floor [95% CI] |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let sorted: Vec<_> = times.iter().map(|t| sorted(t)).collect();
    let median = |i: usize| quantile(&sorted[i], 0.5).as_secs_f64();
    for (i, imp) in impls.iter().enumerate() {
        let t = &sorted[i];
        let own = floor_of(imp.flushes);
        let (full, nodir) = (median(0), median(1));
        let m = median(i);
        // Bold the ratio against the floor that flushes what this implementation flushes.
        let ratio = |floor: f64, bold: bool| {
            if bold {
                format!("**{:.3}×**", m / floor)
            } else {
                format!("{:.3}×", m / floor)
            }
        };
        let (p, lo, hi) = paired_ratio(&times[i], &times[own]);
        println!(
            "| {} | {} | {} | {} | {} | {} | {p:.3}× [{lo:.3}, {hi:.3}] |",
            imp.name,
            fmt_duration(quantile(t, 0.5)),
            fmt_duration(quantile(t, 0.1)),
            fmt_duration(quantile(t, 0.9)),
            ratio(full, own == 0),
            ratio(nodir, own == 1),
        );
    }
}

/// Pairs compared head to head: (this crate, a peer or variant), by name.
const HEAD_TO_HEAD: &[(&str, &str)] = &[
    (
        "atomic-persist `write_atomic` (Full)",
        "atomic-write-file 0.3",
    ),
    ("atomic-persist `write_atomic` (Full)", "atomicwrites 0.4"),
    (
        "atomic-persist `Durability::Data`",
        "tempfile 3 (`sync_all` + `persist`, no dir fsync)",
    ),
    (
        "atomic-persist `write_atomic` (Full)",
        "atomic-persist `anonymous_temp(false)` (named temp, Full)",
    ),
];

/// Per-round ratios (disk) or differences (tmpfs) of this crate to each peer.
fn head_to_head(impls: &[&Impl], times: &[Vec<Duration>], ratio: bool) {
    let index = |name: &str| impls.iter().position(|i| i.name == name);
    println!();
    println!("| head to head, per round | median [95% CI] |");
    println!("|---|---:|");
    for &(a, b) in HEAD_TO_HEAD {
        let (Some(i), Some(j)) = (index(a), index(b)) else {
            continue;
        };
        let cell = if ratio {
            let (m, lo, hi) = paired_ratio(&times[i], &times[j]);
            format!("{m:.3}× [{lo:.3}, {hi:.3}]")
        } else {
            let (m, lo, hi) = paired_difference(&times[i], &times[j]);
            format!("{m:+.2} µs [{lo:+.2}, {hi:+.2}]")
        };
        println!("| {a} vs {b} | {cell} |");
    }
}

fn tmpfs_table(rounds: usize, impls: &[&Impl], times: &[Vec<Duration>]) {
    println!("\n#### 1 KiB on tmpfs, {rounds} rounds\n");
    println!(
        "| implementation | median | p10 | p90 | median − floor | median − floor without dir fsync \
         | paired: median of per-round differences to its floor [95% CI] |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let sorted: Vec<_> = times.iter().map(|t| sorted(t)).collect();
    let median = |i: usize| us(quantile(&sorted[i], 0.5));
    for (i, imp) in impls.iter().enumerate() {
        let t = &sorted[i];
        let own = floor_of(imp.flushes);
        let m = median(i);
        let diff = |floor: f64, bold: bool| {
            if bold {
                format!("**{:+.2} µs**", m - floor)
            } else {
                format!("{:+.2} µs", m - floor)
            }
        };
        let (p, lo, hi) = paired_difference(&times[i], &times[own]);
        println!(
            "| {} | {:.2} µs | {:.2} µs | {:.2} µs | {} | {} | {p:+.2} µs [{lo:+.2}, {hi:+.2}] |",
            imp.name,
            m,
            us(quantile(t, 0.1)),
            us(quantile(t, 0.9)),
            diff(median(0), own == 0),
            diff(median(1), own == 1),
        );
    }
}

/// Times, on tmpfs, each syscall that a crate save makes beyond the floor's, one at a
/// time (interleaved as above), so the difference in the tmpfs table can be explained.
fn syscall_costs(dir: &Path, rounds: usize) -> Res {
    use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
    let d = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let path = dir.join("syscall.dat");
    fs::write(&path, b"x")?;
    let file = File::open(&path)?;
    let costs: &[(&str, &dyn Fn() -> Res)] = &[
        (
            "`fstatat(AT_SYMLINK_NOFOLLOW)` of the destination (lstat)",
            &|| {
                rustix::fs::statat(&d, "syscall.dat", AtFlags::SYMLINK_NOFOLLOW)?;
                Ok(())
            },
        ),
        ("`fstat`", &|| {
            std::hint::black_box(rustix::fs::fstat(&file)?);
            Ok(())
        }),
        ("`fchmod`", &|| {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(0o644))?;
            Ok(())
        }),
        ("`flock(LOCK_EX|LOCK_NB)` + unlock", &|| {
            rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive)?;
            rustix::fs::flock(&file, FlockOperation::Unlock)?;
            Ok(())
        }),
        ("`File::try_lock` + `unlock` (std)", &|| {
            file.try_lock().map_err(|e| e.to_string())?;
            file.unlock()?;
            Ok(())
        }),
        (
            "`fstatfs` (the btrfs probe of an `anonymous_temp` save)",
            &|| {
                std::hint::black_box(rustix::fs::fstatfs(&file)?);
                Ok(())
            },
        ),
        ("`getpid` (a bare syscall, for scale)", &|| {
            std::hint::black_box(rustix::process::getpid());
            Ok(())
        }),
    ];
    let mut times = vec![Vec::with_capacity(rounds); costs.len()];
    for round in 0..=rounds {
        for k in 0..costs.len() {
            let i = (k + round) % costs.len();
            let start = Instant::now();
            (costs[i].1)()?;
            let elapsed = start.elapsed();
            if round > 0 {
                times[i].push(elapsed);
            }
        }
    }
    println!("\n#### Single syscalls on tmpfs, {rounds} repetitions each\n");
    println!("| call | median | p10 | p90 |");
    println!("|---|---:|---:|---:|");
    for (i, (name, _)) in costs.iter().enumerate() {
        let t = &mut times[i];
        t.sort_unstable();
        let ns = |d: Duration| d.as_secs_f64() * 1e9;
        println!(
            "| {name} | {:.0} ns | {:.0} ns | {:.0} ns |",
            ns(quantile(t, 0.5)),
            ns(quantile(t, 0.1)),
            ns(quantile(t, 0.9)),
        );
    }
    fs::remove_file(&path)?;
    Ok(())
}

/// A fresh directory under `base` (removed at the end).
fn fresh_dir(base: &Path, tag: &str) -> Result<PathBuf, Box<dyn Error>> {
    let dir = base.join(format!("atomic-persist-bench-{tag}-{}", std::process::id()));
    match fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn filesystem(dir: &Path) -> String {
    let Ok(st) = rustix::fs::statfs(dir) else {
        return "unknown".into();
    };
    // `f_type` is i64 or i32 by architecture; the magics fit in 32 bits.
    match st.f_type as u32 {
        0xEF53 => "ext2/3/4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x2FC1_2FC1 => "zfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("magic {other:#x}"),
    }
}

/// Without `--bench`: every implementation saves once, and the bytes are checked.
fn smoke(base: &Path) -> Res {
    let dir = fresh_dir(base, "smoke")?;
    let bytes = payload(KIB);
    for (i, imp) in all_impls().into_iter().enumerate() {
        let path = dest(&dir, i);
        fs::write(&path, b"old")?;
        (imp.save)(&path, &bytes)?;
        assert_eq!(fs::read(&path)?, bytes, "{}", imp.name);
    }
    fs::remove_dir_all(&dir)?;
    println!(
        "save bench: {} implementations checked (run with `cargo bench` to measure)",
        all_impls().len()
    );
    Ok(())
}

/// `BENCH_ONLY`: 100 replace-saves of 1 KiB through one implementation, untimed.
fn only_one(base: &Path, i: usize) -> Res {
    let imp = *all_impls()
        .get(i)
        .ok_or("BENCH_ONLY: no such implementation")?;
    let dir = fresh_dir(base, "only")?;
    let (path, bytes) = (dest(&dir, i), payload(KIB));
    fs::write(&path, &bytes)?;
    for _ in 0..100 {
        (imp.save)(&path, &bytes)?;
    }
    fs::remove_dir_all(&dir)?;
    eprintln!("100 saves through {}", imp.name);
    Ok(())
}

fn main() -> Res {
    let disk_base = env::disk_base();
    if !env::timing() {
        return smoke(&disk_base);
    }
    if let Ok(only) = std::env::var("BENCH_ONLY") {
        return only_one(&disk_base, only.trim().parse()?);
    }

    let disk = fresh_dir(&disk_base, "disk")?;
    println!(
        "### Durable replace-saves ({}; disk directory {} on {})",
        if cfg!(debug_assertions) {
            "debug build"
        } else {
            "release build"
        },
        disk.display(),
        filesystem(&disk),
    );
    let disk_extras = std::env::var_os("BENCH_DISK_EXTRAS").is_some_and(|v| v == "1");
    for &(size, label, var, default) in DISK_SIZES {
        let rounds = env::usize_or(var, default);
        if rounds == 0 {
            continue;
        }
        let started = Instant::now();
        let impls: Vec<&Impl> = if disk_extras {
            all_impls()
        } else {
            IMPLS.iter().collect()
        };
        let times = measure(&impls, &disk, &payload(size), rounds)?;
        let label = format!("{label} on {}", filesystem(&disk));
        disk_table(&label, rounds, &impls, &times);
        head_to_head(&impls, &times, true);
        eprintln!("{label}: {:.1} s", started.elapsed().as_secs_f64());
    }
    fs::remove_dir_all(&disk)?;

    let tmpfs_base = env::tmpfs_base();
    if !tmpfs_base.is_dir() {
        println!(
            "\n(tmpfs: skipped, {} is not a directory)",
            tmpfs_base.display()
        );
        return Ok(());
    }
    let tmpfs = fresh_dir(&tmpfs_base, "tmpfs")?;
    let rounds = env::usize_or("BENCH_ROUNDS_TMPFS", TMPFS_ROUNDS);
    if rounds > 0 {
        let impls = all_impls();
        let times = measure(&impls, &tmpfs, &payload(KIB), rounds)?;
        tmpfs_table(rounds, &impls, &times);
        head_to_head(&impls, &times, false);
    }
    let rounds = env::usize_or("BENCH_ROUNDS_SYSCALL", SYSCALL_ROUNDS);
    if rounds > 0 {
        syscall_costs(&tmpfs, rounds)?;
    }
    fs::remove_dir_all(&tmpfs)?;
    Ok(())
}
