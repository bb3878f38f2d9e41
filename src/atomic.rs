//! Atomic bytes: replace a file so that it is always either the old or the new version.
//!
//! # The save protocol
//!
//! Every save, whether through [`write_atomic`], [`WriteOptions::write`] or a streaming
//! [`AtomicFile`], runs the same steps, all relative to one open handle on the
//! destination's directory:
//!
//! 1. Resolve the destination. A symlink is followed to its final target (under the
//!    rules of [Security](#security)), and the temporary file is created beside the
//!    *target*: the link's own directory may be read-only or on another filesystem, and
//!    a rename only swaps entries of one directory. The link itself stays a link.
//!    Anything but a regular file at the destination (a FIFO, a device, a directory) is
//!    [`Error::Refused`].
//! 2. Create `.{name}.{random}.tmp` in that directory with
//!    `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` and already the final mode, so it is never
//!    more readable than the file it becomes. On Linux, by default, it is an anonymous
//!    `O_TMPFILE` instead, given that name only just before step 5
//!    ([`WriteOptions::anonymous_temp`]). The writer holds an advisory lock on it until the
//!    save ends: that is how [`sweep`] tells a live writer's temporary file from debris.
//! 3. Write all bytes.
//! 4. Flush the file to stable storage (skipped by [`Durability::None`]).
//! 5. `rename` it over the destination: the atomic swap of a directory entry that readers
//!    see as "old file" or "new file", nothing in between.
//! 6. Flush the directory, so that the rename itself survives a power cut (only
//!    [`Durability::Full`]).
//!
//! If any step fails, the temporary file is removed and the destination is untouched. A
//! writer that is killed outright leaves no partial file on Linux filesystems with
//! `O_TMPFILE`; at most a named temporary file is left (on Linux only one that is
//! complete, by a kill between naming and rename), which [`sweep`] and every open of a
//! typed handle remove. A new file's setuid, setgid and sticky bits are set only once all
//! its bytes are written, before step 4.
//!
//! # Security
//!
//! **Threat model.** Another local user who can create names in the destination's
//! directory: `/tmp`, `/var/tmp`, a shared volume or a CI runner's scratch space. They
//! may plant symlinks, files, FIFOs or devices under any free name (the file itself, its
//! temporary files, the `.{name}.lock` sidecar, a history's version names) and hold
//! locks on anything they can open. The crate keeps them from *redirecting* a save
//! (through a link), *reading* it (through a file they own), *forging* what a load
//! returns, and *stalling* a save, a load or a sweep (a FIFO, a held lock). Not
//! defended: a user who may write the directory without a sticky bit can rename or
//! delete anything in it, so nothing stored there can be trusted against them (use a
//! directory only you can write); root, and anyone who can write the files themselves.
//!
//! **Shared directories.** A directory is *shared* when it is sticky and writable by
//! group or others, as `/tmp` is. There, an entry counts as trusted only when it
//! belongs to the caller or to the directory's owner, the rule of the kernel's
//! `protected_symlinks` and `protected_regular` sysctls, applied whatever the sysctls
//! say (the crate resolves links itself, so the kernel's rule would never apply, and
//! containers often turn both off):
//!
//! - A foreign **symlink** is not followed: [`Error::Refused`] with
//!   [`Refusal::ForeignSymlink`]. A link of the caller or of the directory's owner is
//!   followed; with [`WriteOptions::follow_symlinks`]`(false)` no link is followed and
//!   the link itself is replaced.
//! - A foreign **file** is neither replaced nor read ([`Refusal::ForeignFile`]): the
//!   user who planted it would own the result, or could rewrite it later.
//!
//! **Ownership of the result**, when an existing regular file is replaced:
//!
//! | caller | file owned by | in a shared directory | elsewhere |
//! |---|---|---|---|
//! | root | root | replaced, mode kept | replaced, mode kept |
//! | root | the directory's owner | replaced, owner and mode kept | replaced, owner and mode kept |
//! | root | another user | refused ([`Refusal::ForeignFile`]) | replaced, owner and mode kept; with [`WriteOptions::mode`], owned by root |
//! | a user | themselves | replaced, mode kept | replaced, mode kept |
//! | a user | the directory's owner | the kernel refuses the rename (sticky bit): [`Error::Io`] | replaced; owned by the caller (a user cannot give files away), group kept where the caller is in it |
//! | a user | another user | refused ([`Refusal::ForeignFile`]) | as the row above |
//!
//! An explicit [`mode`](WriteOptions::mode) means "these bits, owned by me": the old
//! owner is not copied then. Without it (and with
//! [`preserve_permissions`](WriteOptions::preserve_permissions), the default) the old
//! mode, owner and group are kept, and on Linux the file's POSIX ACL
//! (`system.posix_acl_access`) and `user.*` attributes are carried over (`security.*`
//! and `trusted.*` where the caller may set them). A new file with an ACL is readable by
//! its owner alone until the ACL is on it. Other platforms drop extended attributes.
//!
//! **Special files.** Every file the crate did not just create (a destination, a lock
//! sidecar, a version, a manifest, a file to load, a sweep candidate) is opened
//! without following a link at its last component and without blocking, then checked
//! with `fstat`: anything but a regular file is [`Refusal::NotRegular`] (for saves and
//! loads) or skipped and reported (history scans, [`sweep`]). A FIFO cannot stall a
//! load, a device cannot be read without end. [`WriteOptions::replace_non_regular`]
//! lets a save replace a FIFO, socket or device with a regular file of a fresh mode.
//!
//! **Locks.** A lock sidecar is opened only by those who may write the data file (its
//! mode gives read and write to each class that may write the data file, and nothing
//! to the others), so a reader cannot hold it with a shared lock; see the
//! [`lock`](crate::lock) module. A sidecar planted by another user in a shared
//! directory is refused at once rather than waited on.
//!
//! **What to do in a world-writable directory.** Prefer a directory of your own (a
//! subdirectory of `/tmp` made with mode 0700 by the program, or `$XDG_RUNTIME_DIR`).
//! Where the directory must be shared, the rules above make each save and load either
//! do what it would do in a private directory or fail with [`Error::Refused`] naming
//! the entry; treat that error as "someone is interfering", not as a reason to retry
//! elsewhere with fewer checks. [`PersistedBuilder::max_size`](crate::PersistedBuilder::max_size)
//! bounds the memory a load of a file from such a place may take.
//!
//! A save's checks cost no syscall on the common path: the caller's uid comes from the
//! `fstat` the engine makes of its new temporary file anyway, and only an entry owned by
//! someone else (or a symlink) costs an `fstat` of the directory. The one addition to a
//! save is an `llistxattr` of the file it replaces, to carry its ACL over
//! (`BENCHMARKS.md` measures it). A load adds a `geteuid` to its `open` and `fstat`.

