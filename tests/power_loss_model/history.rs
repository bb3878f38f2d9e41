//! A history commit (`History::set` of version 3, `keep(2)` and `keep(1)`, `Full` and
//! `Data`): `latest` resolves to a complete version, the old or the new one.

use std::collections::BTreeMap;
#[cfg(feature = "json")]
use std::path::Path;

use atomic_persist::Durability;

#[cfg(feature = "json")]
use crate::Doc;
use crate::common;
#[cfg(feature = "json")]
use crate::model::copy_entries;
use crate::model::{Entries, Entry, Fs, Seen, Tally, contents_after_crash, read_entries};
#[cfg(feature = "json")]
use crate::trace::MARK;
use crate::trace::{Op, trace_cases};

const HISTORY_TEST: &str = "every_simulated_power_loss_leaves_latest_at_a_complete_version";
const POINTER: &str = "state.json";
const MANIFEST: &str = "state.manifest.json";

/// The history cases: `keep(2)` over versions 1 and 2 (retention removes version 1) and
/// `keep(1)` over version 2 (retention removes version 2, the one the old pointer
/// names), each committing version 3 at `Full` and at `Data`.
const HISTORY_CASES: [(usize, Durability); 4] = [
    (2, Durability::Full),
    (2, Durability::Data),
    (1, Durability::Full),
    (1, Durability::Data),
];

fn history_case(keep: usize, level: Durability) -> String {
    format!("History-keep{keep}-{level:?}")
}

/// The child: in `dir/CASE/`, versions 1 and 2 of a `History<Doc>`, a copy of the
/// directory in `dir/CASE.before/` (symlinks as symlinks), then the commit of version
/// 3 between the markers.
#[cfg(feature = "json")]
fn history_child_main(dir: &Path) {
    use atomic_persist::history::History;
    for (keep, level) in HISTORY_CASES {
        let case = history_case(keep, level);
        let sub = dir.join(&case);
        std::fs::create_dir(&sub).unwrap();
        let mut h = History::<Doc>::builder(sub.join(POINTER))
            .keep(keep)
            .durability(level)
            .open_or_else(|| Doc {
                rev: 1,
                text: "one".repeat(900),
            })
            .unwrap();
        h.commit().unwrap();
        h.set(Doc {
            rev: 2,
            text: "two".repeat(1100),
        })
        .unwrap();
        copy_entries(&sub, &dir.join(format!("{case}.before")));
        let _ = std::fs::File::open(format!("{MARK}begin-{case}"));
        h.set(Doc {
            rev: 3,
            text: "new".repeat(4500),
        })
        .unwrap();
        let _ = std::fs::File::open(format!("{MARK}end-{case}"));
    }
    println!("power-loss-trace-ok");
}

/// The bytes of the version the pointer of `entries` names, and of the manifest.
fn latest_and_manifest(entries: &Entries) -> (Vec<u8>, Vec<u8>) {
    let get = |n: &str| entries.iter().find(|(name, _)| name == n).map(|(_, e)| e);
    let Some(Entry::Link(target)) = get(POINTER) else {
        panic!("{POINTER} is not a symlink: {entries:?}");
    };
    let Some(Entry::File(version)) = get(target) else {
        panic!("{POINTER} names {target}, which is not a file");
    };
    let Some(Entry::File(manifest)) = get(MANIFEST) else {
        panic!("no {MANIFEST}");
    };
    (version.clone(), manifest.clone())
}

/// Replays a history commit from the directory `before` and checks every crash state:
/// the pointer resolves to a complete version, the old latest or the new one (the new
/// one once a `Full` commit returned); the manifest is its old or its new content.
fn explore_history(case: &str, ops: &[Op], before: &Entries, after: &Entries, full: bool) -> Tally {
    let (old, old_manifest) = latest_and_manifest(before);
    let (new, new_manifest) = latest_and_manifest(after);
    let mut fs = Fs::for_replay(case, ops, before, after);
    let mut tally = Tally::default();
    for point in 0..=ops.len() {
        if point > 0 {
            fs.step(&ops[point - 1], &[]);
        }
        let returned = point == ops.len();
        for entries in fs.crash_directories(case) {
            let seen: Vec<Seen> = match entries.get(POINTER).map(|&i| &fs.inodes[i].link) {
                None => vec![Seen::Absent],
                Some(None) => vec![Seen::Torn], // not a symlink
                Some(Some(target)) => match entries.get(target) {
                    None => vec![Seen::Dangling],
                    Some(&v) => contents_after_crash(&fs.inodes[v])
                        .iter()
                        .map(|b| {
                            if *b == old {
                                Seen::Old
                            } else if *b == new {
                                Seen::New
                            } else {
                                Seen::Torn
                            }
                        })
                        .collect(),
                },
            };
            for seen in seen {
                tally.states += 1;
                *tally.seen.entry((returned, seen)).or_default() += 1;
                let wrong = match seen {
                    Seen::Torn => Some("latest is not a complete version"),
                    Seen::Dangling => Some("latest names a version that is not there"),
                    Seen::Absent => Some("latest is gone"),
                    Seen::Old if full && returned => {
                        Some("the commit returned, but latest is the old version")
                    }
                    _ => None,
                };
                if let Some(why) = wrong {
                    tally.violations.push(format!(
                        "{case}: crash after {point} of {} ops, directory {entries:?}: {why}",
                        ops.len()
                    ));
                }
            }
            let manifest = match entries.get(MANIFEST) {
                None => vec![Vec::new()],
                Some(&i) => contents_after_crash(&fs.inodes[i]),
            };
            for m in manifest {
                if m != old_manifest && m != new_manifest {
                    tally.violations.push(format!(
                        "{case}: crash after {point} of {} ops, directory {entries:?}: the manifest is neither the old nor the new one ({} bytes)",
                        ops.len(),
                        m.len()
                    ));
                }
            }
        }
    }
    tally
}

