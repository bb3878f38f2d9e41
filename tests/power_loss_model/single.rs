//! One save of each kind (`write_atomic` and its options, a stream, an enveloped
//! `Persisted` commit) at each durability level: the destination old or new.

use std::collections::BTreeMap;
use std::path::Path;

use atomic_persist::{Durability, WriteOptions};

use crate::common;
use crate::model::{BLOCK, Entries, Entry, Fs, Inode, Seen, Tally, contents_after_crash};
use crate::trace::{Loc, MARK, Op, trace_cases};
#[cfg(feature = "json")]
use crate::{Doc, doc_builder};

const TEST: &str = "every_simulated_power_loss_leaves_the_old_or_the_new_file";
const DEST: &str = "dest.bin";

fn old_bytes() -> Vec<u8> {
    (0..3_000u32).map(|i| b'o' ^ (i % 7) as u8).collect()
}

/// Three full blocks and a partial one, no zero byte (a zeroed block never matches).
fn new_bytes() -> Vec<u8> {
    (0..3 * BLOCK as u32 + 500)
        .map(|i| (common::mix(u64::from(i)) % 255 + 1) as u8)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    New,
    Replace,
    NoClobber,
    Anonymous,
    AnonymousNoClobber,
    Stream,
    /// A `Persisted` commit with the JSON envelope (head, payload, tail streamed).
    #[cfg(feature = "json")]
    Enveloped,
}

fn kinds() -> Vec<Kind> {
    let v = vec![
        Kind::New,
        Kind::Replace,
        Kind::NoClobber,
        Kind::Anonymous,
        Kind::AnonymousNoClobber,
        Kind::Stream,
    ];
    // The enveloped kind needs a format feature.
    #[cfg(feature = "json")]
    let v = [v, vec![Kind::Enveloped]].concat();
    v
}

const LEVELS: [Durability; 3] = [Durability::Full, Durability::Data, Durability::None];

impl Kind {
    fn existing(self) -> bool {
        #[cfg(feature = "json")]
        if self == Kind::Enveloped {
            return true;
        }
        matches!(self, Kind::Replace | Kind::Anonymous | Kind::Stream)
    }
}

fn label(kind: Kind, level: Durability) -> String {
    format!("{kind:?}-{level:?}")
}

// ---------------------------------------------------------------------------------
// The child: one save of each case, between markers

/// The child: one save per case in `dir/CASE/dest.bin`; the old file, if any, is also
/// copied to `dir/CASE.old` (the new one is what `dest.bin` holds at the end).
fn child_main(dir: &Path) {
    use std::io::Write;
    for kind in kinds() {
        for level in LEVELS {
            let case = label(kind, level);
            let sub = dir.join(&case);
            std::fs::create_dir(&sub).unwrap();
            let dest = sub.join(DEST);
            #[cfg(feature = "json")]
            if kind == Kind::Enveloped {
                let old = Doc {
                    rev: 1,
                    text: "old".repeat(1000),
                };
                let mut p = doc_builder(&dest, level).open_or_else(|| old).unwrap();
                p.commit().unwrap();
                std::fs::copy(&dest, dir.join(format!("{case}.old"))).unwrap();
                let _ = std::fs::File::open(format!("{MARK}begin-{case}"));
                p.set(Doc {
                    rev: 2,
                    text: "new".repeat(4500),
                })
                .unwrap();
                let _ = std::fs::File::open(format!("{MARK}end-{case}"));
                continue;
            }
            if kind.existing() {
                std::fs::write(&dest, old_bytes()).unwrap();
                std::fs::write(dir.join(format!("{case}.old")), old_bytes()).unwrap();
            }
            let opts = WriteOptions::new()
                .durability(level)
                .no_clobber(matches!(kind, Kind::NoClobber | Kind::AnonymousNoClobber))
                .anonymous_temp(matches!(kind, Kind::Anonymous | Kind::AnonymousNoClobber));
            let _ = std::fs::File::open(format!("{MARK}begin-{case}"));
            match kind {
                Kind::Stream => {
                    let mut f = opts.create(&dest).unwrap();
                    for chunk in new_bytes().chunks(1000) {
                        f.write_all(chunk).unwrap();
                    }
                    f.commit().unwrap();
                }
                _ => opts.write(&dest, new_bytes()).unwrap(),
            }
            let _ = std::fs::File::open(format!("{MARK}end-{case}"));
            assert_eq!(std::fs::read(&dest).unwrap(), new_bytes());
        }
    }
    println!("power-loss-trace-ok");
}

