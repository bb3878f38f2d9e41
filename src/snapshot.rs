//! [`Snapshot`]: a set of files that changes all at once.
//!
//! A snapshot `ckpt` is a pointer, as a [`History`](crate::History)'s `latest` is (a
//! symlink swapped by rename; a pointer file where there are no symlinks), naming one
//! **generation directory** beside it: `ckpt.1/`, `ckpt.2/`, ... (for a name with an
//! extension, `set.json` has `set.1.json/`). Each generation holds a whole set of files.
//!
//! A commit ([`Transaction::commit`]):
//!
//! 1. writes every file of the new set into a fresh directory `.ckpt.XXXXXXXXXXXX.gen`
//!    beside the pointer (no reader looks there);
//! 2. under the writer lock (`.ckpt.lock`), checks that no other writer committed since
//!    the transaction began ([`Error::Conflict`] otherwise) and renames the directory to
//!    `ckpt.{generation}`, which no pointer names yet;
//! 3. makes all of it durable, the files' data, the directory's entries and its new
//!    name: one `syncfs` of the filesystem on Linux (one device flush), else an fsync of
//!    each file, of the directory and of its parent; so no pointer can ever name a set
//!    that a power cut could lose;
//! 4. swaps the pointer to it, the commit point, and with [`Durability::Full`] syncs the
//!    parent directory (one more flush); then removes the generations beyond
//!    [`keep`](SnapshotBuilder::keep). With [`Durability::Data`] the parent is synced
//!    before anything is removed (only when something is), so that no removal is
//!    durable before the swap: a durable pointer never names a removed generation.
//!
//! A reader ([`Snapshot::current`]) resolves the pointer once and reads every file through
//! one handle on that generation's directory, so it never mixes two sets. Retention may
//! remove the generation under a reader that keeps a [`View`] a long time: its reads then
//! fail with [`Error::NotFound`] naming the file, never with another set's bytes.
//!
//! ```
//! use atomic_persist::Snapshot;
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("ckpt");
//! let snap = Snapshot::builder(&path).keep(3).open_or_create()?;
//! let mut tx = snap.begin()?;
//! tx.write("model.bin", vec![0u8; 1024])?;
//! tx.put("state.json", &vec![1, 2, 3])?; // serde, the format by the extension
//! assert_eq!(tx.commit()?, 1); // the pointer moves: the old set or the new set
//!
//! let view = snap.current()?; // one consistent generation
//! let state: Vec<u32> = view.get("state.json")?;
//! assert_eq!((view.generation(), state), (1, vec![1, 2, 3]));
//! assert_eq!(view.read("model.bin")?.len(), 1024);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::atomic::{Durability, WriteOptions};
use crate::envelope::{self, Edits};
use crate::error::{Error, Op, Refusal, Result};
use crate::format::AnyFormat;
use crate::lock::Lock;
use crate::sys::{self, Access};
use crate::{names, pointer, trust};

/// Builds a [`Snapshot`]: `Snapshot::builder(path)`.
#[derive(Clone, Debug)]
pub struct SnapshotBuilder {
    path: PathBuf,
    keep: Option<usize>,
    options: WriteOptions,
    envelope: bool,
    lock_timeout: Option<Duration>,
}

impl SnapshotBuilder {
    /// Keep only the newest `n` generations (at least 1); by default all are kept.
    pub fn keep(mut self, n: usize) -> Self {
        self.keep = Some(n.max(1));
        self
    }

