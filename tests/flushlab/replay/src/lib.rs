//! The flush lab's log reader and replayer.
//!
//! The kernel's `dm-log-writes` target passes every write to the real device and also
//! appends it, in the order the device completed and flushed it, to a log device. This
//! crate reads that log and rebuilds the disk as it stood after any entry, so that a
//! power cut can be looked at after **every** flush and, with some of the writes since the
//! last flush left out, between flushes (what a drive's volatile write cache may lose).
//!
//! # The log's format
//!
//! From the kernel's `drivers/md/dm-log-writes.c` (version 1), all integers little-endian:
//!
//! ```text
//! byte 0:          super   { magic u64 = 0x6a736677736872, version u64 = 1,
//!                            nr_entries u64, sectorsize u32 }   (one sector)
//! then nr_entries times:
//!                  entry   { sector u64, nr_sectors u64, flags u64, data_len u64 }
//!                          (one sector; a mark's text follows the entry in that sector)
//!                  data    nr_sectors sectors (none for a discard or a mark)
//! ```
//!
//! `sector` and `nr_sectors` count sectors of `sectorsize` bytes, the target device's
//! logical block size. Flags: 1 flush, 2 FUA, 4 discard, 8 mark, 16 metadata. Anything
//! else (another magic, version or flag, a mark that overflows its sector, an entry that
//! runs past the log's end) is refused with a [`LogError`], never guessed at.
//!
//! The kernel logs a write only once a flush (or its own FUA) has made it stable, so the
//! log is the order in which writes reached the medium: a prefix up to a flush entry is
//! exactly a disk cut off by a power failure just after that flush completed.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The super block's magic number (`WRITE_LOG_MAGIC`).
pub const MAGIC: u64 = 0x006a_7366_7773_6872;
/// The only log version this reader knows (`WRITE_LOG_VERSION`).
pub const VERSION: u64 = 1;

/// The entry's write was preceded by a cache flush (`REQ_PREFLUSH`).
pub const FLUSH: u64 = 1 << 0;
/// The entry's write bypassed the cache (`REQ_FUA`).
pub const FUA: u64 = 1 << 1;
/// The entry discards its range; it carries no data.
pub const DISCARD: u64 = 1 << 2;
/// The entry is a mark sent with `dmsetup message DEV 0 mark TEXT`; no write.
pub const MARK: u64 = 1 << 3;
/// The write was file-system metadata (`REQ_META`); informative only.
pub const METADATA: u64 = 1 << 4;
const KNOWN_FLAGS: u64 = FLUSH | FUA | DISCARD | MARK | METADATA;

/// Size of the super block and of an entry header as the kernel writes them.
const SUPER_LEN: usize = 28;
const ENTRY_LEN: usize = 32;

/// Why a log was refused or a replay failed.
#[derive(Debug)]
pub enum LogError {
    /// Reading the log or writing the image failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The super block's magic is not [`MAGIC`]: this is not a dm-log-writes log.
    BadMagic(u64),
    /// A version other than [`VERSION`].
    UnknownVersion(u64),
    /// A sector size that is not a power of two from 512 to 64 KiB.
    BadSectorSize(u32),
    /// An entry with flags this reader does not know.
    UnknownFlags {
        /// The entry's index (1-based).
        entry: u64,
        /// Its flags.
        flags: u64,
    },
    /// An entry whose header, mark or data runs past the end of the log, or a mark longer
    /// than its sector.
    Truncated {
        /// The entry's index (1-based).
        entry: u64,
    },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io { op, source } => write!(f, "{op}: {source}"),
            LogError::BadMagic(m) => write!(f, "not a dm-log-writes log (magic {m:#x})"),
            LogError::UnknownVersion(v) => write!(f, "unknown dm-log-writes version {v}"),
            LogError::BadSectorSize(s) => write!(f, "unsupported sector size {s}"),
            LogError::UnknownFlags { entry, flags } => {
                write!(f, "entry {entry}: unknown flags {flags:#x}")
            }
            LogError::Truncated { entry } => write!(f, "entry {entry} runs past the log's end"),
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

fn io(op: &'static str) -> impl FnOnce(io::Error) -> LogError {
    move |source| LogError::Io { op, source }
}

/// One logged write, flush, discard or mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// 1-based position in the log (0 is the super block).
    pub index: u64,
    /// First target sector written (in `sectorsize` units).
    pub sector: u64,
    /// Sectors written or discarded.
    pub nr_sectors: u64,
    /// The entry's flags ([`FLUSH`], [`FUA`], ...).
    pub flags: u64,
    /// The mark's text, for a [`MARK`] entry.
    pub mark: Option<String>,
    /// Byte offset of the data in the log (meaningful when the entry writes).
    pub data_offset: u64,
}

