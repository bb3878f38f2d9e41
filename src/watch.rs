//! Watching a file for commits (feature `watch`): [`Watch`], what
//! [`Persisted::watch`](crate::Persisted::watch), [`History::watch`](crate::History::watch),
//! [`Persist::watch`](crate::Persist::watch) and [`Snapshot::watch`](crate::Snapshot::watch)
//! return.
//!
//! A watch yields each new committed value as it lands, from this process or another:
//! an iterator that blocks for the next one, and under the `tokio` feature also a
//! `futures_core::Stream` ([`Watch::into_stream`]). It watches the file's directory (a save replaces the file by a
//! rename, which only the directory sees) through the `notify` crate: inotify on Linux,
//! FSEvents on macOS, `ReadDirectoryChangesW` on Windows. On filesystems that report no
//! events of other machines' writes (NFS, SMB/CIFS, 9p, FUSE), when the platform's
//! watcher cannot start (inotify's limits), or when asked
//! ([`WatchOptions::poll`]), it polls instead: a `stat` every interval, a read only when
//! the file's identity (device, inode, size, modification time) changed.
//!
//! # What it yields
//!
//! - [`Update::Changed`] with the value and its meta, read and verified by the same path
//!   an open takes (the envelope's checksum, the schema version, the decode and validate
//!   hooks): a damaged or half-written file is an `Err` item, never a value.
//! - Each commit once: an enveloped file is told by its generation and checksum, a plain
//!   one by its bytes, so touching the file, changing its mode or committing the same
//!   value again yields nothing. The value the handle already has is not yielded.
//! - [`Update::Removed`] when the file is gone, once, until it comes back.
//! - The same error is not repeated while the file stays the same: an editor that
//!   touches a broken file does not flood the watch.
//!
//! Events are debounced ([`WatchOptions::debounce`], default 10 ms): a writer that
//! writes a file in place in several pieces is read once it has been quiet that long (at
//! most ten times that after the first event). A crate's commit is a single rename and is
//! complete whenever it is seen.
//!
//! # Threads
//!
//! The watch reads on a thread of its own, so a value arrives while the caller does
//! something else; dropping the watch stops the thread (after its current read).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::envelope::{Fingerprint, Meta};
use crate::error::{Error, Op, Result};
use crate::sys;

/// The default quiet time before a change is read.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(10);
/// The default interval of a polling watch.
pub const DEFAULT_POLL: Duration = Duration::from_millis(100);

/// How a [`Watch`] waits for changes.
///
/// ```
/// use std::time::Duration;
/// use atomic_persist::watch::WatchOptions;
/// let options = WatchOptions::new().debounce(Duration::from_millis(50)).poll(Duration::from_secs(1));
/// assert_eq!(options.debounce_time(), Duration::from_millis(50));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    debounce: Duration,
    poll: Option<Duration>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions::new()
    }
}

impl WatchOptions {
    /// The defaults: the platform's events, debounced by [`DEFAULT_DEBOUNCE`].
    pub fn new() -> WatchOptions {
        WatchOptions {
            debounce: DEFAULT_DEBOUNCE,
            poll: None,
        }
    }

    /// How long the file must be quiet after an event before it is read.
    pub fn debounce(mut self, quiet: Duration) -> Self {
        self.debounce = quiet;
        self
    }

    /// Polls every `interval` instead of waiting for the platform's events: for a
    /// filesystem that reports none the crate does not recognise as such.
    pub fn poll(mut self, interval: Duration) -> Self {
        self.poll = Some(interval);
        self
    }

    /// The debounce time.
    pub fn debounce_time(&self) -> Duration {
        self.debounce
    }
}

/// One item of a [`Watch`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Update<T> {
    /// A new committed value, and its meta (`None` for a plain file; for a snapshot, the
    /// value is the new set's [`View`](crate::View) and the meta `None`).
    Changed {
        /// The value, verified and decoded.
        value: T,
        /// Its envelope's meta.
        meta: Option<Meta>,
    },
    /// The file is gone.
    Removed,
}

/// What a reader found: the value, its meta and what tells this version from others.
pub(crate) struct Found<T> {
    pub value: T,
    pub meta: Option<Meta>,
    pub stamp: Stamp,
}

/// What tells one committed version from another without comparing values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stamp {
    /// An envelope's generation and checksum.
    Meta(u64, u32),
    /// A plain file's bytes.
    Bytes(Fingerprint),
    /// A snapshot's or history's generation, with its payload where there is one.
    Generation(u64, Option<Fingerprint>),
}

impl Stamp {
    /// The stamp of a loaded file: its meta if it has one, else its payload's bytes.
    pub(crate) fn of(meta: Option<&Meta>, payload: Fingerprint) -> Stamp {
        match meta {
            Some(m) => Stamp::Meta(m.generation, m.checksum),
            None => Stamp::Bytes(payload),
        }
    }
}