use std::ffi::{OsStr, OsString};
use std::fs::{File, TryLockError};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Op, Refusal, Result};
use crate::sys;
use crate::trust::{self, Target};

/// How much of a save must reach stable storage before it returns.
///
/// | level | survives a process crash | survives power loss |
/// |---|---|---|
/// | `Full` | yes: old or new file | yes: the new file, once the call has returned |
/// | `Data` | yes | the file is old or new, but may be the old one after the call returned |
/// | `None` | yes | no: the file may be empty or missing after power loss |
///
/// ```
/// use atomic_persist::{Durability, WriteOptions};
/// # let dir = tempfile::tempdir()?;
/// // A cache that can be rebuilt: skip the directory flush, keep the file complete.
/// WriteOptions::new()
///     .durability(Durability::Data)
///     .write(dir.path().join("cache.bin"), [0u8; 64])?;
/// assert_eq!(Durability::default(), Durability::Full);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Sync the file, rename, sync the directory (the default).
    #[default]
    Full,
    /// Sync the file and rename; skip the directory sync.
    Data,
    /// Write and rename only: atomic against process crashes, not power loss.
    None,
}

/// How a file is written: durability, permissions, replace-or-not.
///
/// ```
/// use atomic_persist::{Durability, WriteOptions};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("secret.txt");
/// WriteOptions::new()
///     .durability(Durability::Full)
///     .mode(0o600)
///     .write(&path, b"hunter2")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct WriteOptions {
    durability: Durability,
    mode: Option<u32>,
    preserve_permissions: bool,
    no_clobber: bool,
    anonymous_temp: bool,
    follow_symlinks: bool,
    replace_non_regular: bool,
    create_dirs: bool,
    rename_retry: Duration,
    apple_barrier: bool,
}

/// How long a save retries a rename another program's open handle refused, by default
/// ([`WriteOptions::rename_retry`]).
pub const DEFAULT_RENAME_RETRY: Duration = Duration::from_secs(1);

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            durability: Durability::Full,
            mode: None,
            preserve_permissions: true,
            no_clobber: false,
            // Linux only: elsewhere there is no O_TMPFILE to fall back from.
            anonymous_temp: cfg!(target_os = "linux"),
            follow_symlinks: true,
            replace_non_regular: false,
            create_dirs: false,
            rename_retry: DEFAULT_RENAME_RETRY,
            apple_barrier: false,
        }
    }
}

impl WriteOptions {
    /// The defaults: [`Durability::Full`], permissions preserved, replace allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// How much must reach stable storage before a save returns.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The exact Unix permission bits of the written file (not reduced by the umask).
    /// Wins over [`preserve_permissions`](Self::preserve_permissions). Ignored on
    /// platforms without Unix modes.
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Keep an existing destination's mode, and its owner and group where permitted
    /// (default `true`). A new file gets `0o666` less the umask, as `File::create` does.
    pub fn preserve_permissions(mut self, yes: bool) -> Self {
        self.preserve_permissions = yes;
        self
    }

    /// Fail with [`Error::AlreadyExists`] instead of replacing an existing destination.
    ///
    /// The check is atomic with the rename (`renameat2(RENAME_NOREPLACE)`, or `link`
    /// where the filesystem lacks it): of two concurrent creators exactly one wins.
    pub fn no_clobber(mut self, yes: bool) -> Self {
        self.no_clobber = yes;
        self
    }

    /// How long a rename refused because another program holds the destination open is
    /// retried, with a growing pause between tries (default [`DEFAULT_RENAME_RETRY`];
    /// `Duration::ZERO` never retries). That is Windows: antivirus scanners, indexers
    /// and backup tools open files without `FILE_SHARE_DELETE`, and `MoveFileExW` then
    /// fails with access denied or a sharing violation until they let go. Elsewhere no
    /// rename error is transient, and none is retried. The last error is returned once
    /// the time is up; the old file is untouched throughout.
    pub fn rename_retry(mut self, total: Duration) -> Self {
        self.rename_retry = total;
        self
    }

