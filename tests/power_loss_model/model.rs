//! The model filesystem: one directory, inodes with a durable and a written content,
//! directory changes pending until the directory is synced.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common;
use crate::trace::Op;

/// The unit in which unsynced data may be lost.
pub const BLOCK: usize = 4096;

/// An inode's bytes: what is durable (as of its last sync) and what was written.
#[derive(Clone, Debug, Default)]
pub struct Inode {
    pub durable: Vec<u8>,
    pub current: Vec<u8>,
    /// A symlink's target. A symlink's target is written with its inode, so it is
    /// durable with its name (`symlinkat` has no file to sync).
    pub link: Option<String>,
}

/// A change to the directory, with the inode it concerns resolved when it was made.
#[derive(Clone, Debug)]
pub enum Effect {
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
    /// The directory as a live process sees it.
    pub live: BTreeMap<String, usize>,
    /// The directory as of its last sync.
    pub durable: BTreeMap<String, usize>,
    /// Changes since the last directory sync, in order.
    pub pending: Vec<Effect>,
    pub fds: BTreeMap<i64, (usize, u64)>,
    /// What each written inode is written with, where it is not the save's `new`
    /// content (a history commit writes a version file and a manifest).
    pub sources: BTreeMap<usize, Vec<u8>>,
    /// A replay that only follows names and inodes: writes write zeros.
    pub dry: bool,
}

impl Fs {
    /// A directory of durable entries: `(name, Ok(bytes))` a file, `(name, Err(target))`
    /// a symlink.
    pub fn with_entries(entries: &[(String, Result<Vec<u8>, String>)]) -> Fs {
        let mut fs = Fs {
            inodes: Vec::new(),
            live: BTreeMap::new(),
            durable: BTreeMap::new(),
            pending: Vec::new(),
            fds: BTreeMap::new(),
            sources: BTreeMap::new(),
            dry: false,
        };
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

    pub fn effect(&mut self, e: Effect) {
        apply(&mut self.live, &e);
        self.pending.push(e);
    }

    pub fn step(&mut self, op: &Op, new: &[u8]) {
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
            Op::SyncAll => {
                for inode in &mut self.inodes {
                    inode.durable = inode.current.clone();
                }
                self.durable = self.live.clone();
                self.pending.clear();
            }
            Op::Close { fd } => {
                self.fds.remove(fd);
            }
        }
    }
}

impl Fs {
    /// The model at the start of a save that turns the directory `before` into `after`,
    /// each inode the save creates written with the bytes its final name holds: a first
    /// replay follows names and inodes only, to learn which inode ends up where.
    pub fn for_replay(case: &str, ops: &[Op], before: &Entries, after: &Entries) -> Fs {
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
        fs
    }

    /// Every directory a power cut now may leave: the durable entries with any subset
    /// of the pending changes applied.
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

pub type Entries = Vec<(String, Result<Vec<u8>, String>)>;

/// A directory's entries: a file's bytes, or a symlink's target as `Err`.
pub fn read_entries(dir: &Path) -> Entries {
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

/// Copies the directory `from` to a new directory `to`, symlinks as symlinks.
pub fn copy_entries(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for name in common::names(from) {
        let path = from.join(&name);
        match std::fs::read_link(&path) {
            Ok(target) => std::os::unix::fs::symlink(target, to.join(&name)).unwrap(),
            Err(_) => {
                std::fs::copy(&path, to.join(&name)).unwrap();
            }
        }
    }
}
