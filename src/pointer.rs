//! A `latest` pointer beside the things it names (a history's version files, a
//! snapshot's generation directories): a symlink swapped by rename, or, where there are
//! no symlinks, a one-line pointer file replaced atomically. Read and swapped here once,
//! for every handle that keeps one.

use std::ffi::{OsStr, OsString};
#[cfg(unix)]
use std::io;
use std::path::Path;

#[cfg(unix)]
use crate::atomic::Durability;
use crate::atomic::WriteOptions;
#[cfg(unix)]
use crate::error::Op;
use crate::error::{Error, Result};
use crate::trust;

/// How often the pointer is read again when it changes between `lstat` and `readlink`.
#[cfg(unix)]
const READ_RETRIES: usize = 1000;

/// Collisions of the pointer's temporary name tolerated before giving up, as the engine's.
#[cfg(unix)]
const MAX_TEMP_ATTEMPTS: usize = 64;

/// The pointer file's line on platforms without symlinks.
#[cfg(not(unix))]
const POINTER_PREFIX: &str = "atomic-persist-latest ";

/// What is at a pointer's path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing.
    Absent,
    /// A regular file that is not a pointer.
    Plain,
    /// A pointer naming this entry of its directory (not yet checked to be one).
    Target(OsString),
}

/// Reads the pointer at `path`. A link is the pointer only if its owner may be trusted
/// there (another user's link in a shared directory could name what they forged);
/// anything but a link or a regular file is refused.
#[cfg(unix)]
pub(crate) fn read(path: &Path, _how: trust::Read) -> Result<Found> {
    // A link replaced by a file between the `lstat` and the `readlink` is read again;
    // bounded, so that a writer flipping it forever cannot hold a reader here.
    for _ in 0..READ_RETRIES {
        let Some(entry) = trust::inspect(path)? else {
            return Ok(Found::Absent);
        };
        if !entry.is_file() && !entry.is_symlink() {
            let kind = entry.kind();
            return Err(Error::refused(path, crate::Refusal::NotRegular { kind }));
        }
        trust::check_owner_of(path, &entry)?;
        if entry.is_file() {
            return Ok(Found::Plain);
        }
        match std::fs::read_link(path) {
            Ok(target) => return Ok(Found::Target(target.into_os_string())),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Absent),
            Err(e) => return Err(Error::io(Op::Inspect, path, e)),
        }
    }
    let e = io::Error::other("the pointer kept changing between lstat and readlink");
    Err(Error::io(Op::Inspect, path, e))
}

/// Reads the pointer file at `path` (read as `how` says).
#[cfg(not(unix))]
pub(crate) fn read(path: &Path, how: trust::Read) -> Result<Found> {
    match trust::read(path, how) {
        Ok(bytes) => Ok(match bytes.strip_prefix(POINTER_PREFIX.as_bytes()) {
            Some(rest) => {
                let name = std::str::from_utf8(rest).unwrap_or("").trim_end();
                Found::Target(OsString::from(name))
            }
            None => Found::Plain,
        }),
        Err(Error::NotFound { .. }) => Ok(Found::Absent),
        Err(e) => Err(e),
    }
}

/// Points the pointer at `path` to `target` (an entry of the same directory): a new
/// link under a temporary name, renamed over the pointer (the commit point: readers see
/// the old link or the new one), then, under `Full`, the directory synced, so that the
/// new link survives a power cut once this returns. Every step is on one handle of the
/// directory, so a rename of the directory meanwhile cannot split them.
#[cfg(unix)]
pub(crate) fn swap(path: &Path, target: &OsStr, options: &WriteOptions) -> Result<()> {
    let name = path.file_name().unwrap_or_default();
    let dir_path = path.parent().unwrap_or(Path::new(""));
    let dir = crate::sys::Dir::open(dir_path).map_err(|e| Error::io(Op::OpenDir, path, e))?;
    let temp = temp_link(&dir, target, name, path)?;
    if let Err(e) = dir.rename(&temp, name) {
        let _ = dir.remove(&temp);
        return Err(Error::io(Op::Rename, path, e));
    }
    if options.durability_level() == Durability::Full {
        let synced = dir.sync_with(options.flush());
        synced.map_err(|e| Error::io(Op::SyncDir, path, e))?;
    }
    Ok(())
}

/// A fresh temporary symlink to `target` beside the pointer `name`, returning its name.
/// A taken name (debris, or planted) is drawn again, a bounded number of times.
#[cfg(unix)]
fn temp_link(dir: &crate::sys::Dir, target: &OsStr, name: &OsStr, path: &Path) -> Result<OsString> {
    for _ in 0..MAX_TEMP_ATTEMPTS {
        let candidate = crate::atomic::temp_name(name);
        match dir.symlink(target, &candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(Op::CreateTemp, path, e)),
        }
    }
    let e = io::Error::new(io::ErrorKind::AlreadyExists, "no free temporary name");
    Err(Error::io(Op::CreateTemp, path, e))
}

/// Without symlinks: the pointer file replaced atomically, as any save.
#[cfg(not(unix))]
pub(crate) fn swap(path: &Path, target: &OsStr, options: &WriteOptions) -> Result<()> {
    let line = format!("{POINTER_PREFIX}{}\n", target.to_string_lossy());
    options
        .clone()
        .preserve_permissions(false)
        .write(path, line)
}
