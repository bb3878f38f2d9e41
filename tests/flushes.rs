//! Evidence that a save issues exactly the flushes its `Durability` promises, and no more:
//! `Full` two (the temporary file, then the directory), `Data` one, `None` none.
//!
//! Each case re-runs this test binary under `strace`, with only [`strace_child`] selected
//! and the case in an environment variable; strace records every call that can flush
//! (`fsync`, `fdatasync`, `sync_file_range`, `syncfs`, `sync`, `msync`) with the path of
//! its descriptor (`-y`). Two controls, a std-only save with one fsync of the file and one
//! of the directory, and the same with one fsync more, show that the counting is real: the
//! second must count 3.
//!
//! Skipped, with a message, where strace is not installed or may not trace.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use atomic_persist::{Durability, WriteOptions};

/// The case the child runs, and the destination it writes.
const CASE_VAR: &str = "ATOMIC_PERSIST_FLUSHES_CASE";
const PATH_VAR: &str = "ATOMIC_PERSIST_FLUSHES_PATH";

/// Every syscall that can make data durable.
const FLUSH_CALLS: &str = "/^(fsync|fdatasync|sync|syncfs|sync_file_range2?|msync)$";

/// Runs one save when started by [`flushes`] under strace; does nothing otherwise.
#[test]
fn strace_child() {
    let (Ok(case), Some(path)) = (std::env::var(CASE_VAR), std::env::var_os(PATH_VAR)) else {
        return;
    };
    let path = PathBuf::from(path);
    let bytes = b"{\"saved\": true}\n";
    match case.as_str() {
        "full" => atomic_persist::write_atomic(&path, bytes).unwrap(),
        "data" => WriteOptions::new()
            .durability(Durability::Data)
            .write(&path, bytes)
            .unwrap(),
        "none" => WriteOptions::new()
            .durability(Durability::None)
            .write(&path, bytes)
            .unwrap(),
        "full-anonymous" => WriteOptions::new()
            .anonymous_temp(true)
            .write(&path, bytes)
            .unwrap(),
        "control" => std_save(&path, bytes, false),
        "control-extra-fsync" => std_save(&path, bytes, true),
        other => panic!("unknown case {other}"),
    }
}

/// A save with std alone: fsync the temporary file (twice when `extra`), rename, fsync
/// the directory.
fn std_save(path: &Path, bytes: &[u8], extra: bool) {
    let dir = path.parent().unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let temp = dir.join(format!(".{name}.control.tmp"));
    let mut file = fs::File::create_new(&temp).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_data().unwrap();
    if extra {
        file.sync_all().unwrap();
    }
    drop(file);
    fs::rename(&temp, path).unwrap();
    fs::File::open(dir).unwrap().sync_all().unwrap();
}

/// One flush call that strace saw: the syscall and the path of its descriptor.
#[derive(Debug)]
struct Flush {
    call: String,
    path: String,
}

enum Traced {
    Flushes(Vec<Flush>),
    Skipped(String),
}

/// Runs `case` in a child under strace and returns the flushes it made.
fn trace(case: &str, dest: &Path) -> Traced {
    let out_file = dest.with_file_name("strace.out");
    let exe = std::env::current_exe().unwrap();
    let run = Command::new("strace")
        .args(["-f", "-qq", "-y", "-e"])
        .arg(format!("trace={FLUSH_CALLS}"))
        .arg("-o")
        .arg(&out_file)
        .arg(&exe)
        .args(["strace_child", "--exact", "--test-threads=1", "--quiet"])
        .env(CASE_VAR, case)
        .env(PATH_VAR, dest)
        .output();
    let output = match run {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Traced::Skipped("strace not installed".into());
        }
        Err(e) => panic!("cannot run strace: {e}"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        if stderr.contains("PTRACE_TRACEME") || stderr.contains("ptrace") {
            return Traced::Skipped(format!("strace may not trace here: {}", stderr.trim()));
        }
        panic!(
            "case {case} failed under strace: {}\nstdout: {}\nstderr: {stderr}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
        );
    }
    let log = fs::read_to_string(&out_file).unwrap();
    fs::remove_file(&out_file).unwrap();
    let flushes = log
        .lines()
        .filter_map(|line| {
            // `1234 fsync(3</tmp/x/.dest.abc.tmp>) = 0`; a call interrupted by another
            // thread is logged as `<unfinished ...>` and then `<... fsync resumed>`:
            // count the first half only.
            let rest = line.split_once(' ').map_or(line, |(_, r)| r).trim_start();
            let (call, args) = rest.split_once('(')?;
            let path = args.split_once('<')?.1.split_once('>')?.0;
            Some(Flush {
                call: call.to_string(),
                path: path.to_string(),
            })
        })
        .collect::<Vec<_>>();
    println!("{case}: {flushes:?}");
    Traced::Flushes(flushes)
}

