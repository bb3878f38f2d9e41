//! Simulated power loss, exhaustive: every crash state of one save under a pessimistic
//! persistence model, replayed from the real syscalls of a real save.
//!
//! A child does one save of each kind at each durability level between two marker
//! `open`s, under `strace`. The trace becomes a list of operations on a model
//! filesystem: create a temp (`openat O_CREAT`, or an anonymous `O_TMPFILE`), write,
//! sync a file (`fsync`/`fdatasync`), rename/link/unlink a name, sync the directory.
//! Permission calls (`fchmod`, `fchown`), locks and stats change no content and are left
//! out. Nothing is added to the library: the model only reads what the save did.
//!
//! The model is the pessimistic one of LevelDB's fault-injection environment and of the
//! ALICE study:
//! - a file's data is durable only once the file is synced; data written since may be
//!   lost at a power cut: the file may be cut at any 4 KiB block boundary between its
//!   durable length and its current length, and each block not yet durable may read
//!   back as zeros;
//! - a create, rename, link or unlink is durable only once its directory is synced;
//!   before that, any subset of the pending ones may have happened (each rename whole or
//!   not at all).
//!
//! For every crash point (after each operation, and before the first) and every such
//! state, the destination must be absent only if it was absent before, and otherwise be
//! exactly the old or exactly the new content; once a `Durability::Full` save has
//! returned, it must be the new content.
//!
//! And the model must be able to fail: the same `Full` trace with the file sync removed,
//! or with the directory sync removed, must produce violating states. `Data` keeps
//! old-or-new but may come back as the old file after it returned; `None` may leave an
//! empty or torn file: both are asserted to show in the model.
//!
//! A history commit (`History::set` of version 3, `keep(2)` and `keep(1)`, `Full` and
//! `Data`) is replayed the same way from a copy of the directory before it: the model
//! also knows symlinks (a symlink's target is durable with its name) and writes several
//! files. Every crash state must leave the pointer resolving to a complete version, the
//! old latest or the new one (the new one once a `Full` commit returned), and the
//! manifest old or new. Without the version file's sync, or (`keep(1)`, where retention
//! removes the version the old pointer names) without the directory sync after the
//! pointer swap, the model must find violating states.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use atomic_persist::{Durability, WriteOptions};

const TEST: &str = "every_simulated_power_loss_leaves_the_old_or_the_new_file";
const BLOCK: usize = 4096;
const DEST: &str = "dest.bin";
const MARK: &str = "/nonexistent/atomic-persist-power-loss/";

fn old_bytes() -> Vec<u8> {
    (0..3_000u32).map(|i| b'o' ^ (i % 7) as u8).collect()
}

/// Three full blocks and a partial one, no zero byte (a zeroed block never matches).
fn new_bytes() -> Vec<u8> {
    (0..3 * BLOCK as u32 + 500)
        .map(|i| (common::mix(u64::from(i)) % 255 + 1) as u8)
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    New,
    Replace,
    NoClobber,
    Anonymous,
    AnonymousNoClobber,
    Stream,
    /// A `Persisted` commit with the JSON envelope (head, payload, tail streamed).
    #[cfg(feature = "json")]
    Enveloped,
}

fn kinds() -> Vec<Kind> {
    let v = vec![
        Kind::New,
        Kind::Replace,
        Kind::NoClobber,
        Kind::Anonymous,
        Kind::AnonymousNoClobber,
        Kind::Stream,
    ];
    // The enveloped kind needs a format feature.
    #[cfg(feature = "json")]
    let v = [v, vec![Kind::Enveloped]].concat();
    v
}

#[cfg(feature = "json")]
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Doc {
    rev: u32,
    text: String,
}

#[cfg(feature = "json")]
fn doc_builder(dest: &Path, level: Durability) -> atomic_persist::PersistedBuilder<Doc> {
    atomic_persist::Persisted::<Doc>::builder(dest)
        .format(atomic_persist::Json)
        .envelope(true)
        .durability(level)
}
const LEVELS: [Durability; 3] = [Durability::Full, Durability::Data, Durability::None];

impl Kind {
    fn existing(self) -> bool {
        #[cfg(feature = "json")]
        if self == Kind::Enveloped {
            return true;
        }
        matches!(self, Kind::Replace | Kind::Anonymous | Kind::Stream)
    }
}

