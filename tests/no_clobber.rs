//! `no_clobber`: an existing destination is refused with `Error::AlreadyExists` and left
//! untouched, and of concurrent creators of one new file exactly one wins.

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;

use atomic_persist::{Error, WriteOptions};

fn opts(anonymous: bool) -> WriteOptions {
    WriteOptions::new()
        .no_clobber(true)
        .anonymous_temp(anonymous)
}

#[track_caller]
fn assert_already_exists(result: atomic_persist::Result<()>, path: &Path) {
    match result {
        Err(Error::AlreadyExists { path: p }) => assert_eq!(p, path),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
}

#[test]
fn an_existing_file_is_refused_and_untouched() {
    for anonymous in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, b"mine").unwrap();
        let before = std::fs::metadata(&path).unwrap();
        assert_already_exists(opts(anonymous).write(&path, b"theirs"), &path);
        assert!(matches!(
            opts(anonymous).create(&path),
            Err(Error::AlreadyExists { .. })
        ));
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"mine");
        assert_eq!(
            (after.ino(), after.mtime_nsec()),
            (before.ino(), before.mtime_nsec())
        );
        common::assert_only(dir.path(), &["state.json"]);
    }
}

#[test]
fn a_new_file_is_created() {
    for anonymous in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        opts(anonymous).write(&path, b"first").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        common::assert_only(dir.path(), &["state.json"]);
    }
}

#[test]
fn a_file_created_while_a_save_is_open_is_not_replaced() {
    // The check at create time passed; the one at commit must still refuse.
    for anonymous in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut f = opts(anonymous).create(&path).unwrap();
        f.write_all(b"late").unwrap();
        std::fs::write(&path, b"early").unwrap();
        assert_already_exists(f.commit(), &path);
        assert_eq!(std::fs::read(&path).unwrap(), b"early");
        common::assert_only(dir.path(), &["state.json"]);
    }
}

#[test]
fn of_many_threads_creating_one_file_exactly_one_wins_each_round() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (dir, barrier) = (dir.path().to_owned(), barrier.clone());
            thread::spawn(move || {
                let mut won = Vec::new();
                for round in 0..ROUNDS {
                    let path = dir.join(format!("round-{round}"));
                    let anonymous = round % 2 == 1;
                    barrier.wait();
                    let bytes = format!("thread {t}");
                    match opts(anonymous).write(&path, &bytes) {
                        Ok(()) => won.push(round),
                        Err(Error::AlreadyExists { .. }) => {}
                        Err(e) => panic!("thread {t} round {round}: {e}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut winners = vec![Vec::new(); ROUNDS];
    for (t, th) in threads.into_iter().enumerate() {
        for round in th.join().unwrap() {
            winners[round].push(t);
        }
    }
    for (round, w) in winners.iter().enumerate() {
        assert_eq!(w.len(), 1, "round {round}: winners {w:?}");
        let got = std::fs::read_to_string(dir.path().join(format!("round-{round}"))).unwrap();
        assert_eq!(
            got,
            format!("thread {}", w[0]),
            "round {round}: the winner's bytes"
        );
    }
    assert!(common::temps(dir.path()).is_empty());
}

#[test]
fn of_many_processes_creating_the_same_files_exactly_one_wins_each() {
    const PROCS: usize = 4;
    const FILES: usize = 300;
    let test = "of_many_processes_creating_the_same_files_exactly_one_wins_each";
    if let Some(role) = common::role() {
        let (dir, me) = role.split_once('|').unwrap();
        // Wait for the starting gun, so the processes run side by side.
        while !Path::new(dir).join("go").exists() {
            thread::yield_now();
        }
        for i in 0..FILES {
            let path = Path::new(dir).join(format!("file-{i}"));
            match opts(i % 2 == 1).write(&path, me) {
                Ok(()) => println!("won {i}"),
                Err(Error::AlreadyExists { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        println!("race-ok");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let children: Vec<_> = (0..PROCS)
        .map(|p| {
            let cmd = common::child(test, &format!("{d}|proc {p}"));
            thread::spawn(move || common::run_child(cmd, "race-ok"))
        })
        .collect();
    std::fs::write(dir.path().join("go"), b"").unwrap();
    let mut winners = vec![Vec::new(); FILES];
    for (p, c) in children.into_iter().enumerate() {
        let out = c.join().unwrap();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(i) = l.strip_prefix("won ") {
                winners[i.parse::<usize>().unwrap()].push(p);
            }
        }
    }
    for (i, w) in winners.iter().enumerate() {
        assert_eq!(w.len(), 1, "file {i}: winners {w:?}");
        let got = std::fs::read_to_string(dir.path().join(format!("file-{i}"))).unwrap();
        assert_eq!(got, format!("proc {}", w[0]));
    }
    assert!(common::temps(dir.path()).is_empty());
}
