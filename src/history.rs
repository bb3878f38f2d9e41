//! History: every commit is a new, numbered, enveloped file; a `latest` pointer says
//! which one is current; old versions can be listed, read and rolled back to.
//!
//! An atomic write tells a reader that a file is complete, not *which* version it is or
//! what came before. A [`History<T>`] keeps the versions: each commit writes a new file
//! and then moves a pointer, so the previous state is still there to compare with or to
//! go back to. [`RawHistory`] is the same store without a type: what the command-line
//! tool uses, since it cannot know `T`.
//!
//! # On disk
//!
//! For `History::<T>::builder("dir/state.json")`:
//!
//! ```text
//! dir/state.json             the `latest` pointer: a symlink to `state.7.json`
//! dir/state.5.json           version 5  ┐ each an enveloped file (see `envelope`):
//! dir/state.6.json           version 6  │ the value plus run id, time, generation
//! dir/state.7.json           version 7  ┘ and checksum
//! dir/state.manifest.json    a cache of the versions' meta (JSON, rebuilt when stale)
//! dir/.state.json.lock       the writer lock (see `lock`), never deleted
//! ```
//!
//! Version files are `{stem}.{generation}.{ext}` (`{name}.{generation}` without an
//! extension); the generation is the envelope's [`Meta::generation`], 1 for the first
//! commit, and the symlink's target is the bare file name, so the directory can be moved
//! or copied as a whole. Because `state.json` is a symlink to the current version,
//! anything that reads `state.json` (another program, `jq`, a
//! [`Persisted`](crate::Persisted) opened with the envelope on,
//! `atomic-persist inspect`) reads the current version.
//!
//! # A commit, in order (all under the writer lock)
//!
//! 1. Take the writer [`Lock`] (`.state.json.lock`), the same lock a
//!    [`Persisted`](crate::Persisted) writer of `state.json` would take.
//! 2. Read the pointer. If another writer moved it since this handle last read it, the
//!    commit is [`Error::Conflict`] and nothing is written: no lost update.
//!    Before the lock, the value is serialized once into memory: a value whose bytes
//!    equal the current version's makes no new version (and takes no lock), and a value
//!    that cannot be serialized leaves everything as it was.
//! 3. Write `state.{g+1}.json` atomically and durably through the
//!    [`atomic`](crate::atomic) engine (temp file, fsync, rename, directory fsync, as the
//!    [`Durability`] says; with [`Durability::Data`] the directory fsync is kept too, so
//!    the version's name is durable before a pointer naming it can be). A file of that
//!    name can only be debris of a writer killed between this step and the next; it is
//!    replaced.
//! 4. Swap the pointer: create a fresh symlink `.state.json.{random}.tmp` → `state.{g+1}.json`
//!    and `rename` it over `state.json` (atomic: readers see the old or the new link),
//!    then fsync the directory ([`Durability::Full`]).
//! 5. Retention ([`HistoryBuilder::keep`]): remove versions beyond the newest `n`. The
//!    version the pointer names is the newest, so it is never removed. With
//!    [`Durability::Data`] the directory is fsynced first when there is something to
//!    remove, so no removal is durable before the swap (a durable pointer could name
//!    the removed version).
//! 6. Rewrite the manifest atomically.
//!
//! # When a step fails
//!
//! - Steps 1-3, or the rename of step 4: the commit returns the error and nothing has
//!   changed: the pointer names the previous version, and the new version's file (if it
//!   got that far) is removed again.
//! - The directory fsync after the rename of step 4 ([`Op::SyncDir`]): the pointer
//!   already names the new version, only the durability of the swap is unconfirmed,
//!   as for [`Op::SyncDir`] of a plain save. The commit returns the error and skips
//!   steps 5 and 6 (removing versions before the swap is known durable could leave a
//!   durable pointer naming a removed version); the next commit catches up on both.
//!   The handle that got the error still knows the previous generation, so its next
//!   commit is [`Error::Conflict`]: [`reload`](History::reload) first.
//! - Steps 5 and 6 (and the directory fsync before retention with `Data`, which skips
//!   both when it fails): the commit has happened, so their errors are not the commit's: it
//!   returns `Ok`. A version retention could not remove is removed by the next commit;
//!   a manifest not rewritten is stale, [`versions`](History::versions) rebuilds the
//!   list from the files, and the next commit rewrites it.
//!
//! A crash (or `SIGKILL`) at any point leaves the pointer at a complete version: before
//! step 4 it still names the previous one (and step 3's file, if complete, is replaced by
//! the next commit), after step 4 the new one. A crash during step 4 can leave the
//! temporary symlink behind; [`sweep`](crate::sweep) recognises it by its name and removes
//! it once no writer holds the lock. Opening a [`History`] removes the stale temporary
//! files of its pointer, versions and manifest itself, as `sweep` would.
//!
//! # Readers
//!
//! Readers take no lock. A reader resolves the pointer and reads the version it names;
//! if retention removed that version in between (another writer committed `keep` times
//! meanwhile), it resolves the pointer again. A reader that has opened a version keeps
//! reading it even if it is removed (Unix semantics of an open file).
//!
//! # The manifest is a cache
//!
//! `state.manifest.json` lists every version with its generation, run id, time, schema
//! version, size and checksum, so [`versions`](History::versions) does not have to read
//! every version file. It is written after the pointer swap, so a crash can leave it
//! missing or stale. It is trusted only when its own CRC-32 (the last field, over the
//! manifest without it) matches, and then only for entries whose file exists with the
//! recorded size and a generation not newer than the pointer's; every other version
//! file is read and its envelope verified, and the next commit writes a corrected
//! manifest. Deleting it is always safe.
//!
//! ```text
//! {"atomic_persist_manifest":1,"latest":7,"versions":[
//!   {"generation":6,"file":"state.6.json","run_id":"0193…","written_at":"2026-…Z",
//!    "schema_version":0,"size":118,"checksum":"crc32:1a2b3c4d"}, …],
//!  "checksum":"crc32:5e6f7a8b"}
//! ```
//!
//! # History is append-only
//!
//! [`rollback(g)`](History::rollback) does not move the pointer back: it writes version
//! `g`'s payload again as a new generation, so the versions in between stay listed and
//! a rollback can itself be rolled back.
//!
//! # Windows
//!
//! Creating a symlink needs a privilege on Windows, so there the pointer is a small file
//! instead: `state.json` holds the line `atomic-persist-latest state.7.json` and is
//! replaced with [`write_atomic`](crate::write_atomic) (`MoveFileExW` with
//! `MOVEFILE_REPLACE_EXISTING`, atomic on NTFS). Every reader of this module follows it;
//! other programs must read the version it names. That is what non-Unix builds do.
//!
//! # An existing plain file
//!
//! If `state.json` is a regular file (say a [`Persisted`](crate::Persisted) file before
//! history was turned on), [`open`](HistoryBuilder::open) loads it, and the first commit
//! writes the next generation after its envelope's (or generation 1) and replaces it with
//! the pointer. The old file's contents are not kept as a version.
//!
//! Conversely, do not commit to `state.json` with a [`Persisted`](crate::Persisted)
//! once it is a pointer: the engine writes through symlinks, so that would replace the
//! current version's file (atomically, but outside the history's numbering and lock
//! order). Read it freely; write through the `History`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write as _};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::atomic::{Durability, WriteOptions};
use crate::codec::{self, Codec};
use crate::envelope::{self, Fingerprint, Meta, Timestamp};
use crate::error::{Error, Op, Result};
use crate::format::AnyFormat;
use crate::local::{self, Local};
use crate::lock::Lock;
use crate::pointer;
use crate::recovery::{self, Recovery, Restored};
use crate::trust;
use crate::version::VersionInfo;

