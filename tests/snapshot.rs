//! `Snapshot`: sets of files that change all at once; readers that never mix two sets;
//! writers ordered by the generation check; retention; the flushes of a commit
//! (strace); a SIGKILL soak of a writer with an in-place writer as the control.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use atomic_persist::{CorruptKind, Error, Snapshot};

fn open(path: &Path) -> Snapshot {
    Snapshot::builder(path).open_or_create().unwrap()
}

fn commit(snap: &Snapshot, files: &[(&str, &[u8])]) -> u64 {
    let mut tx = snap.begin().unwrap();
    for (name, bytes) in files {
        tx.write(name, bytes).unwrap();
    }
    tx.commit().unwrap()
}

#[test]
fn a_commit_makes_the_new_set_current() {
    let dir = tempfile::tempdir().unwrap();
    let snap = open(&dir.path().join("ckpt"));
    assert!(matches!(snap.current(), Err(Error::NotFound { .. })));
    assert_eq!(commit(&snap, &[("a.bin", b"a1"), ("b.bin", b"b1")]), 1);
    let view = snap.current().unwrap();
    assert_eq!(view.generation(), 1);
    assert_eq!(view.read("a.bin").unwrap(), b"a1");
    assert_eq!(view.read("b.bin").unwrap(), b"b1");
    common::assert_only(dir.path(), &[".ckpt.lock", "ckpt", "ckpt.1"]);
}

#[test]
fn the_next_commit_replaces_the_whole_set() {
    let dir = tempfile::tempdir().unwrap();
    let snap = open(&dir.path().join("ckpt"));
    commit(&snap, &[("a.bin", b"a1"), ("old.bin", b"x")]);
    commit(&snap, &[("a.bin", b"a2")]);
    let view = snap.current().unwrap();
    assert_eq!(view.read("a.bin").unwrap(), b"a2");
    assert!(matches!(view.read("old.bin"), Err(Error::NotFound { .. })));
}

#[test]
fn nothing_changes_before_commit_and_a_dropped_transaction_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let snap = open(&dir.path().join("ckpt"));
    commit(&snap, &[("a.bin", b"a1")]);
    let mut tx = snap.begin().unwrap();
    tx.write("a.bin", b"a2").unwrap();
    assert_eq!(snap.current().unwrap().read("a.bin").unwrap(), b"a1");
    drop(tx);
    common::assert_only(dir.path(), &[".ckpt.lock", "ckpt", "ckpt.1"]);
}

#[test]
fn a_view_reads_its_own_generation_after_a_newer_commit() {
    let dir = tempfile::tempdir().unwrap();
    let snap = open(&dir.path().join("ckpt"));
    commit(&snap, &[("a.bin", b"a1"), ("b.bin", b"b1")]);
    let view = snap.current().unwrap();
    commit(&snap, &[("a.bin", b"a2"), ("b.bin", b"b2")]);
    assert_eq!(
        (view.read("a.bin").unwrap(), view.read("b.bin").unwrap()),
        (b"a1".to_vec(), b"b1".to_vec())
    );
}

#[test]
fn keep_n_leaves_the_newest_n_generations() {
    let dir = tempfile::tempdir().unwrap();
    let snap = Snapshot::builder(dir.path().join("ckpt"))
        .keep(2)
        .open_or_create()
        .unwrap();
    for _ in 0..4 {
        commit(&snap, &[("a.bin", b"a")]);
    }
    assert_eq!(snap.generations().unwrap(), [3, 4]);
}

#[test]
fn a_view_whose_generation_retention_removed_reads_not_found_never_another_set() {
    let dir = tempfile::tempdir().unwrap();
    let snap = Snapshot::builder(dir.path().join("ckpt"))
        .keep(1)
        .open_or_create()
        .unwrap();
    commit(&snap, &[("a.bin", b"a1")]);
    let view = snap.current().unwrap();
    commit(&snap, &[("a.bin", b"a2")]);
    assert!(matches!(view.read("a.bin"), Err(Error::NotFound { .. })));
    assert_eq!(snap.current().unwrap().read("a.bin").unwrap(), b"a2");
}

#[test]
fn a_writer_another_writer_overtook_gets_a_conflict_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let snap = open(&dir.path().join("ckpt"));
    let mut slow = snap.begin().unwrap();
    slow.write("a.bin", b"slow").unwrap();
    commit(&snap, &[("a.bin", b"fast")]);
    match slow.commit() {
        Err(Error::Conflict {
            expected: 0,
            found: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(snap.current().unwrap().read("a.bin").unwrap(), b"fast");
    common::assert_only(dir.path(), &[".ckpt.lock", "ckpt", "ckpt.1"]);
}

#[test]
fn opening_removes_a_killed_writers_transaction_but_not_a_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    let snap = open(&path);
    let mut live = snap.begin().unwrap();
    live.write("a.bin", b"live").unwrap();
    // What a killed writer leaves: a transaction directory nobody holds.
    let dead = dir.path().join(".ckpt.aaaaaaaaaaaa.gen");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join("a.bin"), b"dead").unwrap();
    let other = open(&path);
    assert!(!dead.exists(), "the dead transaction is removed");
    assert_eq!(live.commit().unwrap(), 1, "the live one commits");
    assert_eq!(other.current().unwrap().read("a.bin").unwrap(), b"live");
}

