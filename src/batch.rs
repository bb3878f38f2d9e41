//! [`Batch`]: many files, each replaced atomically, made durable together.
//!
//! A loop of [`write_atomic`](crate::write_atomic) over 100 files makes 200 device
//! flushes: each file's data, then each rename. A batch runs each step of the save for
//! all its files before the next, so that the steps that flush are shared:
//!
//! 1. Each file is staged as [`write_atomic`](crate::write_atomic) stages one: a
//!    temporary file beside its destination, with the same permissions, owner and
//!    shared-directory rules (`# Security` in the [`atomic`](crate::atomic) docs),
//!    written in full.
//! 2. Every file's data is made durable: with [`BatchSync::Filesystem`] (the default)
//!    by one `syncfs` per filesystem on Linux, a single flush for the whole batch; with
//!    [`BatchSync::EachFile`] (and on other platforms) by an `fdatasync` of each file.
//! 3. Each temporary file is renamed over its destination, in the order staged.
//! 4. With [`Durability::Full`](crate::Durability::Full), each distinct directory is
//!    synced once: its renames are durable when the commit returns.
//!
//! So 100 files in one directory cost 2 flushes, not 200. Each destination is at every
//! moment its old file or its new one, never a mix. A failure before step 3 changes
//! nothing; a failure once a destination has been replaced is [`Error::Batch`], which
//! lists the destinations replaced. Dropping a batch without committing it removes every temporary
//! file and touches no destination.
//!
//! The set is not all-or-nothing: a power cut during step 3 can keep some new files and
//! some old ones (each whole). A set of files that must change together is a
//! snapshot's job.
//!
//! # The cost of `syncfs`
//!
//! `syncfs` writes back everything dirty on the filesystem, other programs' writes
//! included: a batch on a filesystem that another program is filling pays for that
//! program's data too. `EachFile` pays one flush per file instead, but only for its own
//! files. BENCHMARKS.md has both, measured.
//!
//! ```
//! use atomic_persist::Batch;
//! use std::io::Write;
//! # let dir = tempfile::tempdir()?;
//! # let out = dir.path();
//! let mut batch = Batch::new();
//! for shard in 0..3 {
//!     batch.write(out.join(format!("shard-{shard}.bin")), vec![shard as u8; 1024])?;
//! }
//! let index = batch.create(out.join("index.txt"))?; // streamed, like AtomicFile
//! writeln!(index, "3 shards")?;
//! batch.commit()?; // every file new and durable, with 2 flushes in all on Linux
//! assert_eq!(std::fs::read(out.join("shard-2.bin"))?, [2; 1024]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::atomic::{AtomicFile, WriteOptions};
use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::sys;

/// How a [`Batch`] makes its files' data durable before it renames them (step 2 of the
/// [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BatchSync {
    /// One `syncfs` per filesystem the batch writes to (Linux): one device flush for
    /// any number of files, but it also writes back other programs' dirty data on that
    /// filesystem. Elsewhere, as [`EachFile`](Self::EachFile).
    #[default]
    Filesystem,
    /// An `fdatasync` of each file: one flush per file, for its own data only.
    EachFile,
}

/// Many files, each replaced atomically, made durable together: see the
/// [module docs](self). `'a` is how long the typed handles it commits
/// ([`Persisted::stage`](crate::Persisted::stage)) stay borrowed.
pub struct Batch<'a> {
    options: WriteOptions,
    sync: BatchSync,
    /// The staged files, in the order they will be renamed; one per destination.
    files: Vec<Entry<'a>>,
    /// Where each destination is in `files` (a B-tree, not a hash map: std's hasher
    /// seeds itself from the system's random source, and a batch must not depend on
    /// it).
    index: BTreeMap<PathBuf, usize>,
}

/// One staged file, and the typed handle it commits, if any.
struct Entry<'a> {
    file: AtomicFile,
    member: Option<Box<dyn Member + 'a>>,
}

/// A typed handle committed through a batch: what its own commit does just before and
/// just after its rename.
pub(crate) trait Member {
    /// Just before the renames: the writer lock, when the handle's commit takes one, and
    /// its generation check ([`Error::Conflict`] stops the whole batch before any
    /// rename).
    fn before_rename(&self) -> Result<Option<Lock>>;