/// Replays `ops` and checks every crash state. `full` asks for the `Full` promise (new
/// content once returned).
fn explore(case: &str, ops: &[Op], old: Option<&[u8]>, new: &[u8], full: bool) -> Tally {
    let existing = old.is_some();
    let mut tally = Tally::default();
    let before: Entries = old
        .map(|o| (DEST.to_owned(), Entry::File(o.to_vec())))
        .into_iter()
        .collect();
    let mut fs = Fs::with_entries(&before);
    for point in 0..=ops.len() {
        if point > 0 {
            fs.step(&ops[point - 1], new);
        }
        let returned = point == ops.len();
        for entries in fs.crash_directories(case) {
            let contents = match entries.get(DEST) {
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
                    Some(b) if Some(&b[..]) == old => Seen::Old,
                    Some(b) if *b == new => Seen::New,
                    Some(_) => Seen::Torn,
                };
                *tally.seen.entry((returned, seen)).or_default() += 1;
                let wrong = match seen {
                    Seen::Torn => Some("neither the old nor the new content"),
                    Seen::Absent if existing => Some("the destination is gone"),
                    Seen::Absent | Seen::Old if full && returned => {
                        Some("the save returned, but the new content is not there")
                    }
                    _ => None,
                };
                if let Some(why) = wrong {
                    let len = content.as_ref().map_or(0, Vec::len);
                    tally.violations.push(format!(
                        "{case}: crash after {point} of {} ops, directory {entries:?}, {len} bytes: {why}",
                        ops.len()
                    ));
                }
            }
        }
    }
    // The model's own sanity: without a crash the save did what it said.
    let dest = fs.live.get(DEST).map(|&i| fs.inodes[i].current.clone());
    assert_eq!(
        dest.as_deref(),
        Some(new),
        "{case}: replay does not end with the new file"
    );
    tally
}

fn kind_of(case: &str) -> Kind {
    let name = case.rsplit_once('-').unwrap().0;
    kinds()
        .into_iter()
        .find(|k| format!("{k:?}") == name)
        .unwrap()
}

fn level_of(case: &str) -> Durability {
    let name = case.rsplit_once('-').unwrap().1;
    LEVELS
        .into_iter()
        .find(|l| format!("{l:?}") == name)
        .unwrap()
}