    /// How much of a commit must reach stable storage (default `Full`); `Data` keeps
    /// the files' data durable but may lose the last commit's pointer swap in a power
    /// cut, `None` syncs nothing.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.options = self.options.durability(durability);
        self
    }

    /// Wrap each value written with [`Transaction::put`] in the
    /// [envelope](mod@crate::envelope) (default `false`), stamped with the snapshot's
    /// generation, and verify it on [`View::get`].
    pub fn envelope(mut self, on: bool) -> Self {
        self.envelope = on;
        self
    }

    /// How long a commit waits for the writer lock before [`Error::Locked`] (default:
    /// as long as it takes).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Opens the snapshot at the path, which may have no generation yet (nothing is
    /// written until the first commit).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] ([`CorruptKind::BadPointer`](crate::CorruptKind::BadPointer))
    /// for a regular file at the path or a pointer that names no generation;
    /// [`Error::Refused`] for a device or FIFO there, or another user's link in a shared
    /// directory; [`Error::Io`] when it cannot be read.
    pub fn open_or_create(self) -> Result<Snapshot> {
        let snap = Snapshot {
            name: self
                .path
                .file_name()
                .map(OsStr::to_os_string)
                .ok_or_else(|| {
                    let e = io::Error::new(io::ErrorKind::InvalidInput, "not a file name");
                    Error::io(Op::Inspect, &self.path, e)
                })?,
            dir: self.path.parent().unwrap_or(Path::new("")).to_path_buf(),
            path: self.path,
            keep: self.keep,
            options: self.options,
            envelope: self.envelope,
            lock_timeout: self.lock_timeout,
        };
        snap.latest_generation()?;
        snap.sweep_own();
        Ok(snap)
    }
}

/// A set of files that changes all at once: see the [module docs](self).
#[derive(Clone)]
pub struct Snapshot {
    path: PathBuf,
    /// The pointer's directory and name.
    dir: PathBuf,
    name: OsString,
    keep: Option<usize>,
    options: WriteOptions,
    envelope: bool,
    lock_timeout: Option<Duration>,
}

impl Snapshot {
    /// A builder for the snapshot whose pointer is `path`.
    pub fn builder(path: impl AsRef<Path>) -> SnapshotBuilder {
        SnapshotBuilder {
            path: path.as_ref().to_path_buf(),
            keep: None,
            options: WriteOptions::default(),
            envelope: false,
            lock_timeout: None,
        }
    }

    /// The pointer's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generation the pointer names; `None` before the first commit.
    ///
    /// # Errors
    ///
    /// As [`SnapshotBuilder::open_or_create`].
    pub fn latest_generation(&self) -> Result<Option<u64>> {
        let how = trust::Read {
            limit: Some(4096),
            follow: false,
        };
        match pointer::read(&self.path, how)? {
            pointer::Found::Absent => Ok(None),
            pointer::Found::Plain => Err(Error::corrupt(
                &self.path,
                crate::CorruptKind::BadPointer,
                "a regular file is where the snapshot's pointer should be",
            )),
            pointer::Found::Target(target) => self.generation_of(&target).map(Some),
        }
    }

    /// The generation whose directory the pointer's `target` is.
    fn generation_of(&self, target: &OsStr) -> Result<u64> {
        names::version_of(&self.name, target)
            .filter(|_| Path::new(target).parent() == Some(Path::new("")))
            .ok_or_else(|| {
                let reason = format!(
                    "the pointer names {}, which is not a generation of this snapshot",
                    Path::new(target).display()
                );
                Error::corrupt(&self.path, crate::CorruptKind::BadPointer, reason)
            })
    }

    /// The directory of generation `generation` (which may not exist).
    pub fn generation_path(&self, generation: u64) -> PathBuf {
        self.dir.join(names::version_name(&self.name, generation))
    }

