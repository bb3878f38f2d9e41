//! The model filesystem: inodes with a durable and a written content, and directories
//! whose changes stay pending until that directory is synced (or the whole filesystem
//! is, by `syncfs`).
//!
//! An entry is keyed by its directory and its name: the case's own directory's entries
//! by their name (`dest.bin`), another directory's as `#{inode}/{name}`, so that a
//! renamed directory keeps its entries, as it does on disk.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common;
use crate::trace::{Loc, Op};

/// The unit in which unsynced data may be lost.
pub const BLOCK: usize = 4096;

/// The case's directory, which is no inode of the model.
pub const ROOT: usize = usize::MAX;

/// An inode's bytes: what is durable (as of its last sync) and what was written.
#[derive(Clone, Debug, Default)]
pub struct Inode {
    pub durable: Vec<u8>,
    pub current: Vec<u8>,
    /// A symlink's target. A symlink's target is written with its inode, so it is
    /// durable with its name (`symlinkat` has no file to sync).
    pub link: Option<String>,
    /// A directory: its entries are keyed `#{inode}/{name}`.
    pub dir: bool,
}

/// The key of the entry `name` in the directory `dir`.
pub fn key(dir: usize, name: &str) -> String {
    match dir {
        ROOT => name.to_owned(),
        _ => format!("#{dir}/{name}"),
    }
}

/// The directory of an entry's key.
fn dir_of(key: &str) -> usize {
    match key.strip_prefix('#').and_then(|k| k.split_once('/')) {
        Some((dir, _)) => dir.parse().unwrap(),
        None => ROOT,
    }
}

/// A change to a directory, with the inode it concerns resolved when it was made.
#[derive(Clone, Debug)]
pub enum Effect {
    Set {
        name: String,
        inode: usize,
    },
    Remove {
        name: String,
    },
    /// A rename within one directory, whole or not at all.
    Move {
        from: String,
        to: String,
        inode: usize,
    },
}

impl Effect {
    /// The directory the change is made in.
    fn dir(&self) -> usize {
        match self {
            Effect::Set { name, .. } | Effect::Remove { name } => dir_of(name),
            Effect::Move { to, .. } => dir_of(to),
        }
    }
}

