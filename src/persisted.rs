//! `Persisted<T>`: a value that lives in a file, saved atomically.
//!
//! A [`Persisted<T>`] holds a value and the path it belongs to. Reading happens once, at
//! open (or at [`reload`](Persisted::reload)); every [`commit`](Persisted::commit) replaces
//! the file atomically through the [`atomic`](crate::atomic) engine, so the file is always
//! the previous complete value or the new complete value.
//!
//! # What a commit does, in order
//!
//! 1. Runs the [`validate`](PersistedBuilder::validate) hook: a refused value is
//!    [`Error::Invalid`] and nothing on disk is touched.
//! 2. Serializes the value once, hashing it on the way: a value that cannot be
//!    serialized is [`Error::Serialize`], and the destination is exactly as it was. The
//!    bytes are kept in memory while they total at most 1 MiB; past that, they go into
//!    the commit's temporary file and the rest streams after them through a 64 KiB
//!    buffer, so memory stays bounded and a large value is never serialized twice. (A
//!    temporary file of a failed serialization is dropped, never renamed.)
//! 3. Compares the fingerprint with that of the bytes last loaded or committed: when they
//!    are equal (and the envelope and schema version are too) *and the file is still the
//!    version this handle last saw* (see [Writers](#writers-the-lock-and-the-generation-check)),
//!    the commit ends there: no fsync and no rename, and a small value never had a
//!    temporary file at all. The fingerprint (length, CRC-32 and XXH64) is kept, never a
//!    copy of the bytes. With the envelope on, a file that another writer changed is
//!    [`Error::Conflict`] here, before anything is renamed.
//! 4. Writes the kept bytes of a small payload into an [`AtomicFile`] (a large one is in
//!    its temporary file already). With the envelope on, the meta and checksum follow
//!    the payload (see
//!    [`envelope`](mod@crate::envelope)). TOML has no streaming serializer, so a TOML
//!    value goes through one string (configs are small).
//! 5. Commits the file with the configured [`Durability`](crate::Durability). With the envelope on, the
//!    generation check is made again just before the rename, under the writer lock.
//!
//! # Writers: the lock and the generation check
//!
//! An atomic rename makes every version complete, but not ordered: two writers that each
//! load, change and commit the same file can silently lose one update. Two tools order
//! them.
//!
//! **The writer lock** ([`Lock`], on the sidecar `.{name}.lock`, never on the data file,
//! which each commit replaces). [`update_locked`](Persisted::update_locked) holds it from
//! before it looks at the file until after the rename, so a read-modify-write cannot
//! interleave with another: it is the way to share a file between writers, with or
//! without the envelope. [`lock(true)`](PersistedBuilder::lock) makes every commit hold
//! it too. Readers never take it: they always see a complete version anyway. Each
//! handle opens the lock file itself, so two handles in one process exclude each other
//! exactly as two processes do (take care not to call a second handle's locking method
//! from inside an `update_locked` closure on the same file: it waits for itself).
//!
//! **The generation check** (envelope on): a commit refuses to overwrite a version of the
//! file other than the one this handle last loaded or committed, with
//! [`Error::Conflict`]` { expected, found }` (generations from the envelope). The caller
//! chooses: [`reload`](Persisted::reload) and redo the change, or
//! [`force_commit`](Persisted::force_commit). This catches writers that do not lock.
//!
//! - *Exact, not best-effort.* Checking and then renaming would leave a window in which
//!   two writers both pass the check. So the check is repeated after the new file is
//!   written and synced, and it and the rename happen under the writer lock (held only
//!   for that instant unless the handle locks anyway). Every enveloped file therefore
//!   has a `.{name}.lock` beside it, and a commit fails with [`Error::Io`] (operation
//!   [`Op::Lock`]) where the lock file cannot be created or locked.
//!   A forced commit takes the lock for its rename as well, so that it cannot land
//!   inside another writer's check.
//! - *Cheap.* A handle remembers the identity of the version it last loaded or wrote:
//!   device, inode, size and modification time. Every commit makes a new inode, so one
//!   `stat` of the path says "still that version" on the common path. Only when the
//!   identity differs is the file read, to report `found`, and a file whose meta and
//!   payload are exactly those this handle saw (a `touch`, a copy put back) is still
//!   that version. Inode numbers are reused once a file is gone, so the handle keeps the
//!   version it remembers open (one descriptor per handle; a replaced version's blocks
//!   are freed at the handle's next load or commit). On platforms without inode numbers
//!   the file is read on every commit.
//! - *A deleted file* is a conflict with `found: 0`: the deletion was a change too, and
//!   a commit would undo it. [`reload`](Persisted::reload) then reports
//!   [`Error::NotFound`]; [`force_commit`](Persisted::force_commit) writes it again. A
//!   handle that never saw a file (opened with the default) expects none: if another
//!   writer created it first, that is a conflict with `expected: 0`. Generation 0 stands
//!   for "no envelope": no file, a plain file, or a damaged one.
//! - *The unchanged shortcut* (step 3) applies only when the file is still the version
//!   this handle saw. Otherwise "unchanged" would mean "unchanged from a version that is
//!   no longer there", and returning `Ok` would claim the file holds this handle's value
//!   when it holds another's: with the envelope that is a conflict, without it the value
//!   is written.
//! - *Without the envelope* there is no generation to compare, and `commit` does not
//!   check: the last writer wins, as with any plain file (a person may edit it, too).
//!   Use [`update_locked`](Persisted::update_locked), or [`lock(true)`](PersistedBuilder::lock)
//!   for all writers, to order plain files.
//! - The lock file belongs to the path as given: two handles reaching one file through
//!   different symlinks use different lock files.
//!
//! # Loading
//!
//! A missing file is [`Error::NotFound`] (or the default, with
//! [`open_or_default`](Persisted::open_or_default)); an empty file is
//! [`Error::Corrupt`] (a 0-byte file is what non-atomic savers leave after a crash;
//! only a value that is empty in its format, like an empty TOML table, loads from one); a
//! file that does not parse is [`Error::Deserialize`] with line and column for JSON and
//! TOML; a file that parses but fails the validate hook is [`Error::Invalid`]. An
//! enveloped file with a newer schema version than the builder's is
//! [`Error::SchemaVersion`].
//!
//! # Debris of killed writers
//!
//! A writer killed mid-commit (`SIGKILL`, a power cut) leaves its temporary file
//! `.{name}.{random}.tmp` beside the file; the file itself is untouched. Every open of a
//! `Persisted` removes the temporary files of its own file that no live writer holds
//! (one listing of the directory; see [`sweep`](crate::sweep), which does the same for
//! every file of a directory), so a job that is killed and restarted again and again
//! does not fill the disk with them.
//!
//! # Hand-edited TOML keeps its comments
//!
//! When a plain TOML file was loaded, a commit does not write a fresh document: it
//! changes only the values that differ in the loaded document (with `toml_edit`) and
//! writes that, so comments, blank lines, key order and formatting that a person gave the
//! file survive the program saving its settings. Keys the value no longer has are
//! removed, new ones are appended to their table.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::atomic::AtomicFile;
use crate::codec::{self, Codec};
use crate::envelope::{self, Edits, Fingerprint, Hashing, Meta};
use crate::error::{Error, Op, Result};
#[cfg(feature = "toml")]
use crate::format::AnyFormat;
use crate::local::{self, Local};
use crate::lock::Lock;
use crate::recovery::{self, Recovery, Restored};
use crate::sys;
use crate::trust;

