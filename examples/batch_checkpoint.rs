//! A job that keeps its state in several shard files and checkpoints all of them after
//! each step with one `Batch`: every file atomic, two device flushes per checkpoint on
//! Linux however many shards there are. Kill it (Ctrl-C, `kill -9`, `--crash-after N`)
//! and run it again: it resumes.
//!
//! ```sh
//! cargo run --example batch_checkpoint                        # 50 steps over 16 shards
//! cargo run --example batch_checkpoint -- --crash-after 30    # dies in the middle
//! cargo run --example batch_checkpoint                        # ... and resumes
//! ```
//!
//! Options: `--steps N` (default 50), `--shards K` (16), `--delay-ms D` (20),
//! `--crash-after N`, `--dir PATH` (default `batch-checkpoint` in the current
//! directory), `--fresh`.
//!
//! Each shard file says which step it holds. A kill leaves every file whole, but a kill
//! during a checkpoint's renames can leave some shards at the new step and the others at
//! the one before: a batch makes each file atomic, not the set. So the job resumes from
//! the oldest shard's step and redoes that step (its work is deterministic). A set of
//! files that must change all at once is what a snapshot is for.

use std::path::{Path, PathBuf};
use std::time::Duration;

use atomic_persist::Batch;
use serde::{Deserialize, Serialize};

/// One shard of the job's state.
#[derive(Serialize, Deserialize, Debug)]
struct Shard {
    /// The last step applied to it.
    step: u64,
    /// Its running result: the sum of `step * (id + 1)` over the steps done.
    total: u64,
}

struct Options {
    steps: u64,
    shards: u64,
    delay: Duration,
    crash_after: Option<u64>,
    dir: PathBuf,
    fresh: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        steps: 50,
        shards: 16,
        delay: Duration::from_millis(20),
        crash_after: None,
        dir: PathBuf::from("batch-checkpoint"),
        fresh: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        let mut num = || -> Result<u64, String> {
            let v = value()?;
            v.parse().map_err(|_| format!("`{v}` is not a number"))
        };
        match arg.as_str() {
            "--steps" => o.steps = num()?,
            "--shards" => o.shards = num()?.max(1),
            "--delay-ms" => o.delay = Duration::from_millis(num()?),
            "--crash-after" => o.crash_after = Some(num()?),
            "--dir" => o.dir = PathBuf::from(value()?),
            "--fresh" => o.fresh = true,
            "-h" | "--help" => {
                println!(
                    "usage: batch_checkpoint [--steps N] [--shards K] [--delay-ms D] \
                     [--crash-after N] [--dir PATH] [--fresh]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    Ok(o)
}

fn shard_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("shard-{id:03}.json"))
}

/// The shards as the last checkpoint left them (a missing one starts at step 0).
fn load(dir: &Path, shards: u64) -> Result<Vec<Shard>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for id in 0..shards {
        out.push(match std::fs::read(shard_path(dir, id)) {
            Ok(bytes) => serde_json::from_slice(&bytes)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Shard { step: 0, total: 0 },
            Err(e) => return Err(e.into()),
        });
    }
    Ok(out)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let opts = options()?;
    if opts.fresh {
        let _ = std::fs::remove_dir_all(&opts.dir);
    }
    std::fs::create_dir_all(&opts.dir)?;
    let mut shards = load(&opts.dir, opts.shards)?;
    let done = shards.iter().map(|s| s.step).min().unwrap_or(0);
    let ahead = shards.iter().filter(|s| s.step > done).count();
    match (done, ahead) {
        (0, 0) => println!("Starting a new job of {} steps.", opts.steps),
        (_, 0) => println!("Resuming after step {done}."),
        _ => println!("Resuming after step {done} ({ahead} shards were a step ahead)."),
    }
    for step in done + 1..=opts.steps {
        for (id, shard) in shards.iter_mut().enumerate() {
            if shard.step < step {
                shard.total += step * (id as u64 + 1);
                shard.step = step;
            }
        }
        std::thread::sleep(opts.delay); // the step's real work
        if opts.crash_after == Some(step) {
            println!("Crashing after step {step}, before its checkpoint.");
            std::process::exit(3);
        }
        let mut batch = Batch::new();
        for (id, shard) in shards.iter().enumerate() {
            batch.write(shard_path(&opts.dir, id as u64), serde_json::to_vec(shard)?)?;
        }
        batch.commit()?;
        if step % 10 == 0 || step == opts.steps {
            println!("Checkpointed step {step} ({} files).", shards.len());
        }
    }
    // Every shard's total is the sum over all steps of step * (id + 1).
    let per_unit = opts.steps * (opts.steps + 1) / 2;
    let right = (shards.iter().enumerate()).all(|(id, s)| s.total == per_unit * (id as u64 + 1));
    println!(
        "Done: {} shards, totals {}.",
        shards.len(),
        if right { "right" } else { "WRONG" }
    );
    Ok(())
}