/// The version of the manifest's layout.
pub const MANIFEST_VERSION: u32 = 1;

/// How often a reader resolves the pointer again when retention removed the version it
/// named just before it could read it.
const READ_RETRIES: usize = 1000;

/// The state of the manifest file, as [`RawHistory::manifest_state`] finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestState {
    /// It lists exactly the versions on disk.
    Current,
    /// There is none (no commit yet, or it was deleted, or a crash came first).
    Missing,
    /// It exists but disagrees with the version files or cannot be read: versions are
    /// rebuilt from the files, and the next commit rewrites it.
    Stale,
}

impl ManifestState {
    /// `"current"`, `"missing"` or `"stale"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestState::Current => "current",
            ManifestState::Missing => "missing",
            ManifestState::Stale => "stale",
        }
    }
}

/// What the `latest` pointer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pointer {
    /// Nothing at the path.
    Absent,
    /// It names this version.
    Version(u64),
    /// The path is a regular file, not (yet) a pointer.
    Plain,
}

// ---------------------------------------------------------------------------------------
// The untyped store

/// A history without a value type: versions as bytes and meta. See the
/// [module docs](self) for the layout; [`History<T>`] is the typed handle on top.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{History, RawHistory};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("state.json");
/// let mut h = History::<u32>::builder(&path).open_or_default()?;
/// h.set(1)?;
/// h.set(2)?;
///
/// // Another program, which does not know the type:
/// let raw = RawHistory::new(&path)?;
/// assert_eq!(raw.latest_generation()?, Some(2));
/// let info = raw.rollback(1)?;            // version 1's value, as generation 3
/// assert_eq!(info.generation, 3);
/// assert_eq!(raw.versions()?.len(), 3);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct RawHistory {
    path: PathBuf,
    dir: PathBuf,
    format: AnyFormat,
    keep: Option<usize>,
    options: WriteOptions,
    lock_timeout: Option<Duration>,
    max_size: Option<u64>,
}

impl RawHistory {
    /// The history whose `latest` pointer is `path`, format from the extension. Nothing
    /// is read or written yet; an absent path is an empty history.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownFormat`] when the pointer's extension
    /// names no format.
    pub fn new(path: impl AsRef<Path>) -> Result<RawHistory> {
        let path = path.as_ref();
        let format = AnyFormat::from_path(path)?;
        RawHistory::with_format(path, format)
    }

    fn with_format(path: &Path, format: AnyFormat) -> Result<RawHistory> {
        // Versions and the manifest are named after the pointer's file name: it must
        // have one (the same error the engine gives a path without one).
        if path.file_name().is_none() {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not a file name");
            return Err(Error::io(Op::Inspect, path, e));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(RawHistory {
            path: path.to_path_buf(),
            dir,
            format,
            keep: None,
            options: WriteOptions::new(),
            lock_timeout: None,
            max_size: None,
        })
    }

    /// Keep only the newest `n` versions (at least 1) after each commit or rollback;
    /// by default every version is kept.
    pub fn keep(mut self, n: usize) -> Self {
        self.keep = Some(n.max(1));
        self
    }

    /// The options of every version and manifest write; their [`Durability`] also
    /// decides whether the pointer swap syncs the directory.
    pub fn write_options(mut self, options: WriteOptions) -> Self {
        self.options = options;
        self
    }

    /// Wait at most this long for the writer lock ([`Error::Locked`] after); by default
    /// a writer waits as long as another holds it.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Refuse to read a version file larger than `bytes` ([`Error::TooLarge`], before it
    /// is read); by default there is no limit.
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = Some(bytes);
        self
    }

    /// The `latest` pointer's path (the path the history was opened with).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file of version `generation`: `{stem}.{generation}.{ext}`.
    pub fn version_path(&self, generation: u64) -> PathBuf {
        self.dir.join(self.version_name(generation))
    }

    /// The manifest's path: `{stem}.manifest.json`.
    pub fn manifest_path(&self) -> PathBuf {
        self.dir.join(crate::names::manifest_name(self.name()))
    }

    fn version_name(&self, generation: u64) -> OsString {
        crate::names::version_name(self.name(), generation)
    }

    /// Removes what killed writers of this history left: the temporary files of its
    /// pointer, versions and manifest, none that a live writer holds (see
    /// [`sweep`](crate::sweep)). Opening a [`History`] does this.
    fn sweep_own(&self) {
        let name = self.name().to_os_string();
        crate::atomic::sweep_own(&self.path, |base| {
            base == name
                || crate::names::version_of(&name, base).is_some()
                || base == crate::names::manifest_name(&name)
        });
    }

    /// The pointer's file name.
    fn name(&self) -> &OsStr {
        self.path.file_name().unwrap_or_default()
    }

    /// The generation of a version file's name, `None` for any other name.
    fn parse_version_name(&self, name: &OsStr) -> Option<u64> {
        crate::names::version_of(self.name(), name)
    }

