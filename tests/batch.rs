//! `Batch`: each file replaced atomically, durable together; what a failure leaves; the
//! flushes a commit makes (strace, against a loop of `write_atomic`); a SIGKILL soak.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atomic_persist::{Batch, BatchSync, Durability, Error, WriteOptions};

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn commit_replaces_every_staged_file_across_directories() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(a.join("old.txt"), b"old").unwrap();
    let mut batch = Batch::new();
    batch.write(a.join("old.txt"), b"new").unwrap();
    batch.write(b.join("fresh.txt"), b"fresh").unwrap();
    writeln!(batch.create(a.join("streamed.txt")).unwrap(), "streamed").unwrap();
    assert_eq!(batch.len(), 3);
    batch.commit().unwrap();
    assert_eq!(read(&a.join("old.txt")), b"new");
    assert_eq!(read(&b.join("fresh.txt")), b"fresh");
    assert_eq!(read(&a.join("streamed.txt")), b"streamed\n");
    common::assert_only(&a, &["old.txt", "streamed.txt"]);
    common::assert_only(&b, &["fresh.txt"]);
}

#[test]
fn no_destination_changes_before_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, b"old").unwrap();
    let mut batch = Batch::new();
    batch.write(&path, b"new").unwrap();
    batch.write(dir.path().join("other.json"), b"x").unwrap();
    assert_eq!(read(&path), b"old");
    assert!(!dir.path().join("other.json").exists());
    batch.commit().unwrap();
    assert_eq!(read(&path), b"new");
}

#[test]
fn a_dropped_batch_removes_its_temporary_files_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, b"old").unwrap();
    // Named temps, so that they are there to be seen before the drop.
    let mut batch = Batch::with_options(WriteOptions::new().anonymous_temp(false));
    batch.write(&path, b"new").unwrap();
    batch.write(dir.path().join("b.json"), b"b").unwrap();
    assert_eq!(common::temps(dir.path()).len(), 2, "staged as temps");
    drop(batch);
    common::assert_only(dir.path(), &["state.json"]);
    assert_eq!(read(&path), b"old");
}

#[test]
fn abort_removes_the_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut batch = Batch::with_options(WriteOptions::new().anonymous_temp(false));
    batch.write(dir.path().join("a"), b"a").unwrap();
    batch.abort().unwrap();
    common::assert_only(dir.path(), &[]);
}

#[test]
fn staging_a_destination_again_replaces_what_was_staged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut batch = Batch::with_options(WriteOptions::new().anonymous_temp(false));
    batch.write(&path, b"first").unwrap();
    batch.write(&path, b"second").unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(common::temps(dir.path()).len(), 1, "the first temp is gone");
    batch.commit().unwrap();
    assert_eq!(read(&path), b"second");
}

#[test]
fn an_empty_batch_commits_nothing() {
    let batch = Batch::new();
    assert!(batch.is_empty());
    batch.commit().unwrap();
}

#[test]
fn a_failure_before_any_rename_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let mut batch = Batch::with_options(WriteOptions::new().no_clobber(true));
    batch.write(&a, b"a").unwrap();
    batch.write(&b, b"b").unwrap();
    std::fs::write(&a, b"someone else's").unwrap(); // the first rename must fail
    match batch.commit() {
        Err(Error::AlreadyExists { path }) => assert_eq!(path, a),
        other => panic!("{other:?}"),
    }
    assert_eq!(read(&a), b"someone else's");
    assert!(!b.exists());
    common::assert_only(dir.path(), &["a.json"]);
}