/// The buffer between the serializer and the hasher: serializers make many tiny writes.
const STREAM_BUFFER: usize = 64 * 1024;

/// A payload up to this size is kept in memory while it is serialized, so that an
/// unchanged value costs no file at all; a larger one goes on into the temporary file
/// (memory stays bounded, and the value is still serialized only once).
const KEEP_LIMIT: usize = 1024 * 1024;

/// Where a payload goes while it is serialized: memory up to [`KEEP_LIMIT`], then the
/// temporary file of the commit, opened at that moment with `open` (which also writes
/// the envelope's head) and given the bytes kept so far.
struct Spill<F> {
    kept: Vec<u8>,
    file: Option<AtomicFile>,
    open: F,
    /// Why the temporary file could not be opened: a crate error, which an
    /// `io::Error` through the serializer would lose.
    failed: Option<Error>,
}

impl<F: FnMut() -> Result<AtomicFile>> Write for Spill<F> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(file) = &mut self.file {
            return file.write(buf);
        }
        if self.kept.len() + buf.len() <= KEEP_LIMIT {
            self.kept.extend_from_slice(buf);
            return Ok(buf.len());
        }
        let mut file = (self.open)().map_err(|e| {
            self.failed = Some(e);
            std::io::Error::other("the temporary file could not be opened")
        })?;
        file.write_all(&std::mem::take(&mut self.kept))?;
        let n = file.write(buf)?;
        self.file = Some(file);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(()) // the commit flushes the file
    }
}

/// A value stored in a file, committed atomically. See the [module docs](self).
///
/// ```
/// # #[cfg(feature = "toml")] {
/// use atomic_persist::Persisted;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Default)]
/// struct Settings {
///     volume: u8,
///     theme: String,
/// }
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("settings.toml");
/// let mut settings = Persisted::<Settings>::open_or_default(&path)?;
/// settings.update(|s| s.volume = 7)?;
/// assert_eq!(settings.volume, 7); // Deref to the value
///
/// let again = Persisted::<Settings>::open(&path)?;
/// assert_eq!(again.get().volume, 7);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Persisted<T> {
    value: T,
    path: PathBuf,
    config: Config<T>,
    meta: Option<Meta>,
    /// What this handle last read from or wrote to the file; `None` before either.
    disk: Option<OnDisk>,
    /// Which version of the file that was; `None` when this handle has seen no file.
    seen: Option<Seen>,
    /// The loaded plain TOML document, kept so a commit can preserve its comments.
    #[cfg(feature = "toml")]
    document: Option<toml_edit::DocumentMut>,
}

/// The builder's settings, kept by the `Persisted` they configure (and cloned by a
/// watch, which reads as its handle does).
struct Config<T> {
    codec: Codec<T>,
    envelope: bool,
    local: Local,
    lock: bool,
    /// Whether a hand-edited text envelope loads.
    edits: Edits,
    /// Keep a file of an older schema before a migrated value replaces it.
    backup_before_migrate: bool,
}

// Not derived: `T` itself need not be `Clone`.
impl<T> Clone for Config<T> {
    fn clone(&self) -> Self {
        Config {
            codec: self.codec.clone(),
            envelope: self.envelope,
            local: self.local.clone(),
            lock: self.lock,
            edits: self.edits,
            backup_before_migrate: self.backup_before_migrate,
        }
    }
}

/// What is on disk, as far as this handle knows.
#[derive(Clone, Copy, Debug)]
struct OnDisk {
    payload: Fingerprint,
    /// The schema version of an enveloped file; `None` for a plain one.
    enveloped: Option<u32>,
    /// Its checksum did not match: a hand edit, accepted, that the next commit re-stamps.
    edited: bool,
}

/// One version of the file, told from any other by its identity (see "Writers" in the
/// [module docs](self)) without reading it.
#[derive(Debug)]
struct Seen {
    /// Device, inode, size and mtime; `None` where the platform has no inode numbers.
    id: Option<sys::FileId>,
    /// The file itself, kept open while it is remembered, so that its inode number
    /// cannot be given to another file in the meantime.
    _pin: Option<File>,
}

impl Seen {
    /// The version `file` (open, complete) is.
    fn of(file: File) -> Seen {
        let id = file.metadata().ok().as_ref().and_then(sys::file_id);
        Seen {
            _pin: id.is_some().then_some(file),
            id,
        }
    }

    /// The version just renamed into place at `path`, whose identity was `id`. It is
    /// opened again, read-only (a handle open for writing would keep its filesystem
    /// from being remounted read-only), to pin it; when another writer has replaced it
    /// already, nothing is pinned and the identity is forgotten, so the next check
    /// reads the file.
    fn renamed(path: &Path, id: Option<sys::FileId>) -> Seen {
        // Not blocking, not through a link: and only a file whose identity is the one just
        // renamed is kept, so nothing else there can be taken for it.
        let file = id.and_then(|_| sys::open_nonblocking(path).ok());
        match file {
            Some(f) if f.metadata().ok().as_ref().and_then(sys::file_id) == id => {
                Seen { id, _pin: Some(f) }
            }
            _ => Seen {
                id: None,
                _pin: None,
            },
        }
    }
}

/// Where the file stands against the version this handle last saw.
enum Standing {
    /// It is that version; or there is no file, and this handle has seen none.
    Same,
    /// Another version, or no file any more. `found` is its meta: `None` when it has
    /// none (gone, plain, damaged, or not read).
    Other { found: Option<Meta> },
}

/// What a commit may assume and overrule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// An ordinary commit: takes the lock as configured, checks the generation.
    Checked,
    /// `force_commit`: no generation check.
    Forced,
    /// Inside `update_locked`: this handle holds the lock already.
    Held,
}

/// A value read from a file.
struct Loaded<T> {
    value: T,
    meta: Option<Meta>,
    disk: OnDisk,
    seen: Seen,
    #[cfg(feature = "toml")]
    document: Option<toml_edit::DocumentMut>,
}

