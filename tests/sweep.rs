//! `sweep`: removes the temporary files that killed writers left behind, never one a live
//! writer still owns, and nothing that is not a temporary file; returns how many.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use atomic_persist::{WriteOptions, sweep, write_atomic};

type Out = BufReader<std::process::ChildStdout>;

/// Starts a child that opens a save of `path`, writes into it, prints its temp path and
/// then waits for its stdin to close. Returns the child, its stdout and the temp path.
#[allow(
    clippy::zombie_processes,
    reason = "the caller kills or waits for the child"
)]
fn writer_child(test: &str, path: &Path) -> (std::process::Child, Out, PathBuf) {
    let mut child = common::child(test, path.to_str().unwrap())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("the writer child exited early: {status}");
        }
        if let Some(p) = line.trim_end().strip_prefix("temp ") {
            return (child, out, PathBuf::from(p));
        }
    }
}

/// The child's side of [`writer_child`]; commits when its stdin closes cleanly.
fn be_writer_child(path: &str) {
    let mut f = WriteOptions::new()
        .anonymous_temp(false)
        .create(path)
        .unwrap();
    f.write_all(b"from the child").unwrap();
    f.flush().unwrap();
    println!("temp {}", f.temp_path().unwrap().display());
    let mut rest = String::new();
    let _ = std::io::stdin().read_line(&mut rest);
    f.commit().unwrap();
    println!("committed");
}

#[test]
fn sweep_removes_the_temp_of_a_sigkilled_writer() {
    let test = "sweep_removes_the_temp_of_a_sigkilled_writer";
    if let Some(path) = common::role() {
        return be_writer_child(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, b"old").unwrap();
    let (mut child, _out, temp) = writer_child(test, &path);
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    assert!(temp.exists(), "the killed writer's temp is debris");
    assert_eq!(common::temps(dir.path()), vec![temp.clone()]);
    assert_eq!(sweep(dir.path()).unwrap().count(), 1);
    assert!(!temp.exists());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    common::assert_only(dir.path(), &["state.json"]);
    assert_eq!(
        sweep(dir.path()).unwrap().count(),
        0,
        "nothing left to sweep"
    );
}

#[test]
fn sweep_spares_the_temp_of_a_live_writer_in_this_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, b"old").unwrap();
    for anonymous in [false, true] {
        let mut f = WriteOptions::new()
            .anonymous_temp(anonymous)
            .create(&path)
            .unwrap();
        f.write_all(b"first half, ").unwrap();
        let temp = f.temp_path();
        assert_eq!(sweep(dir.path()).unwrap().count(), 0);
        if let Some(temp) = &temp {
            assert!(temp.exists(), "sweep removed a live temp");
        }
        f.write_all(b"second half").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first half, second half");
        common::assert_only(dir.path(), &["state.json"]);
    }
}

#[test]
fn sweep_spares_the_temp_of_a_live_writer_in_another_process() {
    let test = "sweep_spares_the_temp_of_a_live_writer_in_another_process";
    if let Some(path) = common::role() {
        return be_writer_child(&path);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, b"old").unwrap();
    let (mut child, mut stdout, temp) = writer_child(test, &path);
    assert_eq!(sweep(dir.path()).unwrap().count(), 0);
    assert!(temp.exists(), "sweep removed a live writer's temp");
    drop(child.stdin.take()); // let the writer commit
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(out.contains("committed"), "{out}");
    assert_eq!(std::fs::read(&path).unwrap(), b"from the child");
    common::assert_only(dir.path(), &["state.json"]);
}

#[test]
fn sweep_counts_what_it_removes_and_ignores_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Debris in the engine's exact shape `.{name}.{12 of a-z2-7}.tmp`, nobody holding it.
    let debris = [
        ".state.json.abcdefghijkl.tmp",
        ".state.json.234567234567.tmp",
        ".other.bin.zzzzzzzzzzzz.tmp",
    ];
    for n in debris {
        std::fs::write(d.join(n), b"debris").unwrap();
    }
    // Not temporary files: look-alikes, lock files, a directory and a symlink in the
    // temp shape, plain files.
    let keep = [
        "state.json",
        ".state.json.lock",
        ".state.json",
        "x.tmp",
        ".x.tmp",
        ".state.json.ABCDEFGHIJKL.tmp",
        ".state.json.abcdefghijk.tmp",
        ".state.json.abcdefghijklm.tmp",
        ".state.json.abcdefghijk1.tmp",
        ".abcdefghijkl.tmp",
        "state.json.abcdefghijkl.tmp",
    ];
    for n in keep {
        std::fs::write(d.join(n), b"keep").unwrap();
    }
    std::fs::create_dir(d.join(".dir.abcdefghijkl.tmp")).unwrap();
    std::os::unix::fs::symlink("state.json", d.join(".link.abcdefghijkl.tmp")).unwrap();
    assert_eq!(sweep(d).unwrap().count(), debris.len());
    for n in debris {
        assert!(!d.join(n).exists(), "{n} was not swept");
    }
    for n in keep {
        assert_eq!(
            std::fs::read(d.join(n)).unwrap(),
            b"keep",
            "{n} was touched"
        );
    }
    assert!(d.join(".dir.abcdefghijkl.tmp").is_dir());
    assert!(
        d.join(".link.abcdefghijkl.tmp")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );
    assert_eq!(sweep(d).unwrap().count(), 0);
}

