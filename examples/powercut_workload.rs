//! The workload of the power-cut lab (`tests/powercut/`): it runs as the only program of a
//! small Linux guest under qemu, which is then killed at a random moment.
//!
//! ```text
//! powercut_workload run FILE full|data|none       # rewrite FILE forever, "ACK <gen>" after each commit
//! powercut_workload run FILE nofilesync           # the flush lab's control: a hand-made save
//!                                                 # that skips the file's fsync (never the crate)
//! powercut_workload batch DIR full|data|none      # b1.dat..b4.dat in DIR, one Batch per generation
//! powercut_workload snapshot DIR full|data|none   # s1.dat..s4.dat in the Snapshot DIR/ckpt, keep(2)
//! powercut_workload persisted DIR full|data|none  # DIR/state.json, a Persisted with the envelope
//! powercut_workload history DIR full|data|none    # DIR/state.json, a History keeping 3 versions
//! powercut_workload sweep DIR                     # after the cut: remove temp debris, print the count
//! powercut_workload view DIR                      # after the cut: read DIR/ckpt's current set
//! powercut_workload view-persisted DIR            # after the cut: open DIR/state.json
//! powercut_workload view-history DIR              # after the cut: open DIR/state.json's history
//! powercut_workload expect GEN [INDEX]            # print the file a generation must have (for tests)
//! ```
//!
//! Each file checks itself, so that the checker on the host needs nothing from this crate:
//!
//! ```text
//! apwl1 gen=<n> len=<L> sum=<16 hex digits>\n<L payload bytes>
//! ```
//!
//! The flush lab (`tests/flushlab/`) sets two variables: `APWL_COUNT=K` stops after K
//! commits (exit 0), and `APWL_MARK=DEV` sends `dmsetup message DEV 0 mark ack-<n>` after
//! each commit returned, before its `ACK` line, so that the write log records the moment.
//!
//! The payload length and bytes are a pure function of the generation and the file's index
//! (`payload(n ^ index << 48)`; the single file of `run` has index 0, `b<i>.dat` and
//! `s<i>.dat` index `i`), and `sum` is FNV-1a 64 of the payload. The checker
//! (`tests/powercut/check.py`) recomputes both, so a file that is short, mixes blocks of
//! two generations, names the wrong generation or holds another file's bytes is caught
//! even where the sum would happen to hold.
//!
//! Switching to `Persisted<T>` with the envelope is meant to be a small change: make the
//! value `struct Sample { generation: u64, payload: Vec<u8> }`, replace `encode` and the
//! `write` call with `p.set(sample)?` (the envelope adds its own generation and checksum),
//! and let the checker call `atomic-persist verify` / `inspect --json` on the exported
//! file in place of `parse` in `check.py`; the ACK protocol and the lab stay as they are.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use atomic_persist::{Batch, Durability, History, Persisted, Snapshot, WriteOptions};