    /// On Apple platforms, make each of the save's syncs an `F_BARRIERFSYNC` in place of
    /// `F_FULLFSYNC` (default `false`). Elsewhere this changes nothing.
    ///
    /// `F_FULLFSYNC` waits for the drive to empty its cache (17–18 ms per flush has been
    /// reported on an M1's NVMe drive; not measured here); a barrier only orders the
    /// writes before it ahead of the writes after it. **The promise becomes ordering, not
    /// durability:** after a power cut the destination is the old file or a complete new
    /// one (never torn), and saves reach the disk in the order they returned, but a save
    /// that returned — and the ones before it that were not yet flushed — may be lost:
    /// the promise of [`Durability::Data`], without a cache flush per sync. A filesystem
    /// without barriers gets the full sync.
    ///
    /// Compiled and linted for macOS in CI, not run there (no Apple machine).
    ///
    /// ```
    /// use atomic_persist::WriteOptions;
    /// # let dir = tempfile::tempdir()?;
    /// // A state file rewritten many times a second on a laptop: order, not a flush each.
    /// WriteOptions::new()
    ///     .apple_barrier(true)
    ///     .write(dir.path().join("state.json"), b"{}")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apple_barrier(mut self, yes: bool) -> Self {
        self.apple_barrier = yes;
        self
    }

    /// On Linux, write into an anonymous `O_TMPFILE` that gets a name only just before
    /// the rename, so a writer killed mid-write leaves nothing behind (default `true` on
    /// Linux, `false` elsewhere). Where the filesystem has no `O_TMPFILE`, a named
    /// temporary file is used.
    ///
    /// With `false` the temporary file has a name from the start
    /// ([`AtomicFile::temp_path`]); a writer killed mid-write leaves it for [`sweep`].
    pub fn anonymous_temp(mut self, yes: bool) -> Self {
        self.anonymous_temp = yes;
        self
    }

    /// Follow a symlink at the destination and write its target (default `true`); with
    /// `false` the link itself is replaced by a regular file.
    ///
    /// Either way a link in a shared sticky directory (like `/tmp`) that neither the
    /// caller nor the directory's owner owns is never followed: the save is
    /// [`Error::Refused`] instead (see `# Security` in the [module docs](self)).
    pub fn follow_symlinks(mut self, yes: bool) -> Self {
        self.follow_symlinks = yes;
        self
    }

    /// Replace a destination that is not a regular file (a FIFO, a socket, a device
    /// node) with a regular file (default `false`: [`Error::Refused`]). The new file gets
    /// a fresh mode, never the node's: a copy of `/dev/null`'s 0666 would make it
    /// writable by all.
    pub fn replace_non_regular(mut self, yes: bool) -> Self {
        self.replace_non_regular = yes;
        self
    }

    /// Create the destination's missing parent directories first, as `mkdir -p` would
    /// (default `false`: a missing directory is [`Error::Io`] with [`Op::OpenDir`]).
    ///
    /// New directories get `0o777` less the umask. With [`Durability::Full`] each new
    /// directory's own parent is synced, so the path to the file survives a power cut
    /// along with the file; with `Data` or `None` it may be lost with the last rename.
    ///
    /// ```
    /// use atomic_persist::WriteOptions;
    /// # let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("config/app/settings.toml");
    /// WriteOptions::new().create_dirs(true).write(&path, b"theme = 'dark'\n")?;
    /// assert!(path.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_dirs(mut self, yes: bool) -> Self {
        self.create_dirs = yes;
        self
    }

    /// Creates `path`'s missing parent directories when [`create_dirs`](Self::create_dirs)
    /// is on: for the handles that take a lock beside the file before they save.
    pub(crate) fn prepare_dirs(&self, path: &Path) -> Result<()> {
        match self.create_dirs {
            true => create_parents(path, self.durability),
            false => Ok(()),
        }
    }

    /// How far each of a save's syncs goes ([`WriteOptions::apple_barrier`]).
    pub(crate) fn flush(&self) -> sys::Flush {
        match self.apple_barrier {
            true => sys::Flush::Barrier,
            false => sys::Flush::Full,
        }
    }

    /// The durability level these options ask for.
    #[cfg_attr(not(feature = "json"), allow(dead_code))] // used by `history` only
    pub(crate) fn durability_level(&self) -> Durability {
        self.durability
    }

    /// Whether a symlink at the destination is followed ([`follow_symlinks`](Self::follow_symlinks)).
    pub(crate) fn follows_symlinks(&self) -> bool {
        self.follow_symlinks
    }

    /// Atomically replaces (or creates) `path` with `bytes`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the step ([`Op`]) and the path
    /// when a filesystem call fails (the destination is then untouched, and no temporary
    /// file is left); [`Error::AlreadyExists`] with
    /// [`no_clobber`](crate::WriteOptions::no_clobber);
    /// [`Error::Refused`] for a destination that is not a regular
    /// file or that another user planted in a shared directory (`# Security` in the
    /// [`atomic`](crate::atomic) docs), or that has a file bind-mounted over it
    /// ([`Refusal::MountPoint`]: mount its directory instead).
    pub fn write(&self, path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> Result<()> {
        let (staged, mut file) = Staged::new(self, path.as_ref())?;
        if let Err(e) = file.write_all(bytes.as_ref()) {
            return Err(staged.error(Op::Write, e));
        }
        staged.commit(file, |_| Ok(()))
    }

    /// Starts a streaming atomic write of `path`; nothing is visible until
    /// [`AtomicFile::commit`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::OpenDir`],
    /// [`Op::Inspect`] or [`Op::CreateTemp`]
    /// when the directory or the temporary file cannot be opened;
    /// [`Error::AlreadyExists`] with `no_clobber`;
    /// [`Error::Refused`] as for [`write`](Self::write).
    pub fn create(&self, path: impl AsRef<Path>) -> Result<AtomicFile> {
        self.create_buffered(path.as_ref(), BUFFER)
    }

    /// [`create`](Self::create) with a write buffer of `capacity` bytes (0: every write
    /// goes straight to the file, for a caller that writes all its bytes at once).
    pub(crate) fn create_buffered(&self, path: &Path, capacity: usize) -> Result<AtomicFile> {
        let (staged, file) = Staged::new(self, path)?;
        Ok(AtomicFile {
            file: BufWriter::with_capacity(capacity, file),
            staged,
        })
    }
}

/// Atomically replaces (or creates) `path` with `bytes`, durably ([`Durability::Full`]).
///
/// # Errors
///
/// [`Error::Io`] naming the step ([`Op`]) and the path when a
/// filesystem call fails (the destination is then untouched, and no temporary file is
/// left); [`Error::AlreadyExists`] with
/// [`no_clobber`](crate::WriteOptions::no_clobber);
/// [`Error::Refused`] for a destination that is not a regular file
/// or that another user planted in a shared directory (`# Security` in the
/// [`atomic`](crate::atomic) docs), or that has a file bind-mounted over it
/// ([`Refusal::MountPoint`]: mount its directory instead).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("state.json");
/// atomic_persist::write_atomic(&path, br#"{"done": 41}"#)?;
/// atomic_persist::write_atomic(&path, br#"{"done": 42}"#)?;
/// assert_eq!(std::fs::read(&path)?, br#"{"done": 42}"#);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_atomic(path: impl AsRef<Path>, bytes: impl AsRef<[u8]>) -> Result<()> {
    WriteOptions::default().write(path, bytes)
}

/// The buffer of an [`AtomicFile`]: large enough that a serializer's many small writes
/// become few syscalls.
const BUFFER: usize = 64 * 1024;

