//! Typed commits and loads: `Persisted` against the same value streamed by
//! `serde_json::to_writer` into atomic-write-file (the streaming peer, `Full`-equivalent:
//! fsync of the file, rename, fsync of the directory), and an enveloped load against
//! `serde_json::from_slice(&fs::read(..))`.
//!
//! Interleaved: each round runs every implementation once, in a rotating order, and the
//! tables give the median of the per-round ratios (or differences) with a 95% interval.
//! Every commit writes: the value changes by one element each round.
//!
//! ```sh
//! cargo bench --bench typed                     # 1 KiB, 16 MiB, 256 MiB; tmpfs and disk
//! TYPED_ROUNDS_256M=0 cargo bench --bench typed # without the 256 MiB rows
//! ```
//!
//! Environment variables (all optional): `TYPED_ROUNDS_1K` (default 2000),
//! `TYPED_ROUNDS_16M` (15), `TYPED_ROUNDS_256M` (3), `TYPED_ROUNDS_AUTOSAVE` (2000);
//! `BENCH_DIR` (the disk directory; default under `CARGO_TARGET_TMPDIR`) and
//! `BENCH_TMPFS_DIR` (default `/dev/shm`). A size with 0 rounds is skipped. Without
//! `--bench` (as `cargo test --benches` runs it) every implementation runs once and is
//! checked, then it exits.

use std::error::Error;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use atomic_persist::{Json, Persisted};

#[path = "common/env.rs"]
mod env;
#[path = "common/stats.rs"]
mod stats;
use stats::{median_ci, paired_difference, paired_ratio};

type Res<T = ()> = Result<T, Box<dyn Error>>;

/// A value of `bytes` bytes in memory: `u64`s (about 0.9 bytes of JSON per byte).
fn value(bytes: usize) -> Vec<u64> {
    (0..(bytes / 8).max(1) as u64)
        .map(|i| i.wrapping_mul(2_654_435_761) % 1_000_000)
        .collect()
}

/// The peer: the value streamed by serde_json into atomic-write-file.
fn peer_commit(path: &Path, v: &[u64]) -> Res {
    let mut file = atomic_write_file::AtomicWriteFile::open(path)?;
    let mut out = BufWriter::with_capacity(64 * 1024, &mut file);
    serde_json::to_writer(&mut out, v)?;
    out.flush()?;
    drop(out);
    file.commit()?;
    Ok(())
}

/// One handle per implementation, each on its own file in `dir`.
struct Committers {
    enveloped: Persisted<Vec<u64>>,
    plain: Persisted<Vec<u64>>,
    peer: (PathBuf, Vec<u64>),
}

impl Committers {
    fn new(dir: &Path, bytes: usize) -> Res<Committers> {
        let open = |name: &str, envelope: bool| {
            Persisted::<Vec<u64>>::builder(dir.join(name))
                .format(Json)
                .envelope(envelope)
                .open_or_else(|| value(bytes))
        };
        Ok(Committers {
            enveloped: open("enveloped.json", true)?,
            plain: open("plain.json", false)?,
            peer: (dir.join("peer.json"), value(bytes)),
        })
    }

    /// Commits through implementation `i` after changing element `round`.
    fn commit(&mut self, i: usize, round: usize) -> Res {
        match i {
            0 => {
                let n = self.peer.1.len();
                self.peer.1[round % n] += 1;
                peer_commit(&self.peer.0, &self.peer.1)
            }
            1 => Ok(self.plain.update(|v| bump(v, round))?),
            _ => Ok(self.enveloped.update(|v| bump(v, round))?),
        }
    }
}

fn bump(v: &mut [u64], round: usize) {
    let n = v.len();
    v[round % n] += 1;
}

const COMMITTERS: [&str; 3] = [
    "serde_json::to_writer into atomic-write-file (peer)",
    "`Persisted` plain JSON",
    "`Persisted` enveloped JSON",
];

/// `rounds` interleaved rounds (after one untimed warm-up); times per implementation.
fn interleaved(
    n: usize,
    rounds: usize,
    mut run: impl FnMut(usize, usize) -> Res,
) -> Res<Vec<Vec<Duration>>> {
    let mut times = vec![Vec::with_capacity(rounds); n];
    for round in 0..=rounds {
        for k in 0..n {
            let i = (k + round) % n;
            let start = Instant::now();
            run(i, round)?;
            if round > 0 {
                times[i].push(start.elapsed());
            }
        }
    }
    Ok(times)
}

fn ms(v: &[Duration]) -> f64 {
    let (m, _, _) = median_ci(v.iter().map(Duration::as_secs_f64).collect());
    m * 1e3
}

fn commit_table(label: &str, dir: &Path, bytes: usize, rounds: usize) -> Res {
    if rounds == 0 {
        return Ok(());
    }
    let dir = &fresh_dir(dir, &format!("commit-{bytes}"))?;
    let mut c = Committers::new(dir, bytes)?;
    let times = interleaved(3, rounds, |i, round| c.commit(i, round))?;
    // Every round wrote (the warm-up too): a commit that found nothing to do would
    // not be measuring a commit.
    let written = c.enveloped.meta().map_or(0, |m| m.generation);
    assert_eq!(written, rounds as u64 + 1, "every commit wrote");
    println!("\n#### commit, {label}, {rounds} rounds\n");
    println!("| implementation | median | paired vs peer [95% CI] |");
    println!("|---|---:|---:|");
    for (i, name) in COMMITTERS.iter().enumerate() {
        let cell = match bytes <= 64 * 1024 {
            true => {
                let (m, lo, hi) = paired_difference(&times[i], &times[0]);
                format!("{m:+.2} µs [{lo:+.2}, {hi:+.2}]")
            }
            false => {
                let (m, lo, hi) = paired_ratio(&times[i], &times[0]);
                format!("{m:.3}× [{lo:.3}, {hi:.3}]")
            }
        };
        println!("| {name} | {:.3} ms | {cell} |", ms(&times[i]));
    }
    Ok(())
}

