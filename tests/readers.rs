//! Readers never see a partial file: while a writer rewrites the destination over and
//! over with versions of very different sizes, every read returns one complete version.

mod common;

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use atomic_persist::{AtomicFile, Durability, WriteOptions, write_atomic};
use common::{parse_version, version_bytes};

const REWRITES: u64 = 1_500;
const READERS: usize = 2;

/// Writes versions `1..=REWRITES`, alternating one-shot writes and streamed ones, and
/// the durability levels, so both paths are read concurrently.
fn writer(path: &Path) {
    for v in 1..=REWRITES {
        let bytes = version_bytes(v);
        let durability = match v % 10 {
            0 => Durability::Full,
            1 | 2 => Durability::Data,
            _ => Durability::None,
        };
        if v % 2 == 0 {
            WriteOptions::new()
                .durability(durability)
                .write(path, &bytes)
                .unwrap();
        } else {
            let mut f = WriteOptions::new()
                .durability(durability)
                .create(path)
                .unwrap();
            // Small pieces: a non-atomic writer would expose each of them to readers.
            for chunk in bytes.chunks(4096) {
                f.write_all(chunk).unwrap();
            }
            f.commit().unwrap();
        }
    }
}

struct Seen {
    reads: u64,
    distinct: u64,
}

/// Reads until told to stop; panics on any read that is not one complete version, on a
/// missing file, or on a version older than one it has already seen.
fn reader(path: &Path, done: &AtomicBool) -> Seen {
    let mut last = 0;
    let mut seen = Seen {
        reads: 0,
        distinct: 0,
    };
    loop {
        let finished = done.load(Ordering::Acquire);
        let bytes = std::fs::read(path).expect("the destination always exists");
        let v = match parse_version(&bytes) {
            Ok(v) => v,
            Err(why) => panic!("read #{} saw a partial file: {why}", seen.reads),
        };
        assert!(v >= last, "went back from version {last} to {v}");
        if v != last {
            seen.distinct += 1;
            last = v;
        }
        seen.reads += 1;
        if finished {
            assert_eq!(v, REWRITES, "the last read after the writer finished");
            return seen;
        }
    }
}

#[test]
fn readers_never_see_a_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write_atomic(&path, version_bytes(0)).unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(READERS + 1));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (path, done, start) = (path.clone(), done.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                reader(&path, &done)
            })
        })
        .collect();
    start.wait();
    writer(&path);
    done.store(true, Ordering::Release);

    let mut reads = 0;
    for r in readers {
        let seen = r.join().expect("a reader saw a partial file");
        reads += seen.reads;
        // Not a timing requirement: the readers must have overlapped the writer at all,
        // or this test would prove nothing.
        assert!(
            seen.distinct >= 2,
            "a reader saw only {} versions",
            seen.distinct
        );
    }
    common::report(&format!(
        "readers: {REWRITES} rewrites, {reads} reads by {READERS} readers, all complete"
    ));
    common::assert_only(dir.path(), &["state.bin"]);
}

#[test]
fn the_version_checker_rejects_partial_files() {
    // The checker the readers rely on: a prefix, a truncation or a mix of two versions
    // of the same length must not pass for a version.
    let v = (1..).find(|&v| common::version_len(v) > 10_000).unwrap();
    let bytes = version_bytes(v);
    assert_eq!(parse_version(&bytes), Ok(v));
    assert!(parse_version(&[]).is_err());
    assert!(parse_version(&bytes[..bytes.len() / 2]).is_err());
    assert!(parse_version(&bytes[..common::HEADER_LEN]).is_err());
    let mut mixed = bytes.clone();
    let other = version_bytes(v + 1);
    let n = mixed.len().min(other.len());
    mixed[n / 2..n].copy_from_slice(&other[n / 2..n]);
    assert!(parse_version(&mixed).is_err());
    let mut zeroed = bytes;
    let end = zeroed.len();
    zeroed[end - 100..].fill(0);
    assert!(parse_version(&zeroed).is_err());
}

#[test]
fn a_reader_process_sees_only_complete_versions() {
    const ROUNDS: u64 = 1_000;
    if let Some(role) = common::role() {
        // The reader: read until the writer's last version shows up.
        let path = Path::new(&role);
        let mut reads = 0u64;
        let mut last = 0;
        println!("ready");
        loop {
            let bytes = std::fs::read(path).unwrap();
            let v = parse_version(&bytes).unwrap_or_else(|e| panic!("{e}"));
            assert!(v >= last, "went back from {last} to {v}");
            last = v;
            reads += 1;
            if v == ROUNDS {
                break;
            }
        }
        println!("reads {reads}");
        println!("reader-ok");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write_atomic(&path, version_bytes(0)).unwrap();
    let mut reader = common::child(
        "a_reader_process_sees_only_complete_versions",
        path.to_str().unwrap(),
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = std::io::BufReader::new(reader.stdout.take().unwrap());
    let mut line = String::new();
    // Start writing only once the reader is reading.
    while line.trim_end() != "ready" {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "reader exited early"
        );
    }
    for v in 1..=ROUNDS {
        WriteOptions::new()
            .durability(Durability::None)
            .anonymous_temp(v % 2 == 0)
            .write(&path, version_bytes(v))
            .unwrap();
    }
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = reader.wait().unwrap();
    assert!(
        status.success() && rest.lines().any(|l| l == "reader-ok"),
        "the reader process saw a partial file ({status}):\n{rest}"
    );
    let reads = rest
        .lines()
        .find_map(|l| l.strip_prefix("reads ").map(str::to_owned))
        .unwrap();
    common::report(&format!(
        "reader process: {ROUNDS} rewrites, {reads} reads, all complete"
    ));
}

#[test]
fn atomic_file_is_invisible_until_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write_atomic(&path, version_bytes(1)).unwrap();
    let mut f = AtomicFile::create(&path).unwrap();
    let new = version_bytes(2);
    f.write_all(&new[..new.len() / 2]).unwrap();
    f.flush().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), version_bytes(1));
    f.write_all(&new[new.len() / 2..]).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), version_bytes(1));
    f.commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), new);
}