    /// The generations on disk, oldest first (the current one and those retention
    /// kept).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be listed.
    pub fn generations(&self) -> Result<Vec<u64>> {
        let names =
            sys::list_names(self.dir_or_dot()).map_err(|e| Error::io(Op::Inspect, &self.dir, e))?;
        let mut out: Vec<u64> = (names.iter())
            .filter_map(|n| names::version_of(&self.name, n))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The current set of files: one generation, read through one handle on its
    /// directory.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] before the first commit; as
    /// [`latest_generation`](Self::latest_generation) for the pointer; [`Error::Io`]
    /// when the generation's directory cannot be opened.
    pub fn current(&self) -> Result<View> {
        // Retention may remove the generation between the pointer's read and the open:
        // then the pointer has moved on, and is read again (bounded).
        for _ in 0..100 {
            let Some(generation) = self.latest_generation()? else {
                return Err(Error::NotFound {
                    path: self.path.clone(),
                });
            };
            let name = names::version_name(&self.name, generation);
            let path = self.dir.join(&name);
            match self.parent()?.open_dir(&name) {
                Ok(dir) => {
                    return Ok(View {
                        dir,
                        path,
                        generation,
                        envelope: self.envelope,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(Op::OpenDir, &path, e)),
            }
        }
        let e = io::Error::other("the generation kept being removed before it could be read");
        Err(Error::io(Op::OpenDir, &self.path, e))
    }

    /// Starts a new set of files: a fresh directory that [`Transaction::commit`] makes
    /// the next generation, if no other writer commits first.
    ///
    /// # Errors
    ///
    /// As [`latest_generation`](Self::latest_generation); [`Error::Io`] with
    /// [`Op::CreateTemp`] when the directory cannot be made.
    pub fn begin(&self) -> Result<Transaction<'_>> {
        let base = self.latest_generation()?.unwrap_or(0);
        let parent = self.parent()?;
        for _ in 0..64 {
            let name = temp_dir_name(&self.name);
            match parent.create_dir(&name) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(Op::CreateTemp, self.dir.join(&name), e)),
            }
            let dir = parent
                .open_dir(&name)
                .map_err(|e| Error::io(Op::CreateTemp, self.dir.join(&name), e))?;
            // Held while the transaction lives: a cleanup never takes it for debris.
            let _ = dir.try_lock();
            return Ok(Transaction {
                snap: self,
                parent,
                dir,
                name: Some(name),
                base,
                files: Vec::new(),
            });
        }
        let e = io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name");
        Err(Error::io(Op::CreateTemp, &self.path, e))
    }

    fn dir_or_dot(&self) -> &Path {
        match self.dir.as_os_str().is_empty() {
            true => Path::new("."),
            false => &self.dir,
        }
    }

    fn parent(&self) -> Result<sys::Dir> {
        sys::Dir::open(&self.dir).map_err(|e| Error::io(Op::OpenDir, &self.dir, e))
    }

    fn sync_parent(&self, parent: &sys::Dir) -> Result<()> {
        parent
            .sync_with(self.options.flush())
            .map_err(|e| Error::io(Op::SyncDir, &self.dir, e))
    }

    /// The writer lock, waiting as configured.
    fn lock(&self) -> Result<Lock> {
        match self.lock_timeout {
            None => Lock::exclusive(&self.path),
            Some(t) => Lock::exclusive_timeout(&self.path, t),
        }
    }

    /// Removes the directories of transactions that a killed writer left (a live one
    /// holds a lock on its directory and stays). Best effort, one listing.
    fn sweep_own(&self) {
        crate::atomic::sweep_own(&self.path, |base| base == self.name);
    }

    /// Removes the generations beyond `keep` (older than the newest `keep`) and any
    /// newer than `current` (debris of a writer killed between its rename and its
    /// pointer swap). Best effort: what stays is removed by the next commit.
    fn prune(&self, current: u64) {
        let Ok(generations) = self.generations() else {
            return;
        };
        let keep_from = self
            .keep
            .map_or(0, |k| current.saturating_sub(k as u64 - 1));
        let doomed: Vec<u64> = generations
            .into_iter()
            .filter(|&g| g < keep_from || g > current)
            .collect();
        // With `Data` the swap was not synced: no removal may become durable before it
        // (the durable pointer may still name a generation removed here). `Full` synced
        // it already; `None` promises nothing across a power cut.
        let unsynced = self.options.durability_level() == Durability::Data;
        if doomed.is_empty()
            || unsynced && self.parent().and_then(|d| self.sync_parent(&d)).is_err()
        {
            return;
        }
        for g in doomed {
            let name = names::version_name(&self.name, g);
            let _ = std::fs::remove_dir_all(self.dir.join(name));
        }
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .field("keep", &self.keep)
            .field("envelope", &self.envelope)
            .finish_non_exhaustive()
    }
}

/// `.{name}.{random}.gen`: a generation being written.
fn temp_dir_name(name: &OsStr) -> OsString {
    let temp = crate::atomic::temp_name(name);
    let bytes = sys::name_bytes(&temp);
    let mut out = bytes[..bytes.len() - ".tmp".len()].to_vec();
    out.extend_from_slice(b".gen");
    sys::name_from_bytes(out)
}

