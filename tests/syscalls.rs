//! What each durability level costs in flushes, read from an `strace` of real saves:
//! `Full` syncs the file and then, after the rename, the directory; `Data` only the file;
//! `None` nothing. No other flushing syscall is made, and the file is synced before the
//! rename that publishes it.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use atomic_persist::{Durability, WriteOptions};

const LEVELS: [Durability; 3] = [Durability::Full, Durability::Data, Durability::None];

/// One save: durability, anonymous temp, no_clobber, destination exists.
type Case = (Durability, bool, bool, bool);

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for level in LEVELS {
        for anonymous in [false, true] {
            for no_clobber in [false, true] {
                for existing in [false, true] {
                    if !(no_clobber && existing) {
                        v.push((level, anonymous, no_clobber, existing));
                    }
                }
            }
        }
    }
    v
}

fn label(c: &Case) -> String {
    format!("{:?}-anon={}-noclobber={}-existing={}", c.0, c.1, c.2, c.3)
}

/// The calls that matter in one case, in order: `file-sync`, `dir-sync`, `other-sync`,
/// `publish` (rename or link).
fn events(log: &str) -> BTreeMap<String, Vec<&'static str>> {
    let mut out: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let (mut dir_fd, mut file_fd) = (None::<String>, None::<String>);
    for line in log.lines() {
        let Some((_, call)) = line.split_once(' ') else {
            continue;
        };
        let call = call.trim_start();
        if let Some(rest) = call.split_once("\"/nonexistent/flush-").map(|(_, r)| r) {
            let name = rest.split('"').next().unwrap().to_owned();
            current = (name != "end").then(|| name.clone());
            if let Some(c) = &current {
                out.insert(c.clone(), Vec::new());
            }
            (dir_fd, file_fd) = (None, None);
            continue;
        }
        let Some(c) = &current else { continue };
        let Some((head, ret)) = call.rsplit_once(" = ") else {
            continue;
        };
        let ret = ret.split(' ').next().unwrap().to_owned();
        let Some((name, args)) = head
            .trim_end()
            .strip_suffix(')')
            .and_then(|h| h.split_once('('))
        else {
            continue;
        };
        let first = args.split(", ").next().unwrap_or("").to_owned();
        let ev = out.get_mut(c).unwrap();
        match name {
            "open" | "openat" if args.contains("O_DIRECTORY") => dir_fd = Some(ret),
            "open" | "openat" if args.contains("O_EXCL") || args.contains("O_TMPFILE") => {
                file_fd = Some(ret)
            }
            "fsync" | "fdatasync" => ev.push(if Some(&first) == dir_fd.as_ref() {
                "dir-sync"
            } else if Some(&first) == file_fd.as_ref() {
                "file-sync"
            } else {
                "other-sync"
            }),
            "sync" | "syncfs" | "sync_file_range" | "msync" => ev.push("other-sync"),
            "rename" | "renameat" | "renameat2" if ret == "0" => ev.push("publish"),
            "link" | "linkat" if ret == "0" => ev.push("publish"),
            _ => {}
        }
    }
    out
}

#[test]
fn each_durability_level_issues_exactly_its_flushes() {
    let test = "each_durability_level_issues_exactly_its_flushes";
    if let Some(dir) = common::role() {
        for (i, c) in cases().iter().enumerate() {
            let path = Path::new(&dir).join(format!("f{i}"));
            if c.3 {
                std::fs::write(&path, b"old").unwrap();
            }
            let _ = std::fs::File::open(format!("/nonexistent/flush-{}", label(c)));
            WriteOptions::new()
                .durability(c.0)
                .anonymous_temp(c.1)
                .no_clobber(c.2)
                .write(&path, b"new")
                .unwrap();
        }
        let _ = std::fs::File::open("/nonexistent/flush-end");
        println!("flush-ok");
        return;
    }
    if !common::have_strace() {
        return common::skip(test, "strace is not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // btrfs ignores the fsync of an unnamed O_TMPFILE: there one more sync is expected.
    let btrfs = rustix::fs::statfs(&work).unwrap().f_type as i64 == 0x9123_683E;
    common::strace_child(
        test,
        work.to_str().unwrap(),
        "%file,%desc",
        &log,
        "flush-ok",
    );
    let events = events(&std::fs::read_to_string(&log).unwrap());
    let mut problems = Vec::new();
    for c in cases() {
        let (level, anonymous, ..) = c;
        let mut want = Vec::new();
        if level != Durability::None {
            want.push("file-sync");
        }
        want.push("publish");
        if level != Durability::None && anonymous && btrfs {
            want.push("file-sync");
        }
        if anonymous && !c.2 {
            want.insert(want.len() - 1, "publish"); // linked to a temp name, then renamed
        }
        if level == Durability::Full {
            want.push("dir-sync");
        }
        let got = events.get(&label(&c)).cloned().unwrap_or_default();
        if got != want {
            problems.push(format!("{}: got {got:?}, want {want:?}", label(&c)));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