#[test]
fn sweep_removes_a_killed_writers_transaction_but_not_a_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let snap = open(&dir.path().join("ckpt"));
    let mut live = snap.begin().unwrap();
    live.write("a.bin", b"live").unwrap();
    let dead = dir.path().join(".ckpt.bbbbbbbbbbbb.gen");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join("a.bin"), b"dead").unwrap();
    let swept = atomic_persist::sweep(dir.path()).unwrap();
    assert_eq!(swept.removed, [dead]);
    assert!(swept.skipped.is_empty(), "{:?}", swept.skipped);
    assert_eq!(live.commit().unwrap(), 1);
}

#[test]
fn put_and_get_go_through_the_format_and_the_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    let snap = Snapshot::builder(&path)
        .envelope(true)
        .open_or_create()
        .unwrap();
    let mut tx = snap.begin().unwrap();
    tx.put("state.json", &vec![1u32, 2, 3]).unwrap();
    tx.put("conf.toml", &std::collections::BTreeMap::from([("k", 1)]))
        .unwrap();
    assert_eq!(tx.commit().unwrap(), 1);
    let view = snap.current().unwrap();
    assert_eq!(view.get::<Vec<u32>>("state.json").unwrap(), [1, 2, 3]);
    assert_eq!(
        view.get::<std::collections::BTreeMap<String, u32>>("conf.toml")
            .unwrap()["k"],
        1
    );
    let meta = atomic_persist::envelope::verify(view.path().join("state.json"))
        .unwrap()
        .unwrap();
    assert_eq!(meta.generation, 1, "stamped with the snapshot's generation");
    assert!(matches!(
        view.get::<String>("state.json"),
        Err(Error::Deserialize { .. })
    ));
}