#[test]
fn every_simulated_power_loss_leaves_the_old_or_the_new_file() {
    if let Some(dir) = common::role() {
        return child_main(Path::new(&dir));
    }
    let Some((traced, cases)) = trace_cases(module_path!(), TEST, kinds().len() * LEVELS.len())
    else {
        return;
    };
    let work = &traced.work;

    let mut failures = Vec::new();
    // What -> (crash states, violating states).
    let mut states: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (case, ops) in &cases {
        let (kind, level) = (kind_of(case), level_of(case));
        let new = std::fs::read(work.join(case).join(DEST)).unwrap();
        let old = std::fs::read(work.join(format!("{case}.old"))).ok();
        assert_eq!(old.is_some(), kind.existing(), "{case}");
        assert!(
            !new.contains(&0),
            "{case}: a zeroed block could pass for new content"
        );
        let old = old.as_deref();
        let t = explore(case, ops, old, &new, level == Durability::Full);
        let total = states.entry(format!("{level:?}")).or_default();
        total.0 += t.states;
        total.1 += t.violations.len();
        let count = |returned: bool, s: Seen| t.seen.get(&(returned, s)).copied().unwrap_or(0);
        common::report(&format!(
            "power-loss model [{case}]: ops={} states={} violations={} seen={:?}",
            ops.len(),
            t.states,
            t.violations.len(),
            t.seen
        ));
        match level {
            Durability::Full => {
                if !t.violations.is_empty() {
                    failures.push(format!("{case}: {}", t.violations[0]));
                }
                // The model can fail: without the file sync, or the directory sync.
                for (what, keep) in [
                    (
                        "file sync",
                        (|o: &Op| !matches!(o, Op::SyncFile { .. })) as fn(&Op) -> bool,
                    ),
                    ("directory sync", |o: &Op| !matches!(o, Op::SyncDir { .. })),
                ] {
                    let mutated: Vec<Op> = ops.iter().filter(|o| keep(o)).cloned().collect();
                    if mutated.len() == ops.len() {
                        failures.push(format!("{case}: the trace has no {what} to remove"));
                        continue;
                    }
                    let m = explore(case, &mutated, old, &new, true);
                    let total = states.entry(format!("Full without {what}")).or_default();
                    total.0 += m.states;
                    total.1 += m.violations.len();
                    common::report(&format!(
                        "power-loss model [{case} without {what}]: states={} violations={}",
                        m.states,
                        m.violations.len()
                    ));
                    if m.violations.is_empty() {
                        failures.push(format!(
                            "{case}: removing the {what} produced no violating state: the model cannot fail"
                        ));
                    }
                }
            }
            Durability::Data => {
                // Old or new, never torn, never gone...
                let kept: Vec<_> = t.violations.iter().collect();
                if !kept.is_empty() {
                    failures.push(format!("{case}: {}", kept[0]));
                }
                // ... but after it returned it may come back as the old file (or absent).
                let reverted = count(true, Seen::Old) + count(true, Seen::Absent);
                if reverted == 0 {
                    failures.push(format!(
                        "{case}: Data never reverts after returning in the model; it should"
                    ));
                }
            }
            Durability::None => {
                if count(false, Seen::Torn) + count(true, Seen::Torn) == 0 {
                    failures.push(format!(
                        "{case}: None never leaves a torn or empty file in the model; it should"
                    ));
                }
            }
        }
    }
    for (what, (n, bad)) in &states {
        common::report(&format!(
            "power-loss model: {n} crash states for {what}, {bad} violating"
        ));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_model_loses_unsynced_data_and_unsynced_renames() {
    // A hand-written naive sequence: write, rename, no syncs at all.
    let ops = vec![
        Op::Create {
            fd: 4,
            at: Loc::from(".t"),
        },
        Op::Write {
            fd: 4,
            offset: None,
            len: new_bytes().len(),
        },
        Op::Rename {
            from: Loc::from(".t"),
            to: Loc::from(DEST),
        },
    ];
    let t = explore("naive", &ops, Some(&old_bytes()), &new_bytes(), true);
    assert!(t.seen.contains_key(&(true, Seen::Torn)), "{:?}", t.seen);
    assert!(t.seen.contains_key(&(true, Seen::Old)), "{:?}", t.seen);
    // Zero bytes written but durable length 0: the empty file is among the states.
    let inode = Inode {
        durable: Vec::new(),
        current: new_bytes(),
        ..Inode::default()
    };
    let c = contents_after_crash(&inode);
    assert!(c.contains(&Vec::new()) && c.contains(&new_bytes()));
    assert!(c.iter().any(|b| b.len() == 2 * BLOCK && b[BLOCK] == 0));
    // 4 block-boundary lengths after 0 bytes: 1 + 2 + 4 + 8 + 16 variants.
    assert_eq!(c.len(), 31);
}