/// SplitMix64: a tiny, well-known generator that `check.py` reimplements bit for bit.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The payload of generation `n`: its length varies from a few bytes (inside one block)
/// to 256 KiB (many blocks, more than one extent), so both small and large files are cut.
fn payload(n: u64) -> Vec<u8> {
    let mut state = n;
    let pick = splitmix(&mut state);
    let len = match pick % 4 {
        0 => (pick >> 2) & 0xff,         // under one sector
        1 => (pick >> 2) % 4096,         // under one page
        2 => (pick >> 2) % (64 * 1024),  // a few pages
        _ => (pick >> 2) % (256 * 1024), // many pages
    } as usize
        + 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&splitmix(&mut state).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The whole file `index` of generation `n`.
fn encode(n: u64, index: u64) -> Vec<u8> {
    let body = payload(n ^ index << 48);
    let mut out = format!(
        "apwl1 gen={n} len={} sum={:016x}\n",
        body.len(),
        fnv1a64(&body)
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The files of one batch or snapshot generation: `{prefix}1.dat` to `{prefix}4.dat`.
const FILES: u64 = 4;

fn file_name(prefix: &str, index: u64) -> String {
    format!("{prefix}{index}.dat")
}

/// Why a commit of the workload failed.
type Failure = Box<dyn std::error::Error>;

/// Records in the flush lab's write log that commit `n` returned (`APWL_MARK`).
fn mark(n: u64) -> Result<(), Failure> {
    let Some(dev) = std::env::var_os("APWL_MARK") else {
        return Ok(());
    };
    let status = std::process::Command::new("dmsetup")
        .arg("message")
        .arg(dev)
        .args(["0", "mark", &format!("ack-{n}")])
        .status()?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("dmsetup message failed: {status}").into()),
    }
}

/// Commits generation 1, 2, 3, ... with `commit` (forever, or `APWL_COUNT` times),
/// printing `ACK <n>` after each.
fn commit_forever(what: &str, mut commit: impl FnMut(u64) -> Result<(), Failure>) -> ExitCode {
    println!("START {what}");
    let count = std::env::var("APWL_COUNT")
        .ok()
        .and_then(|c| c.parse().ok());
    let stdout = std::io::stdout();
    for n in 1u64..=count.unwrap_or(u64::MAX) {
        if let Err(e) = commit(n).and_then(|()| mark(n)) {
            println!("ERROR gen={n} {e}");
            return ExitCode::FAILURE;
        }
        // Only now is the commit acknowledged: the host counts a generation as promised
        // once this line reached the serial console.
        let mut out = stdout.lock();
        let _ = writeln!(out, "ACK {n}");
        let _ = out.flush();
    }
    ExitCode::SUCCESS
}

/// The flush lab's control: write a temp file, rename it over `path`, fsync the
/// directory, and never fsync the file (the classic bug the lab must catch).
fn run_without_file_sync(path: &Path) -> ExitCode {
    let what = format!("control=nofilesync path={}", path.display());
    let dir = path.parent().unwrap_or(Path::new("."));
    // Named as the crate names its temps, so that `sweep` and the checker know it.
    let temp = dir.join(".state.dat.nofilesynczz.tmp");
    commit_forever(&what, |n| {
        std::fs::write(&temp, encode(n, 0))?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    })
}

fn run(path: &Path, durability: Durability) -> ExitCode {
    let options = WriteOptions::new().durability(durability);
    let what = format!("durability={durability:?} path={}", path.display());
    commit_forever(&what, |n| Ok(options.write(path, encode(n, 0))?))
}

/// Each generation replaces the four files of `dir` in one `Batch`.
fn batch(dir: &Path, durability: Durability) -> ExitCode {
    let options = WriteOptions::new().durability(durability);
    let what = format!("durability={durability:?} batch={}", dir.display());
    commit_forever(&what, |n| {
        let mut batch = Batch::with_options(options.clone());
        for i in 1..=FILES {
            batch.write(dir.join(file_name("b", i)), encode(n, i))?;
        }
        Ok(batch.commit()?)
    })
}

/// Each generation is one snapshot commit of four files; the snapshot's generation
/// number is the workload's (both start at 1 on a fresh filesystem).
fn snapshot(dir: &Path, durability: Durability) -> ExitCode {
    let what = format!("durability={durability:?} snapshot={}", dir.display());
    let snap = match Snapshot::builder(dir.join("ckpt"))
        .keep(2)
        .durability(durability)
        .open_or_create()
    {
        Ok(snap) => snap,
        Err(e) => {
            println!("ERROR open {e}");
            return ExitCode::FAILURE;
        }
    };
    commit_forever(&what, |n| {
        let mut tx = snap.begin()?;
        for i in 1..=FILES {
            tx.write(file_name("s", i), encode(n, i))?;
        }
        match tx.commit()? {
            g if g == n => Ok(()),
            g => Err(format!("the snapshot committed generation {g}").into()),
        }
    })
}

/// A typed value of generation `n`: the generation and, as hex, the bytes `encode`
/// gives file 0 (a tuple, so that the workload needs no derive).
type Sample = (u64, String);

fn sample(n: u64) -> Sample {
    let hex = encode(n, 0).iter().map(|b| format!("{b:02x}")).collect();
    (n, hex)
}

/// Each generation is one enveloped `Persisted` commit of `dir/state.json`.
fn persisted(dir: &Path, durability: Durability) -> ExitCode {
    let what = format!("durability={durability:?} persisted={}", dir.display());
    let opened = Persisted::builder(dir.join("state.json"))
        .envelope(true)
        .durability(durability)
        .open_or_else(|| sample(0));
    let mut p = match opened {
        Ok(p) => p,
        Err(e) => {
            println!("ERROR open {e}");
            return ExitCode::FAILURE;
        }
    };
    commit_forever(&what, |n| Ok(p.set(sample(n))?))
}

/// Each generation is one commit of a `History` that keeps three versions.
fn history(dir: &Path, durability: Durability) -> ExitCode {
    let what = format!("durability={durability:?} history={}", dir.display());
    let opened = History::builder(dir.join("state.json"))
        .keep(3)
        .durability(durability)
        .open_or_else(|| sample(0));
    let mut h = match opened {
        Ok(h) => h,
        Err(e) => {
            println!("ERROR open {e}");
            return ExitCode::FAILURE;
        }
    };
    commit_forever(&what, |n| Ok(h.set(sample(n))?))
}

/// After the cut: the typed value as the crate's reader opens it, checked against the
/// encoder: `VIEW gen=<g> ok`, `VIEW gen=<g> bad`, `VIEW none` or `VIEW error=..`.
fn view_typed(opened: atomic_persist::Result<Sample>) -> ExitCode {
    match opened {
        Ok((g, hex)) if sample(g).1 == hex => println!("VIEW gen={g} ok"),
        Ok((g, _)) => println!("VIEW gen={g} bad"),
        Err(atomic_persist::Error::NotFound { .. }) => println!("VIEW none"),
        Err(e) => println!("VIEW error={e}"),
    }
    ExitCode::SUCCESS
}

/// After the cut: the current set as the crate's reader sees it, checked against the
/// encoder: `VIEW gen=<g> ok`, `VIEW gen=<g> bad=<file>`, `VIEW none` or `VIEW error=..`.
fn view(dir: &Path) -> ExitCode {
    let snap = Snapshot::builder(dir.join("ckpt")).open_or_create();
    let view = match snap.and_then(|s| s.current()) {
        Ok(view) => view,
        Err(atomic_persist::Error::NotFound { .. }) => {
            println!("VIEW none");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            println!("VIEW error={e}");
            return ExitCode::FAILURE;
        }
    };
    let g = view.generation();
    let bad: Vec<String> = (1..=FILES)
        .map(|i| file_name("s", i))
        .zip(1..)
        .filter(|(name, i)| view.read(name).ok() != Some(encode(g, *i)))
        .map(|(name, _)| name)
        .collect();
    match bad.is_empty() {
        true => println!("VIEW gen={g} ok"),
        false => println!("VIEW gen={g} bad={}", bad.join(",")),
    }
    ExitCode::SUCCESS
}

fn durability(name: &str) -> Option<Durability> {
    match name {
        "full" => Some(Durability::Full),
        "data" => Some(Durability::Data),
        "none" => Some(Durability::None),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["run", path, "nofilesync"] => run_without_file_sync(Path::new(path)),
        [
            kind @ ("run" | "batch" | "snapshot" | "persisted" | "history"),
            path,
            level,
        ] => {
            let Some(d) = durability(level) else {
                eprintln!("unknown durability {level:?}: full, data or none");
                return ExitCode::from(2);
            };
            let path = Path::new(path);
            match *kind {
                "run" => run(path, d),
                "batch" => batch(path, d),
                "persisted" => persisted(path, d),
                "history" => history(path, d),
                _ => snapshot(path, d),
            }
        }
        ["sweep", dir] => match atomic_persist::sweep(dir) {
            Ok(n) => {
                println!("SWEEP removed={}", n.count());
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("SWEEP error={e}");
                ExitCode::FAILURE
            }
        },
        ["view", dir] => view(Path::new(dir)),
        ["view-persisted", dir] => view_typed(
            Persisted::<Sample>::builder(Path::new(dir).join("state.json"))
                .envelope(true)
                .open()
                .map(Persisted::into_inner),
        ),
        ["view-history", dir] => view_typed(
            History::<Sample>::open(Path::new(dir).join("state.json")).map(|h| h.get().clone()),
        ),
        ["expect", n, index @ ..] if index.len() <= 1 => {
            let parsed = (
                n.parse::<u64>(),
                index.first().map_or(Ok(0), |i| i.parse::<u64>()),
            );
            let (Ok(n), Ok(index)) = parsed else {
                eprintln!("not a generation and index: {n} {index:?}");
                return ExitCode::from(2);
            };
            let _ = std::io::stdout().write_all(&encode(n, index));
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "usage: powercut_workload run FILE|batch DIR|snapshot DIR full|data|none \
                 | sweep DIR | view DIR | expect GEN [INDEX]"
            );
            ExitCode::from(2)
        }
    }
}