impl Entry {
    /// Whether a power cut just after this entry is a flush point: everything logged up
    /// to here is on stable storage.
    pub fn is_flush_point(&self) -> bool {
        self.flags & (FLUSH | FUA) != 0
    }

    /// Whether the entry changes the disk (a write or a discard).
    pub fn changes_disk(&self) -> bool {
        self.flags & MARK == 0 && self.nr_sectors > 0
    }
}

/// A parsed log: its entries, read from the file once.
#[derive(Debug)]
pub struct Log {
    file: File,
    /// The target device's logical sector size.
    pub sectorsize: u32,
    /// Every entry, in log order.
    pub entries: Vec<Entry>,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Log {
    /// Opens and parses the log at `path`.
    ///
    /// # Errors
    /// [`LogError`] when the file cannot be read or is not a version-1 log that this
    /// reader understands in full.
    pub fn open(path: &Path) -> Result<Log, LogError> {
        let file = File::open(path).map_err(io("open the log"))?;
        Log::parse(file)
    }

    /// Parses an open log file.
    ///
    /// # Errors
    /// As [`Log::open`].
    pub fn parse(file: File) -> Result<Log, LogError> {
        let len = file.metadata().map_err(io("stat the log"))?.len();
        let mut head = [0u8; SUPER_LEN];
        file.read_exact_at(&mut head, 0)
            .map_err(io("read the super block"))?;
        let magic = u64_at(&head, 0);
        if magic != MAGIC {
            return Err(LogError::BadMagic(magic));
        }
        let version = u64_at(&head, 8);
        if version != VERSION {
            return Err(LogError::UnknownVersion(version));
        }
        let count = u64_at(&head, 16);
        let sectorsize = u32::from_le_bytes(head[24..28].try_into().expect("4 bytes"));
        if !sectorsize.is_power_of_two() || !(512..=65536).contains(&sectorsize) {
            return Err(LogError::BadSectorSize(sectorsize));
        }
        let ss = u64::from(sectorsize);
        let mut entries = Vec::new();
        let mut pos = ss;
        let mut sector = vec![0u8; sectorsize as usize];
        for index in 1..=count {
            if pos + ss > len {
                return Err(LogError::Truncated { entry: index });
            }
            file.read_exact_at(&mut sector, pos)
                .map_err(io("read an entry"))?;
            let entry = Self::entry(index, &sector, pos + ss)?;
            pos += ss;
            if entry.flags & (DISCARD | MARK) == 0 {
                let end = entry
                    .nr_sectors
                    .checked_mul(ss)
                    .and_then(|data| pos.checked_add(data));
                match end {
                    Some(end) if end <= len => pos = end,
                    _ => return Err(LogError::Truncated { entry: index }),
                }
            }
            entries.push(entry);
        }
        Ok(Log {
            file,
            sectorsize,
            entries,
        })
    }

    fn entry(index: u64, sector: &[u8], data_offset: u64) -> Result<Entry, LogError> {
        let flags = u64_at(sector, 16);
        if flags & !KNOWN_FLAGS != 0 {
            return Err(LogError::UnknownFlags {
                entry: index,
                flags,
            });
        }
        let data_len = u64_at(sector, 24);
        let mark = match flags & MARK {
            0 => None,
            _ => {
                let end = usize::try_from(data_len)
                    .ok()
                    .and_then(|n| ENTRY_LEN.checked_add(n))
                    .filter(|&end| end <= sector.len())
                    .ok_or(LogError::Truncated { entry: index })?;
                Some(String::from_utf8_lossy(&sector[ENTRY_LEN..end]).into_owned())
            }
        };
        Ok(Entry {
            index,
            sector: u64_at(sector, 0),
            nr_sectors: u64_at(sector, 8),
            flags,
            mark,
            data_offset,
        })
    }

    /// The entry at 1-based `index`.
    pub fn get(&self, index: u64) -> Option<&Entry> {
        index
            .checked_sub(1)
            .and_then(|i| self.entries.get(usize::try_from(i).ok()?))
    }

    /// Applies `entry` to `image`: its data at its sector, or zeros for a discard (what a
    /// discard reads back as on the devices the lab uses). Marks and flushes without data
    /// change nothing.
    ///
    /// # Errors
    /// [`LogError::Io`] when the log cannot be read or the image written.
    pub fn apply(&self, entry: &Entry, image: &File) -> Result<(), LogError> {
        if !entry.changes_disk() {
            return Ok(());
        }
        let ss = u64::from(self.sectorsize);
        let mut buf = vec![0u8; 1 << 20];
        let total = entry.nr_sectors * ss;
        let mut done = 0u64;
        while done < total {
            let n = (total - done).min(buf.len() as u64) as usize;
            let chunk = &mut buf[..n];
            if entry.flags & DISCARD == 0 {
                self.file
                    .read_exact_at(chunk, entry.data_offset + done)
                    .map_err(io("read a logged write"))?;
            } else {
                chunk.fill(0);
            }
            image
                .write_all_at(chunk, entry.sector * ss + done)
                .map_err(io("write the image"))?;
            done += n as u64;
        }
        Ok(())
    }

    /// Applies the entries after `from` up to and including `to` (1-based; `from` 0 is
    /// the start), keeping each write for which `keep` says yes.
    ///
    /// # Errors
    /// As [`Log::apply`].
    pub fn apply_range(
        &self,
        from: u64,
        to: u64,
        image: &File,
        mut keep: impl FnMut(&Entry) -> bool,
    ) -> Result<(), LogError> {
        for entry in self
            .entries
            .iter()
            .filter(|e| e.index > from && e.index <= to)
        {
            if keep(entry) {
                self.apply(entry, image)?;
            }
        }
        Ok(())
    }
}

/// What kind of power cut a replay point stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointKind {
    /// Just after a flush (or FUA) entry: every entry up to it is on the disk.
    Flush,
    /// Between flushes: every entry up to the last flush point, and a random part of the
    /// writes after it up to this entry (a volatile cache that lost or reordered some).
    Torn,
}

