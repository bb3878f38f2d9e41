//! Which entries of a directory the crate acts on: the rules for shared directories.
//!
//! Every layer that follows a link, replaces a file or reads one the crate did not just
//! create goes through here, so the policy is written once (the `# Security` section of
//! the [`atomic`](crate::atomic) module docs states it for users):
//!
//! - A directory is **shared** when it is sticky and writable by others than its owner
//!   (`/tmp`, `/var/tmp`, a shared volume set up like them). Anyone can plant a name in
//!   it; the sticky bit only stops them removing ours.
//! - In a shared directory an entry is trusted only when the caller or the directory's
//!   owner owns it. A foreign symlink is not followed (the kernel's `protected_symlinks`
//!   rule) and a foreign file is neither replaced nor read (`protected_regular`), whatever
//!   the sysctls say: the crate resolves links itself, so the kernel's rule would never
//!   apply, and containers often turn both sysctls off.
//! - Whatever the directory, a file opened to be read or locked is opened without
//!   following a link at its last component and without blocking, then checked with
//!   `fstat` to be a regular file: a FIFO must not stall a load, a device must not be
//!   read without end.
//!
//! The checks reuse what the engine already knows: a file's owner from the `fstat` or
//! `lstat` it makes anyway, the caller's uid from the `fstat` of a file it just created.
//! Only an entry owned by someone else costs an `fstat` of the directory.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use crate::error::{Error, Op, Refusal, Result};
use crate::sys::{self, Access};

/// Symlinks followed before giving up, as the kernel's own limit (`ELOOP`).
const MAX_SYMLINKS: usize = 40;

/// A destination, resolved: an open directory and a name in it, and what is there.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) dir: sys::Dir,
    pub(crate) dir_path: PathBuf,
    pub(crate) name: OsString,
    /// `dir_path/name`, for error messages.
    pub(crate) path: PathBuf,
    /// What `lstat` found at the name.
    pub(crate) existing: Option<sys::Existing>,
}

/// Opens the directory of `path` and looks at the name in it. With `follow`, a symlink
/// is followed to its final target, hop by hop, each hop under the shared-directory
/// rule; without, a symlink is the entry itself.
pub(crate) fn resolve(path: &Path, follow: bool) -> Result<Target> {
    let mut path = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        let Some(name) = path.file_name().map(OsStr::to_os_string) else {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "not a file name");
            return Err(Error::io(Op::Inspect, path, e));
        };
        let dir_path = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let dir = sys::Dir::open(&dir_path).map_err(|e| Error::io(Op::OpenDir, &path, e))?;
        let existing = dir
            .inspect(&name)
            .map_err(|e| Error::io(Op::Inspect, &path, e))?;
        if let Some(e) = &existing
            && e.is_symlink()
            && follow
        {
            check_owner(&dir, e, None, &path)?;
            let link = dir
                .read_link(&name)
                .map_err(|e| Error::io(Op::Inspect, &path, e))?;
            // A relative link is relative to the directory that holds it.
            path = dir_path.join(link);
            continue;
        }
        return Ok(Target {
            path: dir_path.join(&name),
            dir,
            dir_path,
            name,
            existing,
        });
    }
    let e = io::Error::other("too many levels of symbolic links");
    Err(Error::io(Op::Inspect, path, e))
}

/// Refuses `entry` (at `path`, in `dir`) when the directory is shared and neither the
/// caller nor the directory's owner owns it. `caller` is the caller's uid when it is
/// known already (the owner of a file it just created); otherwise it is asked.
pub(crate) fn check_owner(
    dir: &sys::Dir,
    entry: &sys::Existing,
    caller: Option<u32>,
    path: &Path,
) -> Result<()> {
    let Some(owner) = entry.owner() else {
        return Ok(()); // no owners on this platform
    };
    if owner == caller.unwrap_or_else(sys::caller) {
        return Ok(()); // the common case: no further syscall
    }
    let trust = dir.trust().map_err(|e| Error::io(Op::Inspect, path, e))?;
    if !trust.shared || owner == trust.owner {
        return Ok(());
    }
    let reason = match entry.is_symlink() {
        true => Refusal::ForeignSymlink { owner },
        false => Refusal::ForeignFile { owner },
    };
    Err(Error::refused(path, reason))
}

