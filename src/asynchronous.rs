//! Async wrappers (feature `tokio`): the synchronous engine, on tokio's blocking pool.
//!
//! There is no second implementation. Each async function moves its arguments into one
//! [`tokio::task::spawn_blocking`] call that runs exactly the synchronous function of the
//! same name ([`write_atomic`](crate::write_atomic), [`PersistedBuilder::open`],
//! [`Persisted::commit`], [`Persisted::update_locked`], ..., and for a
//! [`Persist`](crate::Persist) type `load_async`, `load_or_default_async` and
//! `save_async`),
//! so every guarantee of the synchronous path (temp file, fsync, rename, envelope,
//! checksum, validation) holds unchanged, and the async executor's threads never wait
//! for a disk. They must be called from within a tokio runtime (any flavour).
//!
//! # Cancellation
//!
//! **Dropping the future does not roll back or stop a commit that already started.**
//! Once the blocking task is spawned it runs to the end, whether or not anybody awaits
//! it: the destination then holds the old complete value or the new complete value,
//! never a mix (the rename is the single step that switches them), and which one it is
//! depends only on whether the synchronous commit reached its rename. A future that is
//! dropped before its first poll spawns nothing and changes nothing.
//!
//! This is why the [`Persisted`] methods here take the handle *by value* and give it
//! back with the result: a commit on another thread cannot borrow a handle across an
//! `.await` that may never resume. If the future is dropped, the handle is dropped on
//! the blocking thread once its commit is done.
//!
//! ```
//! # #[cfg(feature = "json")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), atomic_persist::Error> {
//! use atomic_persist::Persisted;
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("count.json");
//!
//! let counter = Persisted::<u64>::open_or_default_async(&path).await?;
//! let (counter, done) = counter.update_async(|n| *n += 1).await;
//! done?;
//! assert_eq!(*counter, 1);
//!
//! atomic_persist::write_atomic_async(dir.path().join("raw.bin"), vec![1, 2, 3]).await?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "json"))]
//! # fn main() {}
//! ```

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Op, Result};
use crate::persisted::{Persisted, PersistedBuilder};

/// Runs `f` on tokio's blocking pool and returns its result. A panic in `f` is resumed
/// here; a task the runtime cancelled (it is shutting down) is an [`Error::Io`] about
/// `path`.
async fn blocking<R: Send + 'static>(
    path: &Path,
    op: Op,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::io(
            op,
            path,
            std::io::Error::new(std::io::ErrorKind::Interrupted, e.to_string()),
        )),
    }
}

/// [`write_atomic`](crate::write_atomic) on tokio's blocking pool: atomically replaces
/// (or creates) `path` with `bytes`, durably. See the [module docs](self) for
/// cancellation.
///
/// # Errors
///
/// As [`write_atomic`](crate::write_atomic), and [`Error::Io`] with
/// [`io::ErrorKind::Interrupted`](std::io::ErrorKind::Interrupted) when the runtime
/// cancelled the blocking task.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), atomic_persist::Error> {
/// # let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("state.json");
/// atomic_persist::write_atomic_async(&path, br#"{"done": 42}"#.to_vec()).await?;
/// assert_eq!(std::fs::read(&path).unwrap(), br#"{"done": 42}"#);
/// # Ok(())
/// # }
/// ```
pub async fn write_atomic_async(path: impl AsRef<Path>, bytes: impl Into<Vec<u8>>) -> Result<()> {
    let path = path.as_ref().to_path_buf();
    let bytes = bytes.into();
    let at = path.clone();
    blocking(&at, Op::Write, move || crate::write_atomic(&path, bytes)).await?
}

impl<T> PersistedBuilder<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// [`open`](Self::open) on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As the blocking `open`, and [`Error::Io`] with
    /// [`io::ErrorKind::Interrupted`](std::io::ErrorKind::Interrupted) when the runtime
    /// cancelled the blocking task.
    pub async fn open_async(self) -> Result<Persisted<T>> {
        let path = self.path().to_path_buf();
        blocking(&path, Op::Read, move || self.open()).await?
    }

    /// [`open_or_default`](Self::open_or_default) on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As the blocking `open_or_default`, and [`Error::Io`] with
    /// [`io::ErrorKind::Interrupted`](std::io::ErrorKind::Interrupted) when the runtime
    /// cancelled the blocking task.
    pub async fn open_or_default_async(self) -> Result<Persisted<T>>
    where
        T: Default,
    {
        let path = self.path().to_path_buf();
        blocking(&path, Op::Read, move || self.open_or_default()).await?
    }
}

