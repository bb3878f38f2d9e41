//! A snapshot commit (generation 3 of three files over generations 1 and 2, `keep(2)`,
//! `keep(1)` and keeping all, at `Full`, `Data` and `None`): in every crash state the pointer names
//! one whole set, the old or the new one, each file complete and of that set; the new
//! one once a `Full` commit returned.

use std::collections::BTreeMap;
use std::path::Path;

use atomic_persist::{Durability, Snapshot};

use crate::common;
use crate::model::read_entries;
use crate::model::{BLOCK, Entries, Fs, Seen, Tally, Totals, contents_after_crash, copy_entries};
use crate::trace::{MARK, Op, trace_cases};

const TEST: &str = "every_simulated_power_loss_leaves_the_snapshot_one_whole_set";
const POINTER: &str = "ckpt";
const FILES: [&str; 3] = ["s1.dat", "s2.dat", "s3.dat"];

/// `(keep, durability)`; keep 0 keeps every generation.
const CASES: [(usize, Durability); 6] = [
    (2, Durability::Full),
    (1, Durability::Full),
    (2, Durability::Data),
    (1, Durability::Data),
    (0, Durability::Data),
    (2, Durability::None),
];

fn case_name(keep: usize, level: Durability) -> String {
    format!("Snapshot-keep{keep}-{level:?}")
}

/// File `k` of generation `g`: a different length for each, up to two blocks and a
/// part, no zero byte (a zeroed block never matches).
fn content(k: usize, g: u64) -> Vec<u8> {
    let len = [BLOCK + 10, 100, 2 * BLOCK + 300][k] + g as usize;
    let salt = (k as u64) << 32 | g << 40;
    (0..len as u64)
        .map(|i| (common::mix(salt | i) % 255 + 1) as u8)
        .collect()
}

fn commit(snap: &Snapshot, g: u64) {
    let mut tx = snap.begin().unwrap();
    for (k, name) in FILES.iter().enumerate() {
        tx.write(name, content(k, g)).unwrap();
    }
    assert_eq!(tx.commit().unwrap(), g);
}

/// The child: in `dir/CASE/`, generations 1 and 2, a copy in `dir/CASE.before/`, then
/// generation 3, begun and committed, between the markers.
fn child_main(dir: &Path) {
    for (keep, level) in CASES {
        let case = case_name(keep, level);
        let sub = dir.join(&case);
        std::fs::create_dir(&sub).unwrap();
        let builder = Snapshot::builder(sub.join(POINTER)).durability(level);
        let builder = if keep > 0 {
            builder.keep(keep)
        } else {
            builder
        };
        let snap = builder.open_or_create().unwrap();
        commit(&snap, 1);
        commit(&snap, 2);
        copy_entries(&sub, &dir.join(format!("{case}.before")));
        let _ = std::fs::File::open(format!("{MARK}begin-{case}"));
        commit(&snap, 3);
        let _ = std::fs::File::open(format!("{MARK}end-{case}"));
    }
    println!("power-loss-trace-ok");
}

/// What the pointer names in one crash state, file by file: for each file of the set,
/// each content it may read back as, judged against the set the pointer names.
fn seen_sets(fs: &Fs, entries: &BTreeMap<String, usize>) -> Vec<Seen> {
    let view = fs.paths(entries);
    let Some(&pointer) = view.get(POINTER) else {
        return vec![Seen::Absent];
    };
    let target = match &fs.inodes[pointer].link {
        Some(t) if t == "ckpt.2" || t == "ckpt.3" => t.clone(),
        _ => return vec![Seen::Torn], // not a link to the old or the new set
    };
    if !view.contains_key(&target) {
        return vec![Seen::Dangling];
    }
    let (g, seen) = match target.as_str() {
        "ckpt.2" => (2, Seen::Old),
        _ => (3, Seen::New),
    };
    let prefix = format!("{target}/");
    let names: Vec<&str> = view
        .keys()
        .filter_map(|p| p.strip_prefix(&prefix))
        .collect();
    if names != FILES {
        return vec![Seen::Torn]; // a file missing, or one more
    }
    let mut out = Vec::new();
    for (k, name) in FILES.iter().enumerate() {
        let inode = &fs.inodes[view[&format!("{prefix}{name}")]];
        for bytes in contents_after_crash(inode) {
            out.push(if bytes == content(k, g) {
                seen
            } else {
                Seen::Torn
            });
        }
    }
    out
}