/// Whether a flushed path is a temporary file for `dest`: a named temp
/// `.{name}.{random}.tmp`, or an anonymous `O_TMPFILE` (`/dir/#123`, the inode number,
/// which the kernel may follow with ` (deleted)`).
fn is_temp_of(path: &str, dest: &Path) -> bool {
    let dir = dest.parent().unwrap().to_str().unwrap();
    let name = dest.file_name().unwrap().to_str().unwrap();
    let Some(file) = path.strip_prefix(dir).and_then(|p| p.strip_prefix('/')) else {
        return false;
    };
    (file.starts_with(&format!(".{name}.")) && file.ends_with(".tmp"))
        || file
            .strip_prefix('#')
            .map(|rest| rest.trim_end_matches(" (deleted)"))
            .is_some_and(|ino| !ino.is_empty() && ino.bytes().all(|b| b.is_ascii_digit()))
}

fn is_btrfs(dir: &Path) -> bool {
    const BTRFS_SUPER_MAGIC: u32 = 0x9123_683E;
    // `f_type` is i64 or i32 by architecture; the magic fits in 32 bits.
    rustix::fs::statfs(dir).is_ok_and(|fs| fs.f_type as u32 == BTRFS_SUPER_MAGIC)
}

#[test]
fn flushes() {
    let dir = tempfile::tempdir().unwrap();
    // Canonical, because strace prints the descriptor's resolved path.
    let root = dir.path().canonicalize().unwrap();
    let root_str = root.to_str().unwrap().to_string();
    let btrfs = is_btrfs(&root);

    // (case, the destination exists beforehand, flushes of the temp file, of the dir)
    let cases: &[(&str, bool, usize, usize)] = &[
        ("full", true, 1, 1),
        ("full", false, 1, 1),
        ("data", true, 1, 0),
        ("none", true, 0, 0),
        // btrfs ignores an fsync of an unnamed file, so there the file is synced again.
        ("full-anonymous", true, if btrfs { 2 } else { 1 }, 1),
        ("control", true, 1, 1),
        ("control-extra-fsync", true, 2, 1),
    ];
    for (n, &(case, exists, on_temp, on_dir)) in cases.iter().enumerate() {
        let case_dir = root.join(format!("case{n}"));
        fs::create_dir(&case_dir).unwrap();
        let dest = case_dir.join("dest.json");
        if exists {
            fs::write(&dest, b"old").unwrap();
        }
        let flushes = match trace(case, &dest) {
            Traced::Flushes(f) => f,
            Traced::Skipped(why) => {
                println!("skipped: {why}");
                eprintln!("flushes: skipped: {why}");
                return;
            }
        };
        assert_eq!(
            fs::read(&dest).unwrap(),
            b"{\"saved\": true}\n",
            "case {case}: the save did not happen"
        );
        let case_dir_str = format!("{root_str}/case{n}");
        let temp = flushes
            .iter()
            .filter(|f| is_temp_of(&f.path, &dest))
            .count();
        let dirs = flushes.iter().filter(|f| f.path == case_dir_str).count();
        assert_eq!(
            (flushes.len(), temp, dirs),
            (on_temp + on_dir, on_temp, on_dir),
            "case {case} (destination existed: {exists}): expected {on_temp} flush(es) of the \
             temporary file and {on_dir} of the directory, nothing else; strace saw {flushes:#?}"
        );
        // Every flush of the temp file is a file flush, not a filesystem-wide one.
        for f in &flushes {
            assert!(
                f.call == "fsync" || f.call == "fdatasync",
                "case {case}: unexpected flush call {f:?}"
            );
        }
    }
}
