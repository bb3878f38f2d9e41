//! From an strace log of the child to the operations of each case.

use std::collections::{BTreeMap, BTreeSet};

use crate::common;

/// The marker paths the child opens around each case: `{MARK}begin-CASE`, `{MARK}end-CASE`.
pub const MARK: &str = "/nonexistent/atomic-persist-power-loss/";

/// Where a call names an entry: relative to a directory fd (`openat(3, "a.bin", ..)`),
/// or, with `at: None`, by a path relative to the case's directory (an absolute path in
/// the trace with the case's directory cut off; `""` is that directory itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loc {
    pub at: Option<i64>,
    pub path: String,
}

impl From<&str> for Loc {
    /// A path relative to the case's directory.
    fn from(path: &str) -> Loc {
        Loc {
            at: None,
            path: path.to_owned(),
        }
    }
}

impl Loc {
    /// The entry's own name (the last component).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }
}

/// One operation of a save on the model filesystem. Files are named by the fd they were
/// opened as (each creation gets a fresh inode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `openat(dir, name, O_CREAT|O_EXCL)`: a new inode and a name for it.
    Create { fd: i64, at: Loc },
    /// `openat(dir, ".", O_TMPFILE)`: a new inode without a name.
    CreateAnonymous { fd: i64 },
    /// `mkdirat`: a new, empty directory inode and a name for it.
    Mkdir { at: Loc },
    /// `openat(.., O_DIRECTORY)`: `fd` now refers to the directory `at` names.
    OpenDir { fd: i64, at: Loc },
    /// `write(fd, .., len)` at the fd's offset (or `pwrite` at `offset`).
    Write {
        fd: i64,
        offset: Option<u64>,
        len: usize,
    },
    /// `fsync`/`fdatasync` of a file.
    SyncFile { fd: i64 },
    /// `renameat`/`renameat2`: `to` now names what `from` named; `from` is gone.
    Rename { from: Loc, to: Loc },
    /// `linkat` of an open file (anonymous or not) to `to`.
    LinkFd { fd: i64, to: Loc },
    /// `linkat` of an existing name to another.
    LinkName { from: Loc, to: Loc },
    /// `unlinkat` (of a file, or with `AT_REMOVEDIR` of an empty directory).
    Unlink { at: Loc },
    /// `symlinkat(target, dir, name)`: a new symlink inode and a name for it.
    Symlink { target: String, at: Loc },
    /// `fsync` of the directory open as `fd`: its entries durable.
    SyncDir { fd: i64 },
    /// `syncfs`: every file's data and every directory's entries.
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

/// The location a call's (dirfd, path) arguments name in the case `case`: an absolute
/// path is made relative to the case's directory (the engine names files relative to a
/// directory fd, `std::fs` by absolute path).
pub fn loc(dirfd: Option<&str>, path: &str, case: &str) -> Loc {
    let at = dirfd.and_then(|d| d.parse::<i64>().ok());
    let path = match path.strip_prefix('/') {
        None => path.to_owned(),
        Some(_) => {
            let inside = format!("/{case}/");
            match path.split_once(&inside) {
                Some((_, rest)) => rest.to_owned(),
                None if path.ends_with(&format!("/{case}")) => String::new(),
                None => path.to_owned(),
            }
        }
    };
    Loc { at, path }
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
        if current.is_none() {
            continue;
        }
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
        let case = current.as_ref().map(|(c, _)| c.clone()).unwrap_or_default();
        let ops = &mut current.as_mut().expect("inside a case").1;
        // (dirfd, path) of the call's `k`-th location: `at` calls take a dirfd first.
        let at = |k: usize| {
            let i = if name.ends_with("at") || name.ends_with("at2") {
                2 * k
            } else {
                k
            };
            match name.ends_with("at") || name.ends_with("at2") {
                true => loc(Some(&a[i]), &a[i + 1], &case),
                false => loc(None, &a[i], &case),
            }
        };
        match name {
            "openat" | "open" => {
                // open(path, flags, ..) or openat(dirfd, path, flags, ..)
                let flags = a
                    .get(usize::from(name == "openat") + 1)
                    .map(String::as_str)
                    .unwrap_or("");
                if flags.contains("O_DIRECTORY") {
                    dir_fds.insert(ret);
                    ops.push(Op::OpenDir { fd: ret, at: at(0) });
                } else if flags.contains("O_TMPFILE") {
                    file_fds.insert(ret);
                    ops.push(Op::CreateAnonymous { fd: ret });
                } else if flags.contains("O_CREAT") {
                    file_fds.insert(ret);
                    ops.push(Op::Create { fd: ret, at: at(0) });
                }
            }
            "mkdirat" | "mkdir" => ops.push(Op::Mkdir { at: at(0) }),
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
            "fsync" | "fdatasync" if dir_fds.contains(&fd0) => ops.push(Op::SyncDir { fd: fd0 }),
            "fsync" | "fdatasync" if file_fds.contains(&fd0) => ops.push(Op::SyncFile { fd: fd0 }),
            "syncfs" if dir_fds.contains(&fd0) || file_fds.contains(&fd0) => ops.push(Op::SyncAll),
            "fsync" | "fdatasync" | "sync" | "syncfs" | "sync_file_range" => {
                panic!("a sync of something unknown: {line}")
            }
            "renameat" | "renameat2" | "rename" => ops.push(Op::Rename {
                from: at(0),
                to: at(1),
            }),
            "symlinkat" => ops.push(Op::Symlink {
                target: a[0].clone(),
                at: loc(Some(&a[1]), &a[2], &case),
            }),
            "symlink" => ops.push(Op::Symlink {
                target: a[0].clone(),
                at: loc(None, &a[1], &case),
            }),
            "linkat" => {
                let to = at(1);
                if a[4].contains("AT_EMPTY_PATH") {
                    ops.push(Op::LinkFd { fd: fd0, to });
                } else if let Some(fd) = a[1].strip_prefix("/proc/self/fd/") {
                    ops.push(Op::LinkFd {
                        fd: fd.parse().unwrap(),
                        to,
                    });
                } else {
                    ops.push(Op::LinkName { from: at(0), to });
                }
            }
            "unlinkat" | "unlink" => ops.push(Op::Unlink { at: at(0) }),
            "close" => {
                let (dir, file) = (dir_fds.remove(&fd0), file_fds.remove(&fd0));
                if dir || file {
                    ops.push(Op::Close { fd: fd0 });
                }
            }
            _ => {}
        }
    }
    cases
}

/// Runs the child of the test `test` (of the module `module`) under strace in a fresh
/// work directory and parses its log: the work directory and the `n` cases' operations,
/// or `None` (said as a skip) where strace is missing.
pub fn trace_cases(
    module: &str,
    test: &str,
    n: usize,
) -> Option<(common::WorkTrace, BTreeMap<String, Vec<Op>>)> {
    let test = common::test_name(module, test);
    let traced = common::trace_in_workdir(&test, "%file,%desc", "power-loss-trace-ok")?;
    let cases = parse_ops(&traced.log);
    assert_eq!(cases.len(), n, "{:?}", cases.keys());
    Some((traced, cases))
}