    /// The generation the pointer names: `None` when there is no versioned history yet
    /// (no file, or a plain file that the first commit will turn into a pointer).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] with
    /// [`CorruptKind::BadPointer`](crate::CorruptKind::BadPointer) when the pointer names
    /// no version of this history; [`Error::Refused`] for a pointer
    /// another user planted in a shared directory, or one that is not a link or a regular
    /// file; [`Error::Io`] when it cannot be read.
    pub fn latest_generation(&self) -> Result<Option<u64>> {
        Ok(match self.pointer()? {
            Pointer::Version(g) => Some(g),
            Pointer::Absent | Pointer::Plain => None,
        })
    }

    /// The generation a commit would follow, under the lock: the pointer's, or a plain
    /// file's envelope generation (0 when it has none), or 0.
    fn current_generation(&self) -> Result<u64> {
        match self.pointer()? {
            Pointer::Absent => Ok(0),
            Pointer::Version(g) => Ok(g),
            Pointer::Plain => Ok(envelope::verify(&self.path)
                .or_else(|e| match e {
                    // A plain file of another shape is still a starting point.
                    Error::UnknownFormat { .. } => Ok(None),
                    e => Err(e),
                })?
                .map_or(0, |m| m.generation)),
        }
    }

    /// What the pointer says ([`pointer::read`], then checked to name a version).
    fn pointer(&self) -> Result<Pointer> {
        match pointer::read(&self.path, self.read_how())? {
            pointer::Found::Absent => Ok(Pointer::Absent),
            pointer::Found::Plain => Ok(Pointer::Plain),
            pointer::Found::Target(target) => self.pointer_target(&target),
        }
    }

    fn pointer_target(&self, target: &OsStr) -> Result<Pointer> {
        self.parse_version_name(target)
            .filter(|_| Path::new(target).parent() == Some(Path::new("")))
            .map(Pointer::Version)
            .ok_or_else(|| Error::Corrupt {
                path: self.path.clone(),
                kind: crate::CorruptKind::BadPointer,
                reason: format!(
                    "the latest pointer names {}, which is not a version of this history",
                    Path::new(target).display()
                ),
            })
    }

    /// The whole file of version `generation`, its envelope verified.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] naming the version file when there is
    /// none; [`Error::Refused`] for a file that is not a regular
    /// file or that another user planted in a shared directory,
    /// [`Error::TooLarge`] over
    /// [`max_size`](crate::PersistedBuilder::max_size), and [`Error::Io`]
    /// when the read itself fails.
    pub fn read(&self, generation: u64) -> Result<Vec<u8>> {
        let path = self.version_path(generation);
        let bytes = trust::read(&path, self.read_how())?;
        self.check_version_file(&path, &bytes, Some(generation))?;
        Ok(bytes)
    }

    /// The current version's generation and whole file, its envelope verified; `None`
    /// when there is no versioned history yet.
    ///
    /// # Errors
    ///
    /// As [`latest_generation`](Self::latest_generation) and [`read`](Self::read).
    pub fn read_latest(&self) -> Result<Option<(u64, Vec<u8>)>> {
        Ok(match self.load_latest()? {
            Some((Some(g), bytes)) => Some((g, bytes)),
            _ => None,
        })
    }

    /// Reads what the pointer names, again when retention removed it meanwhile.
    /// `(None, bytes)` is a plain file at the pointer's path.
    fn load_latest(&self) -> Result<Option<(Option<u64>, Vec<u8>)>> {
        let mut last_err = None;
        for _ in 0..READ_RETRIES {
            let pointer = self.pointer()?;
            let g = match pointer {
                Pointer::Absent => return Ok(None),
                Pointer::Plain => {
                    return match trust::read(&self.path, self.read_how()) {
                        Ok(bytes) => Ok(Some((None, bytes))),
                        // It became a pointer or went away meanwhile: look again.
                        Err(e @ Error::NotFound { .. }) => {
                            last_err = Some(e);
                            continue;
                        }
                        Err(e) => Err(e),
                    };
                }
                Pointer::Version(g) => g,
            };
            match self.read(g) {
                Ok(bytes) => return Ok(Some((Some(g), bytes))),
                Err(e @ Error::NotFound { .. }) if self.pointer()? != pointer => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::NotFound {
            path: self.path.clone(),
        }))
    }