fn label(kind: Kind, level: Durability) -> String {
    format!("{kind:?}-{level:?}")
}

// ---------------------------------------------------------------------------------
// The child: one save of each case, between markers

/// The child: one save per case in `dir/CASE/dest.bin`; the old file, if any, is also
/// copied to `dir/CASE.old` (the new one is what `dest.bin` holds at the end).
fn child_main(dir: &Path) {
    use std::io::Write;
    for kind in kinds() {
        for level in LEVELS {
            let case = label(kind, level);
            let sub = dir.join(&case);
            std::fs::create_dir(&sub).unwrap();
            let dest = sub.join(DEST);
            #[cfg(feature = "json")]
            if kind == Kind::Enveloped {
                let old = Doc {
                    rev: 1,
                    text: "old".repeat(1000),
                };
                let mut p = doc_builder(&dest, level).open_or_else(|| old).unwrap();
                p.commit().unwrap();
                std::fs::copy(&dest, dir.join(format!("{case}.old"))).unwrap();
                let _ = std::fs::File::open(format!("{MARK}begin-{case}"));
                p.set(Doc {
                    rev: 2,
                    text: "new".repeat(4500),
                })
                .unwrap();
                let _ = std::fs::File::open(format!("{MARK}end-{case}"));
                continue;
            }
            if kind.existing() {
                std::fs::write(&dest, old_bytes()).unwrap();
                std::fs::write(dir.join(format!("{case}.old")), old_bytes()).unwrap();
            }
            let opts = WriteOptions::new()
                .durability(level)
                .no_clobber(matches!(kind, Kind::NoClobber | Kind::AnonymousNoClobber))
                .anonymous_temp(matches!(kind, Kind::Anonymous | Kind::AnonymousNoClobber));
            let _ = std::fs::File::open(format!("{MARK}begin-{case}"));
            match kind {
                Kind::Stream => {
                    let mut f = opts.create(&dest).unwrap();
                    for chunk in new_bytes().chunks(1000) {
                        f.write_all(chunk).unwrap();
                    }
                    f.commit().unwrap();
                }
                _ => opts.write(&dest, new_bytes()).unwrap(),
            }
            let _ = std::fs::File::open(format!("{MARK}end-{case}"));
            assert_eq!(std::fs::read(&dest).unwrap(), new_bytes());
        }
    }
    println!("power-loss-trace-ok");
}

// ---------------------------------------------------------------------------------
// From an strace log to operations

/// One operation of a save on the model filesystem. Files are named by the fd they were
/// opened as (each creation gets a fresh inode).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Op {
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
    /// `close`: the fd number may be reused.
    Close { fd: i64 },
}