/// One disk state to rebuild and check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Point {
    /// The last entry (1-based) the state includes.
    pub entry: u64,
    /// Flush point or torn point.
    pub kind: PointKind,
    /// The last flush point before `entry` (0: none); a torn point keeps everything up to
    /// here and part of what follows.
    pub stable: u64,
    /// The last mark before `entry`, if any (the lab's `ack-<n>`).
    pub mark: Option<String>,
    /// The seed that picks a torn point's lost writes.
    pub seed: u64,
}

/// SplitMix64, a small well-known generator: the lab's choices are a function of its seed.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The points to check in `log` after the entry marked `start` (or from the start):
/// every flush point, and `torn` points drawn from the writes that are not flush points
/// (each with writes since the last flush lost at random), ordered by entry.
pub fn plan(log: &Log, start: Option<&str>, torn: usize, seed: u64) -> Vec<Point> {
    let first = start
        .and_then(|name| log.entries.iter().find(|e| e.mark.as_deref() == Some(name)))
        .map_or(0, |e| e.index);
    let mut points = Vec::new();
    let mut candidates = Vec::new();
    let (mut stable, mut mark) = (0u64, None::<String>);
    for e in &log.entries {
        if e.mark.is_some() {
            mark.clone_from(&e.mark);
        }
        if e.index <= first {
            if e.is_flush_point() {
                stable = e.index;
            }
            continue;
        }
        let point = |kind| Point {
            entry: e.index,
            kind,
            stable,
            mark: mark.clone(),
            seed: 0,
        };
        if e.is_flush_point() {
            points.push(point(PointKind::Flush));
            stable = e.index;
        } else if e.changes_disk() {
            candidates.push(point(PointKind::Torn));
        }
    }
    let mut state = seed;
    for _ in 0..torn.min(candidates.len()) {
        let i = (splitmix(&mut state) % candidates.len() as u64) as usize;
        let mut p = candidates.swap_remove(i);
        p.seed = splitmix(&mut state);
        points.push(p);
    }
    points.sort_by_key(|p| (p.entry, p.kind == PointKind::Torn));
    points
}

/// Which writes a torn point keeps: each write after the last flush point with
/// probability one half, and always the point's own entry (so that the point differs
/// from the flush point before it).
pub fn torn_keep(point: &Point) -> impl FnMut(&Entry) -> bool + '_ {
    let mut state = point.seed;
    move |e: &Entry| e.index == point.entry || splitmix(&mut state) & 1 == 1
}

#[cfg(test)]
mod tests;