#[test]
fn a_failure_during_the_renames_lists_the_files_committed() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["a.json", "b.json", "c.json"];
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();
    let mut batch = Batch::with_options(WriteOptions::new().no_clobber(true));
    for p in &paths {
        batch.write(p, b"new").unwrap();
    }
    std::fs::write(&paths[1], b"theirs").unwrap();
    match batch.commit() {
        Err(Error::Batch { committed, source }) => {
            assert_eq!(committed, [paths[0].clone()]);
            assert!(matches!(*source, Error::AlreadyExists { ref path } if *path == paths[1]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read(&paths[0]), b"new");
    assert_eq!(read(&paths[1]), b"theirs");
    assert!(!paths[2].exists(), "not renamed after the failure");
    common::assert_only(dir.path(), &names[..2]);
}

#[test]
fn a_batch_error_names_the_failed_file_and_its_category() {
    let e = Error::Batch {
        committed: vec!["a".into()],
        source: Box::new(Error::AlreadyExists { path: "b".into() }),
    };
    assert_eq!(e.path(), Path::new("b"));
    assert_eq!(e.category(), atomic_persist::Category::Concurrency);
    assert!(
        e.to_string()
            .starts_with("batch stopped with 1 of its files committed: ")
    );
}

#[test]
fn each_file_keeps_its_mode_as_a_single_save_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.json");
    std::fs::write(&path, b"old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut batch = Batch::new();
    batch.write(&path, b"new").unwrap();
    batch.write(dir.path().join("new.json"), b"n").unwrap();
    batch.commit().unwrap();
    assert_eq!(common::mode(&path) & 0o7777, 0o640);
    let single = dir.path().join("single.json");
    atomic_persist::write_atomic(&single, b"n").unwrap();
    assert_eq!(
        common::mode(&dir.path().join("new.json")),
        common::mode(&single),
        "a new file gets the mode write_atomic gives"
    );
}

// ---------------------------------------------------------------------------------
// Typed handles in a batch

fn enveloped(path: &Path) -> atomic_persist::Persisted<u64> {
    atomic_persist::Persisted::<u64>::builder(path)
        .envelope(true)
        .open_or_default()
        .unwrap()
}

#[test]
fn staged_handles_are_committed_by_the_batch_and_hold_the_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let (mut a, mut b) = (enveloped(&pa), enveloped(&pb));
    *a.get_mut() = 1;
    *b.get_mut() = 2;
    let mut batch = Batch::new();
    a.stage(&mut batch).unwrap();
    b.stage(&mut batch).unwrap();
    batch.write(dir.path().join("raw.bin"), b"raw").unwrap();
    batch.commit().unwrap();
    assert_eq!(*enveloped(&pa), 1);
    assert_eq!(*enveloped(&pb), 2);
    assert_eq!(a.meta().unwrap().generation, 1);
    // The handle knows the version the batch wrote: its next commit is no conflict.
    a.set(3).unwrap();
    assert_eq!(a.meta().unwrap().generation, 2);
}

#[test]
fn an_unchanged_handle_stages_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    let mut a = enveloped(&path);
    a.set(5).unwrap();
    let mut batch = Batch::new();
    a.stage(&mut batch).unwrap();
    assert!(batch.is_empty());
}

