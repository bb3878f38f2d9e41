//! Crash test of `History<T>`: a child committing versions in a loop is SIGKILLed at
//! random moments (0-3 ms after its first commit). After each kill:
//!
//! - `latest` resolves to a complete, intact version whose value is the one written for
//!   that generation, and whose generation is at least the last one whose commit had
//!   returned (the child prints `ack G` after each commit returns) and at most one more;
//! - the versions listed (from the manifest or rebuilt from the files) are exactly the
//!   version files' envelopes, include the current one, and respect retention;
//! - any temporary file or symlink left is removed by `sweep`.
//!
//! Kills run in parallel workers, each in its own directory, cycling through the three
//! durability levels. `ATOMIC_PERSIST_KILLS` sets the number of kills (default 1,000).
#![cfg(all(feature = "json", unix))]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::Duration;

use atomic_persist::Durability;
use atomic_persist::history::{History, ManifestState, RawHistory};
use common::{Rng, mix};
use serde::{Deserialize, Serialize};

const DEFAULT_KILLS: usize = 1_000;
const WORKERS: usize = 4;
const MAX_DELAY_US: u64 = 3_000;
/// Retention in the child.
const KEEP: usize = 4;
const TEST: &str = "a_sigkilled_history_writer_leaves_latest_at_a_complete_acknowledged_version";

/// A value that says which generation it was written for, with a fill that differs per
/// generation and ranges from empty to 64 KiB.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Record {
    generation: u64,
    fill: String,
}

fn record(generation: u64) -> Record {
    let h = mix(generation);
    let len = (h >> 8) as usize % if h.is_multiple_of(2) { 64 } else { 64 * 1024 };
    let c = (b'a' + (h % 26) as u8) as char;
    Record {
        generation,
        fill: std::iter::repeat_n(c, len).collect(),
    }
}