/// A streaming atomic write: `impl Write` into a temporary file that replaces the
/// destination on [`commit`](Self::commit).
///
/// Dropping it without a commit removes the temporary file and leaves the destination
/// as it was.
///
/// ```
/// use std::io::Write;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("log.txt");
/// let mut f = atomic_persist::AtomicFile::create(&path)?;
/// for i in 0..3 {
///     writeln!(f, "line {i}")?;
/// }
/// f.commit()?;
/// assert_eq!(std::fs::read_to_string(&path)?, "line 0\nline 1\nline 2\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct AtomicFile {
    file: BufWriter<File>,
    staged: Staged,
}

impl AtomicFile {
    /// Starts a streaming atomic write of `path` with the default [`WriteOptions`].
    ///
    /// # Errors
    ///
    /// As [`WriteOptions::create`].
    pub fn create(path: impl AsRef<Path>) -> Result<AtomicFile> {
        WriteOptions::default().create(path)
    }

    /// Flushes, syncs and renames the temporary file over the destination, as the
    /// options' [`Durability`] says.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the step ([`Op`]) and the path
    /// when a filesystem call fails (the destination is then untouched, and no temporary
    /// file is left); [`Error::AlreadyExists`] with
    /// [`no_clobber`](crate::WriteOptions::no_clobber);
    /// [`Error::Refused`] for a destination that is not a regular
    /// file or that another user planted in a shared directory (`# Security` in the
    /// [`atomic`](crate::atomic) docs).
    pub fn commit(self) -> Result<()> {
        let AtomicFile { file, staged } = self;
        match file.into_inner() {
            Ok(file) => staged.commit(file, |_| Ok(())),
            Err(e) => Err(staged.error(Op::Write, e.into_error())),
        }
    }

    /// [`commit`](Self::commit), with `before_rename` called once the temporary file is
    /// complete and synced, just before it replaces the destination. An error from it
    /// abandons the save (the temporary file is removed, the destination untouched);
    /// what it returns is dropped right after the rename, before the directory sync.
    ///
    /// This is how [`Persisted`](crate::Persisted) makes its generation check and the
    /// rename one step under the writer lock, without holding the lock while the data
    /// is written and synced.
    pub(crate) fn commit_with<G>(
        self,
        before_rename: impl FnOnce(&File) -> Result<G>,
    ) -> Result<()> {
        let AtomicFile { file, staged } = self;
        match file.into_inner() {
            Ok(file) => staged.commit(file, before_rename),
            Err(e) => Err(staged.error(Op::Write, e.into_error())),
        }
    }

    /// Discards the write: removes the temporary file, leaving the destination as it was.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::RemoveTemp`] when
    /// the temporary file cannot be removed (the destination is untouched either way).
    pub fn abort(self) -> Result<()> {
        let AtomicFile { file, mut staged } = self;
        drop(file);
        staged.remove_temp()
    }

    /// The destination (after following symlinks).
    pub fn path(&self) -> &Path {
        &self.staged.target.path
    }

    /// The temporary file's path, while it has a name (an anonymous `O_TMPFILE` has none
    /// until commit).
    pub fn temp_path(&self) -> Option<PathBuf> {
        let name = self.staged.temp.as_ref()?;
        Some(self.staged.target.dir_path.join(name))
    }
}

/// The steps of a commit, one at a time, for a [`Batch`](crate::Batch) that runs each
/// step for all its files before the next: so that its files' data can be made durable
/// together, and each directory synced once.
impl AtomicFile {
    /// Batch step 1: the file complete, with its final permissions, and named (an
    /// anonymous temp gets a temporary name, never the destination's: nothing is in place
    /// before every file's data is durable).
    pub(crate) fn batch_stage(&mut self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| self.staged.error(Op::Write, e))?;
        let file = self.file.get_ref();
        self.staged.finish(file)?;
        if self.staged.temp.is_none() {
            self.staged.link_as(file, false)?;
        }
        Ok(())
    }

    /// Whether the durability asks for the file's data to be made durable at all.
    pub(crate) fn batch_needs_sync(&self) -> bool {
        self.staged.durability != Durability::None
    }

    /// Batch step 2, one file at a time: its data durable, as the durability asks.
    pub(crate) fn batch_sync(&self) -> Result<()> {
        self.staged.sync(self.file.get_ref())
    }

    /// Batch step 2, one filesystem at a time: everything written to this file's
    /// filesystem durable at once (`syncfs`); `false` where the platform has no such call,
    /// and nothing was done.
    pub(crate) fn batch_sync_filesystem(&self) -> Result<bool> {
        let synced = sys::sync_filesystem(self.file.get_ref());
        synced.map_err(|e| self.staged.error(Op::SyncFile, e))
    }

    /// Which filesystem the file is on (`None` where the platform does not say).
    pub(crate) fn batch_filesystem(&self) -> Option<u64> {
        sys::filesystem_id(self.file.get_ref())
    }

    /// Batch step 3: renamed over the destination.
    pub(crate) fn batch_rename(&mut self) -> Result<()> {
        self.staged.rename_into_place()
    }

    /// Batch step 4: the directory the file was renamed in, durable under `Full`;
    /// `false` when its durability asks for no directory sync.
    pub(crate) fn batch_sync_dir(&self) -> Result<bool> {
        self.staged.sync_dir()?;
        Ok(self.staged.durability == Durability::Full)
    }

    /// The identity of the staged file (the version it will be once renamed).
    pub(crate) fn batch_identity(&self) -> Option<sys::FileId> {
        let meta = self.file.get_ref().metadata().ok()?;
        sys::file_id(&meta)
    }

    /// The directory the destination is in (after following symlinks).
    pub(crate) fn dir_path(&self) -> &Path {
        &self.staged.target.dir_path
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A save in progress: owns the temporary file's name and removes it on drop unless the
/// rename consumed it.
#[derive(Debug)]
struct Staged {
    target: Target,
    /// The temporary file's name in `target.dir`; `None` while anonymous, or once renamed.
    temp: Option<OsString>,
    /// Owner or mode were changed after creation, so sync it all, not just data.
    metadata_changed: bool,
    durability: Durability,
    flush: sys::Flush,
    no_clobber: bool,
    rename_retry: Duration,
    /// The permissions given, kept for the special bits applied at the end.
    perms: sys::Perms,
}

/// Runs `op` until it succeeds, fails with an error `transient` does not accept, or
/// `budget` has passed, pausing 1, 2, 4, ... ms (at most 100) between tries; the last
/// result is returned.
fn retry_transient<T>(
    budget: Duration,
    transient: impl Fn(&io::Error) -> bool,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    // The clock starts at the first transient failure: a rename that succeeds at once,
    // the common case, reads no clock.
    let mut start: Option<std::time::Instant> = None;
    let mut pause = Duration::from_millis(1);
    loop {
        let e = match op() {
            Err(e) if transient(&e) => e,
            result => return result,
        };
        let elapsed = start.get_or_insert_with(std::time::Instant::now).elapsed();
        if elapsed >= budget {
            return Err(e);
        }
        std::thread::sleep(pause.min(budget - elapsed));
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Creates the missing directories above `path`, top down. With [`Durability::Full`],
/// syncs the parent of each one created: a directory's entry lives in its parent.
fn create_parents(path: &Path, durability: Durability) -> Result<()> {
    let mut missing = Vec::new();
    let mut dir = path.parent();
    // Up to the first directory that exists: usually the parent itself, one `stat`.
    while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
        if std::fs::metadata(d).is_ok() {
            break;
        }
        missing.push(d);
        dir = d.parent();
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            // Another process created it meanwhile: just as good.
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(Error::io(Op::CreateDir, d, e));
            }
            _ => {}
        }
        if durability == Durability::Full {
            let parent = d.parent().unwrap_or(Path::new(""));
            sys::Dir::open(parent)
                .and_then(|p| p.sync())
                .map_err(|e| Error::io(Op::SyncDir, d, e))?;
        }
    }
    Ok(())
}