pub fn apply(entries: &mut BTreeMap<String, usize>, e: &Effect) {
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
pub struct Fs {
    pub inodes: Vec<Inode>,
    /// Every directory's entries as a live process sees them.
    pub live: BTreeMap<String, usize>,
    /// The entries as of their directory's last sync.
    pub durable: BTreeMap<String, usize>,
    /// Changes not yet durable, in order.
    pub pending: Vec<Effect>,
    /// Open files: inode and offset.
    pub fds: BTreeMap<i64, (usize, u64)>,
    /// Open directories: their inode (or [`ROOT`]).
    pub dirs: BTreeMap<i64, usize>,
    /// What each written inode is written with, where it is not the save's `new`
    /// content (a history commit writes a version file and a manifest).
    pub sources: BTreeMap<usize, Vec<u8>>,
    /// A replay that only follows names and inodes: writes write zeros.
    pub dry: bool,
}

impl Fs {
    /// The durable tree `entries` (paths relative to the case's directory, parents
    /// first, as [`read_entries`] lists them).
    pub fn with_entries(entries: &Entries) -> Fs {
        let mut fs = Fs {
            inodes: Vec::new(),
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
            pending: Vec::new(),
            fds: BTreeMap::new(),
            dirs: BTreeMap::new(),
            sources: BTreeMap::new(),
            dry: false,
        };
        for (path, entry) in entries {
            let inode = match entry {
                Entry::File(bytes) => Inode {
                    durable: bytes.clone(),
                    current: bytes.clone(),
                    ..Inode::default()
                },
                Entry::Link(target) => Inode {
                    link: Some(target.clone()),
                    ..Inode::default()
                },
                Entry::Dir => Inode {
                    dir: true,
                    ..Inode::default()
                },
            };
            fs.inodes.push(inode);
            let k = fs.resolve(&Loc {
                at: None,
                path: path.clone(),
            });
            fs.live.insert(k, fs.inodes.len() - 1);
        }
        fs.durable = fs.live.clone();
        fs
    }

    /// The key of the entry `loc` names, as a live process resolves it now.
    pub fn resolve(&self, loc: &Loc) -> String {
        let mut dir = match loc.at {
            Some(fd) => *self
                .dirs
                .get(&fd)
                .unwrap_or_else(|| panic!("not an open directory: {loc:?}")),
            None => ROOT,
        };
        let mut parts: Vec<&str> = loc.path.split('/').filter(|p| !p.is_empty()).collect();
        let last = parts
            .pop()
            .unwrap_or_else(|| panic!("no entry named: {loc:?}"));
        for part in parts {
            dir = *self
                .live
                .get(&key(dir, part))
                .unwrap_or_else(|| panic!("no directory {part} on the way to {loc:?}"));
            assert!(self.inodes[dir].dir, "{part} is not a directory: {loc:?}");
        }
        key(dir, last)
    }

    /// The directory `loc` names (the case's directory for `""` or `"."`).
    fn resolve_dir(&self, loc: &Loc) -> usize {
        if loc.path.is_empty() || loc.path == "." {
            return loc.at.map_or(ROOT, |fd| self.dirs[&fd]);
        }
        let inode = self.live[&self.resolve(loc)];
        assert!(self.inodes[inode].dir, "not a directory: {loc:?}");
        inode
    }

    /// Every entry of `entries` reachable from the case's directory, by its path.
    pub fn paths(&self, entries: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        let mut todo = vec![(ROOT, String::new())];
        while let Some((dir, prefix)) = todo.pop() {
            for (k, &inode) in entries.iter().filter(|(k, _)| dir_of(k) == dir) {
                let name = match dir {
                    ROOT => k.as_str(),
                    _ => k.split_once('/').unwrap().1,
                };
                let path = format!("{prefix}{name}");
                if self.inodes[inode].dir {
                    todo.push((inode, format!("{path}/")));
                }
                out.insert(path, inode);
            }
        }
        out
    }

    pub fn effect(&mut self, e: Effect) {
        apply(&mut self.live, &e);
        self.pending.push(e);
    }

    fn new_inode(&mut self, inode: Inode) -> usize {
        self.inodes.push(inode);
        self.inodes.len() - 1
    }

    pub fn step(&mut self, op: &Op, new: &[u8]) {
        match op {
            Op::Create { fd, at } => {
                let inode = self.new_inode(Inode::default());
                self.fds.insert(*fd, (inode, 0));
                let name = self.resolve(at);
                self.effect(Effect::Set { name, inode });
            }
            Op::CreateAnonymous { fd } => {
                let inode = self.new_inode(Inode::default());
                self.fds.insert(*fd, (inode, 0));
            }
            Op::Mkdir { at } => {
                let inode = self.new_inode(Inode {
                    dir: true,
                    ..Inode::default()
                });
                let name = self.resolve(at);
                self.effect(Effect::Set { name, inode });
            }
            Op::OpenDir { fd, at } => {
                let dir = self.resolve_dir(at);
                self.dirs.insert(*fd, dir);
            }
            Op::Write { fd, offset, len } => self.write(*fd, *offset, *len, new),
            Op::SyncFile { fd } => {
                let i = &mut self.inodes[self.fds[fd].0];
                i.durable = i.current.clone();
            }
            Op::Rename { from, to } => {
                let (from, to) = (self.resolve(from), self.resolve(to));
                assert_eq!(dir_of(&from), dir_of(&to), "a rename across directories");
                let inode = self.live[&from];
                self.effect(Effect::Move { from, to, inode });
            }
            Op::LinkFd { fd, to } => {
                let inode = self.fds[fd].0;
                let name = self.resolve(to);
                self.effect(Effect::Set { name, inode });
            }
            Op::LinkName { from, to } => {
                let inode = self.live[&self.resolve(from)];
                let name = self.resolve(to);
                self.effect(Effect::Set { name, inode });
            }
            Op::Unlink { at } => {
                let name = self.resolve(at);
                self.effect(Effect::Remove { name });
            }
            Op::Symlink { target, at } => {
                let inode = self.new_inode(Inode {
                    link: Some(target.clone()),
                    ..Inode::default()
                });
                let name = self.resolve(at);
                self.effect(Effect::Set { name, inode });
            }
            Op::SyncDir { fd } => {
                // Only this directory's changes become durable.
                let dir = self.dirs[fd];
                let (mine, rest) = std::mem::take(&mut self.pending)
                    .into_iter()
                    .partition::<Vec<_>, _>(|e| e.dir() == dir);
                for e in &mine {
                    apply(&mut self.durable, e);
                }
                self.pending = rest;
            }
            Op::SyncAll => {
                for inode in &mut self.inodes {
                    inode.durable = inode.current.clone();
                }
                self.durable = self.live.clone();
                self.pending.clear();
            }
            Op::Close { fd } => {
                self.fds.remove(fd);
                self.dirs.remove(fd);
            }
        }
    }

    /// `len` bytes written to `fd` at `offset` (or its position): the bytes the inode
    /// is to hold there.
    fn write(&mut self, fd: i64, offset: Option<u64>, len: usize, new: &[u8]) {
        let (inode, pos) = self.fds[&fd];
        let at = offset.unwrap_or(pos) as usize;
        // The save writes the new content, in order, from its start.
        let data = match self.sources.get(&inode) {
            Some(source) => source[at..at + len].to_vec(),
            None if self.dry => vec![0; len],
            None => new[at..at + len].to_vec(),
        };
        let cur = &mut self.inodes[inode].current;
        if cur.len() < at + len {
            cur.resize(at + len, 0);
        }
        cur[at..at + len].copy_from_slice(&data);
        if offset.is_none() {
            self.fds.insert(fd, (inode, (at + len) as u64));
        }
    }

    /// The model at the start of a save that turns the tree `before` into `after`,
    /// each inode the save creates written with the bytes its final path holds: a first
    /// replay follows names and inodes only, to learn which inode ends up where.
    pub fn for_replay(case: &str, ops: &[Op], before: &Entries, after: &Entries) -> Fs {
        let mut dry = Fs::with_entries(before);
        dry.dry = true;
        for op in ops {
            dry.step(op, &[]);
        }
        let paths = dry.paths(&dry.live);
        let names: Vec<&String> = paths.keys().collect();
        let want: Vec<&String> = after.iter().map(|(n, _)| n).collect();
        assert_eq!(names, want, "{case}: the replay does not end with the tree");
        let mut fs = Fs::with_entries(before);
        let existing = fs.inodes.len();
        for (path, entry) in after {
            let inode = paths[path];
            if let (true, Entry::File(bytes)) = (inode >= existing, entry) {
                fs.sources.insert(inode, bytes.clone());
            }
        }
        fs
    }

    /// Every set of entries a power cut now may leave: the durable entries with any
    /// subset of the pending changes applied.
    pub fn crash_directories(&self, case: &str) -> Vec<BTreeMap<String, usize>> {
        let m = self.pending.len();
        assert!(m < 16, "{case}: too many pending directory changes: {m}");
        (0u32..(1 << m))
            .map(|subset| {
                let mut entries = self.durable.clone();
                for (k, e) in self.pending.iter().enumerate() {
                    if subset & (1 << k) != 0 {
                        apply(&mut entries, e);
                    }
                }
                entries
            })
            .collect()
    }
}

/// What an inode may read back as after a power cut.
pub fn contents_after_crash(inode: &Inode) -> Vec<Vec<u8>> {
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
pub enum Seen {
    Absent,
    Old,
    New,
    /// Empty, truncated or zero-filled: what must never be.
    Torn,
    /// A history's `latest` pointer names a version that is not there.
    Dangling,
}

#[derive(Default, Debug)]
pub struct Tally {
    pub states: usize,
    /// Crash point -> what was seen there.
    pub seen: BTreeMap<(bool, Seen), usize>,
    pub violations: Vec<String>,
}

impl Tally {
    /// How many crash states showed `seen`, before (`false`) or after (`true`) the save
    /// returned.
    pub fn count(&self, returned: bool, seen: Seen) -> usize {
        self.seen.get(&(returned, seen)).copied().unwrap_or(0)
    }
}

/// Crash states and violating states per kind of run, reported at the end of a test.
#[derive(Default)]
pub struct Totals(BTreeMap<String, (usize, usize)>);

impl Totals {
    /// Counts `t` under `what` and reports the run `run`.
    pub fn add(&mut self, what: String, run: &str, t: &Tally) {
        let total = self.0.entry(what).or_default();
        total.0 += t.states;
        total.1 += t.violations.len();
        common::report(&format!(
            "power-loss model [{run}]: states={} violations={} seen={:?}",
            t.states,
            t.violations.len(),
            t.seen
        ));
    }

    /// Counts `t`, a run of the save with `what` removed from its trace, which must
    /// violate: a failure in `failures` when it does not (the model could not fail).
    pub fn must_violate(&mut self, case: &str, what: &str, t: &Tally, failures: &mut Vec<String>) {
        let run = format!("{case} without the {what}");
        self.add(
            format!("{} without the {what}", kind_of_case(case)),
            &run,
            t,
        );
        match t.violations.first() {
            Some(v) => common::report(&format!("  e.g. {v}")),
            None => failures.push(format!(
                "{case}: removing the {what} produced no violating state: the model cannot fail"
            )),
        }
    }

    /// Reports every total, labelled `label`.
    pub fn report(&self, label: &str) {
        for (what, (n, bad)) in &self.0 {
            common::report(&format!(
                "power-loss model [{label}]: {n} crash states for {what}, {bad} violating"
            ));
        }
    }
}

/// A case's name without its leading kind (`Batch-EachFile-Full` -> `EachFile-Full`).
fn kind_of_case(case: &str) -> &str {
    case.split_once('-').map_or(case, |(_, rest)| rest)
}

/// One entry of a directory tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    File(Vec<u8>),
    /// A symlink, by its target.
    Link(String),
    Dir,
}

/// A directory tree: each entry by its path, parents before their entries.
pub type Entries = Vec<(String, Entry)>;

/// The tree under `dir`, symlinks not followed.
pub fn read_entries(dir: &Path) -> Entries {
    let mut out = Vec::new();
    read_into(dir, "", &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn read_into(dir: &Path, prefix: &str, out: &mut Entries) {
    for name in common::names(dir) {
        let path = dir.join(&name);
        let rel = format!("{prefix}{}", name.to_string_lossy());
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).unwrap();
            out.push((rel, Entry::Link(target.to_string_lossy().into_owned())));
        } else if meta.is_dir() {
            out.push((rel.clone(), Entry::Dir));
            read_into(&path, &format!("{rel}/"), out);
        } else {
            out.push((rel, Entry::File(std::fs::read(&path).unwrap())));
        }
    }
}

/// Copies the tree `from` to a new directory `to`, symlinks as symlinks.
pub fn copy_entries(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for (path, entry) in read_entries(from) {
        let dest = to.join(&path);
        match entry {
            Entry::File(bytes) => std::fs::write(dest, bytes).unwrap(),
            Entry::Link(target) => std::os::unix::fs::symlink(target, dest).unwrap(),
            Entry::Dir => std::fs::create_dir(dest).unwrap(),
        }
    }
}
