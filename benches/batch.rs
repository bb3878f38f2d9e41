//! Many files saved at once: `Batch` and a `Snapshot` commit against a loop of
//! `write_atomic`, a loop of atomic-write-file, and the std-only floors of each.
//!
//! Each round saves the same set of files (every file changed) once through every
//! implementation, in a rotating order, each into its own directory; the tables give
//! the median of the per-round ratios to the loop of `write_atomic` with a 95% interval,
//! and the device flushes of one batch as the disk's `/sys/block/*/stat` counts them.
//!
//! ```sh
//! cargo bench --bench batch                         # 100 × 4 KiB and 1,000 × 1 KiB
//! BATCH_ROUNDS=5 cargo bench --bench batch          # fewer rounds
//! ```
//!
//! Environment variables (all optional): `BATCH_ROUNDS` (rounds on disk, default 15),
//! `BATCH_ROUNDS_TMPFS` (default 100); `BENCH_DIR`, `BENCH_TMPFS_DIR` as for the other
//! benches. Without `--bench` (as `cargo test --benches` runs it) every implementation
//! saves once and is checked, then it exits.

use std::error::Error;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atomic_persist::{Batch, BatchSync};

#[path = "common/env.rs"]
mod env;
#[path = "common/stats.rs"]
mod stats;
use stats::{median_ci, paired_ratio};

type Res<T = ()> = Result<T, Box<dyn Error>>;

const IMPLEMENTATIONS: [&str; 10] = [
    "loop of `write_atomic`",
    "loop of atomic-write-file 0.3",
    "`Batch` (`BatchSync::Filesystem`: syncfs)",
    "`Batch` (`BatchSync::EachFile`)",
    "std floor: fdatasync each, rename each, fsync the directory",
    "std floor: syncfs, rename each, fsync the directory",
    "`Snapshot` commit (`keep(2)`)",
    "std floor: new directory, syncfs, swap a pointer symlink, fsync the directory, remove the one two back",
    "`Snapshot` commit (every generation kept)",
    "std floor: new directory, syncfs, swap a pointer symlink, fsync the directory",
];

/// Saves `files` files of `size` bytes (round `round`'s contents) into `dir` with
/// implementation `i`.
fn save(i: usize, dir: &Path, files: usize, size: usize, round: usize) -> Res {
    let bytes = |f: usize| vec![(f + round) as u8; size];
    let path = |f: usize| dir.join(format!("f{f}"));
    match i {
        0 => {
            for f in 0..files {
                atomic_persist::write_atomic(path(f), bytes(f))?;
            }
        }
        1 => {
            for f in 0..files {
                let mut file = atomic_write_file::AtomicWriteFile::open(path(f))?;
                file.write_all(&bytes(f))?;
                file.commit()?;
            }
        }
        2 | 3 => {
            let sync = [BatchSync::Filesystem, BatchSync::EachFile][i - 2];
            let mut batch = Batch::new().sync(sync);
            for f in 0..files {
                batch.write(path(f), bytes(f))?;
            }
            batch.commit()?;
        }
        4 | 5 => floor(dir, files, &bytes, i == 5)?,
        6 | 8 => {
            let builder = atomic_persist::Snapshot::builder(dir.join("ckpt"));
            let snap = match i {
                6 => builder.keep(2),
                _ => builder,
            }
            .open_or_create()?;
            let mut tx = snap.begin()?;
            for f in 0..files {
                tx.write(format!("f{f}"), bytes(f))?;
            }
            tx.commit()?;
        }
        _ => snapshot_floor(dir, files, &bytes, round, i == 7)?,
    }
    Ok(())
}

/// A snapshot with std alone: a new directory of files, one `syncfs`, a symlink to it
/// renamed over the pointer, one fsync of the directory; with `prune`, the generation
/// two back removed, as `keep(2)` does.
fn snapshot_floor(
    dir: &Path,
    files: usize,
    bytes: &dyn Fn(usize) -> Vec<u8>,
    round: usize,
    prune: bool,
) -> Res {
    let generation = dir.join(format!("set.{round}"));
    let _ = std::fs::remove_dir_all(&generation); // the warm-up's, when round 0 again
    std::fs::create_dir(&generation)?;
    let mut last = None;
    for f in 0..files {
        let mut file = File::create_new(generation.join(format!("f{f}")))?;
        file.write_all(&bytes(f))?;
        last = Some(file);
    }
    rustix::fs::syncfs(last.as_ref().expect("files"))?;
    let link = dir.join(".set.tmp");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(format!("set.{round}"), &link)?;
    std::fs::rename(&link, dir.join("set"))?;
    File::open(dir)?.sync_all()?;
    if prune && round >= 2 {
        let _ = std::fs::remove_dir_all(dir.join(format!("set.{}", round - 2)));
    }
    Ok(())
}