/// The history commit's operations without the new version file's sync, or without
/// the directory sync after the pointer's rename.
fn without(ops: &[Op], what: &str) -> Vec<Op> {
    let drop_at = match what {
        "version file sync" => {
            let fd = ops
                .iter()
                .find_map(|o| match o {
                    // A named temp, or (the Linux default) an anonymous one that gets
                    // the temp's name, or the version's own, just before the rename.
                    Op::Create { fd, at } | Op::LinkFd { fd, to: at }
                        if at.name().starts_with(".state.3.json.")
                            || at.name() == "state.3.json" =>
                    {
                        Some(*fd)
                    }
                    _ => None,
                })
                .expect("the version file's temp");
            ops.iter()
                .position(|o| *o == Op::SyncFile { fd })
                .expect("the version file's sync")
        }
        "directory sync after the pointer swap" => {
            let swap = ops
                .iter()
                .position(|o| matches!(o, Op::Rename { to, .. } if to.name() == POINTER))
                .expect("the pointer's rename");
            swap + ops[swap..]
                .iter()
                .position(|o| matches!(o, Op::SyncDir { .. }))
                .expect("a directory sync after the pointer's rename")
        }
        _ => unreachable!("{what}"),
    };
    let mut ops = ops.to_vec();
    ops.remove(drop_at);
    ops
}

#[test]
fn every_simulated_power_loss_leaves_latest_at_a_complete_version() {
    if !cfg!(feature = "json") {
        return; // History needs the json feature
    }
    if let Some(dir) = common::role() {
        #[cfg(feature = "json")]
        history_child_main(Path::new(&dir));
        let _ = dir;
        return;
    }
    let Some((traced, cases)) = trace_cases(module_path!(), HISTORY_TEST, HISTORY_CASES.len())
    else {
        return;
    };
    let work = &traced.work;

    let mut failures = Vec::new();
    let mut states: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (keep, level) in HISTORY_CASES {
        let case = history_case(keep, level);
        let ops = &cases[&case];
        let before = read_entries(&work.join(format!("{case}.before")));
        let after = read_entries(&work.join(&case));
        let full = level == Durability::Full;
        let t = explore_history(&case, ops, &before, &after, full);
        let total = states.entry(format!("keep({keep}) {level:?}")).or_default();
        total.0 += t.states;
        total.1 += t.violations.len();
        common::report(&format!(
            "power-loss model [{case}]: ops={} states={} violations={} seen={:?}",
            ops.len(),
            t.states,
            t.violations.len(),
            t.seen
        ));
        if !t.violations.is_empty() {
            failures.push(t.violations[0].clone());
        }
        if !full {
            continue;
        }
        for what in ["version file sync", "directory sync after the pointer swap"] {
            let m = explore_history(&case, &without(ops, what), &before, &after, true);
            let total = states
                .entry(format!("keep({keep}) Full without the {what}"))
                .or_default();
            total.0 += m.states;
            total.1 += m.violations.len();
            common::report(&format!(
                "power-loss model [{case} without the {what}]: states={} violations={}",
                m.states,
                m.violations.len()
            ));
            if let Some(v) = m.violations.first() {
                common::report(&format!("  e.g. {v}"));
            }
            // Without the swap's directory sync, keep(2) still holds: the manifest
            // write's own directory sync follows before the commit returns, and the
            // version the old pointer names is not removed. keep(1) removes it.
            let must_fail = what == "version file sync" || keep == 1;
            if must_fail && m.violations.is_empty() {
                failures.push(format!(
                    "{case}: removing the {what} produced no violating state: the model cannot fail"
                ));
            }
        }
    }
    for (what, (n, bad)) in &states {
        common::report(&format!(
            "power-loss model [history]: {n} crash states for {what}, {bad} violating"
        ));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