#[test]
fn sweep_of_a_missing_directory_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        sweep(dir.path().join("missing")),
        Err(atomic_persist::Error::Io {
            op: atomic_persist::Op::OpenDir,
            ..
        })
    ));
}

#[test]
fn sweep_removes_debris_with_a_non_utf8_name() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b".caf\xe9.json.abcdefghijkl.tmp");
    std::fs::write(dir.path().join(name), b"debris").unwrap();
    assert_eq!(sweep(dir.path()).unwrap().count(), 1);
    common::assert_only(dir.path(), &[]);
}

#[test]
fn saves_succeed_while_another_thread_sweeps_the_directory() {
    // A sweep may run at any moment, also between a writer's creating its temp and
    // locking it: every save must still succeed, and sweep must never remove a live temp.
    // (A stress test: it finds a sweep that takes such a temp for debris often, not
    // always.)
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const WRITERS: u64 = 4;
    const SAVES: u64 = 750;
    let dir = tempfile::tempdir().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let sweeper = {
        let (dir, done) = (dir.path().to_owned(), done.clone());
        std::thread::spawn(move || {
            let mut sweeps = 0u64;
            while !done.load(Ordering::Relaxed) {
                sweep(&dir).unwrap();
                sweeps += 1;
            }
            sweeps
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let path = dir.path().join(format!("state-{w}"));
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for v in 0..SAVES {
                    let opts = WriteOptions::new()
                        .durability(atomic_persist::Durability::None)
                        .anonymous_temp(v % 4 == 3);
                    if let Err(e) = opts.write(&path, format!("save {v}")) {
                        failures.push(format!("writer {w} save {v}: {e}"));
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    done.store(true, Ordering::Relaxed);
    let sweeps = sweeper.join().unwrap();
    common::report(&format!(
        "sweep race: {} saves, {sweeps} concurrent sweeps, {} failed saves",
        WRITERS * SAVES,
        failures.len()
    ));
    assert!(
        failures.is_empty(),
        "{}",
        failures[..failures.len().min(10)].join("\n")
    );
    let want: Vec<String> = (0..WRITERS).map(|w| format!("state-{w}")).collect();
    common::assert_only(
        dir.path(),
        &want.iter().map(String::as_str).collect::<Vec<_>>(),
    );
}

/// A stale temp (no writer holds it) named after `name` in `dir`.
fn stale_temp(dir: &Path, name: &str, suffix: &str) -> PathBuf {
    let path = dir.join(format!(".{name}.{suffix}.tmp"));
    std::fs::write(&path, b"debris").unwrap();
    path
}

#[cfg(feature = "json")]
#[test]
fn opening_a_persisted_removes_its_own_stale_temps_only() {
    use atomic_persist::Persisted;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, b"1").unwrap();
    let own = stale_temp(dir.path(), "state.json", "aaaaaaaaaaaa");
    let other = stale_temp(dir.path(), "other.json", "bbbbbbbbbbbb");
    let longer = stale_temp(dir.path(), "state.json.bak", "cccccccccccc");
    // A live writer of the same file keeps its temp.
    let mut live = WriteOptions::new()
        .anonymous_temp(false)
        .create(&path)
        .unwrap();
    live.write_all(b"2").unwrap();
    let live_temp = live.temp_path().expect("a named temp");
    let p = Persisted::<u32>::open(&path).unwrap();
    assert_eq!(*p, 1);
    assert!(!own.exists(), "the file's own debris stays after an open");
    assert!(
        other.exists() && longer.exists(),
        "another file's temps are not its own"
    );
    assert!(live_temp.exists(), "a live writer's temp was removed");
    live.commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"2");
}

#[cfg(feature = "json")]
#[test]
fn opening_a_history_removes_the_stale_temps_of_its_pointer_versions_and_manifest() {
    use atomic_persist::History;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.json");
    History::<u32>::open_or_default(&path)
        .unwrap()
        .set(1)
        .unwrap();
    let version = stale_temp(dir.path(), "h.2.json", "aaaaaaaaaaaa");
    let manifest = stale_temp(dir.path(), "h.manifest.json", "bbbbbbbbbbbb");
    let pointer = dir.path().join(".h.json.cccccccccccc.tmp");
    std::os::unix::fs::symlink("h.2.json", &pointer).unwrap();
    let other = stale_temp(dir.path(), "hh.2.json", "dddddddddddd");
    let h = History::<u32>::open(&path).unwrap();
    assert_eq!(*h, 1);
    for gone in [&version, &manifest, &pointer] {
        assert!(gone.symlink_metadata().is_err(), "{} stays", gone.display());
    }
    assert!(other.exists());
}