/// The child: commit generation after generation until killed.
fn child_main(path: &Path, durability: Durability) {
    let mut h = History::<Record>::builder(path)
        .keep(KEEP)
        .durability(durability)
        .open_or_default()
        .unwrap();
    loop {
        let next = h.generation() + 1;
        h.set(record(next)).unwrap();
        assert_eq!(h.generation(), next);
        // A closed pipe (the parent is gone) makes this panic, which ends the child.
        println!("ack {next}");
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Tally {
    kills: usize,
    /// `latest` missing, dangling, corrupt, or holding another generation's value.
    torn: usize,
    /// `latest` older than the last acknowledged commit.
    lost: usize,
    /// `latest` more than one generation past the last acknowledged commit.
    ahead: usize,
    /// Listed versions that disagree with the files, or break retention.
    bad_listing: usize,
    manifest_current: usize,
    manifest_rebuilt: usize,
    temps_left: usize,
    acked: u64,
}

impl Tally {
    fn add(&mut self, o: &Tally) {
        self.kills += o.kills;
        self.torn += o.torn;
        self.lost += o.lost;
        self.ahead += o.ahead;
        self.bad_listing += o.bad_listing;
        self.manifest_current += o.manifest_current;
        self.manifest_rebuilt += o.manifest_rebuilt;
        self.temps_left += o.temps_left;
        self.acked += o.acked;
    }
}

/// One kill; returns the generation now current.
fn one_kill(
    dir: &Path,
    durability: Durability,
    start: u64,
    rng: &mut Rng,
    tally: &mut Tally,
    failures: &mut Vec<String>,
) -> u64 {
    let path = dir.join("state.json");
    let mut child = common::child(TEST, "history-writer")
        .env("HISTORY_PATH", &path)
        .env("HISTORY_DURABILITY", format!("{durability:?}"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let delay = Duration::from_micros(rng.below(MAX_DELAY_US + 1));
    let acked: u64 = common::kill_after_first_ack(&mut child, delay, "the history writer");
    tally.kills += 1;
    tally.acked += acked + 1 - start;
    let what = format!("{durability:?}, acked {acked}");

    // `latest` resolves to a complete version of the right value.
    let mut current = acked;
    match History::<Record>::open(&path) {
        Err(e) => {
            tally.torn += 1;
            failures.push(format!("{what}: cannot open latest: {e}"));
        }
        Ok(h) => {
            let g = h.generation();
            if h.get() != &record(g) {
                tally.torn += 1;
                failures.push(format!("{what}: generation {g} holds another value"));
            }
            if g < acked {
                tally.lost += 1;
                failures.push(format!("{what}: latest is generation {g}"));
            } else if g > acked + 1 {
                tally.ahead += 1;
                failures.push(format!("{what}: latest is generation {g}"));
            }
            current = g;
        }
    }

    // The listing is the files' truth, whether the manifest was current or not.
    let raw = RawHistory::new(&path).unwrap();
    match raw.manifest_state().unwrap() {
        ManifestState::Current => tally.manifest_current += 1,
        _ => tally.manifest_rebuilt += 1,
    }
    let versions = raw.versions().unwrap();
    let gens: Vec<u64> = versions.iter().map(|v| v.generation).collect();
    let mut bad = Vec::new();
    if gens.last() != Some(&current) {
        bad.push(format!("newest listed {gens:?}, latest {current}"));
    }
    // A kill between the pointer swap and retention leaves one extra version.
    if gens.len() > KEEP + 1 {
        bad.push(format!("{} versions kept: {gens:?}", gens.len()));
    }
    for v in &versions {
        let meta = atomic_persist::envelope::verify(&v.path)
            .ok()
            .flatten()
            .filter(|m| {
                (m.generation, m.run_id, m.written_at, m.checksum)
                    == (v.generation, v.run_id, v.written_at, v.checksum)
            });
        let size = std::fs::metadata(&v.path).map(|m| m.len()).ok();
        if meta.is_none() || size != Some(v.size) {
            bad.push(format!("listed {v:?} disagrees with its file"));
        }
    }
    if !bad.is_empty() {
        tally.bad_listing += 1;
        failures.push(format!("{what}: {}", bad.join("; ")));
    }

    let temps = common::temps(dir);
    tally.temps_left += temps.len();
    let removed = atomic_persist::sweep(dir).unwrap().count();
    if removed != temps.len() || !common::temps(dir).is_empty() {
        failures.push(format!("{what}: sweep removed {removed} of {temps:?}"));
    }
    current
}

fn run_as_child() -> bool {
    if common::role().as_deref() != Some("history-writer") {
        return false;
    }
    let durability = match std::env::var("HISTORY_DURABILITY").unwrap().as_str() {
        "Full" => Durability::Full,
        "Data" => Durability::Data,
        _ => Durability::None,
    };
    child_main(
        Path::new(&std::env::var("HISTORY_PATH").unwrap()),
        durability,
    );
    true
}

#[test]
fn a_sigkilled_history_writer_leaves_latest_at_a_complete_acknowledged_version() {
    if run_as_child() {
        return;
    }
    let kills: usize = std::env::var("ATOMIC_PERSIST_KILLS")
        .ok()
        .map(|k| k.parse().expect("ATOMIC_PERSIST_KILLS is a number"))
        .unwrap_or(DEFAULT_KILLS);
    let seed = Rng::from_clock().below(u64::MAX);
    let started = std::time::Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let rounds = kills / WORKERS + usize::from(w < kills % WORKERS);
            thread::spawn(move || {
                let mut rng = Rng::new(seed ^ w as u64);
                let dir = tempfile::tempdir().unwrap();
                let mut tally = Tally::default();
                let mut failures = Vec::new();
                let mut current = 0;
                for round in 0..rounds {
                    let durability =
                        [Durability::None, Durability::Data, Durability::Full][round % 3];
                    current = one_kill(
                        dir.path(),
                        durability,
                        current + 1,
                        &mut rng,
                        &mut tally,
                        &mut failures,
                    );
                }
                (tally, failures)
            })
        })
        .collect();
    let mut total = Tally::default();
    let mut failures = Vec::new();
    for w in workers {
        let (t, f) = w.join().unwrap();
        total.add(&t);
        failures.extend(f);
    }
    common::report(&format!(
        "history crash test: kills={} torn={} lost_acknowledged={} ahead={} bad_listing={} \
         manifest_current={} manifest_rebuilt={} temps_left={} (swept) acknowledged_commits={} \
         in {:.1}s",
        total.kills,
        total.torn,
        total.lost,
        total.ahead,
        total.bad_listing,
        total.manifest_current,
        total.manifest_rebuilt,
        total.temps_left,
        total.acked,
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(total.kills, kills);
    assert!(
        failures.is_empty(),
        "{} failures, first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
}
