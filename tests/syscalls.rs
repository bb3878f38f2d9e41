//! What each durability level costs in flushes, read from an `strace` of real saves:
//! `Full` syncs the file and then, after the rename, the directory; `Data` only the file;
//! `None` nothing. No other flushing syscall is made (every call that can flush is
//! traced: `fsync`, `fdatasync`, `sync`, `syncfs`, `sync_file_range`, `msync`), and the
//! file is synced before the rename that publishes it.
//!
//! `apple_barrier(true)` changes nothing off Apple: the same saves with it issue the same
//! calls in the same order.
//!
//! Two controls show that the counting can fail: a save with std alone (fsync the file,
//! rename, fsync the directory) must read as `Full` does, and the same save with one
//! more fsync of the file must read as one sync more.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use atomic_persist::{Durability, WriteOptions};

const LEVELS: [Durability; 3] = [Durability::Full, Durability::Data, Durability::None];

/// One save: durability, anonymous temp, no_clobber, destination exists, apple_barrier.
type Case = (Durability, bool, bool, bool, bool);

/// The controls: a save with std alone, and the same with one fsync too many.
const CONTROLS: [(&str, &[&str]); 2] = [
    ("control", &["file-sync", "publish", "dir-sync"]),
    (
        "control-extra-fsync",
        &["file-sync", "file-sync", "publish", "dir-sync"],
    ),
];

/// A save with std alone: fsync the temporary file (twice when `extra`), rename, fsync
/// the directory (opened with `O_DIRECTORY`, as the crate does, so it reads alike).
fn std_save(path: &Path, bytes: &[u8], extra: bool) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_file_name(".control.tmp");
    let mut file = std::fs::File::create_new(&temp).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_data().unwrap();
    if extra {
        file.sync_all().unwrap();
    }
    drop(file);
    std::fs::rename(&temp, path).unwrap();
    let dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECTORY.bits() as i32)
        .open(path.parent().unwrap())
        .unwrap();
    dir.sync_all().unwrap();
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for level in LEVELS {
        for anonymous in [false, true] {
            for no_clobber in [false, true] {
                for existing in [false, true] {
                    if !(no_clobber && existing) {
                        v.push((level, anonymous, no_clobber, existing, false));
                    }
                }
            }
        }
    }
    // Off Apple a barrier is a full sync: these must read as their cases without it.
    for level in LEVELS {
        for anonymous in [false, true] {
            v.push((level, anonymous, false, true, true));
        }
    }
    v
}

fn label(c: &Case) -> String {
    format!(
        "{:?}-anon={}-noclobber={}-existing={}-barrier={}",
        c.0, c.1, c.2, c.3, c.4
    )
}

/// The calls that matter in one case, in order: `file-sync`, `dir-sync`, `other-sync`,
/// `publish` (rename or link). Cases begin at a failed open of
/// `/nonexistent/flush-{label}`.
fn events(log: &str) -> BTreeMap<String, Vec<&'static str>> {
    let mut out: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let (mut dir_fd, mut file_fd) = (None::<String>, None::<String>);
    for call in common::strace::parse(log) {
        if let Some(rest) = call
            .quoted()
            .and_then(|p| p.strip_prefix("/nonexistent/flush-"))
        {
            current = (rest != "end").then(|| rest.to_owned());
            if let Some(c) = &current {
                out.insert(c.clone(), Vec::new());
            }
            (dir_fd, file_fd) = (None, None);
            continue;
        }
        let Some(ev) = current.as_ref().and_then(|c| out.get_mut(c)) else {
            continue;
        };
        let (args, fd) = (&call.args, call.first_arg());
        match call.name.as_str() {
            "open" | "openat" if args.contains("O_DIRECTORY") => dir_fd = Some(call.ret.clone()),
            "open" | "openat" if args.contains("O_EXCL") || args.contains("O_TMPFILE") => {
                file_fd = Some(call.ret.clone())
            }
            "fsync" | "fdatasync" => ev.push(if Some(fd) == dir_fd.as_deref() {
                "dir-sync"
            } else if Some(fd) == file_fd.as_deref() {
                "file-sync"
            } else {
                "other-sync"
            }),
            "sync" | "syncfs" | "sync_file_range" | "sync_file_range2" | "msync" => {
                ev.push("other-sync")
            }
            "rename" | "renameat" | "renameat2" | "link" | "linkat" if call.ok() => {
                ev.push("publish")
            }
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
                .apple_barrier(c.4)
                .write(&path, b"new")
                .unwrap();
        }
        for (i, (label, _)) in CONTROLS.iter().enumerate() {
            let _ = std::fs::File::open(format!("/nonexistent/flush-{label}"));
            std_save(&Path::new(&dir).join(format!("c{i}")), b"new", i == 1);
        }
        let _ = std::fs::File::open("/nonexistent/flush-end");
        println!("flush-ok");
        return;
    }
    let trace = "%file,%desc,sync,syncfs,sync_file_range,msync";
    let Some(run) = common::trace_in_workdir(test, trace, "flush-ok") else {
        return;
    };
    // btrfs ignores the fsync of an unnamed O_TMPFILE: there one more sync is expected.
    let btrfs = rustix::fs::statfs(&run.work).unwrap().f_type as i64 == 0x9123_683E;
    let events = events(&run.log);
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
    for (label, want) in CONTROLS {
        let got = events.get(label).cloned().unwrap_or_default();
        if got != want {
            problems.push(format!("{label}: got {got:?}, want {want:?}"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