/// Name collisions tolerated before giving up on creating a temporary file.
const MAX_TEMP_ATTEMPTS: usize = 64;

impl Staged {
    /// Steps 1 and 2: resolve the destination, create and lock the temporary file.
    fn new(opts: &WriteOptions, path: &Path) -> Result<(Staged, File)> {
        opts.prepare_dirs(path)?;
        let mut target = trust::resolve(path, opts.follow_symlinks)?;
        let existing = target.existing.take();
        if opts.no_clobber && existing.is_some() {
            return Err(Error::AlreadyExists { path: target.path });
        }
        let perms = perms_for(opts, &target, existing.as_ref())?;
        let mut staged = Staged {
            target,
            temp: None,
            metadata_changed: false,
            durability: opts.durability,
            flush: opts.flush(),
            no_clobber: opts.no_clobber,
            rename_retry: opts.rename_retry,
            perms,
        };
        let (file, creator) = staged.create_temp(opts.anonymous_temp)?;
        if let Some(existing) = &existing {
            // Checked against the temp's owner, which the engine's fstat already gave:
            // no syscall when the caller owns the file it replaces. On refusal the
            // temp is removed on drop.
            let t = &staged.target;
            trust::check_owner(&t.dir, existing, creator, &t.path)?;
        }
        Ok((staged, file))
    }