/// Builds a [`Persisted<T>`]: `Persisted::<T>::builder(path)`.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{Durability, JsonPretty, Persisted};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("queue.json");
/// let mut queue = Persisted::<Vec<String>>::builder(&path)
///     .format(JsonPretty)
///     .envelope(true)
///     .schema_version(2)
///     .durability(Durability::Data)
///     .validate(|q| if q.len() <= 1000 { Ok(()) } else { Err("queue too long".into()) })
///     .open_or_default()?;
/// queue.update(|q| q.push("job-1".into()))?;
/// assert_eq!(queue.meta().unwrap().schema_version, 2);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// The setters the four builders share ([`format`](Self::format) to
/// [`decode`](Self::decode), and with [`History`](crate::History)'s
/// [`durability`](Self::durability) to [`max_size`](Self::max_size)) are documented once
/// for all; here is how three of them are used.
///
/// A writer that must not wait for long ([`lock_timeout`](Self::lock_timeout)):
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{Error, Lock, Persisted};
/// use std::time::Duration;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("n.json");
/// let mut p = Persisted::<u64>::builder(&path)
///     .lock_timeout(Duration::ZERO)
///     .open_or_default()?;
/// let other = Lock::exclusive(&path)?; // another writer
/// assert!(matches!(p.update_locked(|n| *n += 1), Err(Error::Locked { .. })));
/// drop(other);
/// p.update_locked(|n| *n += 1)?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A schema migration by hand ([`decode`](Self::decode); `#[derive(Persist)]` writes
/// this for you):
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::Persisted;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct V1 { name: String }
/// #[derive(Serialize, Deserialize)]
/// struct V2 { name: String, tags: Vec<String> }
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("item.json");
/// # Persisted::<V1>::builder(&path).envelope(true).schema_version(1)
/// #     .open_or_else(|| V1 { name: "a".into() })?.commit()?;
///
/// let item = Persisted::<V2>::builder(&path)
///     .envelope(true)
///     .schema_version(2)
///     .decode(|found, payload| match found {
///         ..=1 => payload.deserialize::<V1>().map(|v1| V2 { name: v1.name, tags: vec![] }),
///         _ => payload.deserialize(),
///     })
///     .open()?;
/// assert_eq!(item.name, "a");
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A bound on what a load reads ([`max_size`](Self::max_size)):
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{Error, Persisted};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("big.json");
/// std::fs::write(&path, format!("[{}0]", "0,".repeat(1000)))?;
/// let opened = Persisted::<Vec<u8>>::builder(&path).max_size(1024).open();
/// assert!(matches!(opened, Err(Error::TooLarge { limit: 1024, .. })));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PersistedBuilder<T> {
    path: PathBuf,
    codec: codec::Settings<T>,
    local: Local,
    envelope: bool,
    lock: bool,
    hand_edits: bool,
    backup_before_migrate: bool,
}

impl<T> PersistedBuilder<T> {
    codec::codec_setters!("Persisted", codec);
    local::local_setters!();

    /// Wrap the value in the [envelope](mod@crate::envelope): metadata and a checksum
    /// verified on every load (default `false`: the file is the plain value).
    pub fn envelope(mut self, on: bool) -> Self {
        self.envelope = on;
        self
    }

    /// Hold the writer lock (on `.{name}.lock`, see [`Lock`]) through every commit:
    /// serializing, writing, syncing and renaming (default `false`).
    ///
    /// Commits of handles that lock are then ordered with each other and with
    /// [`update_locked`](Persisted::update_locked) anywhere, with or without the
    /// envelope. Without it, an enveloped commit still takes the lock, but only for the
    /// instant of its generation check and rename; a plain one takes none. See
    /// "Writers" in the [module docs](self).
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// use atomic_persist::Persisted;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("plain.json");
    /// let mut p = Persisted::<Vec<u32>>::builder(&path).lock(true).open_or_default()?;
    /// p.update(|v| v.push(1))?; // waits for any writer holding the lock
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock(mut self, on: bool) -> Self {
        self.lock = on;
        self
    }

    /// Create the file's missing parent directories at the first commit (default
    /// `false`); the same as [`WriteOptions::create_dirs`](crate::WriteOptions::create_dirs) on the
    /// [`write_options`](Self::write_options), so set it after those.
    ///
    /// ```
    /// # #[cfg(feature = "toml")] {
    /// use atomic_persist::Persisted;
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("new-app/settings.toml");
    /// let mut s = Persisted::<toml::Table>::builder(&path).create_dirs(true).open_or_default()?;
    /// s.update(|t| t.insert("theme".into(), "dark".into()))?;
    /// assert!(path.exists());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_dirs(mut self, yes: bool) -> Self {
        self.local.options = self.local.options.create_dirs(yes);
        self
    }

    /// Load an enveloped JSON or TOML file that a person edited (default `false`).
    ///
    /// An edit breaks the envelope's checksum, so by default the file is
    /// [`Error::Corrupt`] ([`CorruptKind::Checksum`](crate::CorruptKind::Checksum)).
    /// With this on, such a file loads when the envelope around the value is still
    /// whole (the `atomic_persist` key or first line, a `meta` that parses) and the value
    /// decodes and validates as usual; [`Persisted::hand_edited`] then says so, and the
    /// next commit writes the file again with a new checksum and the next generation,
    /// even if the value is unchanged. An edited TOML file keeps its comments and
    /// layout through that commit, as a plain one does.
    ///
    /// The price: damage that happens to leave a document that still parses (a flipped
    /// digit) is read as an edit too. Leave it off for checkpoints nobody edits; turn it
    /// on for configuration that people edit and whose migrations need the envelope.
    /// A binary file is never taken for an edit. From the shell, `atomic-persist seal
    /// FILE` ([`envelope::seal`]) accepts an edit once.
    ///
    /// ```
    /// # #[cfg(feature = "toml")] {
    /// use atomic_persist::Persisted;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("settings.toml");
    /// let open = || Persisted::<std::collections::BTreeMap<String, u32>>::builder(&path)
    ///     .envelope(true)
    ///     .accept_hand_edits(true)
    ///     .open_or_default();
    /// open()?.update(|s| s.insert("volume".into(), 3))?;
    /// let text = std::fs::read_to_string(&path)?;
    /// std::fs::write(&path, text.replace("volume = 3", "# quieter\nvolume = 2"))?;
    ///
    /// let mut settings = open()?;
    /// assert!(settings.hand_edited());
    /// assert_eq!(settings["volume"], 2);
    /// settings.commit()?; // re-stamped: intact again, the comment kept
    /// assert!(!settings.hand_edited());
    /// assert!(std::fs::read_to_string(&path)?.contains("# quieter"));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn accept_hand_edits(mut self, yes: bool) -> Self {
        self.hand_edits = yes;
        self
    }

    /// Keep the file as an older schema wrote it before a migrated value replaces it
    /// (default `false`): opening an enveloped file whose schema version is older than
    /// the builder's [`schema_version`](Self::schema_version) hard-links it to
    /// `{name}.schema-{found}.bak` beside it (never replacing one already there) and
    /// syncs the directory, so the first commit of the migrated value cannot take it.
    ///
    /// ```
    /// use atomic_persist::Persisted;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("settings.json");
    /// let mut v1 = Persisted::<u32>::builder(&path).envelope(true).schema_version(1).open_or_default()?;
    /// v1.set(7)?;
    /// let mut v2 = Persisted::<u32>::builder(&path)
    ///     .envelope(true)
    ///     .schema_version(2)
    ///     .backup_before_migrate(true)
    ///     .open()?;
    /// v2.set(8)?; // the migrated value
    /// let kept = dir.path().join("settings.json.schema-1.bak");
    /// assert_eq!(Persisted::<u32>::builder(&kept).format(atomic_persist::Json).envelope(true).schema_version(1).open()?.get(), &7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn backup_before_migrate(mut self, yes: bool) -> Self {
        self.backup_before_migrate = yes;
        self
    }

    fn config(self) -> Result<(PathBuf, Config<T>)> {
        let codec = self.codec.resolve(&self.path)?;
        // A writer of this file killed mid-save left its temporary file: remove it now,
        // so that a job killed again and again does not pile them up (one listing of
        // the directory; a live writer's temp is locked and stays).
        let name = self.path.file_name().map(OsStr::to_os_string);
        crate::atomic::sweep_own(&self.path, |base| Some(base) == name.as_deref());
        let config = Config {
            codec,
            envelope: self.envelope,
            local: self.local,
            lock: self.lock,
            edits: match self.hand_edits {
                true => Edits::Accept,
                false => Edits::Refuse,
            },
            backup_before_migrate: self.backup_before_migrate,
        };
        Ok((self.path, config))
    }
}

