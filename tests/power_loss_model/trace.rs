//! From an strace log of the child to the operations of each case.

use std::collections::{BTreeMap, BTreeSet};

/// The marker paths the child opens around each case: `{MARK}begin-CASE`, `{MARK}end-CASE`.
pub const MARK: &str = "/nonexistent/atomic-persist-power-loss/";

/// One operation of a save on the model filesystem. Files are named by the fd they were
/// opened as (each creation gets a fresh inode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `openat(dir, name, O_CREAT|O_EXCL)`: a new inode and a name for it.
    Create { fd: i64, name: String },
    /// `openat(dir, ".", O_TMPFILE)`: a new inode without a name.
    CreateAnonymous { fd: i64 },
    /// `write(fd, .., len)` at the fd's offset (or `pwrite` at `offset`).
    Write {
        fd: i64,
        offset: Option<u64>,
        len: usize,
    },
    /// `fsync`/`fdatasync` of a file.
    SyncFile { fd: i64 },
    /// `renameat`/`renameat2`: `to` now names what `from` named; `from` is gone.
    Rename { from: String, to: String },
    /// `linkat` of an open file (anonymous or not) to `name`.
    LinkFd { fd: i64, name: String },
    /// `linkat` of an existing name to another.
    LinkName { from: String, to: String },
    /// `unlinkat`.
    Unlink { name: String },
    /// `symlinkat(target, dir, name)`: a new symlink inode and a name for it.
    Symlink { target: String, name: String },
    /// `fsync` of the directory.
    SyncDir,
    /// `syncfs`: every file's data and every directory's entries (the model's one
    /// directory is all the filesystem it knows).
    SyncAll,
    /// `close`: the fd number may be reused.
    Close { fd: i64 },
}

/// The quoted strings and the bare words of an argument list, in order.
pub fn split_args(args: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = args.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' if !quoted => {
                out.push(cur.trim().to_owned());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

/// A name as the model's one directory knows it: the last component of a path (the
/// engine names files relative to a directory fd, `std::fs` by absolute path).
pub fn base(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_owned()
}

/// The operations of each case, from an `strace -f -e trace=%file,%desc` log.
pub fn parse_ops(log: &str) -> BTreeMap<String, Vec<Op>> {
    let mut cases = BTreeMap::new();
    let mut current: Option<(String, Vec<Op>)> = None;
    let mut dir_fds: BTreeSet<i64> = BTreeSet::new();
    let mut file_fds: BTreeSet<i64> = BTreeSet::new();
    for line in log.lines() {
        // "PID call(args) = ret ..."
        let line = line
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start();
        if let Some(rest) = line.split_once(MARK).map(|(_, r)| r) {
            let name = rest.split('"').next().unwrap();
            if let Some(case) = name.strip_prefix("begin-") {
                current = Some((case.to_owned(), Vec::new()));
                dir_fds.clear();
                file_fds.clear();
            } else if let Some((case, ops)) = current.take() {
                assert_eq!(name, format!("end-{case}"));
                cases.insert(case, ops);
            }
            continue;
        }
        let Some((_, ops)) = current.as_mut() else {
            continue;
        };
        let Some((head, ret)) = line.rsplit_once(" = ") else {
            continue;
        };
        let Ok(ret) = ret.split(' ').next().unwrap().parse::<i64>() else {
            continue;
        };
        if ret < 0 {
            continue; // a failed call changed nothing
        }
        let Some((name, args)) = head
            .trim_end()
            .strip_suffix(')')
            .and_then(|h| h.split_once('('))
        else {
            continue;
        };
        let a = split_args(args);
        let fd0 = a.first().and_then(|s| s.parse::<i64>().ok()).unwrap_or(-1);
        match name {
            "openat" | "open" => {
                // open(path, flags, ..) or openat(dirfd, path, flags, ..)
                let at = usize::from(name == "openat");
                let flags = a.get(at + 1).map(String::as_str).unwrap_or("");
                if flags.contains("O_DIRECTORY") {
                    dir_fds.insert(ret);
                } else if flags.contains("O_TMPFILE") {
                    file_fds.insert(ret);
                    ops.push(Op::CreateAnonymous { fd: ret });
                } else if flags.contains("O_CREAT") {
                    file_fds.insert(ret);
                    ops.push(Op::Create {
                        fd: ret,
                        name: base(&a[at]),
                    });
                }
            }
            "write" if file_fds.contains(&fd0) => ops.push(Op::Write {
                fd: fd0,
                offset: None,
                len: ret as usize,
            }),
            "pwrite64" if file_fds.contains(&fd0) => ops.push(Op::Write {
                fd: fd0,
                offset: Some(a[3].parse().unwrap()),
                len: ret as usize,
            }),
            "writev" | "pwritev" | "pwritev2" | "sendfile" | "copy_file_range"
                if file_fds.contains(&fd0) =>
            {
                panic!("the model does not know {name} yet: {line}")
            }
            "fsync" | "fdatasync" if dir_fds.contains(&fd0) => ops.push(Op::SyncDir),
            "fsync" | "fdatasync" if file_fds.contains(&fd0) => ops.push(Op::SyncFile { fd: fd0 }),
            "syncfs" if dir_fds.contains(&fd0) || file_fds.contains(&fd0) => ops.push(Op::SyncAll),
            "fsync" | "fdatasync" | "sync" | "syncfs" | "sync_file_range" => {
                panic!("a sync of something unknown: {line}")
            }
            "renameat" | "renameat2" => ops.push(Op::Rename {
                from: base(&a[1]),
                to: base(&a[3]),
            }),
            "rename" => ops.push(Op::Rename {
                from: base(&a[0]),
                to: base(&a[1]),
            }),
            "symlinkat" => ops.push(Op::Symlink {
                target: a[0].clone(),
                name: base(&a[2]),
            }),
            "symlink" => ops.push(Op::Symlink {
                target: a[0].clone(),
                name: base(&a[1]),
            }),
            "linkat" => {
                let to = base(&a[3]);
                if a[4].contains("AT_EMPTY_PATH") {
                    ops.push(Op::LinkFd { fd: fd0, name: to });
                } else if let Some(fd) = a[1].strip_prefix("/proc/self/fd/") {
                    ops.push(Op::LinkFd {
                        fd: fd.parse().unwrap(),
                        name: to,
                    });
                } else {
                    ops.push(Op::LinkName {
                        from: base(&a[1]),
                        to,
                    });
                }
            }
            "unlinkat" | "unlink" => ops.push(Op::Unlink {
                name: base(&a[usize::from(name == "unlinkat")]),
            }),
            "close" => {
                dir_fds.remove(&fd0);
                if file_fds.remove(&fd0) {
                    ops.push(Op::Close { fd: fd0 });
                }
            }
            _ => {}
        }
    }
    cases
}