/// The quoted strings and the bare words of an argument list, in order.
fn split_args(args: &str) -> Vec<String> {
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
fn base(name: &str) -> String {
    name.rsplit('/').next().unwrap_or(name).to_owned()
}

/// The operations of each case, from an `strace -f -e trace=%file,%desc` log.
fn parse_ops(log: &str) -> BTreeMap<String, Vec<Op>> {
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

// ---------------------------------------------------------------------------------
// The model filesystem

/// An inode's bytes: what is durable (as of its last sync) and what was written.
#[derive(Clone, Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    /// A symlink's target. A symlink's target is written with its inode, so it is
    /// durable with its name (`symlinkat` has no file to sync).
    link: Option<String>,
}

/// A change to the directory, with the inode it concerns resolved when it was made.
#[derive(Clone, Debug)]
enum Effect {
    Set {
        name: String,
        inode: usize,
    },
    Remove {
        name: String,
    },
    /// A rename, whole or not at all.
    Move {
        from: String,
        to: String,
        inode: usize,
    },
}

fn apply(entries: &mut BTreeMap<String, usize>, e: &Effect) {
    match e {
        Effect::Set { name, inode } => {
            entries.insert(name.clone(), *inode);
        }
        Effect::Remove { name } => {
            entries.remove(name);
        }
        Effect::Move { from, to, inode } => {
            entries.remove(from);
            entries.insert(to.clone(), *inode);
        }
    }
}

/// The model filesystem after some operations of a save.
#[derive(Clone, Debug)]
struct Fs {
    inodes: Vec<Inode>,
    /// The directory as a live process sees it.
    live: BTreeMap<String, usize>,
    /// The directory as of its last sync.
    durable: BTreeMap<String, usize>,
    /// Changes since the last directory sync, in order.
    pending: Vec<Effect>,
    fds: BTreeMap<i64, (usize, u64)>,
    /// What each written inode is written with, where it is not the save's `new`
    /// content (a history commit writes a version file and a manifest).
    sources: BTreeMap<usize, Vec<u8>>,
    /// A replay that only follows names and inodes: writes write zeros.
    dry: bool,
}

impl Fs {
    fn new(old: Option<&[u8]>) -> Fs {
        let mut fs = Fs {
            inodes: Vec::new(),
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
            pending: Vec::new(),
            fds: BTreeMap::new(),
            sources: BTreeMap::new(),
            dry: false,
        };
        if let Some(old) = old {
            fs.inodes.push(Inode {
                durable: old.to_vec(),
                current: old.to_vec(),
                link: None,
            });
            fs.live.insert(DEST.into(), 0);
            fs.durable.insert(DEST.into(), 0);
        }
        fs
    }

    /// A directory of durable entries: `(name, Ok(bytes))` a file, `(name, Err(target))`
    /// a symlink.
    fn with_entries(entries: &[(String, Result<Vec<u8>, String>)]) -> Fs {
        let mut fs = Fs::new(None);
        for (name, entry) in entries {
            let inode = match entry {
                Ok(bytes) => Inode {
                    durable: bytes.clone(),
                    current: bytes.clone(),
                    link: None,
                },
                Err(target) => Inode {
                    link: Some(target.clone()),
                    ..Inode::default()
                },
            };
            fs.inodes.push(inode);
            fs.live.insert(name.clone(), fs.inodes.len() - 1);
        }
        fs.durable = fs.live.clone();
        fs
    }

    fn effect(&mut self, e: Effect) {
        apply(&mut self.live, &e);
        self.pending.push(e);
    }

    fn step(&mut self, op: &Op, new: &[u8]) {
        match op {
            Op::Create { fd, name } => {
                self.inodes.push(Inode::default());
                let inode = self.inodes.len() - 1;
                self.fds.insert(*fd, (inode, 0));
                self.effect(Effect::Set {
                    name: name.clone(),
                    inode,
                });
            }
            Op::CreateAnonymous { fd } => {
                self.inodes.push(Inode::default());
                self.fds.insert(*fd, (self.inodes.len() - 1, 0));
            }
            Op::Write { fd, offset, len } => {
                let (inode, pos) = self.fds[fd];
                let at = offset.unwrap_or(pos) as usize;
                // The save writes the new content, in order, from its start.
                let data = match self.sources.get(&inode) {
                    Some(source) => source[at..at + len].to_vec(),
                    None if self.dry => vec![0; *len],
                    None => new[at..at + len].to_vec(),
                };
                let cur = &mut self.inodes[inode].current;
                if cur.len() < at + len {
                    cur.resize(at + len, 0);
                }
                cur[at..at + len].copy_from_slice(&data);
                if offset.is_none() {
                    self.fds.insert(*fd, (inode, (at + len) as u64));
                }
            }
            Op::SyncFile { fd } => {
                let i = &mut self.inodes[self.fds[fd].0];
                i.durable = i.current.clone();
            }
            Op::Rename { from, to } => {
                let inode = self.live[from];
                self.effect(Effect::Move {
                    from: from.clone(),
                    to: to.clone(),
                    inode,
                });
            }
            Op::LinkFd { fd, name } => {
                let inode = self.fds[fd].0;
                self.effect(Effect::Set {
                    name: name.clone(),
                    inode,
                });
            }
            Op::LinkName { from, to } => {
                let inode = self.live[from];
                self.effect(Effect::Set {
                    name: to.clone(),
                    inode,
                });
            }
            Op::Unlink { name } => self.effect(Effect::Remove { name: name.clone() }),
            Op::Symlink { target, name } => {
                self.inodes.push(Inode {
                    link: Some(target.clone()),
                    ..Inode::default()
                });
                let inode = self.inodes.len() - 1;
                self.effect(Effect::Set {
                    name: name.clone(),
                    inode,
                });
            }
            Op::SyncDir => {
                self.durable = self.live.clone();
                self.pending.clear();
            }
            Op::Close { fd } => {
                self.fds.remove(fd);
            }
        }
    }
}

/// What an inode may read back as after a power cut.
fn contents_after_crash(inode: &Inode) -> Vec<Vec<u8>> {
    let (d, c) = (&inode.durable, &inode.current);
    if d == c {
        return vec![c.clone()];
    }
    assert!(
        c.starts_with(d),
        "the model handles files written by appending only"
    );
    let mut lengths = vec![d.len()];
    let mut b = d.len() / BLOCK * BLOCK + BLOCK;
    while b < c.len() {
        lengths.push(b);
        b += BLOCK;
    }
    lengths.push(c.len());
    let mut out = Vec::new();
    for len in lengths {
        // Blocks (or their parts) past the durable length may each be zeros.
        let first = d.len() / BLOCK;
        let last = len.div_ceil(BLOCK);
        let n = last.saturating_sub(first);
        for mask in 0u32..(1 << n) {
            let mut bytes = c[..len].to_vec();
            for k in 0..n {
                if mask & (1 << k) != 0 {
                    let start = ((first + k) * BLOCK).max(d.len());
                    let end = ((first + k + 1) * BLOCK).min(len);
                    bytes[start..end].fill(0);
                }
            }
            out.push(bytes);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What the destination is in one crash state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Absent,
    Old,
    New,
    /// Empty, truncated or zero-filled: what must never be.
    Torn,
    /// A history's `latest` pointer names a version that is not there.
    Dangling,
}

#[derive(Default, Debug)]
struct Tally {
    states: usize,
    /// Crash point -> what was seen there.
    seen: BTreeMap<(bool, Seen), usize>,
    violations: Vec<String>,
}

/// Replays `ops` and checks every crash state. `full` asks for the `Full` promise (new
/// content once returned).
fn explore(case: &str, ops: &[Op], old: Option<&[u8]>, new: &[u8], full: bool) -> Tally {
    let existing = old.is_some();
    let mut tally = Tally::default();
    let mut fs = Fs::new(old);
    for point in 0..=ops.len() {
        if point > 0 {
            fs.step(&ops[point - 1], new);
        }
        let returned = point == ops.len();
        let m = fs.pending.len();
        assert!(m < 16, "{case}: too many pending directory changes: {m}");
        for subset in 0u32..(1 << m) {
            let mut entries = fs.durable.clone();
            for (k, e) in fs.pending.iter().enumerate() {
                if subset & (1 << k) != 0 {
                    apply(&mut entries, e);
                }
            }
            let contents = match entries.get(DEST) {
                None => vec![None],
                Some(&i) => contents_after_crash(&fs.inodes[i])
                    .into_iter()
                    .map(Some)
                    .collect(),
            };
            for content in contents {
                tally.states += 1;
                let seen = match &content {
                    None => Seen::Absent,
                    Some(b) if Some(&b[..]) == old => Seen::Old,
                    Some(b) if *b == new => Seen::New,
                    Some(_) => Seen::Torn,
                };
                *tally.seen.entry((returned, seen)).or_default() += 1;
                let wrong = match seen {
                    Seen::Torn => Some("neither the old nor the new content"),
                    Seen::Absent if existing => Some("the destination is gone"),
                    Seen::Absent | Seen::Old if full && returned => {
                        Some("the save returned, but the new content is not there")
                    }
                    _ => None,
                };
                if let Some(why) = wrong {
                    let len = content.as_ref().map_or(0, Vec::len);
                    tally.violations.push(format!(
                        "{case}: crash after {point} of {} ops, directory {entries:?}, {len} bytes: {why}",
                        ops.len()
                    ));
                }
            }
        }
    }
    // The model's own sanity: without a crash the save did what it said.
    let dest = fs.live.get(DEST).map(|&i| fs.inodes[i].current.clone());
    assert_eq!(
        dest.as_deref(),
        Some(new),
        "{case}: replay does not end with the new file"
    );
    tally
}

fn kind_of(case: &str) -> Kind {
    let name = case.rsplit_once('-').unwrap().0;
    kinds()
        .into_iter()
        .find(|k| format!("{k:?}") == name)
        .unwrap()
}

fn level_of(case: &str) -> Durability {
    let name = case.rsplit_once('-').unwrap().1;
    LEVELS
        .into_iter()
        .find(|l| format!("{l:?}") == name)
        .unwrap()
}

#[test]
fn every_simulated_power_loss_leaves_the_old_or_the_new_file() {
    if let Some(dir) = common::role() {
        return child_main(Path::new(&dir));
    }
    if !common::have_strace() {
        return common::skip(TEST, "strace is not installed (or may not trace here)");
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let child = common::child(TEST, work.to_str().unwrap());
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=%file,%desc", "-o"])
        .arg(&log)
        .arg(child.get_program())
        .args(child.get_args())
        .envs(child.get_envs().filter_map(|(k, v)| Some((k, v?))));
    common::run_child(cmd, "power-loss-trace-ok");
    let cases = parse_ops(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(
        cases.len(),
        kinds().len() * LEVELS.len(),
        "{:?}",
        cases.keys()
    );

    let mut failures = Vec::new();
    // What -> (crash states, violating states).
    let mut states: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (case, ops) in &cases {
        let (kind, level) = (kind_of(case), level_of(case));
        let new = std::fs::read(work.join(case).join(DEST)).unwrap();
        let old = std::fs::read(work.join(format!("{case}.old"))).ok();
        assert_eq!(old.is_some(), kind.existing(), "{case}");
        assert!(
            !new.contains(&0),
            "{case}: a zeroed block could pass for new content"
        );
        let old = old.as_deref();
        let t = explore(case, ops, old, &new, level == Durability::Full);
        let total = states.entry(format!("{level:?}")).or_default();
        total.0 += t.states;
        total.1 += t.violations.len();
        let count = |returned: bool, s: Seen| t.seen.get(&(returned, s)).copied().unwrap_or(0);
        common::report(&format!(
            "power-loss model [{case}]: ops={} states={} violations={} seen={:?}",
            ops.len(),
            t.states,
            t.violations.len(),
            t.seen
        ));
        match level {
            Durability::Full => {
                if !t.violations.is_empty() {
                    failures.push(format!("{case}: {}", t.violations[0]));
                }
                // The model can fail: without the file sync, or the directory sync.
                for (what, keep) in [
                    (
                        "file sync",
                        (|o: &Op| !matches!(o, Op::SyncFile { .. })) as fn(&Op) -> bool,
                    ),
                    ("directory sync", |o: &Op| *o != Op::SyncDir),
                ] {
                    let mutated: Vec<Op> = ops.iter().filter(|o| keep(o)).cloned().collect();
                    if mutated.len() == ops.len() {
                        failures.push(format!("{case}: the trace has no {what} to remove"));
                        continue;
                    }
                    let m = explore(case, &mutated, old, &new, true);
                    let total = states.entry(format!("Full without {what}")).or_default();
                    total.0 += m.states;
                    total.1 += m.violations.len();
                    common::report(&format!(
                        "power-loss model [{case} without {what}]: states={} violations={}",
                        m.states,
                        m.violations.len()
                    ));
                    if m.violations.is_empty() {
                        failures.push(format!(
                            "{case}: removing the {what} produced no violating state: the model cannot fail"
                        ));
                    }
                }
            }
            Durability::Data => {
                // Old or new, never torn, never gone...
                let kept: Vec<_> = t.violations.iter().collect();
                if !kept.is_empty() {
                    failures.push(format!("{case}: {}", kept[0]));
                }
                // ... but after it returned it may come back as the old file (or absent).
                let reverted = count(true, Seen::Old) + count(true, Seen::Absent);
                if reverted == 0 {
                    failures.push(format!(
                        "{case}: Data never reverts after returning in the model; it should"
                    ));
                }
            }
            Durability::None => {
                if count(false, Seen::Torn) + count(true, Seen::Torn) == 0 {
                    failures.push(format!(
                        "{case}: None never leaves a torn or empty file in the model; it should"
                    ));
                }
            }
        }
    }
    for (what, (n, bad)) in &states {
        common::report(&format!(
            "power-loss model: {n} crash states for {what}, {bad} violating"
        ));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_model_loses_unsynced_data_and_unsynced_renames() {
    // A hand-written naive sequence: write, rename, no syncs at all.
    let ops = vec![
        Op::Create {
            fd: 4,
            name: ".t".into(),
        },
        Op::Write {
            fd: 4,
            offset: None,
            len: new_bytes().len(),
        },
        Op::Rename {
            from: ".t".into(),
            to: DEST.into(),
        },
    ];
    let t = explore("naive", &ops, Some(&old_bytes()), &new_bytes(), true);
    assert!(t.seen.contains_key(&(true, Seen::Torn)), "{:?}", t.seen);
    assert!(t.seen.contains_key(&(true, Seen::Old)), "{:?}", t.seen);
    // Zero bytes written but durable length 0: the empty file is among the states.
    let inode = Inode {
        durable: Vec::new(),
        current: new_bytes(),
        link: None,
    };
    let c = contents_after_crash(&inode);
    assert!(c.contains(&Vec::new()) && c.contains(&new_bytes()));
    assert!(c.iter().any(|b| b.len() == 2 * BLOCK && b[BLOCK] == 0));
    // 4 block-boundary lengths after 0 bytes: 1 + 2 + 4 + 8 + 16 variants.
    assert_eq!(c.len(), 31);
}

// ---------------------------------------------------------------------------------
// A history commit

const HISTORY_TEST: &str = "every_simulated_power_loss_leaves_latest_at_a_complete_version";
const POINTER: &str = "state.json";
const MANIFEST: &str = "state.manifest.json";

/// The history cases: `keep(2)` over versions 1 and 2 (retention removes version 1) and
/// `keep(1)` over version 2 (retention removes version 2, the one the old pointer
/// names), each committing version 3 at `Full` and at `Data`.
const HISTORY_CASES: [(usize, Durability); 4] = [
    (2, Durability::Full),
    (2, Durability::Data),
    (1, Durability::Full),
    (1, Durability::Data),
];

fn history_case(keep: usize, level: Durability) -> String {
    format!("History-keep{keep}-{level:?}")
}

/// The child: in `dir/CASE/`, versions 1 and 2 of a `History<Doc>`, a copy of the
/// directory in `dir/CASE.before/` (symlinks as symlinks), then the commit of version
/// 3 between the markers.
#[cfg(feature = "json")]
fn history_child_main(dir: &Path) {
    use atomic_persist::history::History;
    for (keep, level) in HISTORY_CASES {
        let case = history_case(keep, level);
        let sub = dir.join(&case);
        std::fs::create_dir(&sub).unwrap();
        let mut h = History::<Doc>::builder(sub.join(POINTER))
            .keep(keep)
            .durability(level)
            .open_or_else(|| Doc {
                rev: 1,
                text: "one".repeat(900),
            })
            .unwrap();
        h.commit().unwrap();
        h.set(Doc {
            rev: 2,
            text: "two".repeat(1100),
        })
        .unwrap();
        let before = dir.join(format!("{case}.before"));
        std::fs::create_dir(&before).unwrap();
        for name in common::names(&sub) {
            let from = sub.join(&name);
            match std::fs::read_link(&from) {
                Ok(target) => std::os::unix::fs::symlink(target, before.join(&name)).unwrap(),
                Err(_) => {
                    std::fs::copy(&from, before.join(&name)).unwrap();
                }
            }
        }
        let _ = std::fs::File::open(format!("{MARK}begin-{case}"));
        h.set(Doc {
            rev: 3,
            text: "new".repeat(4500),
        })
        .unwrap();
        let _ = std::fs::File::open(format!("{MARK}end-{case}"));
    }
    println!("power-loss-trace-ok");
}

type Entries = Vec<(String, Result<Vec<u8>, String>)>;

/// A directory's entries: a file's bytes, or a symlink's target as `Err`.
fn read_entries(dir: &Path) -> Entries {
    common::names(dir)
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let entry = match std::fs::read_link(&path) {
                Ok(target) => Err(target.to_string_lossy().into_owned()),
                Err(_) => Ok(std::fs::read(&path).unwrap()),
            };
            (name.to_string_lossy().into_owned(), entry)
        })
        .collect()
}

/// The bytes of the version the pointer of `entries` names, and of the manifest.
fn latest_and_manifest(entries: &Entries) -> (Vec<u8>, Vec<u8>) {
    let get = |n: &str| entries.iter().find(|(name, _)| name == n).map(|(_, e)| e);
    let Some(Err(target)) = get(POINTER) else {
        panic!("{POINTER} is not a symlink: {entries:?}");
    };
    let Some(Ok(version)) = get(target) else {
        panic!("{POINTER} names {target}, which is not a file");
    };
    let Some(Ok(manifest)) = get(MANIFEST) else {
        panic!("no {MANIFEST}");
    };
    (version.clone(), manifest.clone())
}

/// Replays a history commit from the directory `before` and checks every crash state:
/// the pointer resolves to a complete version, the old latest or the new one (the new
/// one once a `Full` commit returned); the manifest is its old or its new content.
fn explore_history(case: &str, ops: &[Op], before: &Entries, after: &Entries, full: bool) -> Tally {
    let (old, old_manifest) = latest_and_manifest(before);
    let (new, new_manifest) = latest_and_manifest(after);
    // Which created inode is written with what: replay names only, then each written
    // inode gets the bytes its final name holds.
    let mut dry = Fs::with_entries(before);
    dry.dry = true;
    for op in ops {
        dry.step(op, &[]);
    }
    let names: Vec<&String> = dry.live.keys().collect();
    let want: Vec<&String> = after.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names, want,
        "{case}: the replay does not end with the directory"
    );
    let mut fs = Fs::with_entries(before);
    for (name, entry) in after {
        let inode = dry.live[name];
        if let (true, Ok(bytes)) = (inode >= before.len(), entry) {
            fs.sources.insert(inode, bytes.clone());
        }
    }
    let mut tally = Tally::default();
    for point in 0..=ops.len() {
        if point > 0 {
            fs.step(&ops[point - 1], &[]);
        }
        let returned = point == ops.len();
        let m = fs.pending.len();
        assert!(m < 16, "{case}: too many pending directory changes: {m}");
        for subset in 0u32..(1 << m) {
            let mut entries = fs.durable.clone();
            for (k, e) in fs.pending.iter().enumerate() {
                if subset & (1 << k) != 0 {
                    apply(&mut entries, e);
                }
            }
            let seen: Vec<Seen> = match entries.get(POINTER).map(|&i| &fs.inodes[i].link) {
                None => vec![Seen::Absent],
                Some(None) => vec![Seen::Torn], // not a symlink
                Some(Some(target)) => match entries.get(target) {
                    None => vec![Seen::Dangling],
                    Some(&v) => contents_after_crash(&fs.inodes[v])
                        .iter()
                        .map(|b| {
                            if *b == old {
                                Seen::Old
                            } else if *b == new {
                                Seen::New
                            } else {
                                Seen::Torn
                            }
                        })
                        .collect(),
                },
            };
            for seen in seen {
                tally.states += 1;
                *tally.seen.entry((returned, seen)).or_default() += 1;
                let wrong = match seen {
                    Seen::Torn => Some("latest is not a complete version"),
                    Seen::Dangling => Some("latest names a version that is not there"),
                    Seen::Absent => Some("latest is gone"),
                    Seen::Old if full && returned => {
                        Some("the commit returned, but latest is the old version")
                    }
                    _ => None,
                };
                if let Some(why) = wrong {
                    tally.violations.push(format!(
                        "{case}: crash after {point} of {} ops, directory {entries:?}: {why}",
                        ops.len()
                    ));
                }
            }
            let manifest = match entries.get(MANIFEST) {
                None => vec![Vec::new()],
                Some(&i) => contents_after_crash(&fs.inodes[i]),
            };
            for m in manifest {
                if m != old_manifest && m != new_manifest {
                    tally.violations.push(format!(
                        "{case}: crash after {point} of {} ops, directory {entries:?}: the manifest is neither the old nor the new one ({} bytes)",
                        ops.len(),
                        m.len()
                    ));
                }
            }
        }
    }
    tally
}

/// The history commit's operations without the new version file's sync, or without
/// the directory sync after the pointer's rename.
fn without(ops: &[Op], what: &str) -> Vec<Op> {
    let drop_at = match what {
        "version file sync" => {
            let fd = ops
                .iter()
                .find_map(|o| match o {
                    // A named temp, or (the Linux default) an anonymous one that gets
                    // the temp's name, or the version's own, just before the rename.
                    Op::Create { fd, name } | Op::LinkFd { fd, name }
                        if name.starts_with(".state.3.json.") || name == "state.3.json" =>
                    {
                        Some(*fd)
                    }
                    _ => None,
                })
                .expect("the version file's temp");
            ops.iter()
                .position(|o| *o == Op::SyncFile { fd })
                .expect("the version file's sync")
        }
        "directory sync after the pointer swap" => {
            let swap = ops
                .iter()
                .position(|o| matches!(o, Op::Rename { to, .. } if to == POINTER))
                .expect("the pointer's rename");
            swap + ops[swap..]
                .iter()
                .position(|o| *o == Op::SyncDir)
                .expect("a directory sync after the pointer's rename")
        }
        _ => unreachable!("{what}"),
    };
    let mut ops = ops.to_vec();
    ops.remove(drop_at);
    ops
}

#[test]
fn every_simulated_power_loss_leaves_latest_at_a_complete_version() {
    if !cfg!(feature = "json") {
        return; // History needs the json feature
    }
    if let Some(dir) = common::role() {
        #[cfg(feature = "json")]
        history_child_main(Path::new(&dir));
        let _ = dir;
        return;
    }
    if !common::have_strace() {
        return common::skip(
            HISTORY_TEST,
            "strace is not installed (or may not trace here)",
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let child = common::child(HISTORY_TEST, work.to_str().unwrap());
    let mut cmd = std::process::Command::new("strace");
    cmd.args(["-f", "-qq", "-e", "trace=%file,%desc", "-o"])
        .arg(&log)
        .arg(child.get_program())
        .args(child.get_args())
        .envs(child.get_envs().filter_map(|(k, v)| Some((k, v?))));
    common::run_child(cmd, "power-loss-trace-ok");
    let cases = parse_ops(&std::fs::read_to_string(&log).unwrap());
    assert_eq!(cases.len(), HISTORY_CASES.len(), "{:?}", cases.keys());

    let mut failures = Vec::new();
    let mut states: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (keep, level) in HISTORY_CASES {
        let case = history_case(keep, level);
        let ops = &cases[&case];
        let before = read_entries(&work.join(format!("{case}.before")));
        let after = read_entries(&work.join(&case));
        let full = level == Durability::Full;
        let t = explore_history(&case, ops, &before, &after, full);
        let total = states.entry(format!("keep({keep}) {level:?}")).or_default();
        total.0 += t.states;
        total.1 += t.violations.len();
        common::report(&format!(
            "power-loss model [{case}]: ops={} states={} violations={} seen={:?}",
            ops.len(),
            t.states,
            t.violations.len(),
            t.seen
        ));
        if !t.violations.is_empty() {
            failures.push(t.violations[0].clone());
        }
        if !full {
            continue;
        }
        for what in ["version file sync", "directory sync after the pointer swap"] {
            let m = explore_history(&case, &without(ops, what), &before, &after, true);
            let total = states
                .entry(format!("keep({keep}) Full without the {what}"))
                .or_default();
            total.0 += m.states;
            total.1 += m.violations.len();
            common::report(&format!(
                "power-loss model [{case} without the {what}]: states={} violations={}",
                m.states,
                m.violations.len()
            ));
            if let Some(v) = m.violations.first() {
                common::report(&format!("  e.g. {v}"));
            }
            // Without the swap's directory sync, keep(2) still holds: the manifest
            // write's own directory sync follows before the commit returns, and the
            // version the old pointer names is not removed. keep(1) removes it.
            let must_fail = what == "version file sync" || keep == 1;
            if must_fail && m.violations.is_empty() {
                failures.push(format!(
                    "{case}: removing the {what} produced no violating state: the model cannot fail"
                ));
            }
        }
    }
    for (what, (n, bad)) in &states {
        common::report(&format!(
            "power-loss model [history]: {n} crash states for {what}, {bad} violating"
        ));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