    /// Creates and locks the temporary file; returns it and its creator's uid when the
    /// settling `fstat` told it.
    fn create_temp(&mut self, anonymous: bool) -> Result<(File, Option<u32>)> {
        let perms = self.perms.clone();
        if anonymous {
            match self.target.dir.create_anonymous(&perms) {
                // Locked like a named temp: it gets a name just before the rename.
                Ok(Some(file)) => {
                    file.try_lock()
                        .map_err(|e| self.error(Op::CreateTemp, io::Error::from(e)))?;
                    let creator = self.settle(&file, &perms, false)?;
                    return Ok((file, creator.flatten()));
                }
                Ok(None) => {} // no O_TMPFILE here: fall through to a named temp
                Err(e) => return Err(self.error(Op::CreateTemp, e)),
            }
        }
        for _ in 0..MAX_TEMP_ATTEMPTS {
            let name = temp_name(&self.target.name);
            let file = match self.target.dir.create_new(&name, &perms) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(self.error(Op::CreateTemp, e)),
            };
            self.temp = Some(name);
            match file.try_lock() {
                Ok(()) => {
                    if let Some(creator) = self.settle(&file, &perms, true)? {
                        return Ok((file, creator));
                    }
                    // Between our create and our lock, a concurrent sweep locked the name,
                    // took it for debris and removed it. It is no longer ours: forget it.
                    self.temp = None;
                }
                // A concurrent sweep opened the name first and will delete it: start over.
                Err(TryLockError::WouldBlock) => {
                    let _ = self.remove_temp();
                }
                Err(TryLockError::Error(e)) => return Err(self.error(Op::CreateTemp, e)),
            }
        }
        let e = io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary file name");
        Err(self.error(Op::CreateTemp, e))
    }

    /// Gives a locked new temp its final owner and mode; `None` when a sweep removed its
    /// name first, else the creator's uid if the `fstat` was made.
    fn settle(
        &mut self,
        file: &File,
        perms: &sys::Perms,
        named: bool,
    ) -> Result<Option<Option<u32>>> {
        match perms.settle(file, named) {
            Ok((sys::Settled::Unlinked, _)) => Ok(None),
            Ok((settled, creator)) => {
                self.metadata_changed = settled == sys::Settled::Changed;
                Ok(Some(creator))
            }
            Err(e) => Err(self.error(Op::SetPermissions, e)),
        }
    }

    /// Steps 4 to 6: sync the file, rename it over the destination, sync the directory.
    /// `before_rename` runs between the sync and the rename; its result lives until the
    /// rename is done.
    fn commit<G>(
        mut self,
        file: File,
        before_rename: impl FnOnce(&File) -> Result<G>,
    ) -> Result<()> {
        self.finish(&file)?;
        self.sync(&file)?;
        let guard = before_rename(&file)?;
        if self.temp.is_none() {
            self.link_anonymous(&file)?;
        }
        if self.temp.is_none() {
            // A no-clobber anonymous file was linked straight into place: that link is
            // the change to the directory, and needs its sync like a rename does.
            drop(guard);
            drop(file);
            return self.sync_dir();
        }
        let renamed = self.rename_into_place();
        drop(guard);
        renamed?;
        drop(file);
        // The rename is only a change to the directory: without this sync a power cut
        // can bring the old entry back.
        self.sync_dir()
    }

    /// The bytes are all written: only now may the file carry setuid/setgid/sticky.
    fn finish(&mut self, file: &File) -> Result<()> {
        match self.perms.finish(file) {
            Ok(changed) => self.metadata_changed |= changed,
            Err(e) => return Err(self.error(Op::SetPermissions, e)),
        }
        Ok(())
    }

    /// Step 4: the file's data durable, as the durability asks (never rename after a
    /// failed sync: the data may not be on disk).
    fn sync(&self, file: &File) -> Result<()> {
        if self.durability == Durability::None {
            return Ok(());
        }
        // The data (and size) of a file created with its final metadata needs only
        // fdatasync; a chown/chmod after creation is persisted only by a full fsync.
        let synced = sys::sync_file(file, !self.metadata_changed, self.flush);
        synced.map_err(|e| self.error(Op::SyncFile, e))
    }

    /// Step 5: renames the named temporary file over the destination (never over an
    /// existing one with `no_clobber`). On failure the name stays ours to remove.
    fn rename_into_place(&mut self) -> Result<()> {
        let (dir, name) = (&self.target.dir, &self.target.name);
        let Some(temp) = self.temp.take() else {
            return Ok(()); // linked into place already
        };
        let rename = || match self.no_clobber {
            true => dir.rename_noreplace(&temp, name),
            false => dir.rename(&temp, name),
        };
        let renamed = retry_transient(self.rename_retry, sys::is_transient_rename_error, rename);
        let Err(e) = renamed else { return Ok(()) };
        self.temp = Some(temp);
        Err(match e.kind() {
            io::ErrorKind::AlreadyExists if self.no_clobber => Error::AlreadyExists {
                path: self.target.path.clone(),
            },
            // A single-file bind mount (containers): say what to do, not just `EBUSY`.
            io::ErrorKind::ResourceBusy if dir.is_mount_point(name) => {
                Error::refused(&self.target.path, Refusal::MountPoint)
            }
            _ => self.error(Op::Rename, e),
        })
    }

    /// Step 6: the directory's entries durable, under `Full`.
    fn sync_dir(&self) -> Result<()> {
        if self.durability != Durability::Full {
            return Ok(());
        }
        self.target
            .dir
            .sync_with(self.flush)
            .map_err(|e| self.error(Op::SyncDir, e))
    }

    /// Names an anonymous temporary file: the destination itself for a no-clobber save
    /// (`link` never replaces), otherwise a fresh temporary name to rename from.
    fn link_anonymous(&mut self, file: &File) -> Result<()> {
        self.link_as(file, self.no_clobber)?;
        if self.durability != Durability::None && sys::sync_again_after_link(file) {
            let synced = sys::sync_file(file, true, self.flush);
            synced.map_err(|e| self.error(Op::SyncFile, e))?;
        }
        Ok(())
    }

    /// Links an anonymous temporary file to the destination's name when `into_place`,
    /// else to a fresh temporary name.
    fn link_as(&mut self, file: &File, into_place: bool) -> Result<()> {
        let name = match into_place {
            true => self.target.name.clone(),
            false => temp_name(&self.target.name),
        };
        match self.target.dir.link_anonymous(file, &name) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && into_place => {
                return Err(Error::AlreadyExists {
                    path: self.target.path.clone(),
                });
            }
            Err(e) => return Err(self.error(Op::Rename, e)),
        }
        if !into_place {
            self.temp = Some(name);
        }
        Ok(())
    }

    /// Removes the temporary file's name, if it still has one.
    fn remove_temp(&mut self) -> Result<()> {
        let Some(name) = self.temp.take() else {
            return Ok(());
        };
        match self.target.dir.remove(&name) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(
                Op::RemoveTemp,
                self.target.dir_path.join(name),
                e,
            )),
        }
    }

    /// An I/O error about the destination.
    fn error(&self, op: Op, source: io::Error) -> Error {
        Error::io(op, &self.target.path, source)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // Best effort: a temp that cannot be removed now is debris for `sweep`.
        let _ = self.remove_temp();
    }
}

/// The permissions of the new file: the replaced file's (with its extended attributes)
/// when they are to be kept, else fresh ones. What cannot be replaced is refused here.
fn perms_for(
    opts: &WriteOptions,
    target: &Target,
    existing: Option<&sys::Existing>,
) -> Result<sys::Perms> {
    let Some(e) = existing else {
        return Ok(sys::Perms::new(opts.mode));
    };
    // A file cannot be renamed over a directory, so that one is refused whatever
    // `replace_non_regular` says.
    if e.is_dir() || (!e.is_file() && !e.is_symlink() && !opts.replace_non_regular) {
        return Err(Error::refused(
            &target.path,
            Refusal::NotRegular { kind: e.kind() },
        ));
    }
    if !e.is_file() || !opts.preserve_permissions {
        // A node's or a link's mode is not a file's: start fresh.
        return Ok(sys::Perms::new(opts.mode));
    }
    let xattrs =
        sys::xattrs(&target.path).map_err(|err| Error::io(Op::Inspect, &target.path, err))?;
    Ok(e.perms(opts.mode, xattrs))
}

/// Length of the random part of a temporary file's name.
const SUFFIX_LEN: usize = 12;
const SUFFIX_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
/// The longest file name most filesystems allow (`NAME_MAX`).
const NAME_MAX: usize = 255;

/// `.{name}.{random}.tmp`, with `name` shortened so the whole fits in `NAME_MAX` bytes.
/// Also the name of the temporary symlink of a [`history`](crate::history) pointer swap.
pub(crate) fn temp_name(name: &OsStr) -> OsString {
    let overhead = 1 + 1 + SUFFIX_LEN + ".tmp".len();
    let name = sys::name_bytes(name);
    let name = &name[..name.len().min(NAME_MAX - overhead)];
    let mut bytes = Vec::with_capacity(name.len() + overhead);
    bytes.push(b'.');
    bytes.extend_from_slice(name);
    bytes.push(b'.');
    bytes.extend_from_slice(&random_suffix());
    bytes.extend_from_slice(b".tmp");
    sys::name_from_bytes(bytes)
}