#[test]
fn a_name_that_is_not_one_plain_file_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let snap = open(&dir.path().join("ckpt"));
    let mut tx = snap.begin().unwrap();
    for name in ["a/b", "..", "/etc/passwd", ""] {
        match tx.write(name, b"x") {
            Err(Error::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{name:?}")
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
}

#[test]
fn a_regular_file_at_the_pointer_is_a_bad_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    std::fs::write(&path, b"not a pointer").unwrap();
    match Snapshot::builder(&path).open_or_create() {
        Err(Error::Corrupt {
            kind: CorruptKind::BadPointer,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_generation_left_by_a_writer_killed_before_its_swap_does_not_block_the_next_commit() {
    let dir = tempfile::tempdir().unwrap();
    let snap = open(&dir.path().join("ckpt"));
    commit(&snap, &[("a.bin", b"a1")]);
    // What a writer killed between its rename and its pointer swap leaves.
    std::fs::create_dir(dir.path().join("ckpt.2")).unwrap();
    std::fs::write(dir.path().join("ckpt.2/a.bin"), b"never current").unwrap();
    assert_eq!(commit(&snap, &[("a.bin", b"a2")]), 2);
    assert_eq!(snap.current().unwrap().read("a.bin").unwrap(), b"a2");
}

// ---------------------------------------------------------------------------------
// Flushes, counted with strace

#[test]
fn a_snapshot_commit_of_100_files_flushes_twice() {
    let test = "a_snapshot_commit_of_100_files_flushes_twice";
    if let Some(dir) = common::role() {
        let snap = open(&Path::new(&dir).join("ckpt"));
        let _ = std::fs::File::open("/nonexistent/commit-begin");
        let mut tx = snap.begin().unwrap();
        for i in 0..100 {
            tx.write(format!("f{i}"), [i as u8; 64]).unwrap();
        }
        tx.commit().unwrap();
        let _ = std::fs::File::open("/nonexistent/commit-end");
        println!("snapshot-ok");
        return;
    }
    let trace = common::strace::FLUSHES_AND_RENAMES;
    let Some(run) = common::trace_in_workdir(test, trace, "snapshot-ok") else {
        return;
    };
    let calls = common::strace::parse(&run.log);
    let marker = |m: &str| calls.iter().position(|c| c.quoted() == Some(m)).unwrap();
    let (begin, end) = (
        marker("/nonexistent/commit-begin"),
        marker("/nonexistent/commit-end"),
    );
    let seen: Vec<&str> = calls[begin..end]
        .iter()
        .filter_map(|c| match c.name.as_str() {
            "fsync" | "fdatasync" | "syncfs" | "sync" | "sync_file_range" | "msync" => {
                Some(c.name.as_str())
            }
            "rename" | "renameat" | "renameat2" if c.ok() => Some("rename"),
            _ => None,
        })
        .collect();
    // The set under its final name, then all of it durable at once, then the pointer's
    // rename and the parent directory once: 2 flushes, and the pointer only ever names
    // a durable set.
    assert_eq!(seen, ["rename", "syncfs", "rename", "fsync"], "{seen:?}");
}

// ---------------------------------------------------------------------------------
// Every syscall of a commit failed in turn

/// Set 1 (`a`, `b` old) is committed beforehand; the faulted commit writes set 2
/// (`a`, `b` new and a new `c`).
fn fault_prepare(dir: &Path) {
    let snap = Snapshot::builder(dir.join("ckpt"))
        .keep(1)
        .open_or_create()
        .unwrap();
    commit(&snap, &[("a", b"old"), ("b", b"old")]);
}

/// The sweep's child: the commit of set 2 on a thread of its own, traced alone; prints
/// `outcome ok`, `outcome err OP` or `outcome err OTHER`. `naive` rewrites the current
/// set's files in place instead.
fn fault_writer(role: &str) {
    let (how, dir) = role.split_once(':').unwrap();
    let (how, dir) = (how.to_owned(), PathBuf::from(dir));
    let outcome = std::thread::spawn(move || {
        let snap = Snapshot::builder(dir.join("ckpt"))
            .keep(1)
            .open_or_create()
            .unwrap();
        common::traced::wait_for_tracer();
        let _ = std::fs::File::open("/nonexistent/snapshot-begin");
        let result = match how.as_str() {
            "naive" => snap.current().and_then(|view| {
                let set = view.path().to_path_buf();
                ["a", "b", "c"]
                    .iter()
                    .try_for_each(|f| std::fs::write(set.join(f), b"new"))
                    .map_err(|e| Error::Io {
                        op: atomic_persist::Op::Write,
                        path: set,
                        source: e,
                    })
            }),
            _ => snap.begin().and_then(|mut tx| {
                tx.write("a", b"new")?;
                tx.write("b", b"new")?;
                tx.write("c", b"new")?;
                tx.commit().map(|_| ())
            }),
        };
        let _ = std::fs::File::open("/nonexistent/snapshot-end");
        match result {
            Ok(()) => "ok".to_owned(),
            Err(Error::Io { op, .. }) => format!("err {op:?}"),
            Err(e) => format!("err {e:?}"),
        }
    })
    .join()
    .unwrap();
    println!("outcome {outcome}");
}

/// What is wrong with the snapshot after a run whose child said `outcome`: the set it
/// shows must be set 1 or set 2 whole (set 2 exactly when the commit returned `Ok` or
/// failed only in the directory sync after its pointer swap), and opening it again
/// leaves no debris.
fn fault_problems(dir: &Path, outcome: &str) -> Vec<String> {
    let view = match open(&dir.join("ckpt")).current() {
        Ok(view) => view,
        Err(e) => return vec![format!("outcome {outcome}: no current set: {e}")],
    };
    let read = |f: &str| view.read(f).ok();
    let set = [read("a"), read("b"), read("c")];
    let old = [Some(b"old".to_vec()), Some(b"old".to_vec()), None];
    let new = [
        Some(b"new".to_vec()),
        Some(b"new".to_vec()),
        Some(b"new".to_vec()),
    ];
    let want_new = outcome == "ok" || outcome == "err SyncDir";
    let mut problems = Vec::new();
    if set != if want_new { new } else { old } {
        problems.push(format!("outcome {outcome}: the current set is {set:?}"));
    }
    let names: Vec<String> = (common::names(dir).iter())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !matches!(n.as_str(), "ckpt" | ".ckpt.lock") && !n.starts_with("ckpt."))
        .collect();
    if !names.is_empty() {
        problems.push(format!("outcome {outcome}: left behind {names:?}"));
    }
    problems
}

/// Runs the sweep with the `how` writer; returns the faults tried and what was wrong.
fn fault_sweep(test: &str, how: &str) -> (usize, Vec<String>) {
    let markers = ("/nonexistent/snapshot-begin", "/nonexistent/snapshot-end");
    common::traced::sweep(test, how, markers, fault_prepare, fault_problems)
}

#[test]
fn every_failed_syscall_of_a_commit_leaves_one_whole_set_as_the_error_says() {
    let test = "every_failed_syscall_of_a_commit_leaves_one_whole_set_as_the_error_says";
    if let Some(role) = common::role() {
        return fault_writer(&role);
    }
    if !common::have_strace() {
        return common::skip(test, "strace is not installed");
    }
    let (tried, problems) = fault_sweep(test, "snapshot");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    common::report(&format!(
        "snapshot fault sweep: {tried} faults (each syscall of a 3-file commit, alone, with each of EIO, ENOSPC, EDQUOT, EACCES); each time one whole set current, the new one exactly when the outcome says, no debris after open"
    ));
}

#[test]
fn the_snapshot_fault_sweep_catches_a_set_rewritten_in_place() {
    let test = "the_snapshot_fault_sweep_catches_a_set_rewritten_in_place";
    if let Some(role) = common::role() {
        return fault_writer(&role);
    }
    if !common::have_strace() {
        return common::skip(test, "strace is not installed");
    }
    let (tried, problems) = fault_sweep(test, "naive");
    common::report(&format!(
        "snapshot fault sweep control: {} problems in {tried} faults",
        problems.len()
    ));
    assert!(
        !problems.is_empty(),
        "the sweep found nothing wrong with an in-place writer"
    );
}

// ---------------------------------------------------------------------------------
// Killed writers

/// Files per set in the soak.
const SOAK_FILES: usize = 6;

/// The soak's child: commits set after set, each file of set `N` holding version `N`,
/// printing `ack N` after each; `naive` rewrites the files of one directory in place.
fn soak_writer(role: &str) {
    let (how, dir) = role.split_once(':').unwrap();
    let dir = PathBuf::from(dir);
    let snap = open(&dir.join("ckpt"));
    for version in 1.. {
        let bytes = common::version_bytes(version);
        if how == "naive" {
            let set = dir.join("ckpt.1");
            std::fs::create_dir_all(&set).unwrap();
            for i in 0..SOAK_FILES {
                atomic_persist::write_atomic(set.join(format!("f{i}")), &bytes).unwrap();
            }
            if version == 1 {
                std::os::unix::fs::symlink("ckpt.1", dir.join("ckpt")).unwrap();
            }
        } else {
            let mut tx = snap.begin().unwrap();
            for i in 0..SOAK_FILES {
                tx.write(format!("f{i}"), &bytes).unwrap();
            }
            tx.commit().unwrap();
        }
        println!("ack {version}");
    }
}

/// What a recovered snapshot in `dir` shows wrong: a set that mixes versions, a torn
/// file, a set behind the last acknowledged commit, or a killed transaction's
/// directory left after the open.
fn soak_problems(dir: &Path, acked: u64) -> Vec<String> {
    let mut wrong = Vec::new();
    let view = open(&dir.join("ckpt")).current().unwrap();
    let debris: Vec<_> = (common::names(dir).into_iter())
        .filter(|n| n.to_string_lossy().ends_with(".gen"))
        .collect();
    if !debris.is_empty() {
        wrong.push(format!("left after open: {debris:?}"));
    }
    let versions: Result<Vec<u64>, String> = (0..SOAK_FILES)
        .map(|i| common::parse_version(&view.read(format!("f{i}")).unwrap()))
        .collect();
    match &versions {
        Err(e) => wrong.push(format!("a torn file: {e}")),
        Ok(v) if v.iter().any(|x| *x != v[0]) => {
            wrong.push(format!("one set mixes versions {v:?}"))
        }
        Ok(v) if v[0] < acked => {
            wrong.push(format!("set {} behind the acknowledged {acked}", v[0]))
        }
        Ok(_) => {}
    }
    wrong
}

/// Kills the `how` writer `kills` times at random moments; what each kill left wrong.
fn soak(test: &str, how: &str, kills: usize) -> Vec<String> {
    common::kill_soak(test, how, kills, Duration::from_millis(30), soak_problems)
}

#[test]
fn a_killed_snapshot_writer_leaves_one_whole_set_no_older_than_acknowledged() {
    let test = "a_killed_snapshot_writer_leaves_one_whole_set_no_older_than_acknowledged";
    if let Some(role) = common::role() {
        return soak_writer(&role);
    }
    let kills = 50;
    let wrong = soak(test, "snapshot", kills);
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    common::report(&format!(
        "snapshot soak: {kills} SIGKILLs of a writer of {SOAK_FILES}-file sets; every recovered set one generation, none behind the last acknowledged"
    ));
}

#[test]
fn the_snapshot_soak_catches_a_set_rewritten_in_place() {
    let test = "the_snapshot_soak_catches_a_set_rewritten_in_place";
    if let Some(role) = common::role() {
        return soak_writer(&role);
    }
    let kills = 50;
    let wrong = soak(test, "naive", kills);
    common::report(&format!(
        "snapshot soak control: {} problems in {kills} kills of a writer that saves each file atomically in one directory",
        wrong.len()
    ));
    assert!(
        !wrong.is_empty(),
        "no mixed set in {kills} kills: the soak cannot fail"
    );
}
