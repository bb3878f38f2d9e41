//! Advisory writer locks on a sidecar lock file.
//!
//! An atomic write guarantees that a file is complete, not that two writers take turns:
//! two processes that each load, change and save the same file can silently lose one
//! update. Writers that hold a [`Lock`] while they load-modify-save are ordered:
//! [`Persisted::update_locked`](crate::Persisted::update_locked) does exactly that, and
//! an enveloped [`Persisted::commit`](crate::Persisted::commit) holds it for the instant
//! of its generation check and rename.
//!
//! # Why a sidecar file
//!
//! Every commit replaces the data file with a new inode, so a lock on the data file
//! would be a lock on a file that is about to disappear: the next writer would lock the
//! new inode and both would proceed. The lock therefore lives on `.{name}.lock` beside
//! the data file, which is created on first use and **never deleted**: removing a lock
//! file races with a writer that has just opened it (it would lock an unlinked file
//! while a third writer creates and locks a fresh one). [`sweep`](crate::sweep) leaves
//! lock files alone.
//!
//! # Semantics
//!
//! - The lock is advisory (`flock` on Unix, `LockFileEx` on Windows through
//!   `std::fs::File::lock`): it orders writers that take it, and readers never need it,
//!   since an atomic write never shows them a partial file.
//! - Each [`Lock`] has its own open file handle, so two locks on one path in one
//!   process exclude each other exactly as two processes do.
//! - The operating system releases the lock when the holder exits, even by `SIGKILL`.
//!   Dropping a [`Lock`] releases it explicitly (`flock(LOCK_UN)`) before closing: a
//!   child forked meanwhile shares the open file, and a close alone would leave the
//!   lock held by the child.
//!
//! # Who can take it
//!
//! Anyone who can open a file can `flock` it, even read-only, so the sidecar is made
//! with a mode that lets in only those who may write the data file: each class (owner,
//! group, others) gets read and write on the sidecar if it has write on the data file
//! (on the mode a new data file would get, when there is none yet), nothing otherwise.
//! An older, wider sidecar the caller owns is narrowed the same way when it is opened.
//! The sidecar is opened without following a link and without blocking, and must be a
//! regular file (a FIFO or a link there is [`Error::Refused`]); in a shared sticky
//! directory it must belong to the caller or the directory's owner, as the
//! [`atomic`](crate::atomic) module's `# Security` section says.
//!
//! # Long names
//!
//! A data file whose name leaves no room for `.{name}.lock` within the 255 bytes a name
//! may have gets `.{prefix}.{hash}.lock` instead: the first bytes of its name and 16 hex
//! digits of the FNV-1a hash of the whole name, 255 bytes in all.

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Op, Refusal, Result};
use crate::sys::{self, Access};
use crate::trust;

/// An exclusive writer lock on a data file, held until dropped.
///
/// ```
/// use atomic_persist::Lock;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("counter.json");
/// let lock = Lock::exclusive(&path)?;              // waits for other writers
/// assert!(Lock::try_exclusive(&path)?.is_none());  // a second writer is refused
/// drop(lock);
/// assert!(Lock::try_exclusive(&path)?.is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

/// The longest sleep between two attempts while waiting with a timeout.
const MAX_BACKOFF: Duration = Duration::from_millis(50);

impl Lock {
    /// The lock file guarding `data_path`: `.{name}.lock` in the same directory (see
    /// "Long names" in the [module docs](self) for a name near the length limit).
    pub fn path_for(data_path: impl AsRef<Path>) -> PathBuf {
        let data_path = data_path.as_ref();
        let name = data_path.file_name().unwrap_or(data_path.as_os_str());
        data_path.with_file_name(crate::names::lock_name(name))
    }

    /// Takes the lock on `data_path`, waiting as long as another writer holds it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::Lock`] when the sidecar
    /// cannot be created, opened or locked; [`Error::Refused`] when
    /// the sidecar is not a regular file, or another user planted it in a shared directory.
    pub fn exclusive(data_path: impl AsRef<Path>) -> Result<Lock> {
        let (file, path) = open(data_path.as_ref())?;
        match file.lock() {
            Ok(()) => Ok(Lock { file, path }),
            Err(e) => Err(Error::io(Op::Lock, path, e)),
        }
    }

