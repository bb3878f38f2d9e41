//! A batch commit of three files (two replaced, one new) for each sync mode, at `Full`,
//! `Data` and `None`: each destination old or new in every crash state, every one new
//! once a `Full` commit returned.

use std::path::Path;

use atomic_persist::{Batch, BatchSync, Durability, WriteOptions};

use crate::common;
use crate::model::read_entries;
use crate::model::{
    BLOCK, Entries, Entry, Fs, Seen, Tally, Totals, contents_after_crash, copy_entries,
};
use crate::trace::{MARK, Op, trace_cases};

const TEST: &str = "every_simulated_power_loss_leaves_each_batch_file_old_or_new";

/// The destinations, and which of them exist before the commit.
const FILES: [(&str, bool); 3] = [("a.bin", true), ("b.bin", true), ("c.bin", false)];

const CASES: [(BatchSync, Durability); 5] = [
    (BatchSync::Filesystem, Durability::Full),
    (BatchSync::EachFile, Durability::Full),
    (BatchSync::Filesystem, Durability::Data),
    (BatchSync::EachFile, Durability::Data),
    (BatchSync::Filesystem, Durability::None),
];

fn case_name(sync: BatchSync, level: Durability) -> String {
    format!("Batch-{sync:?}-{level:?}")
}

/// File `k`'s content, old or new: a different length for each (one to three blocks
/// and a part), no zero byte (a zeroed block never matches).
fn content(k: usize, new: bool) -> Vec<u8> {
    let len = if new {
        (k + 1) * BLOCK + 100 * k + 7
    } else {
        2000 + 300 * k
    };
    let salt = (k as u64) << 32 | u64::from(new) << 40;
    (0..len as u64)
        .map(|i| (common::mix(salt | i) % 255 + 1) as u8)
        .collect()
}

/// The child: in `dir/CASE/`, the old files, a copy in `dir/CASE.before/`, then the
/// batch, staged and committed, between the markers.
fn child_main(dir: &Path) {
    for (sync, level) in CASES {
        let case = case_name(sync, level);
        let sub = dir.join(&case);
        std::fs::create_dir(&sub).unwrap();
        for (k, (name, existing)) in FILES.iter().enumerate() {
            if *existing {
                std::fs::write(sub.join(name), content(k, false)).unwrap();
            }
        }
        copy_entries(&sub, &dir.join(format!("{case}.before")));
        // The staging too: the model must see the temporary files made and written.
        let _ = std::fs::File::open(format!("{MARK}begin-{case}"));
        let mut batch = Batch::with_options(WriteOptions::new().durability(level)).sync(sync);
        for (k, (name, _)) in FILES.iter().enumerate() {
            batch.write(sub.join(name), content(k, true)).unwrap();
        }
        batch.commit().unwrap();
        let _ = std::fs::File::open(format!("{MARK}end-{case}"));
    }
    println!("power-loss-trace-ok");
}

/// Replays a batch commit from the directory `before` and checks every crash state of
/// every destination: absent only if it was absent before, else exactly its old or its
/// new content; new once a `Full` commit returned.
fn explore_batch(case: &str, ops: &[Op], before: &Entries, after: &Entries, full: bool) -> Tally {
    let bytes = |entries: &Entries, name: &str| {
        let found = entries.iter().find(|(n, _)| n == name);
        found.map(|(_, e)| match e {
            Entry::File(bytes) => bytes.clone(),
            other => panic!("{name} is not a file: {other:?}"),
        })
    };
    let mut fs = Fs::for_replay(case, ops, before, after);
    let mut tally = Tally::default();
    for point in 0..=ops.len() {
        if point > 0 {
            fs.step(&ops[point - 1], &[]);
        }
        let returned = point == ops.len();
        for entries in fs.crash_directories(case) {
            for (name, _) in FILES {
                let (old, new) = (bytes(before, name), bytes(after, name).unwrap());
                let contents = match entries.get(name) {
                    None => vec![None],
                    Some(&i) => contents_after_crash(&fs.inodes[i])
                        .into_iter()
                        .map(Some)
                        .collect(),
                };
                for content in contents {
                    tally.states += 1;
                    let seen = match &content {
                        None => Seen::Absent,
                        Some(b) if Some(b) == old.as_ref() => Seen::Old,
                        Some(b) if *b == new => Seen::New,
                        Some(_) => Seen::Torn,
                    };
                    *tally.seen.entry((returned, seen)).or_default() += 1;
                    let wrong = match seen {
                        Seen::Torn => Some("neither the old nor the new content"),
                        Seen::Absent if old.is_some() => Some("the file is gone"),
                        Seen::Absent | Seen::Old if full && returned => {
                            Some("the commit returned, but the file is not new")
                        }
                        _ => None,
                    };
                    if let Some(why) = wrong {
                        tally.violations.push(format!(
                            "{case}: crash after {point} of {} ops, directory {entries:?}, {name}: {why}",
                            ops.len()
                        ));
                    }
                }
            }
        }
    }
    tally
}

/// The commit's operations without its data syncs (`syncfs` or each file's), or without
/// its directory syncs.
fn without(ops: &[Op], what: &str) -> Vec<Op> {
    let keep = |o: &Op| match what {
        "data sync" => !matches!(o, Op::SyncAll | Op::SyncFile { .. }),
        "directory sync" => !matches!(o, Op::SyncDir { .. }),
        _ => unreachable!("{what}"),
    };
    ops.iter().filter(|o| keep(o)).cloned().collect()
}

#[test]
fn every_simulated_power_loss_leaves_each_batch_file_old_or_new() {
    if let Some(dir) = common::role() {
        return child_main(Path::new(&dir));
    }
    let Some((traced, cases)) = trace_cases(module_path!(), TEST, CASES.len()) else {
        return;
    };

    let mut failures = Vec::new();
    let mut totals = Totals::default();
    for (sync, level) in CASES {
        let case = case_name(sync, level);
        let ops = &cases[&case];
        let before = read_entries(&traced.work.join(format!("{case}.before")));
        let after = read_entries(&traced.work.join(&case));
        let full = level == Durability::Full;
        let t = explore_batch(&case, ops, &before, &after, full);
        totals.add(format!("{sync:?}-{level:?}"), &case, &t);
        match level {
            Durability::None => {
                if t.count(false, Seen::Torn) + t.count(true, Seen::Torn) == 0 {
                    failures.push(format!(
                        "{case}: None never leaves a torn file in the model"
                    ));
                }
                continue;
            }
            Durability::Data if t.count(true, Seen::Old) + t.count(true, Seen::Absent) == 0 => {
                failures.push(format!(
                    "{case}: Data never reverts after returning in the model"
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
        for what in ["data sync", "directory sync"] {
            let mutated = without(ops, what);
            if mutated.len() == ops.len() {
                failures.push(format!("{case}: the trace has no {what} to remove"));
                continue;
            }
            let m = explore_batch(&case, &mutated, &before, &after, true);
            totals.must_violate(&case, what, &m, &mut failures);
        }
    }
    totals.report("batch");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