impl<T: Serialize + DeserializeOwned> PersistedBuilder<T> {
    /// Opens an existing file: [`Error::NotFound`] when it does not exist.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no file;
    /// [`Error::UnknownFormat`] when no format is set and the
    /// extension names none; [`Error::Corrupt`] for a damaged file
    /// (its [`CorruptKind`](crate::CorruptKind) says how),
    /// [`Error::Deserialize`] when the value does not fit `T`,
    /// [`Error::SchemaVersion`] when a newer schema wrote it,
    /// [`Error::Invalid`] when the validate hook refuses it,
    /// [`Error::UnexpectedEnvelope`] for an enveloped
    /// file opened without the envelope; [`Error::Refused`] for a
    /// file that is not a regular file or that another user planted in a shared directory,
    /// [`Error::TooLarge`] over
    /// [`max_size`](crate::PersistedBuilder::max_size), and [`Error::Io`]
    /// when the read itself fails (or, with
    /// [`backup_before_migrate`](Self::backup_before_migrate), the backup's link or
    /// directory sync).
    pub fn open(self) -> Result<Persisted<T>> {
        let (path, config) = self.config()?;
        let loaded = load(&path, &config)?;
        Persisted::opened(path, config, loaded)
    }

    /// Opens the file, or starts from `T::default()` when it does not exist (nothing is
    /// written until the first commit).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that a missing file is not an error.
    pub fn open_or_default(self) -> Result<Persisted<T>>
    where
        T: Default,
    {
        self.open_or_else(T::default)
    }

    /// Opens the file, or starts from `f()` when it does not exist (nothing is written
    /// until the first commit).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that a missing file is not an error.
    pub fn open_or_else(self, f: impl FnOnce() -> T) -> Result<Persisted<T>> {
        let (path, config) = self.config()?;
        match load(&path, &config) {
            Ok(loaded) => Persisted::opened(path, config, loaded),
            Err(Error::NotFound { .. }) => Ok(Persisted::fresh(path, config, f())),
            Err(e) => Err(e),
        }
    }