/// Unpredictable characters from the crate's one random source
/// ([`random`](crate::random)): a taken name fails `O_EXCL` and is drawn again.
fn random_suffix() -> [u8; SUFFIX_LEN] {
    let mut bits = crate::random::u64();
    let mut out = [0u8; SUFFIX_LEN];
    for c in &mut out {
        *c = SUFFIX_ALPHABET[(bits & 31) as usize];
        bits >>= 5;
    }
    out
}

/// Whether `name` has the shape of a temporary file this crate creates.
fn is_temp_name(name: &OsStr) -> bool {
    let bytes = sys::name_bytes(name);
    let Some(rest) = bytes.strip_suffix(b".tmp") else {
        return false;
    };
    let Some(split) = rest.len().checked_sub(SUFFIX_LEN + 1) else {
        return false;
    };
    let (head, suffix) = rest.split_at(split);
    bytes.first() == Some(&b'.')
        && head.len() > 1
        && suffix[0] == b'.'
        && suffix[1..].iter().all(|c| SUFFIX_ALPHABET.contains(c))
}

/// What [`sweep`] did: the temporary files it removed, and the temporary-looking
/// entries it left because it may not remove them or could not look at them safely.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Swept {
    /// The paths removed.
    pub removed: Vec<PathBuf>,
    /// What was left, each an error that names its path: another user's file in a
    /// sticky directory ([`Op::RemoveTemp`], permission denied), something that is not a
    /// regular file or a link ([`Error::Refused`]), an entry that could not be opened.
    pub skipped: Vec<Error>,
}

impl Swept {
    /// How many temporary files were removed.
    pub fn count(&self) -> usize {
        self.removed.len()
    }
}

/// Removes temporary files left in `dir` by writers that crashed, and says what it
/// removed and what it left.
///
/// A live writer holds a lock on its temporary file, so `sweep` never removes one that
/// is still being written (nor reports it). Lock files of the `lock` module are not
/// temporary files and are left alone.
///
/// A temporary *symlink* `.{name}.{random}.tmp` whose target is a version of `name`
/// (`state.7.json` for `state.json`) is the `latest` pointer of a
/// [`history`](crate::history) being swapped: its writer holds the writer
/// [`Lock`](crate::lock::Lock) of `name` for the whole swap, so `sweep` removes it only
/// when it can take that lock itself (or no lock file exists). Other symlinks are left
/// alone.
///
/// A directory `.{name}.{random}.gen` is a [`Snapshot`](crate::Snapshot) generation
/// being written: its writer holds a lock on it, so `sweep` removes it (and what it
/// holds) only when it can take that lock itself.
///
/// Nothing is followed and nothing blocks: an entry is opened with `O_NOFOLLOW` and
/// `O_NONBLOCK` and must be a regular file, so a FIFO planted under a temporary name
/// (or as a lock file) cannot stall it. An entry it may not remove (another user's, in
/// a sticky directory) is skipped and the sweep goes on.
///
/// # Errors
///
/// Only when `dir` itself cannot be opened or listed; everything about one entry goes
/// into [`Swept::skipped`].
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let swept = atomic_persist::sweep(dir.path())?;
/// assert_eq!(swept.count(), 0);
/// assert!(swept.skipped.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn sweep(dir: impl AsRef<Path>) -> Result<Swept> {
    sweep_matching(dir.as_ref(), |_| true)
}

/// Removes the temporary files (and snapshot transaction directories) that crashed
/// writers of the file `path` left beside it, as [`sweep`] would, and only those: the
/// ones whose name is made from a name `of(name)` accepts (the file's own name, or for
/// a history also its versions' and manifest's). Best effort: what it cannot remove
/// stays for [`sweep`].
pub(crate) fn sweep_own(path: &Path, of: impl Fn(&OsStr) -> bool) {
    let dir = path.parent().unwrap_or(Path::new(""));
    let base = |n: &OsStr| temp_base(n).or_else(|| crate::names::transaction_dir_base(n));
    let _ = sweep_matching(dir, |n| base(n).is_some_and(|b| of(&b)));
}

/// The name a temporary file's name was made from (`state.json` for
/// `.state.json.{random}.tmp`), when it was not shortened to fit.
fn temp_base(temp: &OsStr) -> Option<OsString> {
    let bytes = sys::name_bytes(temp);
    let base = &bytes[1..bytes.len().checked_sub(".tmp".len() + SUFFIX_LEN + 1)?];
    Some(sys::name_from_bytes(base.to_vec()))
}

/// [`sweep`] of the temporary files in `dir_path` that `wanted` accepts.
fn sweep_matching(dir_path: &Path, wanted: impl Fn(&OsStr) -> bool) -> Result<Swept> {
    let dir = sys::Dir::open(dir_path).map_err(|e| Error::io(Op::OpenDir, dir_path, e))?;
    // The empty path (the parent of a bare file name) is the current directory, as it is
    // for `Dir::open`; `read_dir("")` would fail.
    let list = if dir_path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir_path
    };
    // Listed through `sys`, not `std::fs::read_dir`, whose iterator panics when closing
    // the directory fails.
    let names = sys::list_names(list).map_err(|e| Error::io(Op::ReadDir, dir_path, e))?;
    let mut swept = Swept::default();
    let debris = |n: &OsStr| is_temp_name(n) || crate::names::is_transaction_dir(n, None);
    for name in names.iter().filter(|n| debris(n) && wanted(n)) {
        let path = dir_path.join(name);
        let outcome = match dir.inspect(name) {
            Ok(Some(e)) if e.is_file() => sweep_one(&dir, name, &path),
            Ok(Some(e)) if e.is_dir() && crate::names::is_transaction_dir(name, None) => {
                sweep_transaction(&dir, name, &path)
            }
            Ok(Some(e)) if e.is_symlink() => sweep_link(&dir, dir_path, name, &path),
            Ok(Some(e)) => Err(Error::refused(
                &path,
                Refusal::NotRegular { kind: e.kind() },
            )),
            Ok(None) => Ok(false),
            Err(e) => Err(Error::io(Op::Inspect, &path, e)),
        };
        match outcome {
            Ok(true) => swept.removed.push(path),
            Ok(false) => {}
            Err(e) => swept.skipped.push(e),
        }
    }
    Ok(swept)
}