/// Reads the watched file's current version: `None` when there is none.
pub(crate) type Reader<T> = Box<dyn FnMut() -> Result<Option<Found<T>>> + Send>;

/// A watch on a file: see the [module docs](self).
pub struct Watch<T> {
    path: PathBuf,
    items: Receiver<Result<Update<T>>>,
    /// Woken when an item is sent (the `Stream`'s task).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code, reason = "the stream's"))]
    waker: Arc<Mutex<Option<std::task::Waker>>>,
    /// The platform's watcher; dropped with the watch, which ends the thread.
    _events: Option<notify::RecommendedWatcher>,
    /// Dropped with the watch: the thread sees the channel close and ends.
    _stop: Sender<()>,
}

impl<T> std::fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("path", &self.path)
            .field("native", &self._events.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Watch<T> {
    /// Starts watching `path` with `read`, having seen `seen` (`None`: no file).
    pub(crate) fn start(
        path: &Path,
        options: WatchOptions,
        seen: Option<Stamp>,
        read: Reader<T>,
    ) -> Result<Watch<T>> {
        let (trigger_tx, triggers) = mpsc::channel::<()>();
        let (items_tx, items) = mpsc::channel();
        let waker = Arc::new(Mutex::new(None::<std::task::Waker>));
        let (dirs, names) = watched(path);
        let network = dirs.iter().any(|d| sys::is_network_filesystem(d));
        let events = match options.poll.is_none() && !network {
            true => native(&dirs, &names, trigger_tx.clone()).ok(),
            false => None,
        };
        // No platform events: poll (the thread reads on every interval's timeout).
        let poll = match events {
            Some(_) => None,
            None => Some(options.poll.unwrap_or(DEFAULT_POLL)),
        };
        let worker = Worker {
            path: path.to_path_buf(),
            read,
            last: seen.map_or(Last::Gone, Last::Value),
            last_error: None,
            last_id: None,
            debounce: options.debounce,
            poll,
        };
        let send_waker = Arc::clone(&waker);
        std::thread::Builder::new()
            .name("atomic-persist-watch".into())
            .spawn(move || worker.run(triggers, items_tx, send_waker))
            .map_err(|e| Error::io(Op::Watch, path, e))?;
        Ok(Watch {
            path: path.to_path_buf(),
            items,
            waker,
            _events: events,
            _stop: trigger_tx,
        })
    }
}

impl<T> Watch<T> {
    /// The watched path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next item if one has arrived, without waiting.
    pub fn try_next(&mut self) -> Option<Result<Update<T>>> {
        self.items.try_recv().ok()
    }

    /// The next item, waiting at most `timeout`; `None` when none came.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Update<T>>> {
        self.items.recv_timeout(timeout).ok()
    }
}

/// Blocks for the next item; ends only if the watch's thread stopped.
impl<T> Iterator for Watch<T> {
    type Item = Result<Update<T>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.items.recv().ok()
    }
}

/// A [`Watch`] as a `futures_core::Stream` (feature `tokio`): [`Watch::into_stream`].
/// Its own type, so that `next()` is not both `Iterator`'s and `StreamExt`'s.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct WatchStream<T>(Watch<T>);

#[cfg(feature = "tokio")]
impl<T> Watch<T> {
    /// The watch as a stream of the same items (feature `tokio`): the watch's thread
    /// wakes the task that polled, nothing blocks an executor.
    pub fn into_stream(self) -> WatchStream<T> {
        WatchStream(self)
    }
}

#[cfg(feature = "tokio")]
impl<T> WatchStream<T> {
    /// The watch, back.
    pub fn into_inner(self) -> Watch<T> {
        self.0
    }
}