    /// Opens the file, or starts from `f()` when it does not exist **or is damaged**: a
    /// damaged file ([`recovery::is_damage`]) is first moved aside to
    /// `{name}.corrupt-{time}` beside it, never deleted or overwritten, and the
    /// [`Recovery`] says where it went and why (see [`recovery`] for what counts as
    /// damage). Nothing is written until the first commit.
    ///
    /// With the envelope or [`lock`](Self::lock) on, the file is read again under the
    /// writer lock before it is moved, so a file another writer just replaced is opened,
    /// not moved.
    ///
    /// ```
    /// use atomic_persist::{Persisted, recovery::Restored};
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("settings.json");
    /// std::fs::write(&path, "[1, 2, 3")?; // cut short by a program that saved in place
    ///
    /// let (settings, recovery) = Persisted::<Vec<u32>>::builder(&path).open_or_recover(Vec::new)?;
    /// let recovery = recovery.expect("the file was damaged");
    /// assert_eq!(recovery.restored, Restored::Default);
    /// assert_eq!(std::fs::read(&recovery.moved_to)?, b"[1, 2, 3"); // kept, byte for byte
    /// assert!(settings.get().is_empty() && !path.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open) for what is not damage (a newer schema, a refused value,
    /// an I/O error, ...); moving the file aside can fail with [`Error::Io`]
    /// ([`Op::Rename`], [`Op::SyncDir`]) or [`Error::Refused`] (another user's link);
    /// [`Error::Locked`] past the [`lock_timeout`](Self::lock_timeout).
    pub fn open_or_recover(
        self,
        f: impl FnOnce() -> T,
    ) -> Result<(Persisted<T>, Option<Recovery>)> {
        let (path, config) = self.config()?;
        let mut lock = None;
        loop {
            let cause = match load(&path, &config) {
                Ok(loaded) => return Ok((Persisted::opened(path, config, loaded)?, None)),
                Err(Error::NotFound { .. }) => {
                    return Ok((Persisted::fresh(path, config, f()), None));
                }
                Err(e) if recovery::is_damage(&e) => e,
                Err(e) => return Err(e),
            };
            if (config.envelope || config.lock) && lock.is_none() {
                // Under the writer lock no writer of this file replaces it between the
                // look and the move: read it again there, it may have been replaced.
                lock = Some(writer_lock(&path, &config.local)?);
                continue;
            }
            let moved_to = recovery::move_aside(&path, config.local.options.follows_symlinks())?;
            let recovery = Recovery {
                moved_to,
                cause,
                restored: Restored::Default,
            };
            return Ok((Persisted::fresh(path, config, f()), Some(recovery)));
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for PersistedBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("PersistedBuilder");
        d.field("path", &self.path);
        self.codec.debug_fields(&mut d);
        d.field("local", &self.local)
            .field("envelope", &self.envelope)
            .field("lock", &self.lock)
            .field("hand_edits", &self.hand_edits)
            .field("backup_before_migrate", &self.backup_before_migrate)
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Persisted<T> {
    /// Opens an existing file with the defaults (format from the extension, no
    /// envelope): [`Error::NotFound`] when it does not exist.
    ///
    /// # Errors
    ///
    /// As [`PersistedBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// Opens the file, or starts from `T::default()` when it does not exist.
    ///
    /// # Errors
    ///
    /// As [`PersistedBuilder::open_or_default`].
    pub fn open_or_default(path: impl AsRef<Path>) -> Result<Self>
    where
        T: Default,
    {
        Self::builder(path).open_or_default()
    }

    /// Opens the file, or starts from `f()` when it does not exist.
    ///
    /// # Errors
    ///
    /// As [`PersistedBuilder::open_or_else`].
    pub fn open_or_else(path: impl AsRef<Path>, f: impl FnOnce() -> T) -> Result<Self> {
        Self::builder(path).open_or_else(f)
    }

    /// A builder for the other settings: format, envelope, durability, validation.
    pub fn builder(path: impl AsRef<Path>) -> PersistedBuilder<T> {
        PersistedBuilder {
            path: path.as_ref().to_path_buf(),
            codec: codec::Settings::default(),
            local: Local::default(),
            envelope: false,
            lock: false,
            hand_edits: false,
            backup_before_migrate: false,
        }
    }

    /// The value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The value, to change in place before a [`commit`](Self::commit). Prefer
    /// [`update`](Self::update), which commits for you.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Changes the value with `f`, then commits; returns what `f` returned.
    ///
    /// If the commit fails, the changed value stays in memory (not on disk):
    /// [`reload`](Self::reload) to go back to the file.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let r = f(&mut self.value);
        self.commit()?;
        Ok(r)
    }

    /// Replaces the value, then commits.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub fn set(&mut self, value: T) -> Result<()> {
        self.value = value;
        self.commit()
    }

    /// Saves the value atomically; does nothing at all when its bytes equal those last
    /// loaded or committed and the file is still that version. See the
    /// [module docs](self) for the steps.
    ///
    /// With the envelope on, a file that another writer changed since this handle last
    /// loaded or committed it is not overwritten: [`Error::Conflict`]. Then
    /// [`reload`](Self::reload) and apply the change again, or
    /// [`force_commit`](Self::force_commit).
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when another writer committed since this
    /// handle last loaded or committed (enveloped files; [`reload`](Self::reload) and apply
    /// the change again); [`Error::Invalid`] when the validate hook
    /// refuses the value; [`Error::Serialize`] when the value
    /// cannot be serialized; [`Error::Locked`] when the writer lock
    /// is not free within the lock timeout;
    /// [`Error::GenerationOverflow`] past generation
    /// `u64::MAX`; otherwise the errors of a save: [`Error::Io`] naming
    /// the step ([`Op`]) and the path when a filesystem call fails (the
    /// destination is then untouched, and no temporary file is left);
    /// [`Error::AlreadyExists`] with
    /// [`no_clobber`](crate::WriteOptions::no_clobber);
    /// [`Error::Refused`] for a destination that is not a regular
    /// file or that another user planted in a shared directory (`# Security` in the
    /// [`atomic`](crate::atomic) docs).
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// use atomic_persist::{Error, Persisted};
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("n.json");
    /// let open = || Persisted::<u64>::builder(&path).envelope(true).open_or_default();
    /// let (mut a, mut b) = (open()?, open()?);
    /// a.set(1)?;
    /// match b.set(2) {
    ///     Err(Error::Conflict { expected: 0, found: 1, .. }) => b.reload()?,
    ///     other => panic!("{other:?}"),
    /// }
    /// assert_eq!(*b, 1);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(&mut self) -> Result<()> {
        self.write(Commit::Checked)
    }

