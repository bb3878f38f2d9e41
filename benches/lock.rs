//! What ordering writers costs: the writer lock's overhead on one durable commit, and
//! the throughput of `update_locked` when 1, 2, 4 and 8 processes share one file.
//!
//! Overhead: the variants of a commit of a ~1 KiB value run in interleaved rounds (every
//! round runs each variant once, in a rotating order), so a burst of load on a shared
//! machine hits them all alike; medians over rounds are reported. Throughput: each
//! process (this binary re-run with `--child`) does `update_locked` increments on one
//! counter for a fixed time, all released together.
//!
//! ```sh
//! cargo bench --bench lock
//! LOCK_BENCH_ROUNDS=301 LOCK_BENCH_SECS=3 cargo bench --bench lock
//! LOCK_BENCH_DIR=/mnt/fast cargo bench --bench lock    # default: the temp dir
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use atomic_persist::lock::Lock;
use atomic_persist::{Durability, Json, Persisted, PersistedBuilder};
use serde::{Deserialize, Serialize};

/// About 1 KiB of JSON.
#[derive(Serialize, Deserialize, Default, Clone)]
struct Value {
    counter: u64,
    text: String,
}

fn value() -> Value {
    Value {
        counter: 0,
        text: "x".repeat(1000),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    envelope: bool,
    lock: bool,
    update_locked: bool,
}

const VARIANTS: [Variant; 5] = [
    Variant {
        name: "plain `commit`, no lock (baseline)",
        envelope: false,
        lock: false,
        update_locked: false,
    },
    Variant {
        name: "plain `commit`, `lock(true)`",
        envelope: false,
        lock: true,
        update_locked: false,
    },
    Variant {
        name: "plain `update_locked`",
        envelope: false,
        lock: false,
        update_locked: true,
    },
    Variant {
        name: "enveloped `commit` (generation check, lock around check + rename)",
        envelope: true,
        lock: false,
        update_locked: false,
    },
    Variant {
        name: "enveloped `update_locked`",
        envelope: true,
        lock: false,
        update_locked: true,
    },
];

fn builder(path: &Path, envelope: bool, durability: Durability) -> PersistedBuilder<Value> {
    Persisted::<Value>::builder(path)
        .format(Json)
        .envelope(envelope)
        .durability(durability)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median microseconds per commit of each variant.
fn overhead(dir: &Path, rounds: usize, per_round: usize, durability: Durability) {
    let mut handles: Vec<Persisted<Value>> = VARIANTS
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let path = dir.join(format!("overhead-{i}.json"));
            let _ = std::fs::remove_file(&path);
            let mut p = builder(&path, v.envelope, durability)
                .lock(v.lock)
                .open_or_else(value)
                .unwrap();
            p.commit().unwrap();
            p
        })
        .collect();
    // The lock alone: open the lock file, flock, close.
    let lock_path = dir.join("lock-alone.json");
    let mut alone = Vec::new();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); VARIANTS.len()];
    for round in 0..rounds {
        let start = Instant::now();
        for _ in 0..per_round {
            drop(Lock::exclusive(&lock_path).unwrap());
        }
        alone.push(start.elapsed().as_secs_f64() * 1e6 / per_round as f64);
        for k in 0..VARIANTS.len() {
            let i = (round + k) % VARIANTS.len();
            let (p, v) = (&mut handles[i], VARIANTS[i]);
            let start = Instant::now();
            for _ in 0..per_round {
                if v.update_locked {
                    p.update_locked(|x| x.counter += 1).unwrap();
                } else {
                    p.update(|x| x.counter += 1).unwrap();
                }
            }
            samples[i].push(start.elapsed().as_secs_f64() * 1e6 / per_round as f64);
        }
    }
    // Paired: each round's time against the baseline's in the same round, so a slow
    // moment of the machine cancels out.
    let paired: Vec<f64> = (0..VARIANTS.len())
        .map(|i| {
            let mut r: Vec<f64> = (0..rounds).map(|k| samples[i][k] / samples[0][k]).collect();
            median(&mut r)
        })
        .collect();
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    println!(
        "| commit of a 1 KiB JSON value, `Durability::{durability:?}` | median µs/commit | vs baseline (medians) | vs baseline (median of paired ratios) |"
    );
    println!("|---|---|---|---|");
    let alone = median(&mut alone);
    println!(
        "| the lock alone (`Lock::exclusive` + drop) | {alone:.1} | {:.2}% of a baseline commit | |",
        alone / medians[0] * 100.0
    );
    for ((v, m), r) in VARIANTS.iter().zip(&medians).zip(&paired) {
        println!(
            "| {} | {m:.1} | {:+.1}% | {:+.1}% |",
            v.name,
            (m / medians[0] - 1.0) * 100.0,
            (r - 1.0) * 100.0
        );
    }
    println!();
}

/// The child: `update_locked` on the shared counter until the deadline; prints how many.
fn child(path: &Path, go: &Path, secs: f64, durability: Durability) {
    let mut p = builder(path, true, durability).open().unwrap();
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(1));
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while Instant::now() < deadline {
        p.update_locked(|x| x.counter += 1).unwrap();
        n += 1;
    }
    println!("{n}");
}

fn contended(dir: &Path, secs: f64) {
    let exe = std::env::current_exe().unwrap();
    println!(
        "| `update_locked` on one enveloped file | processes | updates/s (total) | per process |"
    );
    println!("|---|---|---|---|");
    for durability in [Durability::Full, Durability::None] {
        for procs in [1usize, 2, 4, 8] {
            let path = dir.join("contended.json");
            let go = dir.join("go");
            let _ = std::fs::remove_file(&go);
            let _ = std::fs::remove_file(&path);
            builder(&path, true, durability)
                .open_or_else(value)
                .unwrap()
                .commit()
                .unwrap();
            let d = format!("{durability:?}");
            let children: Vec<_> = (0..procs)
                .map(|_| {
                    Command::new(&exe)
                        .args(["--child", path.to_str().unwrap(), go.to_str().unwrap()])
                        .arg(secs.to_string())
                        .arg(&d)
                        .stdout(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            std::thread::sleep(Duration::from_millis(200)); // let them open the file
            std::fs::write(&go, b"").unwrap();
            let mut total = 0u64;
            for c in children {
                let out = c.wait_with_output().unwrap();
                assert!(out.status.success());
                total += String::from_utf8(out.stdout)
                    .unwrap()
                    .trim()
                    .parse::<u64>()
                    .unwrap();
            }
            let counter = builder(&path, true, durability).open().unwrap().counter;
            assert_eq!(counter, total, "every update counted");
            let rate = total as f64 / secs;
            println!(
                "| `Durability::{d}` | {procs} | {rate:.0} | {:.0} |",
                rate / procs as f64
            );
        }
    }
    println!();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let durability = match args[i + 4].as_str() {
            "Full" => Durability::Full,
            _ => Durability::None,
        };
        child(
            Path::new(&args[i + 1]),
            Path::new(&args[i + 2]),
            args[i + 3].parse().unwrap(),
            durability,
        );
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` asks; there is nothing to list
    }
    let base: PathBuf = std::env::var_os("LOCK_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base).unwrap();
    let rounds = env_or("LOCK_BENCH_ROUNDS", 151);
    let per_round = env_or("LOCK_BENCH_PER_ROUND", 1);
    let secs = env_or("LOCK_BENCH_SECS", 2.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{} rounds x {per_round} commits per variant; load average at start: {}",
        rounds,
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!();
    overhead(dir.path(), rounds, per_round, Durability::Full);
    overhead(dir.path(), rounds, per_round, Durability::None);
    contended(dir.path(), secs);
}