/// Whether `candidate` is a generation being written for the pointer `name`.
#[cfg(test)]
fn is_temp_dir_of(name: &OsStr, candidate: &OsStr) -> bool {
    names::is_transaction_dir(candidate, Some(name))
}

/// A new set of files being written: see [`Snapshot::begin`]. Dropped without
/// [`commit`](Self::commit), it removes what it wrote; the snapshot is untouched.
pub struct Transaction<'s> {
    snap: &'s Snapshot,
    parent: sys::Dir,
    /// The new generation's directory, under its temporary name `name`.
    dir: sys::Dir,
    name: Option<OsString>,
    /// The generation current when the transaction began.
    base: u64,
    /// Every file written, kept open for the sync.
    files: Vec<std::fs::File>,
}

impl Transaction<'_> {
    /// Writes `bytes` as the file `name` of the new set.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the file: `InvalidInput` for a name that is not one plain
    /// file name (no `/`, not `.` or `..`), `AlreadyExists` for a name written already
    /// in this transaction, or the failure of the create or the write.
    pub fn write(&mut self, name: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> Result<()> {
        let name = name.as_ref();
        let path = self.file_path(name);
        let mut file = self.create(name)?;
        file.write_all(bytes.as_ref())
            .map_err(|e| Error::io(Op::Write, &path, e))?;
        self.files.push(file);
        Ok(())
    }

    /// Serializes `value` as the file `name` of the new set, in the format its extension
    /// names, in the envelope if the snapshot has [`envelope`](SnapshotBuilder::envelope)
    /// on (stamped with the generation this transaction will commit).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownFormat`] for an extension that names no format;
    /// [`Error::Serialize`] naming the file; as [`write`](Self::write) for the file.
    pub fn put<T: Serialize + ?Sized>(&mut self, name: impl AsRef<Path>, value: &T) -> Result<()> {
        let name = name.as_ref();
        let format = AnyFormat::from_path(name).map_err(|e| e.at(&self.file_path(name)))?;
        self.put_as(name, format, value)
    }

    /// [`put`](Self::put) in the format `format` rather than the one the extension
    /// names: for a [`CustomFormat`](crate::CustomFormat), which no extension names.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put), without [`Error::UnknownFormat`].
    pub fn put_as<T: Serialize + ?Sized>(
        &mut self,
        name: impl AsRef<Path>,
        format: impl Into<AnyFormat>,
        value: &T,
    ) -> Result<()> {
        let (name, format) = (name.as_ref(), format.into());
        let path = self.file_path(name);
        let mut payload = Vec::new();
        envelope::write_payload(format, self.snap.envelope, value, &mut payload)
            .map_err(|e| e.at(&path))?;
        if !self.snap.envelope {
            return self.write(name, payload);
        }
        let mut crc = crc32fast::Hasher::new();
        crc.update(&payload);
        let generation = envelope::next_generation(self.base, &self.snap.path)?;
        let meta = crate::codec::stamp((None, 0), generation, None, crc);
        let mut bytes = Vec::with_capacity(payload.len() + 256);
        let io_error = |e| Error::io(Op::Write, &path, e);
        envelope::write_head(format, &mut bytes).map_err(io_error)?;
        bytes.extend_from_slice(&payload);
        envelope::write_tail(format, &meta, payload.len() as u64, &mut bytes).map_err(io_error)?;
        self.write(name, bytes)
    }

    /// The generation this transaction commits, unless another writer commits first.
    pub fn generation(&self) -> u64 {
        self.base + 1
    }

    fn file_path(&self, name: &Path) -> PathBuf {
        let dir = self.name.as_deref().unwrap_or_default();
        self.snap.dir.join(dir).join(name)
    }

    /// Creates the file `name` (a plain file name) in the new directory.
    fn create(&self, name: &Path) -> Result<std::fs::File> {
        let path = self.file_path(name);
        let plain = name.file_name().filter(|n| Path::new(n) == name);
        let Some(file_name) = plain else {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not one plain file name");
            return Err(Error::io(Op::CreateTemp, &path, e));
        };
        let perms = sys::Perms::new(None);
        self.dir
            .create_new(file_name, &perms)
            .map_err(|e| Error::io(Op::CreateTemp, &path, e))
    }

    /// Makes the new set the snapshot's current one (see the [module docs](self) for
    /// the steps); returns its generation.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when another writer committed since [`begin`](Snapshot::begin)
    /// (nothing changed; the new set is removed); [`Error::Locked`] past the lock
    /// timeout; [`Error::Io`] naming the step: before the pointer swap, nothing changed;
    /// a failed [`Op::SyncDir`] after it means the new set is current but perhaps not
    /// yet durable.
    pub fn commit(mut self) -> Result<u64> {
        let snap = self.snap;
        let _lock = snap.lock()?;
        let current = snap.latest_generation()?.unwrap_or(0);
        if current != self.base {
            return Err(Error::Conflict {
                path: snap.path.clone(),
                expected: self.base,
                found: current,
            });
        }
        let generation = envelope::next_generation(current, &snap.path)?;
        let target = names::version_name(&snap.name, generation);
        let target_path = snap.dir.join(&target);
        // A generation directory of this number is debris of a writer killed before its
        // swap: nothing names it.
        let _ = std::fs::remove_dir_all(&target_path);
        let temp = self.name.take().expect("not yet committed");
        if let Err(e) = self.parent.rename(&temp, &target) {
            self.name = Some(temp); // still ours to remove
            return Err(Error::io(Op::Rename, target_path, e));
        }
        // Nothing names the set yet: make it durable under its final name (the files,
        // its entries and its own name) before the pointer can name it.
        if let Err(e) = self.sync(&target_path) {
            let _ = std::fs::remove_dir_all(&target_path);
            return Err(e);
        }
        // The swap syncs the parent under `Full`: the new pointer durable in one flush.
        if let Err(e) = pointer::swap(&snap.path, &target, &snap.options) {
            if !matches!(
                e,
                Error::Io {
                    op: Op::SyncDir,
                    ..
                }
            ) {
                let _ = std::fs::remove_dir_all(&target_path);
            }
            return Err(e);
        }
        snap.prune(generation);
        Ok(generation)
    }

    /// Step 3: the set at `path` durable: every file's data, the directory's entries,
    /// and its name in the parent. One `syncfs` does all on Linux; elsewhere each file,
    /// the directory and the parent are synced.
    fn sync(&self, path: &Path) -> Result<()> {
        let error = |e| Error::io(Op::SyncFile, path, e);
        match self.snap.options.durability_level() {
            Durability::None => return Ok(()),
            _ if self.dir.sync_filesystem().map_err(error)? => return Ok(()),
            _ => {}
        }
        let flush = self.snap.options.flush();
        for file in &self.files {
            sys::sync_file(file, true, flush).map_err(error)?;
        }
        let sync_dir = |d: &sys::Dir| {
            d.sync_with(flush)
                .map_err(|e| Error::io(Op::SyncDir, path, e))
        };
        sync_dir(&self.dir)?;
        sync_dir(&self.parent)
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            // Best effort: what cannot be removed now is left for a later cleanup.
            let _ = std::fs::remove_dir_all(self.snap.dir.join(name));
        }
    }
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("snapshot", &self.snap.path)
            .field("generation", &self.generation())
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