    /// Saves the value atomically over whatever version is on disk, without the
    /// generation check of [`commit`](Self::commit). The new generation is one more
    /// than the larger of this handle's and the file's, so generations never go back.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit), without [`Error::Conflict`].
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// use atomic_persist::Persisted;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("n.json");
    /// let open = || Persisted::<u64>::builder(&path).envelope(true).open_or_default();
    /// let (mut a, mut b) = (open()?, open()?);
    /// a.set(1)?;
    /// *b.get_mut() = 2;
    /// b.force_commit()?; // a's 1 is overwritten, on purpose
    /// assert_eq!(b.meta().unwrap().generation, 2);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn force_commit(&mut self) -> Result<()> {
        self.write(Commit::Forced)
    }

    /// A read-modify-write that no other writer can interleave with: takes the writer
    /// lock, reloads the file if another writer changed it, applies `f`, commits,
    /// releases the lock. Returns what `f` returned.
    ///
    /// Safe with or without the envelope, across threads (each handle has its own lock
    /// handle) and processes. Waits for the lock as
    /// [`lock_timeout`](PersistedBuilder::lock_timeout) says. A file that this handle
    /// saw but that has since been deleted is [`Error::NotFound`] (nothing to update;
    /// [`force_commit`](Self::force_commit) writes it again). If the commit fails, the
    /// changed value stays in memory, not on disk, as with [`update`](Self::update).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the file this handle saw was
    /// deleted; as [`reload`](Self::reload) when another writer changed it; as
    /// [`commit`](Self::commit) for the commit.
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// use atomic_persist::Persisted;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("counter.json");
    /// let mut counter = Persisted::<u64>::open_or_default(&path)?;
    /// let mut other = Persisted::<u64>::open_or_default(&path)?; // another process, say
    /// counter.update_locked(|n| *n += 1)?;
    /// other.update_locked(|n| *n += 1)?; // sees the 1 first
    /// assert_eq!(*other, 2);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_locked<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let lock = self.take_lock()?;
        if let Standing::Other { .. } = self.standing(false)? {
            self.reload()?;
        }
        let r = f(&mut self.value);
        self.write(Commit::Held)?;
        // Closing the lock file's handle releases the lock, whatever unlock would say.
        drop(lock);
        Ok(r)
    }

    /// Reads the file again, replacing the value in memory.
    ///
    /// # Errors
    ///
    /// As [`PersistedBuilder::open`].
    pub fn reload(&mut self) -> Result<()> {
        let loaded = load(&self.path, &self.config)?;
        self.apply(loaded);
        Ok(())
    }

    /// The envelope's meta of the file as last loaded or committed: `None` without the
    /// envelope, before the first commit of a new file, or after loading a plain file.
    pub fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }

    /// The file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file as last loaded was a hand edit that
    /// [`accept_hand_edits`](PersistedBuilder::accept_hand_edits) let in: its checksum
    /// did not match. The next commit re-stamps it, and this is `false` again.
    pub fn hand_edited(&self) -> bool {
        self.disk.is_some_and(|d| d.edited)
    }

    /// The value, leaving the file as it is.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// A handle on the file just loaded, after keeping it when a migrated value will
    /// replace it ([`PersistedBuilder::backup_before_migrate`]).
    fn opened(path: PathBuf, config: Config<T>, loaded: Loaded<T>) -> Result<Self> {
        let found = loaded.disk.enveloped;
        if let Some(found) =
            found.filter(|&v| config.backup_before_migrate && v < config.codec.schema_version)
        {
            recovery::keep_before_migrate(&path, found, config.local.options.follows_symlinks())?;
        }
        Ok(Persisted::from_loaded(path, config, loaded))
    }

    /// A handle on a file not there (yet): `value`, nothing seen on disk.
    fn fresh(path: PathBuf, config: Config<T>, value: T) -> Self {
        Persisted {
            value,
            path,
            config,
            meta: None,
            disk: None,
            seen: None,
            #[cfg(feature = "toml")]
            document: None,
        }
    }

    fn from_loaded(path: PathBuf, config: Config<T>, loaded: Loaded<T>) -> Self {
        let mut p = Persisted {
            value: loaded.value,
            path,
            config,
            meta: None,
            disk: None,
            seen: None,
            #[cfg(feature = "toml")]
            document: None,
        };
        p.meta = loaded.meta;
        p.disk = Some(loaded.disk);
        p.seen = Some(loaded.seen);
        #[cfg(feature = "toml")]
        {
            p.document = loaded.document;
        }
        p
    }

    fn apply(&mut self, loaded: Loaded<T>) {
        self.value = loaded.value;
        self.meta = loaded.meta;
        self.disk = Some(loaded.disk);
        self.seen = Some(loaded.seen);
        #[cfg(feature = "toml")]
        {
            self.document = loaded.document;
        }
    }

    /// The writer lock, waiting as configured.
    fn take_lock(&self) -> Result<Lock> {
        writer_lock(&self.path, &self.config.local)
    }

    /// Where the file stands against the version this handle last saw. An unchanged
    /// identity settles it with one `stat`; otherwise, when `read` is set, the file is
    /// read, and the same meta and payload still count as the same version (a copy, a
    /// `touch`, or a platform without inode numbers).
    fn standing(&self, read: bool) -> Result<Standing> {
        let current = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(match self.seen {
                    None => Standing::Same,
                    Some(_) => Standing::Other { found: None },
                });
            }
            Err(e) => return Err(Error::io(Op::Inspect, &self.path, e)),
        };
        if let Some(seen) = &self.seen
            && seen.id.is_some()
            && seen.id == sys::file_id(&current)
        {
            return Ok(Standing::Same);
        }
        if !read {
            return Ok(Standing::Other { found: None });
        }
        let how = trust::Read {
            limit: self.config.local.max_size,
            follow: true,
        };
        let bytes = match trust::read(&self.path, how) {
            Ok(bytes) => bytes,
            Err(Error::NotFound { .. }) => return Ok(Standing::Other { found: None }),
            Err(e) => return Err(e),
        };
        let format = self.config.codec.format;
        let split = envelope::split_with(format, &bytes, self.config.envelope, self.config.edits);
        let Ok(split) = split else {
            return Ok(Standing::Other { found: None }); // damaged: not what we wrote
        };
        let same = self
            .disk
            .is_some_and(|d| d.payload == Fingerprint::of(split.payload))
            && split.meta == self.meta;
        Ok(match same {
            true => Standing::Same,
            false => Standing::Other { found: split.meta },
        })
    }

    /// The error for a file that is not the version this handle last saw.
    fn conflict(&self, found: Option<Meta>) -> Error {
        Error::Conflict {
            path: self.path.clone(),
            expected: self.meta.as_ref().map_or(0, |m| m.generation),
            found: found.map_or(0, |m| m.generation),
        }
    }

    /// The generation of the next commit: one past this handle's; for a forced commit
    /// over another writer's version (`found`), never behind that one either.
    fn next_generation(&self, found: Option<&Meta>) -> Result<u64> {
        let after = |m: &Meta| envelope::next_generation(m.generation, &self.path);
        let mine = self.meta.as_ref().map_or(Ok(1), after)?;
        found.map_or(Ok(mine), |f| after(f).map(|theirs| mine.max(theirs)))
    }

    /// Steps 1-3 of a commit: validate, serialize into a hasher (or, for TOML, a string).
    fn serialize_value(&self) -> Result<Staged> {
        let path = &self.path;
        self.config.codec.check(&self.value, path)?;
        let (format, enveloped) = (self.config.codec.format, self.config.envelope);
        #[cfg(feature = "toml")]
        if format == AnyFormat::Toml {
            let (bytes, document) = self.toml_payload().map_err(|e| e.at(path))?;
            let mut h = Hashing::new(std::io::sink());
            let _ = h.write_all(&bytes);
            return Ok(Staged {
                payload: h.fingerprint(),
                crc: h.crc,
                bytes: Some(bytes),
                file: None,
                document,
            });
        }
        let mut spill = Spill {
            kept: Vec::new(),
            file: None,
            open: || self.open_temp(),
            failed: None,
        };
        let mut h = Hashing::new(&mut spill);
        let mut buf = BufWriter::with_capacity(STREAM_BUFFER, &mut h);
        let serialized = envelope::write_payload(format, enveloped, &self.value, &mut buf)
            .and_then(|()| {
                let name = crate::Format::name(&format);
                buf.flush()
                    .map_err(|e| crate::format::io_serialize_error(name, e).unplaced())
            });
        drop(buf);
        let (payload, crc, io) = (h.fingerprint(), h.crc, h.error);
        // A failure drops the temporary file, if there was one: nothing is renamed.
        if let Err(e) = serialized {
            return Err(match (spill.failed, io) {
                (Some(open), _) => open,
                (None, Some(io)) => Error::io(Op::Write, path, io),
                (None, None) => e.at(path),
            });
        }
        let (bytes, file) = match spill.file {
            Some(file) => (None, Some(file)),
            None => (Some(spill.kept), None),
        };
        Ok(Staged {
            payload,
            crc,
            bytes,
            file,
            #[cfg(feature = "toml")]
            document: None,
        })
    }

    /// The commit's temporary file, with the envelope's head already in it.
    fn open_temp(&self) -> Result<AtomicFile> {
        let mut file = self.config.local.options.create(&self.path)?;
        if self.config.envelope {
            envelope::write_head(self.config.codec.format, &mut file)
                .map_err(|e| Error::io(Op::Write, &self.path, e))?;
        }
        Ok(file)
    }

    /// The TOML payload of a commit, and the document it is the text of. The value is
    /// merged into the loaded document, so what a person wrote there survives: a plain
    /// file's whole text, or a hand-edited envelope's `[data]` tables.
    #[cfg(feature = "toml")]
    fn toml_payload(&self) -> Result<(Vec<u8>, Option<toml_edit::DocumentMut>)> {
        let merged = |old: &toml_edit::DocumentMut| match self.config.envelope {
            true => crate::toml_doc::merged(old, &envelope::Data { data: &self.value }),
            false => crate::toml_doc::merged(old, &self.value),
        };
        let (doc, mut bytes) = match (&self.document, self.config.envelope) {
            (Some(old), _) => merged(old)?,
            (None, false) => merged(&toml_edit::DocumentMut::new())?,
            (None, true) => {
                let mut bytes = Vec::new();
                envelope::write_payload(AnyFormat::Toml, true, &self.value, &mut bytes)?;
                return Ok((bytes, None));
            }
        };
        // The `[meta]` table of an envelope starts on a line of its own.
        if self.config.envelope && !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
        Ok((bytes, Some(doc)))
    }

    /// A commit: steps 1-8 of the [module docs](self).
    fn write(&mut self, how: Commit) -> Result<()> {
        #[cfg_attr(
            not(feature = "toml"),
            allow(unused_mut, reason = "only the TOML document is taken out")
        )]
        let mut staged = self.serialize_value()?;
        // Locking for the whole commit: before looking at the file.
        let whole = match how {
            Commit::Held => None,
            _ if self.config.lock => Some(self.take_lock()?),
            _ => None,
        };
        let locked = how == Commit::Held || whole.is_some();
        let Some(found) = self.to_write(&staged, how)? else {
            return Ok(()); // the same bytes are there; a temporary file, if any, is dropped
        };
        let payload = staged.payload;
        #[cfg(feature = "toml")]
        let document = staged.document.take();
        let (file, meta) = self.filled_temp(staged, found.as_ref())?;
        let written = self.rename(file, how, locked)?;
        drop(whole);
        self.committed(Written {
            payload,
            meta,
            #[cfg(feature = "toml")]
            document,
            id: written,
        });
        Ok(())
    }

    /// After a rename: this handle now holds the version `written`.
    fn committed(&mut self, written: Written) {
        let enveloped = (self.config.envelope).then_some(self.config.codec.schema_version);
        self.disk = Some(OnDisk {
            payload: written.payload,
            enveloped,
            edited: false,
        });
        self.seen = Some(Seen::renamed(&self.path, written.id));
        if written.meta.is_some() {
            self.meta = written.meta;
        }
        #[cfg(feature = "toml")]
        {
            self.document = written.document;
        }
    }

    /// Stages this handle's commit in `batch`, to be renamed into place with the
    /// batch's other files at [`Batch::commit`](crate::Batch::commit): the value is
    /// validated and serialized now, as [`commit`](Self::commit) would, and nothing is
    /// staged when it is unchanged. The generation check of an enveloped file (and the
    /// writer lock, for an enveloped or [`lock`](PersistedBuilder::lock)ing handle) is
    /// made just before the batch's renames, every lock held until the last rename: an
    /// [`Error::Conflict`] then stops the whole batch before any file changes. Once the
    /// batch has renamed this file, the handle holds the new version, as after a commit.
    ///
    /// The handle stays borrowed until the batch is committed or dropped.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit), for what is done now: [`Error::Invalid`],
    /// [`Error::Serialize`], [`Error::Conflict`] when another writer has committed since
    /// this handle last loaded or committed, and the errors of creating the temporary
    /// file.
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// use atomic_persist::{Batch, Persisted};
    /// # let dir = tempfile::tempdir()?;
    /// let open = |name: &str| Persisted::<u64>::builder(dir.path().join(name)).envelope(true).open_or_default();
    /// let (mut a, mut b) = (open("a.json")?, open("b.json")?);
    /// *a.get_mut() = 1;
    /// *b.get_mut() = 2;
    /// let mut batch = Batch::new();
    /// a.stage(&mut batch)?;
    /// b.stage(&mut batch)?;
    /// batch.commit()?; // both files, two flushes
    /// assert_eq!((a.meta().unwrap().generation, *b), (1, 2));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stage<'a>(&'a mut self, batch: &mut crate::Batch<'a>) -> Result<()> {
        #[cfg_attr(
            not(feature = "toml"),
            allow(unused_mut, reason = "only the TOML document is taken out")
        )]
        let mut staged = self.serialize_value()?;
        let Some(found) = self.to_write(&staged, Commit::Checked)? else {
            return Ok(()); // unchanged: nothing to stage
        };
        let payload = staged.payload;
        #[cfg(feature = "toml")]
        let document = staged.document.take();
        let (file, meta) = self.filled_temp(staged, found.as_ref())?;
        let member = InBatch {
            handle: self,
            written: Some(Written {
                payload,
                meta,
                #[cfg(feature = "toml")]
                document,
                id: None,
            }),
        };
        batch.add(file, Some(Box::new(member)));
        Ok(())
    }

    /// Whether `staged` must be written: `None` when its bytes are already the file's
    /// (this handle's version, a hand edit excepted), else the meta of the version it
    /// replaces if that is another writer's (a plain or forced commit), or
    /// [`Error::Conflict`] for an enveloped commit that another writer overtook.
    fn to_write(&self, staged: &Staged, how: Commit) -> Result<Option<Option<Meta>>> {
        let enveloped = self
            .config
            .envelope
            .then_some(self.config.codec.schema_version);
        // A hand edit is re-stamped even when the value serializes to the same bytes.
        let unchanged = self.disk.is_some_and(|disk| {
            disk.payload == staged.payload && disk.enveloped == enveloped && !disk.edited
        });
        Ok(match self.standing(true)? {
            Standing::Same if unchanged => None,
            Standing::Same => Some(None),
            Standing::Other { found } if enveloped.is_some() && how != Commit::Forced => {
                return Err(self.conflict(found));
            }
            Standing::Other { found } => Some(found),
        })
    }

    /// The commit's temporary file with the whole file in it: the head and payload
    /// (already there for a large payload) and, enveloped, the meta of the next
    /// generation, which is returned.
    fn filled_temp(
        &self,
        staged: Staged,
        found: Option<&Meta>,
    ) -> Result<(AtomicFile, Option<Meta>)> {
        let write_error = |e: std::io::Error| Error::io(Op::Write, &self.path, e);
        let mut file = match (staged.file, staged.bytes) {
            (Some(file), _) => file,
            (None, bytes) => {
                let mut file = self.open_temp()?;
                file.write_all(&bytes.unwrap_or_default())
                    .map_err(write_error)?;
                file
            }
        };
        if !self.config.envelope {
            return Ok((file, None));
        }
        let not_before = self.meta.as_ref().map(|m| m.written_at);
        let meta = (self.config.codec).stamp(self.next_generation(found)?, not_before, staged.crc);
        envelope::write_tail(
            self.config.codec.format,
            &meta,
            staged.payload.len(),
            &mut file,
        )
        .map_err(write_error)?;
        Ok((file, Some(meta)))
    }

    /// Syncs and renames the temporary file into place (step 7), returning the new
    /// version's identity. An enveloped commit not locked already takes the lock for
    /// the generation check and the rename as one step; a forced commit locks too, not
    /// to land inside another's step.
    fn rename(&self, file: AtomicFile, how: Commit, locked: bool) -> Result<Option<sys::FileId>> {
        let check_and_rename = self.config.envelope && !locked;
        let mut written = None;
        file.commit_with(|temp| {
            let guard = match check_and_rename {
                true => Some(self.take_lock()?),
                false => None,
            };
            if check_and_rename
                && how != Commit::Forced
                && let Standing::Other { found } = self.standing(true)?
            {
                return Err(self.conflict(found));
            }
            written = temp.metadata().ok().as_ref().and_then(sys::file_id);
            Ok(guard)
        })?;
        Ok(written)
    }
}