impl<T> Persisted<T>
where
    T: Serialize + DeserializeOwned + Send + 'static,
{
    /// [`open`](Self::open) on tokio's blocking pool (the async "load").
    ///
    /// # Errors
    ///
    /// As the blocking `open`, and [`Error::Io`] with
    /// [`io::ErrorKind::Interrupted`](std::io::ErrorKind::Interrupted) when the runtime
    /// cancelled the blocking task.
    pub async fn open_async(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open_async().await
    }

    /// [`open_or_default`](Self::open_or_default) on tokio's blocking pool.
    ///
    /// # Errors
    ///
    /// As the blocking `open_or_default`, and [`Error::Io`] with
    /// [`io::ErrorKind::Interrupted`](std::io::ErrorKind::Interrupted) when the runtime
    /// cancelled the blocking task.
    pub async fn open_or_default_async(path: impl AsRef<Path>) -> Result<Self>
    where
        T: Default,
    {
        Self::builder(path).open_or_default_async().await
    }

    /// [`commit`](Self::commit) on tokio's blocking pool. Takes the handle and gives it
    /// back with the result, failed or not; see the [module docs](self) for why, and for
    /// what dropping the future does (it does not undo a commit that started).
    pub async fn commit_async(self) -> (Self, Result<()>) {
        self.run_async(Op::Write, |p| p.commit()).await
    }

    /// [`update`](Self::update) on tokio's blocking pool: `f` and the commit both run
    /// there. Gives the handle back with the result.
    pub async fn update_async<R: Send + 'static>(
        self,
        f: impl FnOnce(&mut T) -> R + Send + 'static,
    ) -> (Self, Result<R>) {
        self.run_async(Op::Write, |p| p.update(f)).await
    }

    /// [`update_locked`](Self::update_locked) on tokio's blocking pool: the lock is
    /// taken, held and released there. Gives the handle back with the result.
    pub async fn update_locked_async<R: Send + 'static>(
        self,
        f: impl FnOnce(&mut T) -> R + Send + 'static,
    ) -> (Self, Result<R>) {
        self.run_async(Op::Write, |p| p.update_locked(f)).await
    }

    /// [`force_commit`](Self::force_commit) on tokio's blocking pool. Gives the handle
    /// back with the result.
    pub async fn force_commit_async(self) -> (Self, Result<()>) {
        self.run_async(Op::Write, |p| p.force_commit()).await
    }

    /// [`reload`](Self::reload) on tokio's blocking pool (the async "load" of an open
    /// handle). Gives the handle back with the result.
    pub async fn reload_async(self) -> (Self, Result<()>) {
        self.run_async(Op::Read, |p| p.reload()).await
    }

    async fn run_async<R: Send + 'static>(
        self,
        op: Op,
        f: impl FnOnce(&mut Self) -> Result<R> + Send + 'static,
    ) -> (Self, Result<R>) {
        let path = self.path().to_path_buf();
        run_with(self, path, op, f).await
    }
}

/// `f(path)` on tokio's blocking pool, once `path` is known: the async form of a
/// synchronous load of `T`.
pub(crate) async fn run<R: Send + 'static>(
    path: Result<PathBuf>,
    op: Op,
    f: impl FnOnce(&Path) -> Result<R> + Send + 'static,
) -> Result<R> {
    let path = path?;
    let at = path.clone();
    blocking(&at, op, move || f(&path)).await?
}

/// `f(&mut value)` on tokio's blocking pool, giving `value` back with the result.
///
/// The value waits in a slot this future shares with the task, not inside the task: a
/// runtime that shuts down drops a task that has not run yet, and the caller still gets
/// its value back, with an [`Error::Io`] (`Interrupted`) instead of a result.
pub(crate) async fn run_with<V: Send + 'static, R: Send + 'static>(
    value: V,
    path: PathBuf,
    op: Op,
    f: impl FnOnce(&mut V) -> Result<R> + Send + 'static,
) -> (V, Result<R>) {
    let slot = Arc::new(Mutex::new(Some(value)));
    let shared = Arc::clone(&slot);
    let result = blocking(&path, op, move || {
        let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut() {
            Some(value) => f(value),
            None => unreachable!("the value leaves the slot only after the task"),
        }
    })
    .await;
    // The task has finished or was dropped: either way the slot is ours alone now.
    let value = slot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .expect("the value is taken once, here");
    (value, result.and_then(|r| r))
}