/// Replays a snapshot commit from the tree `before` and checks every crash state.
fn explore_snapshot(
    case: &str,
    ops: &[Op],
    before: &Entries,
    after: &Entries,
    full: bool,
) -> Tally {
    let mut fs = Fs::for_replay(case, ops, before, after);
    let mut tally = Tally::default();
    for point in 0..=ops.len() {
        if point > 0 {
            fs.step(&ops[point - 1], &[]);
        }
        let returned = point == ops.len();
        for entries in fs.crash_directories(case) {
            for seen in seen_sets(&fs, &entries) {
                tally.states += 1;
                *tally.seen.entry((returned, seen)).or_default() += 1;
                let wrong = match seen {
                    Seen::Torn => Some("the pointer names no whole set of complete files"),
                    Seen::Dangling => Some("the pointer names a generation that is not there"),
                    Seen::Absent => Some("the pointer is gone"),
                    Seen::Old if full && returned => {
                        Some("the commit returned, but the pointer names the old set")
                    }
                    _ => None,
                };
                if let Some(why) = wrong {
                    let paths: Vec<String> = fs.paths(&entries).into_keys().collect();
                    tally.violations.push(format!(
                        "{case}: crash after {point} of {} ops, tree {paths:?}: {why}",
                        ops.len()
                    ));
                }
            }
        }
    }
    tally
}

/// The commit's operations without its data syncs (`syncfs`, or each file's), or
/// without the parent's sync after the pointer swap.
fn without(ops: &[Op], what: &str) -> Vec<Op> {
    match what {
        "data sync" => ops
            .iter()
            .filter(|o| !matches!(o, Op::SyncAll | Op::SyncFile { .. }))
            .cloned()
            .collect(),
        "parent sync after the pointer swap" => {
            let swap = ops
                .iter()
                .position(|o| matches!(o, Op::Rename { to, .. } if to.name() == POINTER))
                .expect("the pointer's rename");
            let sync = swap
                + ops[swap..]
                    .iter()
                    .position(|o| matches!(o, Op::SyncDir { .. }))
                    .expect("a directory sync after the pointer's rename");
            let mut ops = ops.to_vec();
            ops.remove(sync);
            ops
        }
        _ => unreachable!("{what}"),
    }
}

#[test]
fn every_simulated_power_loss_leaves_the_snapshot_one_whole_set() {
    if let Some(dir) = common::role() {
        return child_main(Path::new(&dir));
    }
    let Some((traced, cases)) = trace_cases(module_path!(), TEST, CASES.len()) else {
        return;
    };

    let mut failures = Vec::new();
    let mut totals = Totals::default();
    for (keep, level) in CASES {
        let case = case_name(keep, level);
        let ops = &cases[&case];
        let before = read_entries(&traced.work.join(format!("{case}.before")));
        let after = read_entries(&traced.work.join(&case));
        let full = level == Durability::Full;
        let t = explore_snapshot(&case, ops, &before, &after, full);
        totals.add(format!("keep{keep}-{level:?}"), &case, &t);
        match level {
            Durability::None => {
                if t.count(false, Seen::Torn) + t.count(true, Seen::Torn) == 0 {
                    failures.push(format!("{case}: None never leaves a torn set in the model"));
                }
                continue;
            }
            // With nothing to remove, nothing syncs the swap: the old set may be back.
            // (Retention syncs the parent first, and with it the swap.)
            Durability::Data if keep == 0 && t.count(true, Seen::Old) == 0 => {
                failures.push(format!(
                    "{case}: Data never reverts after returning in the model"
                ));
            }
            Durability::Data if keep > 0 && t.count(true, Seen::Old) > 0 => {
                failures.push(format!(
                    "{case}: the old set is back after a commit that pruned"
                ));
            }
            _ => {}
        }
        if let Some(v) = t.violations.first() {
            failures.push(v.clone());
        }
        if !full {
            continue;
        }
        for what in ["data sync", "parent sync after the pointer swap"] {
            let m = explore_snapshot(&case, &without(ops, what), &before, &after, true);
            totals.must_violate(&case, what, &m, &mut failures);
        }
    }
    totals.report("snapshot");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
