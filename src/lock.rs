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

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Op, Result};

/// An exclusive writer lock on a data file, held until dropped.
///
/// ```
/// use atomic_persist::lock::Lock;
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
    /// The lock file guarding `data_path`: `.{name}.lock` in the same directory.
    pub fn path_for(data_path: impl AsRef<Path>) -> PathBuf {
        let data_path = data_path.as_ref();
        let mut name = OsString::from(".");
        name.push(data_path.file_name().unwrap_or(data_path.as_os_str()));
        name.push(".lock");
        data_path.with_file_name(name)
    }

    /// Takes the lock on `data_path`, waiting as long as another writer holds it.
    pub fn exclusive(data_path: impl AsRef<Path>) -> Result<Lock> {
        let (file, path) = open(data_path.as_ref())?;
        match file.lock() {
            Ok(()) => Ok(Lock { file, path }),
            Err(e) => Err(Error::io(Op::Lock, path, e)),
        }
    }

    /// Takes the lock on `data_path` if no other writer holds it; `None` if one does.
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
    pub fn unlock(self) -> Result<()> {
        self.file
            .unlock()
            .map_err(|e| Error::io(Op::Lock, &self.path, e))
    }
}

/// Opens (creating if needed) the lock file for `data_path`.
fn open(data_path: &Path) -> Result<(File, PathBuf)> {
    let path = Lock::path_for(data_path);
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path);
    match created {
        Ok(file) => Ok((file, path)),
        // A read-only directory may still hold a lock file made earlier: a read-only
        // handle can be locked too.
        Err(e) if is_read_only_error(&e) => match File::open(&path) {
            Ok(file) => Ok((file, path)),
            Err(_) => Err(Error::io(Op::Lock, path, e)),
        },
        Err(e) => Err(Error::io(Op::Lock, path, e)),
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