fn load_table(label: &str, dir: &Path, bytes: usize, rounds: usize) -> Res {
    if rounds == 0 {
        return Ok(());
    }
    let dir = &fresh_dir(dir, &format!("load-{bytes}"))?;
    let v = value(bytes);
    let enveloped = dir.join("load-enveloped.json");
    Persisted::<Vec<u64>>::builder(&enveloped)
        .envelope(true)
        .open_or_else(|| v.clone())?
        .commit()?;
    let plain = dir.join("load-plain.json");
    std::fs::write(&plain, serde_json::to_vec(&v)?)?;
    let times = interleaved(2, rounds, |i, _| {
        let got = match i {
            0 => serde_json::from_slice::<Vec<u64>>(&std::fs::read(&plain)?)?,
            _ => Persisted::<Vec<u64>>::builder(&enveloped)
                .envelope(true)
                .open()?
                .into_inner(),
        };
        assert_eq!(got.len(), v.len());
        Ok(())
    })?;
    let (m, lo, hi) = paired_ratio(&times[1], &times[0]);
    println!("\n#### load, {label}, {rounds} rounds\n");
    println!("| implementation | median | paired vs `from_slice(&fs::read(..))` [95% CI] |");
    println!("|---|---:|---:|");
    println!(
        "| `from_slice(&fs::read(..))` of the plain file | {:.3} ms | 1 |",
        ms(&times[0])
    );
    println!(
        "| `Persisted::open`, enveloped | {:.3} ms | {m:.3}× [{lo:.3}, {hi:.3}] |",
        ms(&times[1])
    );
    Ok(())
}

/// An autosave loop: ten `commit` calls of which the first follows a change; the nine
/// others find the value unchanged. Against one peer commit of the same change.
fn autosave_table(dir: &Path, rounds: usize) -> Res {
    if rounds == 0 {
        return Ok(());
    }
    let dir = &fresh_dir(dir, "autosave")?;
    let mut c = Committers::new(dir, 1024)?;
    let times = interleaved(2, rounds, |i, round| match i {
        0 => c.commit(0, round),
        _ => {
            bump(c.enveloped.get_mut(), round);
            for _ in 0..10 {
                c.enveloped.commit()?;
            }
            Ok(())
        }
    })?;
    let (m, lo, hi) = paired_difference(&times[1], &times[0]);
    println!("\n#### autosave loop, 1 KiB on tmpfs, {rounds} rounds\n");
    println!("| implementation | median | paired vs one peer commit [95% CI] |");
    println!("|---|---:|---:|");
    println!("| one peer commit | {:.1} µs | 0 |", ms(&times[0]) * 1e3);
    println!(
        "| 1 changed + 9 unchanged `commit`s, enveloped | {:.1} µs | {m:+.2} µs [{lo:+.2}, {hi:+.2}] |",
        ms(&times[1]) * 1e3
    );
    Ok(())
}

fn fresh_dir(base: &Path, tag: &str) -> Res<PathBuf> {
    let dir = base.join(format!("atomic-persist-typed-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Without `--bench`: every implementation once, and the files hold the values.
fn smoke(base: &Path) -> Res {
    let dir = fresh_dir(base, "smoke")?;
    let mut c = Committers::new(&dir, 1024)?;
    for i in 0..3 {
        c.commit(i, 0)?;
    }
    let peer: Vec<u64> = serde_json::from_slice(&std::fs::read(&c.peer.0)?)?;
    assert_eq!(peer, c.peer.1);
    let plain: Vec<u64> = serde_json::from_slice(&std::fs::read(dir.join("plain.json"))?)?;
    assert_eq!(&plain, c.plain.get());
    let back = Persisted::<Vec<u64>>::builder(dir.join("enveloped.json"))
        .envelope(true)
        .open()?;
    assert_eq!(back.get(), c.enveloped.get());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn main() -> Res {
    let disk_base = env::disk_base();
    if !env::timing() {
        return smoke(&disk_base);
    }
    let tmpfs_base = env::tmpfs_base();
    let (small, mid, large) = (
        env::usize_or("TYPED_ROUNDS_1K", 2000),
        env::usize_or("TYPED_ROUNDS_16M", 15),
        env::usize_or("TYPED_ROUNDS_256M", 3),
    );
    println!("### Typed commits and loads (release build)");
    for (label, base) in [("tmpfs", &tmpfs_base), ("disk", &disk_base)] {
        if !base.is_dir() {
            println!("\n(no {label} directory at {}: skipped)", base.display());
            continue;
        }
        let dir = fresh_dir(base, label)?;
        commit_table(&format!("1 KiB on {label}"), &dir, 1024, small)?;
        commit_table(&format!("16 MiB on {label}"), &dir, 16 << 20, mid)?;
        commit_table(&format!("256 MiB on {label}"), &dir, 256 << 20, large)?;
        load_table(&format!("16 MiB on {label}"), &dir, 16 << 20, mid)?;
        if label == "tmpfs" {
            autosave_table(&dir, env::usize_or("TYPED_ROUNDS_AUTOSAVE", 2000))?;
        }
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
