//! Unix: every step relative to an open directory handle.
//!
//! Working through `openat`/`renameat`/`unlinkat` on one directory descriptor means a
//! concurrent rename of the directory (or of a parent) cannot send the temporary file
//! and the rename to two different places.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Uid};

/// The mode a new file gets before the umask, as `File::create` does.
const DEFAULT_MODE: u32 = 0o666;

/// An open handle on a directory; all names below are relative to it.
#[derive(Debug)]
pub(crate) struct Dir(OwnedFd);

/// What is at a name, as `lstat` sees it (a symlink is not followed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Existing {
    kind: FileType,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// What [`Perms::settle`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The file's metadata is as created.
    AsCreated,
    /// Owner or mode were changed after creation: only a full fsync persists that.
    Changed,
    /// The file lost its name to a concurrent `sweep`: make another.
    Unlinked,
}

/// The permissions to give a new file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Perms {
    /// The mode passed to `open`, before the umask.
    mode: u32,
    /// Set the mode exactly with `fchmod` after creation, past the umask.
    exact: bool,
    /// Change the owner to this (uid, gid).
    owner: Option<(u32, u32)>,
}

impl Perms {
    /// A new file: `explicit` exactly if given, else `0o666` less the umask.
    pub(crate) fn new(explicit: Option<u32>) -> Perms {
        Perms {
            mode: explicit.unwrap_or(DEFAULT_MODE),
            exact: explicit.is_some(),
            owner: None,
        }
    }
}

impl Perms {
    /// The mode to create the file with, before [`settle`](Self::settle) sets the exact
    /// one. Until then the file may carry the wrong group (the writer's, or a setgid
    /// directory's): so the group gets no bit that others lack, and no member of a wrong
    /// group can open it in that moment and keep reading. Special bits wait too.
    fn create_mode(&self) -> u32 {
        let other = self.mode & 0o007;
        (self.mode & 0o707) | (self.mode & 0o070 & (other << 3))
    }

    /// Finishes a just-created (and locked) file: one `fstat` tells whether a `sweep`
    /// removed its name before we locked it (`Settled::Unlinked`), and which owner and
    /// mode it got, so that `fchown`/`fchmod` run only when they change something.
    pub(crate) fn settle(&self, file: &File, named: bool) -> io::Result<Settled> {
        if !named && self.owner.is_none() && !self.exact {
            return Ok(Settled::AsCreated); // nothing to ask: no sweep sees it, no perms to fix
        }
        let st = rustix::fs::fstat(file)?;
        if named && st.st_nlink == 0 {
            return Ok(Settled::Unlinked);
        }
        let mut changed = false;
        if let Some((uid, gid)) = self.owner
            && (st.st_uid, st.st_gid) != (uid, gid)
        {
            set_owner(file, uid, gid)?;
            changed = true;
        }
        #[allow(clippy::unnecessary_cast, reason = "st_mode is u16 on some targets")]
        let mode = st.st_mode as u32 & 0o7777;
        // After a chown the kernel may have cleared setuid/setgid: always restore then.
        if self.exact && (changed || mode != self.mode) {
            rustix::fs::fchmod(file, Mode::from_raw_mode(self.mode as _))?;
            changed = true;
        }
        Ok(if changed {
            Settled::Changed
        } else {
            Settled::AsCreated
        })
    }
}

impl Existing {
    pub(crate) fn is_symlink(&self) -> bool {
        self.kind == FileType::Symlink
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.kind == FileType::Directory
    }

    pub(crate) fn is_file(&self) -> bool {
        self.kind == FileType::RegularFile
    }

    /// The permissions that keep this file's mode and owner, unless `explicit` is given.
    pub(crate) fn perms(&self, explicit: Option<u32>) -> Perms {
        Perms {
            mode: explicit.unwrap_or(self.mode & 0o7777),
            exact: true,
            // Compared with what the new file got, not with our own ids: in a setgid
            // directory a new file takes the directory's group.
            owner: Some((self.uid, self.gid)),
        }
    }
}

