#![cfg(all(unix, feature = "json"))]
//! Ordering between writers: `update_locked` across processes and threads, the
//! generation check that turns a lost update into `Error::Conflict`, the writer lock's
//! release when its holder is killed, timeouts, and lock errors.
//!
//! The counter workloads run 8 processes × 500 attempts on one file, each process a
//! re-run of this test binary (see `common::child`), started together by a "go" file.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use atomic_persist::lock::Lock;
use atomic_persist::{Durability, Error, Op, Persisted};
use serde::{Deserialize, Serialize};

const PROCESSES: usize = 8;
const ATTEMPTS: u64 = 500;

/// A counter handle: no fsync (ordering does not depend on durability, and 4,000
/// durable saves would only slow the test down).
fn counter(path: &Path, envelope: bool) -> atomic_persist::PersistedBuilder<u64> {
    Persisted::<u64>::builder(path)
        .envelope(envelope)
        .durability(Durability::None)
}

/// Runs `PROCESSES` children of `test`, each with `role`, released together; returns
/// the `key=value` numbers each printed on its `done` line, summed.
fn run_workload(test: &str, dir: &Path, role: &str) -> (u64, u64) {
    let go = dir.join("go");
    let children: Vec<Child> = (0..PROCESSES)
        .map(|_| {
            common::child(test, role)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    fs::write(&go, b"").unwrap();
    let (mut committed, mut conflicts) = (0, 0);
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let done = stdout.lines().find_map(|l| l.strip_prefix("done "));
        let (Some(done), true) = (done, out.status.success()) else {
            panic!(
                "child failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        };
        for field in done.split(' ') {
            let (key, value) = field.split_once('=').unwrap();
            let value: u64 = value.parse().unwrap();
            match key {
                "committed" => committed += value,
                "conflicts" => conflicts += value,
                _ => panic!("{done}"),
            }
        }
    }
    (committed, conflicts)
}

/// In a child: waits for the parent's "go", so the children start together.
fn wait_for_go(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("go").exists() {
        assert!(Instant::now() < deadline, "no go from the parent");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// `kind|dir|envelope` → (kind, dir, envelope).
fn parse_role(role: &str) -> (String, PathBuf, bool) {
    let mut parts = role.split('|');
    let kind = parts.next().unwrap().to_string();
    let dir = PathBuf::from(parts.next().unwrap());
    let envelope = parts.next().unwrap() == "true";
    (kind, dir, envelope)
}

/// The body of a counter child: `ATTEMPTS` increments, the way `kind` says.
fn counter_child(role: &str) {
    let (kind, dir, envelope) = parse_role(role);
    let path = dir.join("counter.json");
    wait_for_go(&dir);
    let (mut committed, mut conflicts) = (0u64, 0u64);
    match kind.as_str() {
        "locked" => {
            let mut p = counter(&path, envelope).open().unwrap();
            for _ in 0..ATTEMPTS {
                p.update_locked(|n| *n += 1).unwrap();
                committed += 1;
            }
        }
        "plain" => {
            // Load, add one, commit: no lock, no envelope, no check.
            for _ in 0..ATTEMPTS {
                let mut p = counter(&path, false).open().unwrap();
                let n = *p;
                p.set(n + 1).unwrap();
                committed += 1;
            }
        }
        "checked" => {
            // The same, with the envelope's generation check and still no lock.
            let mut p = counter(&path, true).open().unwrap();
            for _ in 0..ATTEMPTS {
                p.reload().unwrap();
                let n = *p;
                match p.set(n + 1) {
                    Ok(()) => committed += 1,
                    Err(Error::Conflict {
                        expected, found, ..
                    }) => {
                        assert_ne!(expected, found);
                        conflicts += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }
        other => panic!("unknown kind {other}"),
    }
    println!("done committed={committed} conflicts={conflicts}");
}

fn start_counter(dir: &Path, envelope: bool) -> PathBuf {
    let path = dir.join("counter.json");
    counter(&path, envelope)
        .open_or_default()
        .unwrap()
        .commit()
        .unwrap();
    path
}

#[test]
fn update_locked_from_8_processes_counts_every_increment() {
    let test = "update_locked_from_8_processes_counts_every_increment";
    if let Some(role) = common::role() {
        return counter_child(&role);
    }
    for envelope in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = start_counter(dir.path(), envelope);
        let start = Instant::now();
        let role = format!("locked|{}|{envelope}", dir.path().display());
        let (committed, _) = run_workload(test, dir.path(), &role);
        let p = counter(&path, envelope).open().unwrap();
        common::report(&format!(
            "update_locked (envelope {envelope}): {PROCESSES} processes x {ATTEMPTS} -> {} \
             in {:.1?}",
            *p,
            start.elapsed()
        ));
        assert_eq!(committed, PROCESSES as u64 * ATTEMPTS);
        assert_eq!(*p, PROCESSES as u64 * ATTEMPTS, "envelope {envelope}");
        if envelope {
            // One generation per increment, after the parent's first commit.
            assert_eq!(
                p.meta().unwrap().generation,
                PROCESSES as u64 * ATTEMPTS + 1
            );
        }
        assert!(common::temps(dir.path()).is_empty());
    }
}

#[test]
fn unlocked_load_set_commit_loses_updates() {
    let test = "unlocked_load_set_commit_loses_updates";
    if let Some(role) = common::role() {
        return counter_child(&role);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = start_counter(dir.path(), false);
    let role = format!("plain|{}|false", dir.path().display());
    let (committed, _) = run_workload(test, dir.path(), &role);
    let total = *counter(&path, false).open().unwrap();
    let attempts = PROCESSES as u64 * ATTEMPTS;
    common::report(&format!(
        "unlocked plain load/set/commit: {committed} commits succeeded, counter {total}, \
         {} updates lost silently",
        attempts - total
    ));
    // Every commit said Ok, and yet the counter is short: this workload can fail.
    assert_eq!(committed, attempts);
    assert!(total < attempts, "no update was lost: {total}");
}

#[test]
fn generation_check_turns_every_lost_update_into_a_conflict() {
    let test = "generation_check_turns_every_lost_update_into_a_conflict";
    if let Some(role) = common::role() {
        return counter_child(&role);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = start_counter(dir.path(), true);
    let role = format!("checked|{}|true", dir.path().display());
    let (committed, conflicts) = run_workload(test, dir.path(), &role);
    let p = counter(&path, true).open().unwrap();
    let attempts = PROCESSES as u64 * ATTEMPTS;
    common::report(&format!(
        "unlocked enveloped load/set/commit: counter {}, conflicts {conflicts}, \
         attempts {attempts}",
        *p
    ));
    // Every attempt either reached the file or was refused: none vanished.
    assert_eq!(*p, committed);
    assert_eq!(*p + conflicts, attempts);
    assert_eq!(p.meta().unwrap().generation, committed + 1);
    assert!(conflicts > 0, "no contention: the test proved nothing");
    assert!(common::temps(dir.path()).is_empty());
}

// ---------------------------------------------------------------------------------
// A writer killed while it holds the lock

/// The directory a child blocks in: set only in the child that is to be killed.
static BLOCK_IN: OnceLock<PathBuf> = OnceLock::new();

/// A large value whose `gate` field, once its bytes are streaming into a temporary file
/// (which exists only then), says so and blocks forever.
///
/// With the default options on Linux that file is an anonymous `O_TMPFILE`: it has no
/// name, only an open descriptor, which `/proc/{pid}/fd` shows as `{dir}/#{inode}
/// (deleted)`.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
struct Big {
    n: u64,
    pad: String,
    gate: Gate,
}

#[derive(Deserialize, Default, Debug, PartialEq)]
struct Gate;

impl Serialize for Gate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Some(dir) = BLOCK_IN.get()
            && open_temp(std::process::id(), dir).is_some()
        {
            fs::write(dir.join("writing"), b"").unwrap();
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        s.serialize_unit_struct("Gate")
    }
}

/// The temporary file process `pid` is writing in `dir`: a named temp, or an open
/// anonymous one (its `/proc/{pid}/fd` entry).
fn open_temp(pid: u32, dir: &Path) -> Option<PathBuf> {
    if let Some(named) = common::temps(dir).pop() {
        return Some(named);
    }
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    fds.flatten().map(|fd| fd.path()).find(|fd| {
        fs::read_link(fd).is_ok_and(|target| {
            target.starts_with(dir) && target.to_string_lossy().ends_with(" (deleted)")
        })
    })
}

fn big(path: &Path) -> atomic_persist::PersistedBuilder<Big> {
    Persisted::<Big>::builder(path).envelope(true)
}

#[test]
fn a_writer_killed_while_holding_the_lock_releases_it() {
    let test = "a_writer_killed_while_holding_the_lock_releases_it";
    if let Some(dir) = common::role() {
        let dir = PathBuf::from(dir);
        BLOCK_IN.set(dir.clone()).unwrap();
        let mut p = big(&dir.join("big.json")).open().unwrap();
        p.update_locked(|b| b.n += 1).unwrap();
        unreachable!("the gate blocks");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    // 2 MiB: far more than the stream buffer, so the temporary file has bytes in it
    // when the writer is killed.
    let mut p = big(&path)
        .open_or_else(|| Big {
            n: 1,
            pad: "x".repeat(2 << 20),
            gate: Gate,
        })
        .unwrap();
    p.commit().unwrap();
    let before = fs::read(&path).unwrap();

    let mut child = common::child(test, dir.path().to_str().unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.path().join("writing").exists() {
        assert!(Instant::now() < deadline, "the child never started writing");
        assert!(child.try_wait().unwrap().is_none(), "the child exited");
        std::thread::sleep(Duration::from_millis(5));
    }
    // It holds the lock, with a half-written temporary file: anonymous by default on
    // Linux, so the directory shows no name for it.
    assert!(Lock::try_exclusive(&path).unwrap().is_none());
    let temp = open_temp(child.id(), dir.path()).expect("the child's temporary file");
    assert!(fs::metadata(&temp).unwrap().len() > 0);
    let named = common::temps(dir.path());
    assert_eq!(
        named.len(),
        usize::from(!cfg!(target_os = "linux")),
        "{named:?}"
    );

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The kernel released the lock; the file is the old complete version.
    assert!(Lock::try_exclusive(&path).unwrap().is_some());
    assert_eq!(fs::read(&path).unwrap(), before);
    // The next writer proceeds (a timeout, so a held lock fails instead of hanging).
    let mut next = big(&path)
        .lock_timeout(Duration::from_secs(10))
        .open()
        .unwrap();
    next.update_locked(|b| b.n += 1).unwrap();
    let reread = big(&path).open().unwrap();
    assert_eq!(reread.n, 2);
    assert_eq!(reread.meta().unwrap().generation, 2);
    assert!(atomic_persist::envelope::verify(&path).unwrap().is_some());
    // The dead writer's anonymous temporary file went with it (a named one would have
    // been removed by the next open); the lock file stays.
    assert_eq!(atomic_persist::sweep(dir.path()).unwrap().count(), 0);
    common::assert_only(dir.path(), &[".big.json.lock", "big.json", "writing"]);
}

// ---------------------------------------------------------------------------------
// Timeouts, try-lock, lock errors

fn assert_locked<T: std::fmt::Debug>(result: atomic_persist::Result<T>, data: &Path) {
    match result {
        Err(Error::Locked { path }) => assert_eq!(path, Lock::path_for(data)),
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn lock_timeout_gives_locked_naming_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let wait = Duration::from_millis(200);
    let mut locked = counter(&path, false)
        .lock_timeout(wait)
        .open_or_default()
        .unwrap();
    let mut every_commit = counter(&path, false)
        .lock(true)
        .lock_timeout(wait)
        .open_or_default()
        .unwrap();
    let mut enveloped = counter(&dir.path().join("e.json"), true)
        .lock_timeout(wait)
        .open_or_default()
        .unwrap();
    locked.set(1).unwrap();
    enveloped.set(1).unwrap();
    let before = fs::read(&path).unwrap();

    let other = Lock::exclusive(&path).unwrap(); // another writer holds both files' locks
    let other_e = Lock::exclusive(dir.path().join("e.json")).unwrap();
    let start = Instant::now();
    assert_locked(locked.update_locked(|n| *n += 1), &path);
    assert!(start.elapsed() >= wait);
    assert_locked(every_commit.set(7), &path);
    // An enveloped commit takes the lock for its check and rename, even unasked.
    assert_locked(enveloped.set(2), &dir.path().join("e.json"));
    // Nothing was written, no temporary file is left.
    assert_eq!(fs::read(&path).unwrap(), before);
    assert!(common::temps(dir.path()).is_empty());
    assert_eq!(
        *counter(&dir.path().join("e.json"), true).open().unwrap(),
        1
    );

    // Readers never need the lock.
    assert_eq!(*Persisted::<u64>::open(&path).unwrap(), 1);

    drop((other, other_e));
    // The in-memory values were left as they were: the file is reloaded under the lock.
    locked.update_locked(|n| *n += 1).unwrap();
    assert_eq!(*locked, 2);
    enveloped.commit().unwrap();
    assert_eq!(
        *counter(&dir.path().join("e.json"), true).open().unwrap(),
        2
    );
}

#[test]
fn zero_timeout_tries_once_and_the_default_waits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let mut try_once = counter(&path, false)
        .lock_timeout(Duration::ZERO)
        .open_or_default()
        .unwrap();
    let mut waits = counter(&path, false).open_or_default().unwrap();

    let held = Lock::exclusive(&path).unwrap();
    let start = Instant::now();
    assert_locked(try_once.update_locked(|n| *n += 1), &path);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    let hold = Duration::from_millis(300);
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(hold);
        drop(held);
    });
    let start = Instant::now();
    waits.update_locked(|n| *n += 1).unwrap();
    assert!(start.elapsed() >= hold);
    releaser.join().unwrap();
    try_once.update_locked(|n| *n += 1).unwrap();
    assert_eq!(*try_once, 2);
}

#[test]
fn locking_in_a_read_only_directory_is_a_typed_error() {
    let test = "locking_in_a_read_only_directory_is_a_typed_error";
    let fs = match common::Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => return common::skip(test, &why),
    };
    let path = fs.path.join("n.json");
    let locked_before = fs.path.join("l.json");
    counter(&path, false)
        .open_or_default()
        .unwrap()
        .set(1)
        .unwrap();
    let mut l = counter(&locked_before, true).open_or_default().unwrap();
    l.set(1).unwrap(); // makes its lock file
    fs.remount_read_only();

    // No lock file and no way to make one: a lock error naming the lock file.
    let mut p = counter(&path, false).open().unwrap();
    match p.update_locked(|n| *n += 1).unwrap_err() {
        Error::Io {
            op: Op::Lock,
            path: lock,
            source,
        } => {
            assert_eq!(lock, Lock::path_for(&path));
            assert_eq!(source.raw_os_error(), Some(libc::EROFS), "{source}");
        }
        other => panic!("expected Io(Lock), got {other:?}"),
    }
    // An existing lock file can still be locked (read-only): then the write itself fails.
    match l.update_locked(|n| *n += 1).unwrap_err() {
        Error::Io {
            op: Op::CreateTemp, ..
        } => {}
        other => panic!("expected Io(CreateTemp), got {other:?}"),
    }
    // Readers are unaffected.
    assert_eq!(*counter(&path, false).open().unwrap(), 1);
    assert_eq!(*counter(&locked_before, true).open().unwrap(), 1);
}

// ---------------------------------------------------------------------------------
// Two handles in one process

#[test]
fn two_handles_in_one_process_conflict_or_take_turns() {
    let dir = tempfile::tempdir().unwrap();
    let path = start_counter(dir.path(), true); // 0, generation 1
    let mut a = counter(&path, true).open().unwrap();
    let mut b = counter(&path, true).open().unwrap();
    a.set(1).unwrap();
    match b.set(5).unwrap_err() {
        Error::Conflict {
            path: p,
            expected,
            found,
        } => {
            assert_eq!((p.as_path(), expected, found), (path.as_path(), 1, 2));
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(*counter(&path, true).open().unwrap(), 1);
    // update_locked reloads what a wrote before applying its change.
    b.update_locked(|n| *n += 10).unwrap();
    assert_eq!(*b, 11);
    assert_eq!(b.meta().unwrap().generation, 3);
    // An unchanged value is not "already saved" when the file moved on: a conflict,
    // not a silent Ok.
    assert!(matches!(
        a.commit(),
        Err(Error::Conflict {
            expected: 2,
            found: 3,
            ..
        })
    ));
    a.reload().unwrap();
    a.commit().unwrap(); // now it is the version on disk: nothing to do

    // Threads, each with its own handle, take turns like processes.
    for envelope in [false, true] {
        let path = dir.path().join(format!("threads-{envelope}.json"));
        counter(&path, envelope)
            .open_or_default()
            .unwrap()
            .commit()
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let mut p = counter(&path, envelope).open().unwrap();
                    for _ in 0..250 {
                        p.update_locked(|n| *n += 1).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*counter(&path, envelope).open().unwrap(), 1000);
    }
}

#[test]
fn a_touched_file_is_the_same_version_a_deleted_one_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let path = start_counter(dir.path(), true);
    let mut p = counter(&path, true).open().unwrap();
    p.set(1).unwrap();

    // A new mtime (or a copy put back) is not a new version: meta and payload are equal.
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    drop(f);
    let ino = fs::metadata(&path).unwrap().ino();
    p.commit().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().ino(), ino, "nothing written");
    p.set(2).unwrap();
    assert_eq!(p.meta().unwrap().generation, 3);

    // A deleted file: the deletion was a change too.
    fs::remove_file(&path).unwrap();
    assert!(matches!(
        p.set(3),
        Err(Error::Conflict {
            expected: 3,
            found: 0,
            ..
        })
    ));
    assert!(!path.exists());
    assert!(matches!(
        p.update_locked(|n| *n += 1),
        Err(Error::NotFound { .. })
    ));
    p.force_commit().unwrap();
    let q = counter(&path, true).open().unwrap();
    // The value of the refused set, at the generation after the deleted file's.
    assert_eq!((*q, q.meta().unwrap().generation), (3, 4));

    // A handle that never saw a file expects none.
    let mut fresh = counter(&dir.path().join("new.json"), true)
        .open_or_default()
        .unwrap();
    counter(&dir.path().join("new.json"), true)
        .open_or_default()
        .unwrap()
        .set(1)
        .unwrap();
    assert!(matches!(
        fresh.set(2),
        Err(Error::Conflict {
            expected: 0,
            found: 1,
            ..
        })
    ));
}

#[test]
fn force_commit_overwrites_and_keeps_generations_increasing() {
    let dir = tempfile::tempdir().unwrap();
    let path = start_counter(dir.path(), true);
    let mut stale = counter(&path, true).open().unwrap(); // generation 1
    let mut busy = counter(&path, true).open().unwrap();
    for n in 1..=4 {
        busy.set(n).unwrap(); // generations 2..=5
    }
    *stale.get_mut() = 100;
    assert!(matches!(stale.commit(), Err(Error::Conflict { .. })));
    stale.force_commit().unwrap();
    let q = counter(&path, true).open().unwrap();
    assert_eq!((*q, q.meta().unwrap().generation), (100, 6));
    // The overwritten writer learns of it at its next commit.
    assert!(matches!(
        busy.set(5),
        Err(Error::Conflict {
            expected: 5,
            found: 6,
            ..
        })
    ));
}

#[test]
fn without_the_envelope_commit_does_not_check_and_the_last_writer_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = start_counter(dir.path(), false);
    let mut a = counter(&path, false).open().unwrap();
    let mut b = counter(&path, false).open().unwrap();
    a.set(1).unwrap();
    b.set(2).unwrap(); // no generation to check: overwrites a's 1
    assert_eq!(*counter(&path, false).open().unwrap(), 2);
    // a's value is unchanged since a's own commit, but the file moved on: a commit of
    // it must write it back, not skip.
    a.commit().unwrap();
    let mut text = String::new();
    fs::File::open(&path)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text.trim(), "1");
    // No lock file for plain commits that do not lock.
    common::assert_only(dir.path(), &["counter.json"]);
}