    /// Takes the lock on `data_path` if no other writer holds it; `None` if one does.
    ///
    /// # Errors
    ///
    /// As [`exclusive`](Self::exclusive); a lock held by another writer is `Ok(None)`, not
    /// an error.
    pub fn try_exclusive(data_path: impl AsRef<Path>) -> Result<Option<Lock>> {
        let (file, path) = open(data_path.as_ref())?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock { file, path })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error::io(Op::Lock, path, e)),
        }
    }

    /// Takes the lock on `data_path`, waiting at most `timeout`; [`Error::Locked`] when
    /// another writer still holds it then.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] when another writer still holds the lock
    /// after `timeout`; otherwise as [`exclusive`](Self::exclusive).
    pub fn exclusive_timeout(data_path: impl AsRef<Path>, timeout: Duration) -> Result<Lock> {
        let (file, path) = open(data_path.as_ref())?;
        let deadline = Instant::now() + timeout;
        let mut backoff = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Lock { file, path }),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(Error::io(Op::Lock, path, e)),
            }
            // std offers no timed lock: poll with a growing, bounded sleep.
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Locked { path });
            }
            std::thread::sleep(backoff.min(deadline - now));
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Releases the lock now, reporting an error that dropping would swallow.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::Lock`] when the system
    /// refuses to release the lock.
    pub fn unlock(self) -> Result<()> {
        self.file
            .unlock()
            .map_err(|e| Error::io(Op::Lock, &self.path, e))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Not only a close: a forked child shares this open file, and the lock belongs
        // to the open file, not to this descriptor.
        let _ = self.file.unlock();
    }
}

/// Read and write for each class that may write in `mode`; nothing for the others.
fn writers_only(mode: u32) -> u32 {
    let write = mode & 0o222;
    write | (write << 1)
}

/// Opens (creating if needed) the lock file for `data_path`.
fn open(data_path: &Path) -> Result<(File, PathBuf)> {
    let path = Lock::path_for(data_path);
    // Each round either opens the sidecar or sees it vanish between two opens; it is
    // never deleted, so a second round is already rare.
    for _ in 0..OPEN_ATTEMPTS {
        let opened = match sys::open_path(&path, Access::ReadWrite) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match sys::open_path(&path, Access::Create(create_mode(data_path))) {
                    // Another writer made it first: open that one.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                    created => created,
                }
            }
            // A read-only directory may still hold a lock file made earlier: a read-only
            // handle can be locked too.
            Err(e) if is_read_only_error(&e) => sys::open_path(&path, Access::Read).map_err(|_| e),
            opened => opened,
        };
        let (file, entry) = opened.map_err(|e| lock_error(&path, e))?;
        trust::check_regular(&entry, &path)?;
        trust::check_owner_of(&path, &entry)?;
        narrow(&file, &entry);
        return Ok((file, path));
    }
    let e = io::Error::new(io::ErrorKind::NotFound, "the lock file keeps disappearing");
    Err(Error::io(Op::Lock, path, e))
}

/// Rounds of open-or-create before giving up.
const OPEN_ATTEMPTS: usize = 16;

/// The mode of a new sidecar: only the data file's writers may open it.
fn create_mode(data_path: &Path) -> u32 {
    match sys::lstat(data_path) {
        Ok(Some(data)) if data.is_file() => writers_only(data.mode_bits()),
        // No data file yet: the mode a new one would get (`0o666` less the umask).
        _ => writers_only(0o666 & !sys::umask()),
    }
}

/// Narrows a sidecar the caller owns that lets in a class that may not write (an older
/// one, made `0o666` less the umask): readers could hold it with a shared lock.
fn narrow(file: &File, entry: &sys::Existing) {
    let mode = entry.mode_bits() & 0o777;
    if writers_only(mode) != mode && entry.owner().is_none_or(|o| o == sys::caller()) {
        // Best effort: the lock itself works either way.
        let _ = sys::set_mode(file, writers_only(mode));
    }
}

/// The error of opening the sidecar at `path`.
fn lock_error(path: &Path, e: io::Error) -> Error {
    if sys::is_symlink_error(&e) {
        Error::refused(path, Refusal::Symlink)
    } else {
        Error::io(Op::Lock, path, e)
    }
}

fn is_read_only_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_sits_beside_the_data_file() {
        assert_eq!(
            Lock::path_for("/data/state.json"),
            Path::new("/data/.state.json.lock")
        );
        assert_eq!(Lock::path_for("state.json"), Path::new(".state.json.lock"));
    }

    #[test]
    fn a_name_too_long_for_the_sidecar_gets_a_hashed_one_that_fits() {
        let a = format!("{}a.json", "n".repeat(249));
        let b = format!("{}b.json", "n".repeat(249));
        let (la, lb) = (Lock::path_for(&a), Lock::path_for(&b));
        assert_eq!(la.as_os_str().len(), crate::names::NAME_MAX);
        assert_ne!(la, lb, "names that differ only past the prefix");
        assert_eq!(la, Lock::path_for(&a), "the same in every call");
    }

    #[test]
    fn the_sidecar_mode_lets_in_only_writers() {
        assert_eq!(writers_only(0o644), 0o600);
        assert_eq!(writers_only(0o664), 0o660);
        assert_eq!(writers_only(0o666), 0o666);
        assert_eq!(writers_only(0o444), 0o000);
    }

    #[test]
    fn second_lock_in_the_same_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("x.json");
        let held = Lock::exclusive(&data).unwrap();
        assert!(Lock::try_exclusive(&data).unwrap().is_none());
        held.unlock().unwrap();
        assert!(Lock::try_exclusive(&data).unwrap().is_some());
    }

    #[test]
    fn timeout_gives_locked_error_naming_the_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("x.json");
        let _held = Lock::exclusive(&data).unwrap();
        let err = Lock::exclusive_timeout(&data, Duration::from_millis(20)).unwrap_err();
        match err {
            Error::Locked { path } => assert_eq!(path, Lock::path_for(&data)),
            other => panic!("expected Locked, got {other:?}"),
        }
    }

    #[test]
    fn timeout_succeeds_once_the_holder_releases() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("x.json");
        let held = Lock::exclusive(&data).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(held);
        });
        Lock::exclusive_timeout(&data, Duration::from_secs(30)).unwrap();
        releaser.join().unwrap();
    }

    #[test]
    fn missing_directory_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("no/such/dir/x.json");
        match Lock::exclusive(&data).unwrap_err() {
            Error::Io {
                op: Op::Lock, path, ..
            } => assert_eq!(path, Lock::path_for(&data)),
            other => panic!("expected Io(Lock), got {other:?}"),
        }
    }
}