impl Dir {
    /// Opens `path` (the empty path means the current directory).
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        // O_RDONLY, not O_PATH: the handle must be able to fsync the directory.
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Dir(fd))
    }

    /// `lstat` of `name`; `None` when nothing is there.
    pub(crate) fn inspect(&self, name: &OsStr) -> io::Result<Option<Existing>> {
        match rustix::fs::statat(&self.0, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Existing {
                kind: FileType::from_raw_mode(st.st_mode as _),
                #[allow(clippy::unnecessary_cast, reason = "st_mode is u16 on some targets")]
                mode: st.st_mode as u32,
                uid: st.st_uid,
                gid: st.st_gid,
            })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The target of the symlink `name`, as written in the link.
    pub(crate) fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
        use std::os::unix::ffi::OsStringExt;
        let target = rustix::fs::readlinkat(&self.0, name, Vec::new())?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(
            target.into_bytes(),
        )))
    }

    /// Creates `name`, failing if anything is there (`O_EXCL`), never following a link.
    pub(crate) fn create_new(&self, name: &OsStr, perms: &Perms) -> io::Result<File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(perms.create_mode() as _);
        let fd = rustix::fs::openat(&self.0, name, flags, mode)?;
        Ok(File::from(fd))
    }

    /// Creates an anonymous file in this directory (Linux `O_TMPFILE`); `None` where the
    /// platform or filesystem has none.
    pub(crate) fn create_anonymous(&self, perms: &Perms) -> io::Result<Option<File>> {
        #[cfg(target_os = "linux")]
        {
            super::linux::open_tmpfile(&self.0, perms.create_mode())
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = perms;
            Ok(None)
        }
    }

    /// Gives an anonymous file the name `name` (fails if the name exists).
    pub(crate) fn link_anonymous(&self, file: &File, name: &OsStr) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            super::linux::link_tmpfile(file, &self.0, name)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (file, name);
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    /// Atomically replaces `to` with `from`.
    pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::renameat(&self.0, from, &self.0, to)?)
    }

    /// Atomically renames `from` to `to`, failing with `AlreadyExists` if `to` exists.
    pub(crate) fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        #[cfg(target_os = "linux")]
        if let Some(result) = super::linux::rename_noreplace(&self.0, from, to) {
            return result;
        }
        // link(2) never replaces, so link + unlink is the portable no-clobber rename; a
        // crash between the two leaves the temp name as a second link, which sweep clears.
        rustix::fs::linkat(&self.0, from, &self.0, to, AtFlags::empty())?;
        self.remove(from)
    }

    /// Removes the file `name`.
    pub(crate) fn remove(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.0, name, AtFlags::empty())?)
    }

    /// Flushes the directory's entries to stable storage.
    pub(crate) fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.0)?)
    }

    /// Opens an existing temporary file for `sweep` to lock; never follows a link.
    pub(crate) fn open_temp(&self, name: &OsStr) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.0, name, flags, Mode::empty())?;
        Ok(File::from(fd))
    }
}

/// `fchown`, tolerating `EPERM` for a caller that is not root: an ordinary user may not
/// give files away, so the file keeps what it can (the group, where the user is in it).
fn set_owner(file: &File, uid: u32, gid: u32) -> io::Result<()> {
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    match rustix::fs::fchown(file, Some(uid), Some(gid)) {
        Err(rustix::io::Errno::PERM) if !rustix::process::geteuid().is_root() => {
            match rustix::fs::fchown(file, None, Some(gid)) {
                Err(rustix::io::Errno::PERM) | Ok(()) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
        other => Ok(other?),
    }
}

/// Whether the filesystem ignores an fsync done before an anonymous file was linked, so
/// that it must be synced again once it has a name.
pub(crate) fn sync_again_after_link(file: &File) -> bool {
    #[cfg(target_os = "linux")]
    {
        super::linux::is_btrfs(file)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

/// The bytes of a file name, for building the temporary file's name.
pub(crate) fn name_bytes(name: &OsStr) -> &[u8] {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes()
}

/// A file name from bytes made by [`name_bytes`] plus ASCII.
pub(crate) fn name_from_bytes(bytes: Vec<u8>) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(bytes)
}

/// What tells one version of a file from another without reading it: every atomic save
/// makes a new inode, and an in-place edit by another tool changes size or mtime. (Not
/// the ctime: some filesystems change it on rename.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
}

/// The [`FileId`] of a file's metadata; always `Some` here.
pub(crate) fn file_id(meta: &std::fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
    })
}

/// The names in the directory at `path` (without `.` and `..`). Through `rustix`, not
/// `std::fs::read_dir`: std's directory stream panics when `closedir` fails (an I/O
/// error from a network filesystem, say), and a listing's close error is not worth a
/// panic.
pub(crate) fn list_names(path: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::new(fd)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(&name).to_os_string());
        }
    }
    Ok(names)
}