/// Removes a snapshot's transaction directory (`.{name}.{random}.gen`) unless its live
/// writer holds the lock on it; `false` when it is live or gone.
fn sweep_transaction(dir: &sys::Dir, name: &OsStr, path: &Path) -> Result<bool> {
    let held = match dir.open_dir(name) {
        Ok(d) => !d.try_lock().map_err(|e| Error::io(Op::Lock, path, e))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(trust::read_error(path, e)),
    };
    if held {
        return Ok(false);
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(Op::RemoveTemp, path, e)),
    }
}

/// Removes one temporary file unless a live writer holds its lock; `false` when it is
/// live or gone.
fn sweep_one(dir: &sys::Dir, name: &OsStr, path: &Path) -> Result<bool> {
    let file = match dir.open_entry(name, sys::Access::Read) {
        Ok((file, entry)) if entry.is_file() => file,
        Ok((_, entry)) => {
            let kind = entry.kind();
            return Err(Error::refused(path, Refusal::NotRegular { kind }));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(trust::read_error(path, e)),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(e)) => return Err(Error::io(Op::Lock, path, e)),
    }
    remove(dir, name, path)
}

/// Removes `name`; `false` when it is gone already.
fn remove(dir: &sys::Dir, name: &OsStr, path: &Path) -> Result<bool> {
    match dir.remove(name) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(Op::RemoveTemp, path, e)),
    }
}

/// Removes a temporary symlink (a `history` pointer swap) unless the writer lock of the
/// file it was named after is held.
fn sweep_link(dir: &sys::Dir, dir_path: &Path, name: &OsStr, path: &Path) -> Result<bool> {
    // `.{data}.{suffix}.tmp` -> `{data}` (shortened if the data name was very long, in
    // which case no lock file matches and the link is debris of a name-length error).
    let bytes = sys::name_bytes(name);
    let data = &bytes[1..bytes.len() - ".tmp".len() - SUFFIX_LEN - 1];
    let target = match dir.read_link(name) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(Op::Inspect, path, e)),
    };
    let data_name = sys::name_from_bytes(data.to_vec());
    if crate::names::version_of(&data_name, target.as_os_str()).is_none() {
        return Ok(false); // not a history's pointer
    }
    let lock_name = crate::names::lock_name(&data_name);
    let lock_path = dir_path.join(&lock_name);
    // Opened like any sidecar: never through a link, never blocking, regular only.
    let _held = match dir.open_entry(&lock_name, sys::Access::Read) {
        Ok((file, entry)) if entry.is_file() => match file.try_lock() {
            Ok(()) => Some(file),
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(Error::io(Op::Lock, &lock_path, e)),
        },
        Ok((_, entry)) => {
            let kind = entry.kind();
            return Err(Error::refused(lock_path, Refusal::NotRegular { kind }));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(trust::read_error(&lock_path, e)),
    };
    remove(dir, name, path)
}

#[cfg(test)]
mod tests {

    fn busy() -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, "held open")
    }

    #[test]
    fn a_transient_rename_error_is_retried_until_it_clears() {
        let mut calls = 0;
        let result = retry_transient(
            Duration::from_secs(5),
            |_| true,
            || {
                calls += 1;
                if calls < 4 { Err(busy()) } else { Ok(calls) }
            },
        );
        assert_eq!(result.unwrap(), 4);
    }

    #[test]
    fn a_rename_error_that_stays_is_returned_once_the_budget_is_spent() {
        let mut calls = 0;
        let result: io::Result<()> = retry_transient(
            Duration::from_millis(30),
            |_| true,
            || {
                calls += 1;
                Err(busy())
            },
        );
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        assert!(calls > 1, "retried: {calls}");
    }

    #[test]
    fn an_error_that_is_not_transient_is_not_retried_and_a_zero_budget_never_retries() {
        for (budget, transient) in [(Duration::from_secs(5), false), (Duration::ZERO, true)] {
            let mut calls = 0;
            let result: io::Result<()> = retry_transient(
                budget,
                |_| transient,
                || {
                    calls += 1;
                    Err(busy())
                },
            );
            assert!(result.is_err());
            assert_eq!(calls, 1);
        }
    }

    #[test]
    fn only_windows_says_a_rename_error_is_transient() {
        for code in [5, 32] {
            let e = io::Error::from_raw_os_error(code);
            assert_eq!(sys::is_transient_rename_error(&e), cfg!(windows), "{code}");
        }
        let other = io::Error::from_raw_os_error(2);
        assert!(!sys::is_transient_rename_error(&other));
    }
    use super::*;

    #[test]
    fn temp_names_have_the_documented_shape() {
        let name = temp_name(OsStr::new("state.json"));
        let s = name.to_str().unwrap();
        assert!(s.starts_with(".state.json.") && s.ends_with(".tmp"), "{s}");
        assert_eq!(s.len(), ".state.json.".len() + SUFFIX_LEN + ".tmp".len());
        assert!(is_temp_name(&name));
    }

    #[test]
    fn a_temp_name_says_what_it_was_made_from() {
        for name in ["state.json", "a", ".hidden.toml"] {
            let temp = temp_name(OsStr::new(name));
            assert_eq!(temp_base(&temp).as_deref(), Some(OsStr::new(name)));
        }
    }

    #[test]
    fn temp_names_differ() {
        let a = temp_name(OsStr::new("x"));
        let b = temp_name(OsStr::new("x"));
        assert_ne!(a, b);
    }

    #[test]
    fn temp_name_of_a_long_name_fits_name_max() {
        let long = "n".repeat(255);
        let name = temp_name(OsStr::new(&long));
        assert!(name.len() <= NAME_MAX);
        assert!(is_temp_name(&name));
    }

    #[test]
    fn ordinary_names_are_not_temp_names() {
        for n in [
            "state.json",
            ".state.json",
            "x.tmp",
            ".x.tmp",
            ".x.ABCDEFGHIJKL.tmp",
            ".x.abcdefghijk.tmp",
            ".lock.tmp",
        ] {
            assert!(!is_temp_name(OsStr::new(n)), "{n}");
        }
    }
}