/// A batch with std alone: every temp written, its data made durable (one `syncfs`,
/// or an `fdatasync` each), every rename, one fsync of the directory.
fn floor(dir: &Path, files: usize, bytes: &dyn Fn(usize) -> Vec<u8>, syncfs: bool) -> Res {
    let temp = |f: usize| dir.join(format!(".f{f}.tmp"));
    let mut handles = Vec::with_capacity(files);
    for f in 0..files {
        let mut file = File::create_new(temp(f))?;
        file.write_all(&bytes(f))?;
        if !syncfs {
            file.sync_data()?;
        }
        handles.push(file);
    }
    if syncfs {
        rustix::fs::syncfs(&handles[0])?;
    }
    drop(handles);
    for f in 0..files {
        std::fs::rename(temp(f), dir.join(format!("f{f}")))?;
    }
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The flush requests the block device under `dir` has completed (field 16 of
/// `/sys/dev/block/MAJ:MIN/stat`), when the kernel says.
fn device_flushes(dir: &Path) -> Option<u64> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    stat.split_whitespace().nth(15)?.parse().ok()
}

fn table(label: &str, base: &Path, files: usize, size: usize, rounds: usize) -> Res {
    if rounds == 0 {
        return Ok(());
    }
    let dirs: Vec<PathBuf> = (0..IMPLEMENTATIONS.len())
        .map(|i| fresh_dir(base, &format!("{files}x{size}-{i}")))
        .collect::<Res<_>>()?;
    let n = IMPLEMENTATIONS.len();
    let mut times = vec![Vec::with_capacity(rounds); n];
    let mut flushes: Vec<Vec<u64>> = vec![Vec::new(); n];
    for round in 0..=rounds {
        for k in 0..n {
            let i = (k + round) % n;
            let before = device_flushes(&dirs[i]);
            let start = Instant::now();
            save(i, &dirs[i], files, size, round)?;
            let took = start.elapsed();
            if round > 0 {
                times[i].push(took);
                if let (Some(a), Some(b)) = (before, device_flushes(&dirs[i])) {
                    flushes[i].push(b - a);
                }
            }
        }
    }
    println!("\n#### {files} × {size} B on {label}, {rounds} rounds\n");
    println!(
        "| implementation | median | paired vs loop of `write_atomic` [95% CI] | device flushes per batch (median) |"
    );
    println!("|---|---:|---:|---:|");
    for (i, name) in IMPLEMENTATIONS.iter().enumerate() {
        let (m, lo, hi) = paired_ratio(&times[i], &times[0]);
        let f = match flushes[i].is_empty() {
            true => "–".to_owned(),
            false => {
                let (m, _, _) = median_ci(flushes[i].iter().map(|&x| x as f64).collect());
                format!("{m:.0}")
            }
        };
        println!(
            "| {name} | {:.2} ms | {m:.3}× [{lo:.3}, {hi:.3}] | {f} |",
            ms(&times[i])
        );
    }
    // Each against its own floor.
    for (i, floor) in [(2, 5), (3, 4), (6, 7), (8, 9)] {
        let (m, lo, hi) = paired_ratio(&times[i], &times[floor]);
        println!(
            "\n{} / {}: {m:.3}× [{lo:.3}, {hi:.3}]",
            IMPLEMENTATIONS[i], IMPLEMENTATIONS[floor]
        );
    }
    for dir in dirs {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

fn ms(v: &[Duration]) -> f64 {
    let (m, _, _) = median_ci(v.iter().map(Duration::as_secs_f64).collect());
    m * 1e3
}

fn fresh_dir(base: &Path, tag: &str) -> Res<PathBuf> {
    let dir = base.join(format!("atomic-persist-batch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Without `--bench`: every implementation once, and the files hold the bytes.
fn smoke(base: &Path) -> Res {
    for i in 0..IMPLEMENTATIONS.len() {
        let dir = fresh_dir(base, &format!("smoke-{i}"))?;
        save(i, &dir, 5, 100, 7)?;
        let set = match i {
            6 | 8 => atomic_persist::Snapshot::builder(dir.join("ckpt"))
                .open_or_create()?
                .current()?
                .path()
                .to_path_buf(),
            7 | 9 => dir.join("set"),
            _ => dir.clone(),
        };
        for f in 0..5 {
            assert_eq!(
                std::fs::read(set.join(format!("f{f}")))?,
                vec![(f + 7) as u8; 100]
            );
        }
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

fn main() -> Res {
    let disk = env::disk_base();
    if !env::timing() {
        return smoke(&disk);
    }
    let rounds = env::usize_or("BATCH_ROUNDS", 15);
    let tmpfs_rounds = env::usize_or("BATCH_ROUNDS_TMPFS", 100);
    println!("### Many files at once (release build)");
    for (label, base, rounds) in [
        ("disk", &disk, rounds),
        ("tmpfs", &env::tmpfs_base(), tmpfs_rounds),
    ] {
        if !base.is_dir() {
            println!("\n(no {label} directory at {}: skipped)", base.display());
            continue;
        }
        table(label, base, 100, 4096, rounds)?;
        table(label, base, 1000, 1024, rounds)?;
    }
    Ok(())
}