/// One generation of a snapshot, read through one handle on its directory: see
/// [`Snapshot::current`].
pub struct View {
    dir: sys::Dir,
    path: PathBuf,
    generation: u64,
    envelope: bool,
}

impl View {
    /// This set's generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The generation's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of the file `name` of this set.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] naming the file when the set has no such file, or when
    /// retention removed this generation meanwhile; [`Error::Refused`] for anything but
    /// a regular file; [`Error::Io`] when it cannot be read.
    pub fn read(&self, name: impl AsRef<Path>) -> Result<Vec<u8>> {
        let path = self.path.join(name.as_ref());
        let (mut file, entry) = match self.dir.open_entry(name.as_ref().as_os_str(), Access::Read) {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::NotFound { path }),
            Err(e) => return Err(trust::read_error(&path, e)),
        };
        if !entry.is_file() {
            let kind = entry.kind();
            return Err(Error::refused(path, Refusal::NotRegular { kind }));
        }
        let mut bytes = Vec::with_capacity(entry.size() as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(Op::Read, &path, e))?;
        Ok(bytes)
    }

    /// The file `name` of this set, deserialized in the format its extension names
    /// (its envelope verified, if the snapshot has [`envelope`](SnapshotBuilder::envelope)
    /// on).
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read); [`Error::UnknownFormat`] for an extension that names no
    /// format; [`Error::Corrupt`] for a damaged envelope; [`Error::Deserialize`] when
    /// the value does not fit `T`.
    pub fn get<T: DeserializeOwned>(&self, name: impl AsRef<Path>) -> Result<T> {
        let path = self.path.join(name.as_ref());
        let format = AnyFormat::from_path(name.as_ref()).map_err(|e| e.at(&path))?;
        self.get_as(name, format)
    }

    /// [`get`](Self::get) in the format `format` rather than the one the extension
    /// names: for a [`CustomFormat`](crate::CustomFormat).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), without [`Error::UnknownFormat`].
    pub fn get_as<T: DeserializeOwned>(
        &self,
        name: impl AsRef<Path>,
        format: impl Into<AnyFormat>,
    ) -> Result<T> {
        let (path, format) = (self.path.join(name.as_ref()), format.into());
        let bytes = self.read(name)?;
        let split = envelope::split_for_decode(format, &bytes, self.envelope, Edits::Refuse)
            .map_err(|e| e.at(&path))?;
        envelope::decode(format, &bytes, &split).map_err(|e| e.at(&path))
    }
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View")
            .field("path", &self.path)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Watching the snapshot (feature `watch`).