#[test]
fn staging_a_handle_another_writer_overtook_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.json");
    let mut mine = enveloped(&path);
    enveloped(&path).set(9).unwrap(); // another writer
    *mine.get_mut() = 1;
    let mut batch = Batch::new();
    match mine.stage(&mut batch) {
        Err(Error::Conflict {
            expected: 0,
            found: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_conflict_found_before_the_renames_stops_the_batch_before_any_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (dir.path().join("a.json"), dir.path().join("b.json"));
    let (mut a, mut b) = (enveloped(&pa), enveloped(&pb));
    *a.get_mut() = 1;
    *b.get_mut() = 2;
    let mut batch = Batch::new();
    a.stage(&mut batch).unwrap();
    b.stage(&mut batch).unwrap();
    batch.write(dir.path().join("raw.bin"), b"raw").unwrap();
    enveloped(&pb).set(7).unwrap(); // another writer, after staging
    match batch.commit() {
        Err(Error::Conflict { path, .. }) => assert_eq!(path, pb),
        other => panic!("{other:?}"),
    }
    assert!(!pa.exists(), "a was not renamed");
    assert!(!dir.path().join("raw.bin").exists());
    assert_eq!(*enveloped(&pb), 7, "the other writer's commit stands");
    assert!(common::temps(dir.path()).is_empty());
}

// ---------------------------------------------------------------------------------
// Flushes, counted with strace

/// Files per traced batch.
const FILES: usize = 100;

/// The traced cases: a label and how the child saves `FILES` files into its directory.
const CASES: [&str; 7] = [
    "loop-of-write_atomic",
    "batch-filesystem",
    "batch-each-file",
    "batch-filesystem-three-dirs",
    "batch-data",
    "batch-none",
    "batch-mixed",
];

fn save_case(case: &str, dir: &Path) {
    let dirs: Vec<PathBuf> = match case {
        "batch-filesystem-three-dirs" => (0..3).map(|i| dir.join(format!("d{i}"))).collect(),
        _ => vec![dir.to_path_buf()],
    };
    for d in &dirs {
        std::fs::create_dir_all(d).unwrap();
    }
    let path = |i: usize| dirs[i % dirs.len()].join(format!("f{i}"));
    if case == "loop-of-write_atomic" {
        for i in 0..FILES {
            atomic_persist::write_atomic(path(i), [i as u8; 64]).unwrap();
        }
        return;
    }
    if case == "batch-mixed" {
        // Handles that ask for no sync (`None`) and no directory sync (`Data`) staged
        // first, a file that asks for both after.
        let handle = |i: usize, durability| {
            let mut p = atomic_persist::Persisted::<u64>::builder(path(i).with_extension("json"))
                .durability(durability)
                .open_or_default()
                .unwrap();
            *p.get_mut() = 1;
            p
        };
        let (mut none, mut data) = (handle(0, Durability::None), handle(1, Durability::Data));
        let mut batch = Batch::new();
        none.stage(&mut batch).unwrap();
        data.stage(&mut batch).unwrap();
        batch.write(path(2), [1; 64]).unwrap();
        batch.commit().unwrap();
        return;
    }
    let options = match case {
        "batch-data" => WriteOptions::new().durability(Durability::Data),
        "batch-none" => WriteOptions::new().durability(Durability::None),
        _ => WriteOptions::new(),
    };
    let sync = match case {
        "batch-each-file" => BatchSync::EachFile,
        _ => BatchSync::Filesystem,
    };
    let mut batch = Batch::with_options(options).sync(sync);
    for i in 0..FILES {
        batch.write(path(i), [i as u8; 64]).unwrap();
    }
    batch.commit().unwrap();
}

/// Per case: the flushing calls in order (`syncfs`, `fdatasync`, `fsync`), with
/// `rename` marking where the first rename came.
fn flushes(log: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
    let mut current = None::<String>;
    for call in common::strace::parse(log) {
        if let Some(case) = call
            .quoted()
            .and_then(|p| p.strip_prefix("/nonexistent/case-"))
        {
            current = Some(case.to_owned());
            out.insert(case.to_owned(), Vec::new());
            continue;
        }
        let Some(calls) = current.as_ref().and_then(|c| out.get_mut(c)) else {
            continue;
        };
        match call.name.as_str() {
            "fsync" | "fdatasync" | "syncfs" | "sync" | "sync_file_range" | "msync" => {
                calls.push(call.name.clone())
            }
            "rename" | "renameat" | "renameat2" if call.ok() => calls.push("rename".into()),
            _ => {}
        }
    }
    out
}

/// How many of `calls` are `name`.
fn count(calls: &[String], name: &str) -> usize {
    calls.iter().filter(|c| *c == name).count()
}

#[test]
fn a_batch_commit_flushes_twice_where_a_loop_flushes_twice_per_file() {
    let test = "a_batch_commit_flushes_twice_where_a_loop_flushes_twice_per_file";
    if let Some(dir) = common::role() {
        for case in CASES {
            let _ = std::fs::File::open(format!("/nonexistent/case-{case}"));
            save_case(case, &Path::new(&dir).join(case));
        }
        println!("batch-ok");
        return;
    }
    let trace = common::strace::FLUSHES_AND_RENAMES;
    let Some(run) = common::trace_in_workdir(test, trace, "batch-ok") else {
        return;
    };
    let seen = flushes(&run.log);
    let flush_count = |c: &[String]| c.iter().filter(|n| *n != "rename").count();
    let get = |case: &str| seen.get(case).cloned().unwrap_or_default();
    // The control: a loop of single saves flushes each file and each rename (and on
    // btrfs each file's data once more, after its anonymous temp is linked).
    let per_file = if common::is_btrfs(&run.work) { 3 } else { 2 };
    let looped = get("loop-of-write_atomic");
    assert_eq!(flush_count(&looped), per_file * FILES, "{looped:?}");
    // One syncfs, before every rename; then the one directory.
    let batch = get("batch-filesystem");
    let first_rename = batch.iter().position(|c| c == "rename");
    assert_eq!(
        batch.first().map(String::as_str),
        Some("syncfs"),
        "{batch:?}"
    );
    assert_eq!(
        first_rename,
        Some(1),
        "the data is durable before any rename"
    );
    assert_eq!(
        (flush_count(&batch), count(&batch, "fsync")),
        (2, 1),
        "{batch:?}"
    );
    assert_eq!(
        batch.last().map(String::as_str),
        Some("fsync"),
        "the directory, last"
    );
    // Each file's fdatasync, all before the renames; then the directory.
    let each = get("batch-each-file");
    assert_eq!(count(&each, "fdatasync"), FILES, "{each:?}");
    assert!(each[..FILES].iter().all(|c| c == "fdatasync"), "{each:?}");
    assert_eq!(
        (count(&each, "fsync"), each.last().unwrap().as_str()),
        (1, "fsync")
    );
    // Three directories: one syncfs, one fsync each.
    let three = get("batch-filesystem-three-dirs");
    assert_eq!(
        (count(&three, "syncfs"), count(&three, "fsync")),
        (1, 3),
        "{three:?}"
    );
    assert_eq!(flush_count(&three), 4, "{three:?}");
    // The filesystem and the directory are synced once a file that asks for it is in
    // them, whatever came first.
    let mixed = get("batch-mixed");
    assert_eq!(
        (count(&mixed, "syncfs"), count(&mixed, "fsync")),
        (1, 1),
        "{mixed:?}"
    );
    // Data: no directory sync; None: no flush at all.
    assert_eq!(
        flush_count(&get("batch-data")),
        1,
        "{:?}",
        get("batch-data")
    );
    assert_eq!(
        flush_count(&get("batch-none")),
        0,
        "{:?}",
        get("batch-none")
    );
}

// ---------------------------------------------------------------------------------
// Every syscall of a commit failed in turn

/// The files of the fault sweep: two that exist, one that does not.
const FAULT_FILES: [&str; 3] = ["f0", "f1", "f2"];
const OLD: &[u8] = b"old contents";
const NEW: &[u8] = b"new contents, longer";

/// The sweep's child: one batch commit of `FAULT_FILES` in `dir`, between markers;
/// prints its outcome: `ok`, `batch K` (K committed) or `err OP`. `naive` writes each
/// file in place instead.
fn fault_writer(role: &str) {
    let (how, dir) = role.split_once(':').unwrap();
    let dir = PathBuf::from(dir);
    let how = how.to_owned();
    // On a thread of its own, traced alone.
    let outcome = std::thread::spawn(move || {
        common::traced::wait_for_tracer();
        fault_commit(&how, &dir)
    })
    .join()
    .unwrap();
    println!("outcome {outcome}");
    println!("fault-ok");
}

/// The commit the sweep faults, between markers; its outcome.
fn fault_commit(how: &str, dir: &Path) -> String {
    let _ = std::fs::File::open("/nonexistent/batch-begin");
    let outcome = if how == "naive" {
        let r = FAULT_FILES
            .iter()
            .try_for_each(|f| std::fs::write(dir.join(f), NEW));
        match r {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("err {:?}", e.kind()),
        }
    } else {
        let mut batch = Batch::new();
        let staged = FAULT_FILES
            .iter()
            .try_for_each(|f| batch.write(dir.join(f), NEW));
        match staged.and_then(|()| batch.commit()) {
            Ok(()) => "ok".to_owned(),
            Err(Error::Batch { committed, .. }) => format!("batch {}", committed.len()),
            Err(Error::Io { op, .. }) => format!("err {op:?}"),
            Err(e) => format!("err {e:?}"),
        }
    };
    let _ = std::fs::File::open("/nonexistent/batch-end");
    outcome
}

/// The files before a run: `f0` and `f1` old, `f2` absent.
fn fault_prepare(dir: &Path) {
    std::fs::write(dir.join("f0"), OLD).unwrap();
    std::fs::write(dir.join("f1"), OLD).unwrap();
}

/// What is wrong with the files after a run whose child said `outcome`.
fn fault_problems(dir: &Path, outcome: &str) -> Vec<String> {
    let state: Vec<&str> = FAULT_FILES
        .iter()
        .map(|f| match std::fs::read(dir.join(f)) {
            Ok(b) if b == NEW => "new",
            Ok(b) if b == OLD => "old",
            Err(_) => "absent",
            Ok(_) => "torn",
        })
        .collect();
    let before = ["old", "old", "absent"];
    let want: Vec<&str> = match outcome.split_once(' ') {
        Some(("batch", k)) => {
            let k: usize = k.parse().unwrap();
            (0..3)
                .map(|i| if i < k { "new" } else { before[i] })
                .collect()
        }
        // Only the directory sync after the renames failed: every file is new.
        _ if outcome == "ok" || outcome == "err SyncDir" => vec!["new"; 3],
        _ => before.to_vec(),
    };
    let mut problems = Vec::new();
    if state != want {
        problems.push(format!("outcome {outcome}: files {state:?}, want {want:?}"));
    }
    let mut names: Vec<String> = common::names(dir)
        .iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    names.retain(|n| !FAULT_FILES.contains(&n.as_str()));
    if !names.is_empty() {
        problems.push(format!("outcome {outcome}: left behind {names:?}"));
    }
    problems
}

/// Runs the sweep with the `how` writer; returns the faults tried and what was wrong.
fn fault_sweep(test: &str, how: &str) -> (usize, Vec<String>) {
    let markers = ("/nonexistent/batch-begin", "/nonexistent/batch-end");
    common::traced::sweep(test, how, markers, fault_prepare, fault_problems)
}

#[test]
fn every_failed_syscall_of_a_commit_leaves_each_file_old_or_new_as_the_error_says() {
    let test = "every_failed_syscall_of_a_commit_leaves_each_file_old_or_new_as_the_error_says";
    if let Some(role) = common::role() {
        return fault_writer(&role);
    }
    if !common::have_strace() {
        return common::skip(test, "strace is not installed");
    }
    let (tried, problems) = fault_sweep(test, "batch");
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    common::report(&format!(
        "batch fault sweep: {tried} faults (each syscall of a 3-file commit, alone, with each of EIO, ENOSPC, EDQUOT, EACCES); each time every file old or new as the outcome says, nothing left behind"
    ));
}

#[test]
fn the_batch_fault_sweep_catches_files_written_in_place() {
    let test = "the_batch_fault_sweep_catches_files_written_in_place";
    if let Some(role) = common::role() {
        return fault_writer(&role);
    }
    if !common::have_strace() {
        return common::skip(test, "strace is not installed");
    }
    let (tried, problems) = fault_sweep(test, "naive");
    common::report(&format!(
        "batch fault sweep control: {} problems in {tried} faults",
        problems.len()
    ));
    assert!(
        !problems.is_empty(),
        "the sweep found nothing wrong with an in-place writer"
    );
}

// ---------------------------------------------------------------------------------
// Killed writers

/// Files per batch of the soak.
const SOAK_FILES: usize = 8;

/// The soak's child: commits batch after batch of `SOAK_FILES` files, each holding the
/// batch's number, printing `ack N` after each; `naive` writes each file in place.
fn soak_writer(role: &str) {
    let (how, dir) = role.split_once(':').unwrap();
    let dir = PathBuf::from(dir);
    for version in 1.. {
        let bytes = common::version_bytes(version);
        let path = |i: usize| dir.join(format!("f{i}"));
        if how == "naive" {
            for i in 0..SOAK_FILES {
                std::fs::write(path(i), &bytes).unwrap();
            }
        } else {
            let mut batch = Batch::new();
            for i in 0..SOAK_FILES {
                batch.write(path(i), &bytes).unwrap();
            }
            batch.commit().unwrap();
        }
        println!("ack {version}");
    }
}

/// What a kill left wrong in `dir`: a file that is not one whole version, or one behind
/// the last acknowledged batch, or debris that `sweep` does not remove.
fn soak_problems(dir: &Path, acked: u64) -> Vec<String> {
    let mut wrong = Vec::new();
    for i in 0..SOAK_FILES {
        match common::parse_version(&read(&dir.join(format!("f{i}")))) {
            Err(e) => wrong.push(format!("f{i} is not one whole version: {e}")),
            Ok(v) if v < acked => wrong.push(format!(
                "f{i} holds version {v}, but batch {acked} was acknowledged"
            )),
            Ok(v) if v > acked + 1 => wrong.push(format!("f{i} is from the future")),
            Ok(_) => {}
        }
    }
    atomic_persist::sweep(dir).unwrap();
    let left = common::names(dir).len();
    if left != SOAK_FILES {
        wrong.push(format!("{left} names left after sweep"));
    }
    wrong
}

/// Kills the `how` writer `kills` times at random moments; what each kill left wrong.
fn soak(test: &str, how: &str, kills: usize) -> Vec<String> {
    common::kill_soak(test, how, kills, Duration::from_millis(40), soak_problems)
}

#[test]
fn a_killed_batch_writer_leaves_each_file_complete_and_loses_no_acknowledged_batch() {
    let test = "a_killed_batch_writer_leaves_each_file_complete_and_loses_no_acknowledged_batch";
    if let Some(role) = common::role() {
        return soak_writer(&role);
    }
    let kills = 60;
    let wrong = soak(test, "batch", kills);
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    common::report(&format!(
        "batch soak: {kills} SIGKILLs of a writer of {SOAK_FILES}-file batches; every file one \
         whole version, none behind the last acknowledged batch, no debris after sweep"
    ));
}

#[test]
fn the_batch_soak_catches_a_writer_that_writes_in_place() {
    let test = "the_batch_soak_catches_a_writer_that_writes_in_place";
    if let Some(role) = common::role() {
        return soak_writer(&role);
    }
    let kills = 60;
    let wrong = soak(test, "naive", kills);
    common::report(&format!(
        "batch soak control: {} problems in {kills} kills of a naive writer",
        wrong.len()
    ));
    assert!(
        !wrong.is_empty(),
        "no torn file from a naive writer in {kills} kills: the soak cannot fail"
    );
}