#[cfg(feature = "tokio")]
impl<T> futures_core::Stream for WatchStream<T> {
    type Item = Result<Update<T>>;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut self.get_mut().0;
        let take = || match this.items.try_recv() {
            Ok(item) => Some(Poll::Ready(Some(item))),
            Err(mpsc::TryRecvError::Disconnected) => Some(Poll::Ready(None)),
            Err(mpsc::TryRecvError::Empty) => None,
        };
        if let Some(ready) = take() {
            return ready;
        }
        // Registered before the second look: an item sent in between wakes the task.
        *lock(&this.waker) = Some(cx.waker().clone());
        take().unwrap_or(Poll::Pending)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The directory that holds `path` (`.` for a bare name).
fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The directories to watch for `path` and the names whose events there concern it:
/// its own directory and name; where it is a symlink, its target's too, whose
/// replacement is the commit (a history's pointer names a version beside it; a config
/// linked from elsewhere is replaced in the directory it is linked to).
fn watched(path: &Path) -> (Vec<PathBuf>, Vec<OsString>) {
    let mut dirs = vec![parent(path)];
    let mut names: Vec<OsString> = path.file_name().map(OsString::from).into_iter().collect();
    if std::fs::read_link(path).is_ok()
        && let Ok(target) = std::fs::canonicalize(path)
        && let Some(name) = target.file_name()
    {
        names.push(name.to_os_string());
        let same = std::fs::canonicalize(&dirs[0]).ok() == target.parent().map(Path::to_path_buf);
        if !same {
            dirs.push(parent(&target));
        }
    }
    (dirs, names)
}

/// The platform's watcher on `dirs`, sending a trigger for every event that may concern
/// one of `names` (their own events, a rescan after lost events, a watcher error).
fn native(
    dirs: &[PathBuf],
    names: &[OsString],
    triggers: Sender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let names = names.to_vec();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let concerns = match &event {
            // A read (ours included) changes nothing.
            Ok(e) if matches!(e.kind, notify::EventKind::Access(_)) => false,
            Ok(e) => {
                e.need_rescan()
                    || e.paths.iter().any(|p| {
                        p.file_name()
                            .is_some_and(|n| names.iter().any(|name| name == n))
                    })
            }
            Err(_) => true,
        };
        if concerns {
            let _ = triggers.send(());
        }
    })?;
    for dir in dirs {
        watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    }
    Ok(watcher)
}

/// What the watch yielded last.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    Value(Stamp),
    Gone,
}

/// The watch's thread: waits for a trigger (or the poll interval), lets the file settle,
/// reads it and sends what is new.
struct Worker<T> {
    path: PathBuf,
    read: Reader<T>,
    last: Last,
    /// The last error sent, by its message: not sent again while it stays the same.
    last_error: Option<String>,
    /// The file's identity at the last poll, to skip reads of an unchanged file.
    last_id: Option<Option<sys::FileId>>,
    debounce: Duration,
    poll: Option<Duration>,
}

impl<T> Worker<T> {
    fn run(
        mut self,
        triggers: Receiver<()>,
        items: Sender<Result<Update<T>>>,
        waker: Arc<Mutex<Option<std::task::Waker>>>,
    ) {
        // One look first: a commit between the handle's load and the watcher's start
        // raised no event the watcher could see.
        let mut look = true;
        while look || self.wait(&triggers) {
            look = false;
            let Some(item) = self.check() else { continue };
            if items.send(item).is_err() {
                return; // the watch was dropped
            }
            if let Some(w) = lock(&waker).take() {
                w.wake();
            }
        }
    }

    /// Waits for a change to look at; `false` when the watch was dropped.
    fn wait(&mut self, triggers: &Receiver<()>) -> bool {
        let first = match self.poll {
            Some(interval) => triggers.recv_timeout(interval),
            None => triggers.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        if first == Err(RecvTimeoutError::Disconnected) {
            return false;
        }
        if first.is_err() && !self.identity_changed() {
            return true; // a poll that found the file as it was
        }
        // Quiet for `debounce`, or ten times that at most after the first event.
        let until = Instant::now() + self.debounce * 10;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match triggers.recv_timeout(self.debounce.min(left)) {
                Ok(()) if !left.is_zero() => continue,
                Err(RecvTimeoutError::Disconnected) => return false,
                _ => return true,
            }
        }
    }

    /// For a poll: whether the file's identity changed since the last poll (always
    /// where the platform has none).
    fn identity_changed(&mut self) -> bool {
        let id = std::fs::metadata(&self.path).ok().map(|m| sys::file_id(&m));
        let id = match id {
            Some(None) => return true, // no identities here: read every time
            Some(Some(id)) => Some(id),
            None => None,
        };
        let changed = self.last_id != Some(id);
        self.last_id = Some(id);
        changed
    }

    /// Reads the file: the item to send, if anything is new.
    fn check(&mut self) -> Option<Result<Update<T>>> {
        match (self.read)() {
            Ok(None) if self.last == Last::Gone => None,
            Ok(None) => {
                (self.last, self.last_error) = (Last::Gone, None);
                Some(Ok(Update::Removed))
            }
            Ok(Some(found)) if self.last == Last::Value(found.stamp) => {
                self.last_error = None;
                None
            }
            Ok(Some(found)) => {
                (self.last, self.last_error) = (Last::Value(found.stamp), None);
                Some(Ok(Update::Changed {
                    value: found.value,
                    meta: found.meta,
                }))
            }
            Err(e) => {
                let message = e.to_string();
                if self.last_error.as_deref() == Some(message.as_str()) {
                    return None;
                }
                self.last_error = Some(message);
                Some(Err(e))
            }
        }
    }
}