/// Refuses anything but a regular file.
pub(crate) fn check_regular(entry: &sys::Existing, path: &Path) -> Result<()> {
    match entry.is_file() {
        true => Ok(()),
        false => Err(Error::refused(
            path,
            Refusal::NotRegular { kind: entry.kind() },
        )),
    }
}

/// What is at `path`, not following a link (`lstat`); `None` when nothing is.
#[cfg_attr(not(feature = "json"), allow(dead_code))] // used by `history` only
pub(crate) fn inspect(path: &Path) -> Result<Option<sys::Existing>> {
    sys::lstat(path).map_err(|e| Error::io(Op::Inspect, path, e))
}

/// [`check_owner`] for an entry known by its path: the directory is opened only when
/// the caller does not own the entry.
pub(crate) fn check_owner_of(path: &Path, entry: &sys::Existing) -> Result<()> {
    if entry.owner().is_none_or(|o| o == sys::caller()) {
        return Ok(());
    }
    let target = resolve(path, false)?;
    check_owner(&target.dir, entry, None, path)
}

/// How a file the crate did not just create is opened to be read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Read {
    /// Refuse a file larger than this ([`Error::TooLarge`]).
    pub(crate) limit: Option<u64>,
    /// Follow a symlink at the path (under the rules of [`resolve`]); without, a link is
    /// [`Refusal::Symlink`] (version files, manifests, lock sidecars are never links).
    pub(crate) follow: bool,
}

impl Read {
    /// Any size, following links: a data file a user may have linked.
    pub(crate) const DATA: Read = Read {
        limit: None,
        follow: true,
    };
}

/// Opens the existing regular file at `path` to read it, never blocking, following a
/// symlink only as `how` and [`resolve`] allow, and refusing a foreign file in a shared
/// directory or one over the limit. Returns the file and its `fstat`.
pub(crate) fn open_regular(path: &Path, how: Read) -> Result<(File, sys::Existing)> {
    let (file, entry) = match sys::open_path(path, Access::Read) {
        Ok((file, entry)) => {
            check_regular(&entry, path)?;
            check_owner_of(path, &entry)?;
            (file, entry)
        }
        // The last component is a link: resolve it under the rules, then open the final
        // name in its directory, still without following.
        Err(e) if sys::is_symlink_error(&e) && how.follow => {
            let target = resolve(path, true)?;
            let (file, entry) = target
                .dir
                .open_entry(&target.name, Access::Read)
                .map_err(|e| read_error(&target.path, e))?;
            check_regular(&entry, &target.path)?;
            check_owner(&target.dir, &entry, None, &target.path)?;
            (file, entry)
        }
        Err(e) => return Err(read_error(path, e)),
    };
    if let Some(limit) = how.limit
        && entry.size() > limit
    {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: entry.size(),
            limit,
        });
    }
    Ok((file, entry))
}

/// Reads the whole regular file at `path` as [`open_regular`] opens it; the file stays
/// open for the caller (to tell its version later).
pub(crate) fn read_file(path: &Path, how: Read) -> Result<(Vec<u8>, File)> {
    let (file, entry) = open_regular(path, how)?;
    let limit = how.limit;
    let mut bytes = Vec::new();
    bytes.reserve_exact(usize::try_from(entry.size()).unwrap_or(0));
    // A file that grows past the limit while it is read is still refused.
    let cap = limit.map_or(u64::MAX, |l| l.saturating_add(1));
    (&file)
        .take(cap)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(Op::Read, path, e))?;
    if let Some(limit) = limit
        && bytes.len() as u64 > limit
    {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok((bytes, file))
}

/// Reads a whole file the crate did not just create, as `how` says; [`Error::NotFound`]
/// when it is missing.
pub(crate) fn read(path: &Path, how: Read) -> Result<Vec<u8>> {
    read_file(path, how).map(|(bytes, _)| bytes)
}

/// The error of an open or read of `path`: a missing file is [`Error::NotFound`], a
/// link where none is followed [`Refusal::Symlink`].
pub(crate) fn read_error(path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::NotFound {
            path: path.to_path_buf(),
        }
    } else if sys::is_symlink_error(&e) {
        Error::refused(path, Refusal::Symlink)
    } else {
        Error::io(Op::Read, path, e)
    }
}