#[cfg(feature = "watch")]
impl Snapshot {
    /// Watches the snapshot for commits by any writer: a [`View`] of each new set, after
    /// the one current now (see the [`watch`](crate::watch) module; the meta of each
    /// [`Update::Changed`](crate::watch::Update::Changed) is `None`).
    ///
    /// # Errors
    ///
    /// As [`latest_generation`](Self::latest_generation) and
    /// [`Persisted::watch`](crate::Persisted::watch).
    pub fn watch(&self) -> Result<crate::watch::Watch<View>> {
        self.watch_with(crate::watch::WatchOptions::new())
    }

    /// [`watch`](Self::watch) with `options` (debounce, polling).
    ///
    /// # Errors
    ///
    /// As [`watch`](Self::watch).
    pub fn watch_with(
        &self,
        options: crate::watch::WatchOptions,
    ) -> Result<crate::watch::Watch<View>> {
        use crate::watch::{Found, Stamp};
        let seen = self
            .latest_generation()?
            .map(|g| Stamp::Generation(g, None));
        let snap = self.clone();
        let read = move || match snap.latest_generation()? {
            None => Ok(None),
            Some(_) => {
                let view = snap.current()?;
                let stamp = Stamp::Generation(view.generation(), None);
                Ok(Some(Found {
                    value: view,
                    meta: None,
                    stamp,
                }))
            }
        };
        crate::watch::Watch::start(&self.path, options, seen, Box::new(read))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_directory_is_told_from_other_names() {
        let name = OsStr::new("ckpt");
        assert!(is_temp_dir_of(name, &temp_dir_name(name)));
        for other in [
            "ckpt.aaaaaaaaaaaa.gen",   // no leading dot
            "xckpt.aaaaaaaaaaaa.gen",  // another name
            ".ckpt.aaaaaaaaaaa.gen",   // 11 characters
            ".ckpt.aaaaaaaaaaaa.tmp",  // the engine's temporary file
            ".ckpt.AAAAAAAAAAAA.gen",  // not the alphabet
            ".ckpt2.aaaaaaaaaaaa.gen", // another pointer
            "ckpt.3",                  // a generation
        ] {
            assert!(!is_temp_dir_of(name, OsStr::new(other)), "{other}");
        }
    }
}