    /// Once its file is in place, identified by `written`: the handle now holds that
    /// version.
    fn renamed(&mut self, written: Option<sys::FileId>);
}

impl Default for Batch<'_> {
    fn default() -> Self {
        Batch::new()
    }
}

impl<'a> Batch<'a> {
    /// An empty batch whose files are written with the default [`WriteOptions`].
    pub fn new() -> Batch<'a> {
        Batch::with_options(WriteOptions::default())
    }

    /// An empty batch whose files are written with `options` (durability, mode,
    /// `no_clobber`, ...), each as [`WriteOptions::write`] would write it. A typed
    /// handle's file is written with the handle's own options.
    pub fn with_options(options: WriteOptions) -> Batch<'a> {
        Batch {
            options,
            sync: BatchSync::default(),
            files: Vec::new(),
            index: BTreeMap::new(),
        }
    }

    /// How the files' data is made durable (default [`BatchSync::Filesystem`]).
    pub fn sync(mut self, how: BatchSync) -> Batch<'a> {
        self.sync = how;
        self
    }

    /// Stages `bytes` as the new content of `path`: its temporary file is written now,
    /// and the destination replaced at [`commit`](Self::commit). Staging a destination
    /// again replaces what was staged for it before (in its place in the order).
    ///
    /// # Errors
    ///
    /// As [`WriteOptions::create`] and writing the temporary file: [`Error::Io`]
    /// naming the step and the path, [`Error::AlreadyExists`] with `no_clobber`,
    /// [`Error::Refused`] for a destination that is not a regular file or that another
    /// user planted in a shared directory. The batch is unchanged by a failed call.
    pub fn write(&mut self, path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> Result<()> {
        // No write buffer: the bytes go to the file in one call, and a batch of many
        // files does not keep a buffer for each.
        let mut file = self.options.create_buffered(path.as_ref(), 0)?;
        std::io::Write::write_all(&mut file, bytes.as_ref())
            .map_err(|e| Error::io(crate::Op::Write, file.path(), e))?;
        self.add(file, None);
        Ok(())
    }

    /// Stages a streaming write of `path` and returns it to write into, as an
    /// [`AtomicFile`] (which the batch commits: do not keep it). Staging a destination
    /// again replaces what was staged for it before.
    ///
    /// # Errors
    ///
    /// As [`WriteOptions::create`].
    pub fn create(&mut self, path: impl AsRef<Path>) -> Result<&mut AtomicFile> {
        let file = self.options.create(path)?;
        Ok(self.add(file, None))
    }

    /// Adds `file` (committing `member`), in the place of an earlier one for the same
    /// destination, which is dropped (its temporary file removed).
    pub(crate) fn add(
        &mut self,
        file: AtomicFile,
        member: Option<Box<dyn Member + 'a>>,
    ) -> &mut AtomicFile {
        let entry = Entry { file, member };
        let i = match self.index.get(entry.file.path()) {
            Some(&i) => {
                self.files[i] = entry;
                i
            }
            None => {
                self.index
                    .insert(entry.file.path().to_path_buf(), self.files.len());
                self.files.push(entry);
                self.files.len() - 1
            }
        };
        &mut self.files[i].file
    }

    /// How many files are staged.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether no file is staged.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The staged destinations (after following symlinks), in the order they will be
    /// renamed: the order each was first staged.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|e| e.file.path())
    }

    /// Replaces every staged destination, each atomically, and makes them durable
    /// together (see the [module docs](self) for the steps and the flushes).
    ///
    /// # Errors
    ///
    /// Before any destination is replaced (nothing changed, no temporary file left): the
    /// errors of a save, [`Error::Io`] naming the step ([`Op`](crate::Op)) and the file,
    /// [`Error::AlreadyExists`] with `no_clobber`, [`Error::Refused`]. Once a destination
    /// has been replaced: [`Error::Batch`], whose `committed` lists the destinations
    /// replaced and whose `source` is the failure (a rename, or a directory sync after
    /// all renames, when every file is new but not known to be durable); no temporary
    /// file is left.
    pub fn commit(mut self) -> Result<()> {
        for entry in &mut self.files {
            entry.file.batch_stage()?;
        }
        // The data of every file is durable before any of them gets its name: a power
        // cut must not keep a new name over data that never reached the disk.
        self.sync_data()?;
        if let Err((renamed, e)) = self.rename_all() {
            return Err(batch_error(self.committed(renamed), e));
        }
        // Each directory once: its entries hold every rename made in it. (A typed
        // handle's file keeps its own durability: a directory counts as synced only
        // once a file that asks for it has synced it.)
        let mut synced = BTreeSet::new();
        for entry in &self.files {
            let dir = entry.file.dir_path();
            if synced.contains(dir) {
                continue;
            }
            match entry.file.batch_sync_dir() {
                Ok(true) => {
                    synced.insert(dir);
                }
                Ok(false) => {}
                Err(e) => return Err(batch_error(self.committed(self.files.len()), e)),
            }
        }
        Ok(())
    }

    /// The destinations of the first `n` files.
    fn committed(&self, n: usize) -> Vec<PathBuf> {
        let files = self.files[..n].iter();
        files.map(|e| e.file.path().to_path_buf()).collect()
    }

    /// Step 3: every file renamed into place, in order; on a failure, how many were and
    /// the error. The typed handles' locks are all taken (in path order, so two batches
    /// cannot each wait for the other) and their generation checks made before the
    /// first rename, and held until the last.
    fn rename_all(&mut self) -> std::result::Result<(), (usize, Error)> {
        let mut order: Vec<&Entry<'a>> = self.files.iter().filter(|e| e.member.is_some()).collect();
        order.sort_by(|a, b| a.file.path().cmp(b.file.path()));
        let mut locks = Vec::new();
        for entry in order {
            let member = entry.member.as_ref().expect("filtered");
            locks.push(member.before_rename().map_err(|e| (0, e))?);
        }
        for (i, entry) in self.files.iter_mut().enumerate() {
            let written = match entry.member {
                Some(_) => entry.file.batch_identity(),
                None => None,
            };
            entry.file.batch_rename().map_err(|e| (i, e))?;
            if let Some(member) = &mut entry.member {
                member.renamed(written);
            }
        }
        drop(locks);
        Ok(())
    }

    /// Step 2: every staged file's data durable, one filesystem or one file at a time.
    fn sync_data(&self) -> Result<()> {
        let whole = self.sync == BatchSync::Filesystem;
        let mut synced = BTreeSet::new();
        // Files in one directory share its filesystem: one `fstat` per directory.
        let mut filesystems: BTreeMap<&Path, Option<u64>> = BTreeMap::new();
        // A file whose durability asks for no sync neither syncs nor counts as synced.
        let files = self
            .files
            .iter()
            .map(|e| &e.file)
            .filter(|f| f.batch_needs_sync());
        for file in files {
            let fs = match whole {
                true => *filesystems
                    .entry(file.dir_path())
                    .or_insert_with(|| file.batch_filesystem()),
                false => None,
            };
            match fs {
                // Every file is fully written already: one `syncfs` covers them all.
                Some(fs) if whole && synced.contains(&fs) => {}
                Some(fs) if whole && file.batch_sync_filesystem()? => {
                    synced.insert(fs);
                }
                _ => file.batch_sync()?,
            }
        }
        Ok(())
    }

    /// Drops every staged file (removing its temporary file), touching no destination.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::RemoveTemp`](crate::Op::RemoveTemp) for the first
    /// temporary file that cannot be removed (the others are removed still; what is
    /// left is debris for [`sweep`](crate::sweep)).
    pub fn abort(self) -> Result<()> {
        let mut first = Ok(());
        for entry in self.files {
            let removed = entry.file.abort();
            if first.is_ok() {
                first = removed;
            }
        }
        first
    }
}

/// The error of a commit stopped after `committed` were renamed: `source` itself when
/// none was, since then nothing changed.
fn batch_error(committed: Vec<PathBuf>, source: Error) -> Error {
    if committed.is_empty() {
        return source;
    }
    Error::Batch {
        committed,
        source: Box::new(source),
    }
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("options", &self.options)
            .field("sync", &self.sync)
            .field("files", &self.paths().collect::<Vec<_>>())
            .finish()
    }
}