/// What a commit wrote: the version the handle holds once it is in place.
struct Written {
    payload: Fingerprint,
    /// Its meta, when enveloped.
    meta: Option<Meta>,
    #[cfg(feature = "toml")]
    document: Option<toml_edit::DocumentMut>,
    /// Its identity, once renamed.
    id: Option<sys::FileId>,
}

/// A [`Persisted`] commit staged in a [`Batch`](crate::Batch).
struct InBatch<'a, T> {
    handle: &'a mut Persisted<T>,
    /// Taken once the file is renamed.
    written: Option<Written>,
}

impl<T: Serialize + DeserializeOwned> crate::batch::Member for InBatch<'_, T> {
    fn before_rename(&self) -> Result<Option<Lock>> {
        let h = &*self.handle;
        if !(h.config.envelope || h.config.lock) {
            return Ok(None);
        }
        let lock = h.take_lock()?;
        if h.config.envelope
            && let Standing::Other { found } = h.standing(true)?
        {
            return Err(h.conflict(found));
        }
        Ok(Some(lock))
    }

    fn renamed(&mut self, id: Option<sys::FileId>) {
        if let Some(written) = self.written.take() {
            self.handle.committed(Written { id, ..written });
        }
    }
}

/// A value serialized for a commit.
struct Staged {
    payload: Fingerprint,
    crc: crc32fast::Hasher,
    /// The bytes, when they were kept: a payload of at most [`KEEP_LIMIT`] bytes, or
    /// TOML (which cannot stream). `None` when they went into `file`.
    bytes: Option<Vec<u8>>,
    /// The temporary file a larger payload was streamed into, head and payload written.
    file: Option<AtomicFile>,
    /// The plain TOML document the bytes are the text of.
    #[cfg(feature = "toml")]
    document: Option<toml_edit::DocumentMut>,
}