    /// Splits and verifies a version file; it must be enveloped and (when given) of the
    /// generation its name says.
    fn check_version_file<'a>(
        &self,
        path: &Path,
        bytes: &'a [u8],
        generation: Option<u64>,
    ) -> Result<envelope::Split<'a>> {
        let split = envelope::split(self.format, bytes, true).map_err(|e| e.at(path))?;
        let corrupt = |reason: String| Error::Corrupt {
            path: path.to_path_buf(),
            kind: crate::CorruptKind::BadVersion,
            reason,
        };
        match (&split.meta, generation) {
            (None, _) => Err(corrupt("a version file must have an envelope".into())),
            (Some(m), Some(g)) if m.generation != g => Err(corrupt(format!(
                "the file name says generation {g}, its envelope says {}",
                m.generation
            ))),
            _ => Ok(split),
        }
    }

    /// Every version on disk up to the pointer's, oldest first, from the manifest where
    /// it is current and from the files' envelopes elsewhere. Version files that fail
    /// their check are left out: [`damaged`](Self::damaged) lists them.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::ReadDir`] when the
    /// directory cannot be listed; as [`latest_generation`](Self::latest_generation) for
    /// the pointer. Damaged versions are not errors here: [`damaged`](Self::damaged) lists
    /// them.
    pub fn versions(&self) -> Result<Vec<VersionInfo>> {
        Ok(self.scan()?.versions)
    }

    /// Whether the manifest is current, missing or stale.
    ///
    /// # Errors
    ///
    /// As [`versions`](Self::versions).
    pub fn manifest_state(&self) -> Result<ManifestState> {
        Ok(self.scan()?.manifest)
    }

    /// The version-named files up to the pointer's generation that are not intact
    /// versions, oldest first, each with why: damaged, not enveloped, of another
    /// generation than their name, not a regular file, or another user's in a shared
    /// directory. [`versions`](Self::versions) leaves them out.
    ///
    /// # Errors
    ///
    /// As [`versions`](Self::versions).
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// use atomic_persist::{History, RawHistory};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("doc.json");
    /// let mut h = History::<u32>::open_or_default(&path)?;
    /// h.set(1)?;
    /// h.set(2)?;
    /// std::fs::write(dir.path().join("doc.1.json"), b"{\"atomic_persist\":1")?;
    /// let raw = RawHistory::new(&path)?;
    /// assert_eq!(raw.versions()?.len(), 1);
    /// assert_eq!(raw.damaged()?[0].0, 1);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn damaged(&self) -> Result<Vec<(u64, Error)>> {
        Ok(self.scan()?.damaged)
    }

    /// Lists the version files, reusing manifest entries that still match.
    fn scan(&self) -> Result<Scan> {
        let latest = self.latest_generation()?;
        let manifest = read_manifest(&self.manifest_path());
        let mut state = match &manifest {
            Ok(Some(m)) if m.latest == latest.unwrap_or(0) => ManifestState::Current,
            Ok(None) => ManifestState::Missing,
            _ => ManifestState::Stale,
        };
        let cached = match manifest {
            Ok(Some(m)) => m.versions,
            _ => Vec::new(),
        };
        let mut found = Vec::new();
        let mut damaged = Vec::new();
        let names =
            crate::sys::list_names(&self.dir).map_err(|e| Error::io(Op::ReadDir, &self.dir, e))?;
        for name in names {
            let Some(g) = self.parse_version_name(&name) else {
                continue;
            };
            if latest.is_none_or(|l| g > l) {
                continue; // debris of a commit killed before its pointer swap
            }
            let path = self.dir.join(&name);
            // A version is a regular file of a trusted owner; a link (to `/dev/zero`, say),
            // a FIFO or a file planted by another user is not one, and is never opened.
            let meta = match trust::inspect(&path) {
                Ok(Some(m)) if m.is_file() => match trust::check_owner_of(&path, &m) {
                    Ok(()) => m,
                    Err(e) => {
                        damaged.push((g, e));
                        continue;
                    }
                },
                Ok(Some(m)) => {
                    let kind = m.kind();
                    damaged.push((
                        g,
                        Error::refused(&path, crate::Refusal::NotRegular { kind }),
                    ));
                    continue;
                }
                _ => continue, // removed meanwhile
            };
            if let Some(c) = cached
                .iter()
                .find(|c| c.generation == g && c.size == meta.size())
            {
                found.push(VersionInfo { path, ..c.clone() });
                continue;
            }
            if state == ManifestState::Current {
                state = ManifestState::Stale;
            }
            let checked = trust::read(&path, self.read_how()).and_then(|bytes| {
                let size = bytes.len() as u64;
                let split = self.check_version_file(&path, &bytes, Some(g))?;
                Ok(split
                    .meta
                    .map(|m| VersionInfo::from_meta(path.clone(), &m, size)))
            });
            match checked {
                Ok(Some(info)) => found.push(info),
                Ok(None) => {}
                Err(Error::NotFound { .. }) => {} // removed meanwhile
                Err(e) => damaged.push((g, e)),
            }
        }
        if state == ManifestState::Current && found.len() != cached.len() {
            state = ManifestState::Stale;
        }
        found.sort_by_key(|v| v.generation);
        damaged.sort_by_key(|(g, _)| *g);
        Ok(Scan {
            versions: found,
            manifest: state,
            damaged,
        })
    }

    /// How version files, the manifest and a plain file at the pointer are read: never
    /// through a link (the pointer is read as a link, and followed by name).
    fn read_how(&self) -> trust::Read {
        trust::Read {
            limit: self.max_size,
            follow: false,
        }
    }

    /// The options of the files only the history makes (versions, manifest): never
    /// written through a link, and never given the owner or mode of what was at the
    /// name (debris, or a file planted by someone else).
    fn own_file_options(&self) -> WriteOptions {
        self.options
            .clone()
            .follow_symlinks(false)
            .preserve_permissions(false)
    }

    fn lock(&self) -> Result<Lock> {
        // The lock sidecar is the first file a commit makes beside the history.
        self.options.prepare_dirs(&self.path)?;
        match self.lock_timeout {
            Some(t) => Lock::exclusive_timeout(&self.path, t),
            None => Lock::exclusive(&self.path),
        }
    }

    /// Makes version `generation`'s payload the newest version, with a new generation,
    /// this process's run id and the old version's schema version. Returns the new
    /// version. [`Error::NotFound`] names the version file when there is no such version.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] naming the version file when there is no
    /// version `generation`; [`Error::Corrupt`] when it is damaged;
    /// [`Error::Locked`] when the writer lock is not free in time;
    /// otherwise the errors of a commit: [`Error::Io`] naming the step
    /// ([`Op`]) and the path when a filesystem call fails (the destination is
    /// then untouched, and no temporary file is left);
    /// [`Error::AlreadyExists`] with
    /// [`no_clobber`](crate::WriteOptions::no_clobber);
    /// [`Error::Refused`] for a destination that is not a regular
    /// file or that another user planted in a shared directory (`# Security` in the
    /// [`atomic`](crate::atomic) docs).
    pub fn rollback(&self, generation: u64) -> Result<VersionInfo> {
        let _lock = self.lock()?;
        let current = self.current_generation()?;
        self.rollback_locked(generation, current)
    }

    /// [`rollback`](Self::rollback), the lock held and `current` the pointer's generation.
    fn rollback_locked(&self, generation: u64, current: u64) -> Result<VersionInfo> {
        let path = self.version_path(generation);
        if generation > current {
            return Err(Error::NotFound { path });
        }
        let bytes = trust::read(&path, self.read_how())?;
        let split = self.check_version_file(&path, &bytes, Some(generation))?;
        let meta = split.meta.as_ref().expect("checked");
        let format = written_format(self.format, &bytes[..split.offset]);
        self.commit_locked(
            format,
            split.payload,
            Stamp {
                run_id: None,
                schema_version: meta.schema_version,
                not_before: Some(meta.written_at),
            },
            current,
        )
    }

    /// Steps 3-6 of a commit, the lock held and `current` the pointer's generation.
    fn commit_locked(
        &self,
        format: AnyFormat,
        payload: &[u8],
        stamp: Stamp,
        current: u64,
    ) -> Result<VersionInfo> {
        let generation = envelope::next_generation(current, &self.path)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(payload);
        let who = (stamp.run_id, stamp.schema_version);
        let meta = codec::stamp(who, generation, stamp.not_before, crc);
        let path = self.version_path(generation);
        let size = self.write_version(format, payload, &meta, &path)?;
        self.publish(generation, &path)?;
        let info = VersionInfo::from_meta(path, &meta, size);
        self.after_swap(&info);
        Ok(info)
    }

    /// Step 3: the version file at `path`, durable under its name; returns its size. On
    /// an error nothing names it, so a file left at `path` is removed.
    fn write_version(
        &self,
        format: AnyFormat,
        payload: &[u8],
        meta: &Meta,
        path: &Path,
    ) -> Result<u64> {
        let write_error = |e: io::Error| Error::io(Op::Write, path, e);
        // The version's name must be durable before a pointer naming it can be: with
        // `Data` the engine would skip the directory sync after its rename, and a power
        // cut could keep the swapped pointer but not the version's name.
        let version_options = match self.options.durability_level() {
            Durability::Data => self.own_file_options().durability(Durability::Full),
            _ => self.own_file_options(),
        };
        let mut file = version_options.create(path)?;
        envelope::write_head(format, &mut file).map_err(write_error)?;
        file.write_all(payload).map_err(write_error)?;
        envelope::write_tail(format, meta, payload.len() as u64, &mut file).map_err(write_error)?;
        let size = file.commit().and_then(|()| {
            std::fs::metadata(path)
                .map(|m| m.len())
                .map_err(|e| Error::io(Op::Inspect, path, e))
        });
        if size.is_err() {
            // The engine's error may come after its rename (`Op::SyncDir`), or the size
            // may be unknown: a file at `path` is debris either way.
            let _ = std::fs::remove_file(path);
        }
        size
    }

    /// Step 4: points `latest` at version `generation` (at `path`). When the pointer did
    /// not move, the new version is debris and is removed.
    fn publish(&self, generation: u64, path: &Path) -> Result<()> {
        match self.swap_pointer(generation) {
            Ok(()) => Ok(()),
            // The pointer names the new version already: only the directory sync after
            // the rename failed. The new version stays; retention and the manifest wait
            // for the next commit (removing versions while the swap may not be durable
            // could leave a durable pointer naming a removed version).
            Err(
                e @ Error::Io {
                    op: Op::SyncDir, ..
                },
            ) => Err(e),
            Err(e) => {
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Retention and the manifest: the commit has happened, so their errors are not the
    /// commit's (a missing manifest is rebuilt; an extra version is removed next time).
    fn after_swap(&self, new: &VersionInfo) {
        let Ok(Scan { mut versions, .. }) = self.scan() else {
            return;
        };
        if !versions.iter().any(|v| v.generation == new.generation) {
            versions.push(new.clone());
        }
        versions.sort_by_key(|v| v.generation);
        if let Some(keep) = self.keep {
            let excess = versions.len().saturating_sub(keep);
            // With `Data` the swap was not synced: a removal must not become durable
            // before it (the durable pointer may name the version removed). `Full`
            // synced it already; `None` promises nothing across power loss.
            if excess > 0
                && self.options.durability_level() == Durability::Data
                && crate::sys::Dir::open(&self.dir)
                    .and_then(|d| d.sync_with(self.options.flush()))
                    .is_err()
            {
                return; // the next commit applies retention and rewrites the manifest
            }
            // The newest `keep` stay; the pointer names the newest, `new`.
            for old in versions.drain(..excess) {
                if old.generation != new.generation {
                    let _ = std::fs::remove_file(&old.path);
                }
            }
        }
        let _ = self.write_manifest(new.generation, &versions);
    }

    fn write_manifest(&self, latest: u64, versions: &[VersionInfo]) -> Result<()> {
        let mut manifest = ManifestFile {
            atomic_persist_manifest: MANIFEST_VERSION,
            latest,
            versions: versions
                .iter()
                .map(|v| ManifestEntry {
                    generation: v.generation,
                    file: v
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    run_id: v.run_id.to_string(),
                    written_at: v.written_at.to_string(),
                    schema_version: v.schema_version,
                    size: v.size,
                    checksum: format!("crc32:{:08x}", v.checksum),
                })
                .collect(),
            checksum: None,
        };
        let path = self.manifest_path();
        let sum = manifest.compute_checksum();
        manifest.checksum =
            Some(sum.map_err(|e| crate::format::serialize_error("json", e).at(&path))?);
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| crate::format::serialize_error("json", e).at(&path))?;
        self.own_file_options().write(&path, bytes)
    }

    /// Step 4: points `latest` at version `generation` ([`pointer::swap`]).
    fn swap_pointer(&self, generation: u64) -> Result<()> {
        pointer::swap(&self.path, &self.version_name(generation), &self.options)
    }
}

/// What a scan of the version files found.
struct Scan {
    versions: Vec<VersionInfo>,
    manifest: ManifestState,
    damaged: Vec<(u64, Error)>,
}

/// Who and what a new version records.
struct Stamp {
    /// `None`: this process's run id.
    run_id: Option<Uuid>,
    schema_version: u32,
    /// The new version is never dated earlier than this.
    not_before: Option<Timestamp>,
}

/// The format a version was written in: JSON files may be compact or indented, which
/// the head (everything before the payload) shows.
fn written_format(format: AnyFormat, head: &[u8]) -> AnyFormat {
    match format {
        #[cfg(feature = "json")]
        AnyFormat::Json | AnyFormat::JsonPretty if head.contains(&b'\n') => AnyFormat::JsonPretty,
        #[cfg(feature = "json")]
        AnyFormat::Json | AnyFormat::JsonPretty => AnyFormat::Json,
        #[allow(unreachable_patterns)]
        other => other,
    }
}

// ---------------------------------------------------------------------------------------
// The manifest

#[derive(serde::Serialize, serde::Deserialize)]
struct ManifestFile {
    atomic_persist_manifest: u32,
    latest: u64,
    versions: Vec<ManifestEntry>,
    /// `crc32:{hex}` of the manifest serialized without this field: a damaged entry
    /// (same size, different bytes) must not pass for a version's meta.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    checksum: Option<String>,
}

impl ManifestFile {
    /// The checksum of the manifest without its `checksum` field.
    fn compute_checksum(&mut self) -> std::result::Result<String, serde_json::Error> {
        let stored = self.checksum.take();
        let bytes = serde_json::to_vec(self);
        self.checksum = stored;
        Ok(format!("crc32:{:08x}", crc32fast::hash(&bytes?)))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ManifestEntry {
    generation: u64,
    file: String,
    run_id: String,
    written_at: String,
    schema_version: u32,
    size: u64,
    checksum: String,
}

/// The manifest's versions, `Ok(None)` when there is none, `Err` when it is unreadable.
struct Manifest {
    latest: u64,
    versions: Vec<VersionInfo>,
}

/// A manifest larger than this is not read: it is a cache, rebuilt from the files.
const MANIFEST_LIMIT: u64 = 64 << 20;

fn read_manifest(path: &Path) -> std::result::Result<Option<Manifest>, ()> {
    let how = trust::Read {
        limit: Some(MANIFEST_LIMIT),
        follow: false,
    };
    let bytes = match trust::read(path, how) {
        Ok(b) => b,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(_) => return Err(()),
    };
    let mut file: ManifestFile = serde_json::from_slice(&bytes).map_err(|_| ())?;
    if file.atomic_persist_manifest != MANIFEST_VERSION {
        return Err(());
    }
    // No checksum (an older writer) or a wrong one: rebuilt from the version files.
    if file.checksum.is_none() || file.compute_checksum().ok() != file.checksum {
        return Err(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let versions = file
        .versions
        .into_iter()
        .map(|e| {
            Some(VersionInfo {
                generation: e.generation,
                path: dir.join(&e.file),
                run_id: Uuid::try_parse(&e.run_id).ok()?,
                written_at: Timestamp::parse(&e.written_at)?,
                schema_version: e.schema_version,
                size: e.size,
                checksum: e
                    .checksum
                    .strip_prefix("crc32:")
                    .and_then(|h| u32::from_str_radix(h, 16).ok())?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(())?;
    Ok(Some(Manifest {
        latest: file.latest,
        versions,
    }))
}

// ---------------------------------------------------------------------------------------
// The typed handle

/// A value with a history of versions. See the [module docs](self).
///
/// [`get`](Self::get) is the current value (as on [`Persisted`](crate::Persisted)); an
/// older version is [`version(generation)`](Self::version).
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::History;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("config.json");
/// let mut config = History::<Vec<String>>::builder(&path).keep(10).open_or_default()?;
/// config.update(|c| c.push("a".into()))?;        // generation 1
/// config.update(|c| c.push("b".into()))?;        // generation 2
/// assert_eq!(config.version(1)?, ["a"]);
///
/// config.rollback(1)?;                            // generation 3 = generation 1's value
/// assert_eq!(config.get(), &["a"]);
/// assert_eq!(config.generation(), 3);
/// let generations: Vec<u64> = config.versions()?.iter().map(|v| v.generation).collect();
/// assert_eq!(generations, [1, 2, 3]);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct History<T> {
    value: T,
    raw: RawHistory,
    codec: Codec<T>,
    meta: Option<Meta>,
    /// The generation this handle last read or wrote (0: none).
    generation: u64,
    /// The payload this handle last read or wrote.
    payload: Option<Fingerprint>,
}

/// Builds a [`History<T>`]: `History::<T>::builder(path)`.
///
/// ```
/// # #[cfg(feature = "toml")] {
/// use atomic_persist::Durability;
/// use atomic_persist::History;
/// use std::time::Duration;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("settings.toml");
/// let mut settings = History::<std::collections::BTreeMap<String, u32>>::builder(&path)
///     .keep(5)                                  // the newest 5 versions stay
///     .schema_version(1)
///     .durability(Durability::Data)
///     .lock_timeout(Duration::from_secs(2))
///     .open_or_default()?;
/// settings.update(|s| s.insert("volume".into(), 7))?;
/// assert_eq!(settings.generation(), 1);
/// assert!(dir.path().join("settings.1.toml").exists());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HistoryBuilder<T> {
    path: PathBuf,
    codec: codec::Settings<T>,
    local: Local,
    keep: Option<usize>,
}

impl<T> HistoryBuilder<T> {
    codec::codec_setters!("History", codec);
    local::local_setters!();

    /// Keep only the newest `n` versions (at least 1); by default all are kept.
    pub fn keep(mut self, n: usize) -> Self {
        self.keep = Some(n.max(1));
        self
    }

    /// The byte-level history and the codec this builder opens.
    fn parts(self) -> Result<(RawHistory, Codec<T>)> {
        let codec = self.codec.resolve(&self.path)?;
        let mut raw =
            RawHistory::with_format(&self.path, codec.format)?.write_options(self.local.options);
        raw.sweep_own();
        raw.keep = self.keep;
        raw.lock_timeout = self.local.lock_timeout;
        raw.max_size = self.local.max_size;
        Ok((raw, codec))
    }
}

impl<T: Serialize + DeserializeOwned> HistoryBuilder<T> {
    /// Opens the current version: [`Error::NotFound`] when there is none.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no version;
    /// [`Error::UnknownFormat`] when the pointer's extension
    /// names no format; [`Error::Corrupt`] when the pointer or the
    /// current version is damaged
    /// ([`CorruptKind::BadPointer`](crate::CorruptKind::BadPointer), a broken envelope);
    /// [`Error::Deserialize`],
    /// [`Error::SchemaVersion`] and
    /// [`Error::Invalid`] as for [`Persisted`](crate::Persisted);
    /// [`Error::Refused`] for a file that is not a regular file or
    /// that another user planted in a shared directory,
    /// [`Error::TooLarge`] over
    /// [`max_size`](crate::PersistedBuilder::max_size), and [`Error::Io`]
    /// when the read itself fails.
    pub fn open(self) -> Result<History<T>> {
        let (raw, codec) = self.parts()?;
        match load::<T>(&raw, &codec)? {
            Some(loaded) => Ok(History::from_loaded(raw, codec, loaded)),
            None => Err(Error::NotFound { path: raw.path }),
        }
    }

    /// Opens the current version, or starts from `T::default()` when there is none
    /// (nothing is written until the first commit).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that a history with no version yet is not an error.
    pub fn open_or_default(self) -> Result<History<T>>
    where
        T: Default,
    {
        self.open_or_else(T::default)
    }

    /// Opens the current version, or starts from `f()` when there is none.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that a history with no version yet is not an error.
    pub fn open_or_else(self, f: impl FnOnce() -> T) -> Result<History<T>> {
        let (raw, codec) = self.parts()?;
        let loaded = load::<T>(&raw, &codec)?.unwrap_or_else(|| Loaded::fresh(f(), 0));
        Ok(History::from_loaded(raw, codec, loaded))
    }

    /// Opens the current version, or, when it is **damaged**
    /// ([`recovery::is_damage`]), moves its file aside to
    /// `state.{g}.json.corrupt-{time}` (never deleted or overwritten) and makes the newest
    /// intact older version current again, as a [`rollback`](History::rollback) does (a
    /// new generation holding its value); with no intact version left, starts from `f()`.
    /// The [`Recovery`] says which. A history with no version yet starts from `f()`.
    ///
    /// A damaged `latest` pointer itself (not a version it names) is returned as the
    /// error it is: which version was meant is then not known.
    ///
    /// ```
    /// use atomic_persist::{History, recovery::Restored};
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("doc.json");
    /// let mut doc = History::<String>::builder(&path).open_or_default()?;
    /// doc.set("first".into())?;
    /// doc.set("second".into())?;
    /// std::fs::write(dir.path().join("doc.2.json"), "{\"atomic_persist\"")?; // damaged
    ///
    /// let (doc, recovery) = History::<String>::builder(&path).open_or_recover(String::new)?;
    /// assert_eq!(doc.get(), "first");
    /// assert_eq!(recovery.unwrap().restored, Restored::Version { from: 1, generation: 3 });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) for what is not damage and for a damaged pointer; the
    /// errors of a rollback's commit, and of the move aside ([`Error::Io`] with
    /// [`Op::Rename`] or [`Op::SyncDir`]); [`Error::Locked`] past the lock timeout.
    pub fn open_or_recover(self, f: impl FnOnce() -> T) -> Result<(History<T>, Option<Recovery>)> {
        let (raw, codec) = self.parts()?;
        // Each turn after the first follows another writer's commit: a few are plenty.
        for _ in 0..8 {
            let cause = match load::<T>(&raw, &codec) {
                Ok(loaded) => {
                    let loaded = loaded.unwrap_or_else(|| Loaded::fresh(f(), 0));
                    return Ok((History::from_loaded(raw, codec, loaded), None));
                }
                Err(e) if recovery::is_damage(&e) && e.path() != raw.path => e,
                Err(e) => return Err(e),
            };
            let lock = raw.lock()?;
            // Under the lock: another writer may have committed since the look.
            let damaged = match raw.pointer()? {
                Pointer::Version(g) if raw.version_path(g) == cause.path() => g,
                _ => continue,
            };
            let fallback = newest_intact(&raw, &codec, damaged);
            // Versions are the history's own files, never links (it writes them without
            // following one): a link there is moved aside as itself.
            let moved_to = recovery::move_aside(cause.path(), false)?;
            let restored = match fallback {
                Some(from) => {
                    let info = raw.rollback_locked(from, damaged)?;
                    let generation = info.generation;
                    Restored::Version { from, generation }
                }
                None => Restored::Default,
            };
            drop(lock);
            let loaded = match restored {
                // The pointer still names the damaged generation: the next commit
                // follows it.
                Restored::Default => Loaded::fresh(f(), damaged),
                _ => load::<T>(&raw, &codec)?.ok_or_else(|| Error::NotFound {
                    path: raw.path.clone(),
                })?,
            };
            let recovery = Recovery {
                moved_to,
                cause,
                restored,
            };
            return Ok((History::from_loaded(raw, codec, loaded), Some(recovery)));
        }
        Err(Error::Locked {
            path: raw.path.clone(),
        })
    }
}

/// The newest version older than `below` that reads back as a value, if any.
fn newest_intact<T: DeserializeOwned>(
    raw: &RawHistory,
    codec: &Codec<T>,
    below: u64,
) -> Option<u64> {
    let versions = raw.versions().ok()?;
    versions
        .iter()
        .rev()
        .filter(|v| v.generation < below)
        .find(|v| {
            let Ok(bytes) = raw.read(v.generation) else {
                return false;
            };
            let split =
                envelope::split_for_decode(raw.format, &bytes, true, envelope::Edits::Refuse);
            split.is_ok_and(|split| codec.value(&v.path, &bytes, &split).is_ok())
        })
        .map(|v| v.generation)
}

/// A value read from the current version.
struct Loaded<T> {
    value: T,
    generation: u64,
    payload: Option<Fingerprint>,
    meta: Option<Meta>,
}

impl<T> Loaded<T> {
    /// A value not read from any version, to follow generation `generation`.
    fn fresh(value: T, generation: u64) -> Loaded<T> {
        Loaded {
            value,
            generation,
            payload: None,
            meta: None,
        }
    }
}

/// Reads the current version; `None` when there is none.
fn load<T: DeserializeOwned>(raw: &RawHistory, codec: &Codec<T>) -> Result<Option<Loaded<T>>> {
    let Some((generation, bytes)) = raw.load_latest()? else {
        return Ok(None);
    };
    let path = match generation {
        Some(g) => raw.version_path(g),
        None => raw.path.clone(),
    };
    let split = envelope::split_for_decode(raw.format, &bytes, true, envelope::Edits::Refuse)
        .map_err(|e| e.at(&path))?;
    let value = codec.value(&path, &bytes, &split)?;
    Ok(Some(Loaded {
        value,
        generation: generation
            .or(split.meta.as_ref().map(|m| m.generation))
            .unwrap_or(0),
        payload: Some(Fingerprint::of(split.payload)),
        meta: split.meta,
    }))
}

impl<T> fmt::Debug for HistoryBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("HistoryBuilder");
        d.field("path", &self.path);
        self.codec.debug_fields(&mut d);
        d.field("local", &self.local)
            .field("keep", &self.keep)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> History<T> {
    /// Starts building a history at `path` (the `latest` pointer).
    pub fn builder(path: impl AsRef<Path>) -> HistoryBuilder<T> {
        HistoryBuilder {
            path: path.as_ref().to_path_buf(),
            codec: codec::Settings::default(),
            local: Local::default(),
            keep: None,
        }
    }

    /// Opens the current version with the defaults: [`Error::NotFound`] when there is
    /// none.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no version;
    /// [`Error::UnknownFormat`] when the pointer's extension
    /// names no format; [`Error::Corrupt`] when the pointer or the
    /// current version is damaged
    /// ([`CorruptKind::BadPointer`](crate::CorruptKind::BadPointer), a broken envelope);
    /// [`Error::Deserialize`],
    /// [`Error::SchemaVersion`] and
    /// [`Error::Invalid`] as for [`Persisted`](crate::Persisted);
    /// [`Error::Refused`] for a file that is not a regular file or
    /// that another user planted in a shared directory,
    /// [`Error::TooLarge`] over
    /// [`max_size`](crate::PersistedBuilder::max_size), and [`Error::Io`]
    /// when the read itself fails.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// Opens the current version, or starts from `T::default()`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that a history with no version yet is not an error.
    pub fn open_or_default(path: impl AsRef<Path>) -> Result<Self>
    where
        T: Default,
    {
        Self::builder(path).open_or_default()
    }

    fn from_loaded(raw: RawHistory, codec: Codec<T>, loaded: Loaded<T>) -> History<T> {
        History {
            value: loaded.value,
            raw,
            codec,
            meta: loaded.meta,
            generation: loaded.generation,
            payload: loaded.payload,
        }
    }

    /// Reads the current version into the handle; `false` when there is none.
    fn load(&mut self) -> Result<bool> {
        let Some(loaded) = load::<T>(&self.raw, &self.codec)? else {
            return Ok(false);
        };
        self.value = loaded.value;
        self.generation = loaded.generation;
        self.payload = loaded.payload;
        self.meta = loaded.meta;
        Ok(true)
    }

    /// The current value (also through `Deref`).
    pub fn get(&self) -> &T {
        &self.value
    }

    /// Changes the value, then commits it as a new version.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let r = f(&mut self.value);
        self.commit()?;
        Ok(r)
    }

    /// Replaces the value, then commits it as a new version.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub fn set(&mut self, value: T) -> Result<()> {
        self.value = value;
        self.commit()
    }

    /// Writes the value as a new version and points `latest` at it (see the module docs
    /// for the steps). Nothing is written when the value's bytes equal the current
    /// version's. [`Error::Conflict`] when another writer committed since this handle
    /// last read or wrote: [`reload`](Self::reload) and apply the change again.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when another writer committed a version
    /// since this handle last read or wrote ([`reload`](Self::reload) and apply the change
    /// again); [`Error::Invalid`],
    /// [`Error::Serialize`],
    /// [`Error::Locked`] as for a [`Persisted`](crate::Persisted)
    /// commit; otherwise the errors of a save (version file, manifest, pointer swap):
    /// [`Error::Io`] naming the step ([`Op`]) and the path
    /// when a filesystem call fails (the destination is then untouched, and no temporary
    /// file is left); [`Error::AlreadyExists`] with
    /// [`no_clobber`](crate::WriteOptions::no_clobber);
    /// [`Error::Refused`] for a destination that is not a regular
    /// file or that another user planted in a shared directory (`# Security` in the
    /// [`atomic`](crate::atomic) docs).
    pub fn commit(&mut self) -> Result<()> {
        let path = self.raw.path.clone();
        self.codec.check(&self.value, &path)?;
        let mut payload = Vec::new();
        envelope::write_payload(self.raw.format, true, &self.value, &mut payload)
            .map_err(|e| e.at(&path))?;
        let fingerprint = Fingerprint::of(&payload);
        if self.payload == Some(fingerprint)
            && self
                .meta
                .as_ref()
                .is_some_and(|m| m.schema_version == self.codec.schema_version)
        {
            return Ok(());
        }
        let _lock = self.raw.lock()?;
        let current = self.raw.current_generation()?;
        if current != self.generation {
            return Err(Error::Conflict {
                path,
                expected: self.generation,
                found: current,
            });
        }
        let stamp = Stamp {
            run_id: self.codec.run_id,
            schema_version: self.codec.schema_version,
            not_before: self.meta.as_ref().map(|m| m.written_at),
        };
        let info = self
            .raw
            .commit_locked(self.raw.format, &payload, stamp, current)?;
        self.generation = info.generation;
        self.payload = Some(fingerprint);
        self.meta = Some(Meta {
            run_id: info.run_id,
            written_at: info.written_at,
            generation: info.generation,
            schema_version: info.schema_version,
            checksum: info.checksum,
        });
        Ok(())
    }

    /// Reads the current version again, dropping unsaved changes. Does nothing when
    /// there is no version yet.
    ///
    /// # Errors
    ///
    /// As [`HistoryBuilder::open`].
    pub fn reload(&mut self) -> Result<()> {
        self.load().map(|_| ())
    }

    /// The value of version `generation`, read from its file.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no version `generation`
    /// (never written, or pruned); as [`HistoryBuilder::open`] for a damaged file or one
    /// that does not decode.
    pub fn version(&self, generation: u64) -> Result<T> {
        let path = self.raw.version_path(generation);
        let bytes = self.raw.read(generation)?;
        let split =
            envelope::split_for_decode(self.raw.format, &bytes, true, envelope::Edits::Refuse)
                .map_err(|e| e.at(&path))?;
        self.codec.value(&path, &bytes, &split)
    }

    /// Every version on disk, oldest first (see [`RawHistory::versions`]).
    ///
    /// # Errors
    ///
    /// As [`RawHistory::versions`].
    pub fn versions(&self) -> Result<Vec<VersionInfo>> {
        self.raw.versions()
    }

    /// Makes version `generation`'s value the newest version (a new generation; history
    /// is append-only) and the handle's value, dropping unsaved changes. Returns the new
    /// generation.
    ///
    /// # Errors
    ///
    /// As [`RawHistory::rollback`], then as [`reload`](Self::reload).
    pub fn rollback(&mut self, generation: u64) -> Result<u64> {
        let info = self.raw.rollback(generation)?;
        self.load()?;
        Ok(info.generation)
    }

    /// The meta of the version this handle last read or wrote.
    pub fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }

    /// The generation this handle last read or wrote (0 before the first commit).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The `latest` pointer's path.
    pub fn path(&self) -> &Path {
        &self.raw.path
    }

    /// The untyped store underneath.
    pub fn raw(&self) -> &RawHistory {
        &self.raw
    }

    /// The value, giving up the handle.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> Deref for History<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for History<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("path", &self.raw.path)
            .field("value", &self.value)
            .field("generation", &self.generation)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Watching the history (feature `watch`).
#[cfg(feature = "watch")]
impl<T: DeserializeOwned + Send + 'static> History<T> {
    /// Watches the history for commits by any writer (rollbacks included: each is a new
    /// version), as [`Persisted::watch`](crate::Persisted::watch) does a file: each new
    /// current value, read and verified as [`HistoryBuilder::open`] would.
    ///
    /// # Errors
    ///
    /// As [`Persisted::watch`](crate::Persisted::watch).
    pub fn watch(&self) -> Result<crate::watch::Watch<T>> {
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
    ) -> Result<crate::watch::Watch<T>> {
        use crate::watch::{Found, Stamp};
        let (raw, codec) = (self.raw.clone(), self.codec.clone());
        let seen = (self.meta.is_some() || self.payload.is_some())
            .then_some(Stamp::Generation(self.generation, self.payload));
        let read = move || {
            Ok(load(&raw, &codec)?.map(|l| Found {
                stamp: Stamp::Generation(l.generation, l.payload),
                value: l.value,
                meta: l.meta,
            }))
        };
        crate::watch::Watch::start(&self.raw.path, options, seen, Box::new(read))
    }
}
