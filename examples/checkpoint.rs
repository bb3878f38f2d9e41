//! A job that processes items one by one and checkpoints its progress with the envelope
//! every few items. Kill it (Ctrl-C, `kill -9`, or `--crash-after N`) and run it again:
//! it resumes from the last checkpoint and tells you which run wrote it and when.
//!
//! ```sh
//! cargo run --example checkpoint                         # 200 items, a checkpoint every 20
//! cargo run --example checkpoint -- --crash-after 130    # dies mid-job, without saving
//! cargo run --example checkpoint                         # ... and resumes from item 120
//! cargo run --example checkpoint -- --items 100000 --every 1000 --delay-ms 1
//! ```
//!
//! Options (or environment variables): `--items N` (`CHECKPOINT_ITEMS`), `--every K`
//! (`CHECKPOINT_EVERY`), `--delay-ms D` (`CHECKPOINT_DELAY_MS`), `--crash-after N`,
//! `--state PATH` (`CHECKPOINT_STATE`, default `checkpoint.json` in the current
//! directory), `--fresh`.
//!
//! A kill leaves no temporary file on Linux (the save writes into an anonymous
//! `O_TMPFILE`); where one is left (another OS, or a kill in the instant before the
//! rename), the next `open` removes it, as `atomic_persist::sweep` does for a directory.
//! The generation counts commits of the file, across runs: a resumed job goes on from
//! the generation of its checkpoint, and the `update` that counts the new run is one
//! more.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use atomic_persist::{JsonPretty, Persisted};
use serde::{Deserialize, Serialize};

/// What the job has done so far: everything needed to continue.
#[derive(Serialize, Deserialize, Default, Debug)]
struct Progress {
    /// Items in this job.
    total: u64,
    /// The next item to process.
    next: u64,
    /// The job's result so far: the sum of the squares of the processed items.
    sum_of_squares: u64,
    /// How many runs (processes) worked on this job.
    runs: u32,
}

struct Options {
    items: u64,
    every: u64,
    delay: Duration,
    crash_after: Option<u64>,
    state: PathBuf,
    fresh: bool,
}

fn options() -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok();
    let mut items = env("CHECKPOINT_ITEMS");
    let mut every = env("CHECKPOINT_EVERY");
    let mut delay = env("CHECKPOINT_DELAY_MS");
    let mut state = env("CHECKPOINT_STATE");
    let mut crash_after = None;
    let mut fresh = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--items" => items = Some(value()?),
            "--every" => every = Some(value()?),
            "--delay-ms" => delay = Some(value()?),
            "--crash-after" => crash_after = Some(value()?),
            "--state" => state = Some(value()?),
            "--fresh" => fresh = true,
            "-h" | "--help" => {
                println!(
                    "usage: checkpoint [--items N] [--every K] [--delay-ms D] \
                     [--crash-after N] [--state PATH] [--fresh]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (try --help)")),
        }
    }
    let num = |v: Option<String>, default: u64, name: &str| -> Result<u64, String> {
        v.map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| format!("{name}: `{v}` is not a number"))
        })
    };
    Ok(Options {
        items: num(items, 200, "--items")?,
        every: num(every, 20, "--every")?.max(1),
        delay: Duration::from_millis(num(delay, 10, "--delay-ms")?),
        crash_after: crash_after
            .map(|v| num(Some(v), 0, "--crash-after"))
            .transpose()?,
        state: state
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("checkpoint.json")),
        fresh,
    })
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
        let _ = std::fs::remove_file(&opts.state);
    }
    println!("This run's id: {}", atomic_persist::run_id());

    let mut job = Persisted::<Progress>::builder(&opts.state)
        .format(JsonPretty)
        .envelope(true)
        .open_or_default()?;

    match job.meta() {
        None => println!(
            "No checkpoint at {}: starting a new job.",
            opts.state.display()
        ),
        Some(meta) if job.next >= job.total => {
            println!(
                "The last job finished (checkpoint generation {}, written {} by run {}).\n\
                 Starting a new job.",
                meta.generation, meta.written_at, meta.run_id
            );
        }
        Some(meta) => println!(
            "Resuming from the last checkpoint: {} of {} items done.\n  \
             checkpoint generation {}, written {} by run {}",
            job.next, job.total, meta.generation, meta.written_at, meta.run_id
        ),
    }
    if job.meta().is_none() || job.next >= job.total {
        job.set(Progress {
            total: opts.items,
            runs: 1,
            ..Progress::default()
        })?;
    } else {
        job.update(|p| p.runs += 1)?;
    }

    let started = Instant::now();
    let total = job.total;
    while job.next < total {
        let item = job.next;
        std::thread::sleep(opts.delay); // the "work"
        let p = job.get_mut();
        p.sum_of_squares = p.sum_of_squares.wrapping_add(item * item);
        p.next += 1;

        if opts.crash_after == Some(job.next) {
            println!(
                "Simulated crash after item {} (progress since the last checkpoint is lost).",
                job.next
            );
            println!("Run the same command without --crash-after to resume.");
            std::process::abort();
        }
        if job.next % opts.every == 0 || job.next == total {
            job.commit()?; // atomic: the file is the old checkpoint or the new one
            println!(
                "  checkpoint: {:>6} / {} items   (generation {})",
                job.next,
                total,
                job.meta().map_or(0, |m| m.generation)
            );
        }
    }

    let expected = (0..total).fold(0u64, |s, i| s.wrapping_add(i * i));
    println!(
        "Done: {} items in {} run(s), sum of squares = {} ({}); this run took {:.1?}.",
        total,
        job.runs,
        job.sum_of_squares,
        if job.sum_of_squares == expected {
            "correct: no item lost or done twice"
        } else {
            "WRONG"
        },
        started.elapsed()
    );
    println!("Checkpoint file: {}", opts.state.display());
    println!("Try: cargo run --example checkpoint -- --crash-after 130   (then run it again)");
    Ok(())
}