impl<T> Deref for Persisted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Persisted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Persisted")
            .field("path", &self.path)
            .field("value", &self.value)
            .field("format", &self.config.codec.format)
            .field("envelope", &self.config.envelope)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// The writer lock of the file at `path`, waiting as `local` says.
fn writer_lock(path: &Path, local: &Local) -> Result<Lock> {
    // The lock sidecar can be the first file a commit makes beside the file.
    local.options.prepare_dirs(path)?;
    match local.lock_timeout {
        None => Lock::exclusive(path),
        Some(timeout) => Lock::exclusive_timeout(path, timeout),
    }
}

/// Reads a whole file, keeping it open to tell its version later.
fn read_seen(path: &Path, limit: Option<u64>) -> Result<(Vec<u8>, Seen)> {
    let how = trust::Read {
        limit,
        follow: true,
    };
    let (bytes, file) = trust::read_file(path, how)?;
    Ok((bytes, Seen::of(file)))
}

fn load<T: DeserializeOwned>(path: &Path, config: &Config<T>) -> Result<Loaded<T>> {
    let (bytes, seen) = read_seen(path, config.local.max_size)?;
    let format = config.codec.format;
    let split = envelope::split_for_decode(format, &bytes, config.envelope, config.edits)
        .map_err(|e| e.at(path))?;
    let value: T = config.codec.value(path, &bytes, &split)?;
    let disk = OnDisk {
        payload: Fingerprint::of(split.payload),
        enveloped: split.meta.as_ref().map(|m| m.schema_version),
        edited: split.edited,
    };
    // The TOML text a person may have written, kept so a commit can keep its comments:
    // the whole plain file, or an envelope's payload (the `[data]` tables).
    #[cfg(feature = "toml")]
    let document = (format == AnyFormat::Toml && split.meta.is_some() == config.envelope)
        .then(|| std::str::from_utf8(split.payload).ok()?.parse().ok())
        .flatten();
    Ok(Loaded {
        value,
        meta: split.meta,
        disk,
        seen,
        #[cfg(feature = "toml")]
        document,
    })
}

/// Watching the file (feature `watch`).
#[cfg(feature = "watch")]
impl<T: DeserializeOwned + Send + 'static> Persisted<T> {
    /// Watches the file for commits by any writer, this handle's later ones included:
    /// each new value, read and verified as [`PersistedBuilder::open`] would (see the
    /// [`watch`](crate::watch) module). The value this handle has is not yielded again.
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("settings.json");
    /// use atomic_persist::watch::Update;
    /// let mut mine = atomic_persist::Persisted::<u32>::open_or_default(&path)?;
    /// let mut changes = mine.watch()?;
    /// let mut other = atomic_persist::Persisted::<u32>::open_or_default(&path)?;
    /// other.set(7)?;
    /// match changes.next().unwrap()? {
    ///     Update::Changed { value, .. } => assert_eq!(value, 7),
    ///     other => panic!("{other:?}"),
    /// }
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::Watch`] when the watch's thread cannot
    /// start. A watcher the platform refuses (inotify's limits) is not an error: the
    /// watch polls instead.
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
        let (path, config) = (self.path.clone(), self.config.clone());
        let seen = self.disk.map(|d| Stamp::of(self.meta.as_ref(), d.payload));
        let read = move || match load(&path, &config) {
            Ok(l) => Ok(Some(Found {
                stamp: Stamp::of(l.meta.as_ref(), l.disk.payload),
                value: l.value,
                meta: l.meta,
            })),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        };
        crate::watch::Watch::start(&self.path, options, seen, Box::new(read))
    }
}

impl<T> PersistedBuilder<T> {
    /// The path the builder was made for.
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// let b = atomic_persist::Persisted::<u32>::builder("state.json");
    /// assert_eq!(b.path(), std::path::Path::new("state.json"));
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }
}
