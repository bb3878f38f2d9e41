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

use super::{Access, DirTrust, Flush};
use crate::error::FileKind;

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
    size: u64,
}

impl From<rustix::fs::Stat> for Existing {
    fn from(st: rustix::fs::Stat) -> Existing {
        Existing {
            kind: FileType::from_raw_mode(st.st_mode as _),
            #[allow(clippy::unnecessary_cast, reason = "st_mode is u16 on some targets")]
            mode: st.st_mode as u32,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
        }
    }
}

impl Access {
    fn flags(self) -> OFlags {
        // Never follow a link, never block: a FIFO or a device opened to be read must not
        // stall the caller. The fstat after the open says what it really is.
        let base = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        match self {
            Access::Read => base | OFlags::RDONLY,
            Access::ReadWrite => base | OFlags::RDWR,
            Access::Create(_) => base | OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
        }
    }

    fn mode(self) -> Mode {
        match self {
            Access::Create(mode) => Mode::from_raw_mode(mode as _),
            _ => Mode::empty(),
        }
    }
}

/// The effective user id: whose links and files count as the caller's own.
pub(crate) fn caller() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether an open failed because the last component is a symlink (`O_NOFOLLOW`).
/// Whether a failed rename may succeed if tried again: never here (a Unix rename does
/// not care who has the file open).
pub(crate) fn is_transient_rename_error(_e: &io::Error) -> bool {
    false
}

pub(crate) fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

/// Opens the existing file at `path` as `access` says, never following a link at the
/// last component and never blocking, with its `fstat`.
pub(crate) fn open_path(path: &Path, access: Access) -> io::Result<(File, Existing)> {
    let fd = rustix::fs::open(path, access.flags(), access.mode())?;
    let st = rustix::fs::fstat(&fd)?;
    Ok((File::from(fd), st.into()))
}

/// Opens `path` read-only without blocking (and without an `fstat`: the caller compares
/// the file's identity itself).
pub(crate) fn open_nonblocking(path: &Path) -> io::Result<File> {
    let fd = rustix::fs::open(path, Access::Read.flags(), Mode::empty())?;
    Ok(File::from(fd))
}

/// The extended attributes of the file at `path` (one about to be replaced), to give
/// the new file; nothing where the platform or filesystem has none.
pub(crate) fn xattrs(path: &Path) -> io::Result<Xattrs> {
    #[cfg(target_os = "linux")]
    {
        super::linux::Xattrs::of(path)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        Ok(NoXattrs)
    }
}

/// `lstat` of `path`; `None` when nothing is there.
pub(crate) fn lstat(path: &Path) -> io::Result<Option<Existing>> {
    match rustix::fs::lstat(path) {
        Ok(st) => Ok(Some(st.into())),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The process's umask, read without changing it (`/proc/self/status` on Linux;
/// elsewhere the common `0o022`, since setting it to read it would race other threads).
pub(crate) fn umask() -> u32 {
    #[cfg(target_os = "linux")]
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(mask) = status.lines().find_map(|l| l.strip_prefix("Umask:"))
        && let Ok(mask) = u32::from_str_radix(mask.trim(), 8)
    {
        return mask;
    }
    0o022
}

/// Sets the mode bits of an open file exactly.
pub(crate) fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(file, Mode::from_raw_mode(mode as _))?)
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
#[derive(Debug, Clone)]
pub(crate) struct Perms {
    /// The mode passed to `open`, before the umask.
    mode: u32,
    /// Set the mode exactly with `fchmod` after creation, past the umask.
    exact: bool,
    /// Change the owner to this (uid, gid).
    owner: Option<(u32, u32)>,
    /// Extended attributes (a POSIX ACL among them) to carry over from the replaced file.
    xattrs: Xattrs,
}

/// The extended attributes of a replaced file (Linux), or nothing.
#[cfg(target_os = "linux")]
type Xattrs = super::linux::Xattrs;
#[cfg(not(target_os = "linux"))]
type Xattrs = NoXattrs;

/// Extended attributes are not carried over on this platform (documented in `atomic`).
#[cfg(not(target_os = "linux"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct NoXattrs;

#[cfg(not(target_os = "linux"))]
impl NoXattrs {
    fn has_acl(&self) -> bool {
        false
    }

    fn apply(&self, _file: &File) -> io::Result<bool> {
        Ok(false)
    }
}

impl Perms {
    /// A new file: `explicit` exactly if given, else `0o666` less the umask.
    pub(crate) fn new(explicit: Option<u32>) -> Perms {
        Perms {
            mode: explicit.unwrap_or(DEFAULT_MODE),
            exact: explicit.is_some(),
            owner: None,
            xattrs: Xattrs::default(),
        }
    }
}

impl Perms {
    /// The mode to create the file with, before [`settle`](Self::settle) sets the exact
    /// one. Until then the file may carry the wrong group (the writer's, or a setgid
    /// directory's): so the group gets no bit that others lack, and no member of a wrong
    /// group can open it in that moment and keep reading. Special bits wait too.
    fn create_mode(&self) -> u32 {
        if self.xattrs.has_acl() {
            // The ACL may deny a user the mode's bits would let in: nobody but the owner
            // until the ACL is on the file.
            return self.mode & 0o700;
        }
        let other = self.mode & 0o007;
        (self.mode & 0o707) | (self.mode & 0o070 & (other << 3))
    }

    /// The setuid, setgid and sticky bits the file gets once its data is complete
    /// ([`finish`](Self::finish)); `None` when it gets none.
    fn special(&self) -> Option<u32> {
        (self.exact && self.mode & 0o7000 != 0).then_some(self.mode)
    }

    /// Applies the special bits to a file whose bytes are all written, just before it is
    /// flushed and renamed: a setuid file must never exist half-written (and a write by
    /// its owner would clear the bit anyway). `true` when the mode changed.
    pub(crate) fn finish(&self, file: &File) -> io::Result<bool> {
        match self.special() {
            Some(mode) => set_mode(file, mode).map(|()| true),
            None => Ok(false),
        }
    }

    /// Finishes a just-created (and locked) file: one `fstat` tells whether a `sweep`
    /// removed its name before we locked it (`Settled::Unlinked`), which owner and mode
    /// it got, so that `fchown`/`fchmod` run only when they change something, and who
    /// created it (the caller's filesystem uid, returned). Extended attributes of the
    /// replaced file come after the owner and before the mode: `fchown` may drop some,
    /// and `fchmod` keeps an ACL's mask in step with the mode.
    pub(crate) fn settle(&self, file: &File, named: bool) -> io::Result<(Settled, Option<u32>)> {
        if !named && self.owner.is_none() && !self.exact {
            // Nothing to ask: no sweep sees it, no perms to fix.
            return Ok((Settled::AsCreated, None));
        }
        let st = rustix::fs::fstat(file)?;
        if named && st.st_nlink == 0 {
            return Ok((Settled::Unlinked, Some(st.st_uid)));
        }
        let mut changed = false;
        if let Some((uid, gid)) = self.owner
            && (st.st_uid, st.st_gid) != (uid, gid)
        {
            set_owner(file, uid, gid)?;
            changed = true;
        }
        changed |= self.xattrs.apply(file)?;
        #[allow(clippy::unnecessary_cast, reason = "st_mode is u16 on some targets")]
        let mode = st.st_mode as u32 & 0o7777;
        // Special bits wait for `finish`. After a chown the kernel may have cleared
        // setgid: always set the mode then.
        let writing = self.mode & 0o777;
        if self.exact && (changed || mode != writing) {
            set_mode(file, writing)?;
            changed = true;
        }
        let settled = if changed {
            Settled::Changed
        } else {
            Settled::AsCreated
        };
        Ok((settled, Some(st.st_uid)))
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

    /// What kind of entry it is.
    pub(crate) fn kind(&self) -> FileKind {
        match self.kind {
            FileType::RegularFile => FileKind::File,
            FileType::Directory => FileKind::Directory,
            FileType::Symlink => FileKind::Symlink,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            _ => FileKind::Other,
        }
    }

    /// Its owner; `None` where the platform has no uids.
    pub(crate) fn owner(&self) -> Option<u32> {
        Some(self.uid)
    }

    /// Its size in bytes.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Its mode bits (`0o7777`).
    pub(crate) fn mode_bits(&self) -> u32 {
        self.mode & 0o7777
    }

    /// The permissions that keep this file's mode and owner, unless `explicit` is given:
    /// an explicit mode means "these bits, owned by me", so the owner is not copied then.
    /// `xattrs` are the replaced file's extended attributes, carried over.
    pub(crate) fn perms(&self, explicit: Option<u32>, xattrs: Xattrs) -> Perms {
        Perms {
            mode: explicit.unwrap_or(self.mode & 0o7777),
            exact: true,
            // Compared with what the new file got, not with our own ids: in a setgid
            // directory a new file takes the directory's group.
            owner: explicit.is_none().then_some((self.uid, self.gid)),
            xattrs,
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

    /// Whether `name` is a mount point, as a file bind-mounted over it makes it (a
    /// rename cannot replace it): the kernel's mount-root attribute where it gives one,
    /// else another device than the directory's.
    pub(crate) fn is_mount_point(&self, name: &OsStr) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(root) = super::linux::is_mount_root(&self.0, name) {
            return root;
        }
        let entry = rustix::fs::statat(&self.0, name, AtFlags::SYMLINK_NOFOLLOW);
        let dir = rustix::fs::fstat(&self.0);
        matches!((entry, dir), (Ok(e), Ok(d)) if e.st_dev != d.st_dev)
    }

    /// `lstat` of `name`; `None` when nothing is there.
    pub(crate) fn inspect(&self, name: &OsStr) -> io::Result<Option<Existing>> {
        match rustix::fs::statat(&self.0, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st.into())),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Who owns this directory and whether others may plant names in it (one `fstat`).
    pub(crate) fn trust(&self) -> io::Result<DirTrust> {
        let st = rustix::fs::fstat(&self.0)?;
        #[allow(clippy::unnecessary_cast, reason = "st_mode is u16 on some targets")]
        let mode = st.st_mode as u32;
        Ok(DirTrust {
            owner: st.st_uid,
            shared: mode & 0o1000 != 0 && mode & 0o022 != 0,
        })
    }

    /// Opens the existing entry `name` as `access` says, never following a link and
    /// never blocking, with its `fstat`.
    pub(crate) fn open_entry(&self, name: &OsStr, access: Access) -> io::Result<(File, Existing)> {
        let fd = rustix::fs::openat(&self.0, name, access.flags(), access.mode())?;
        let st = rustix::fs::fstat(&fd)?;
        Ok((File::from(fd), st.into()))
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

    /// Creates the symlink `name` → `target` in this directory (`EEXIST` if `name` is
    /// taken).
    #[cfg_attr(not(feature = "json"), allow(dead_code))] // used by `history` only
    pub(crate) fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::symlinkat(target, &self.0, name)?)
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

    /// A second name `to` for the file `from` (never replacing `to`, never following a
    /// symlink at `from`).
    pub(crate) fn hard_link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::linkat(
            &self.0,
            from,
            &self.0,
            to,
            AtFlags::empty(),
        )?)
    }

    /// Removes the file `name`.
    pub(crate) fn remove(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.0, name, AtFlags::empty())?)
    }

    /// Flushes the directory's entries to stable storage.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.sync_with(Flush::Full)
    }

    /// Flushes the directory's entries as far as `flush` says.
    pub(crate) fn sync_with(&self, flush: Flush) -> io::Result<()> {
        #[cfg(target_vendor = "apple")]
        if flush == Flush::Barrier && barrier_fsync(&self.0)? {
            return Ok(());
        }
        #[cfg(not(target_vendor = "apple"))]
        let _ = flush; // a barrier is Apple's alone: a full sync everywhere else
        // On Apple, fsync hands the entries to the drive but does not flush its cache;
        // F_FULLFSYNC does (std uses it for the file's sync), so the rename gets the
        // same promise as the data.
        #[cfg(target_vendor = "apple")]
        match rustix::fs::fcntl_fullfsync(&self.0) {
            Ok(()) => return Ok(()),
            // A filesystem without it (some network ones) says so: fsync is all it has.
            Err(rustix::io::Errno::NOTSUP | rustix::io::Errno::INVAL) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(rustix::fs::fsync(&self.0)?)
    }

    /// Creates the directory `name` (`EEXIST` if anything is there), with the mode the
    /// umask allows.
    pub(crate) fn create_dir(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::mkdirat(
            &self.0,
            name,
            Mode::from_raw_mode(0o777),
        )?)
    }

    /// Opens the directory `name` in this one, never through a link.
    pub(crate) fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        Ok(Dir(rustix::fs::openat(
            &self.0,
            name,
            flags,
            Mode::empty(),
        )?))
    }

    /// Takes an exclusive `flock` on this directory without waiting: `false` when
    /// another open handle holds one (held until this handle is closed).
    pub(crate) fn try_lock(&self) -> io::Result<bool> {
        use rustix::fs::FlockOperation;
        match rustix::fs::flock(&self.0, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes everything written to this directory's filesystem durable at once (`syncfs`
    /// on Linux); `false` elsewhere, where nothing was done.
    pub(crate) fn sync_filesystem(&self) -> io::Result<bool> {
        #[cfg(target_os = "linux")]
        {
            rustix::fs::syncfs(&self.0)?;
            Ok(true)
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(false)
        }
    }
}

/// Syncs `file`'s data (and its metadata too unless `data_only`) as far as `flush` says.
/// std's `sync_data`/`sync_all` are the full syncs (`F_FULLFSYNC` on Apple).
pub(crate) fn sync_file(file: &File, data_only: bool, flush: Flush) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    if flush == Flush::Barrier && barrier_fsync(file)? {
        return Ok(());
    }
    #[cfg(not(target_vendor = "apple"))]
    let _ = flush; // a barrier is Apple's alone: a full sync everywhere else
    match data_only {
        true => file.sync_data(),
        false => file.sync_all(),
    }
}

/// `fcntl(F_BARRIERFSYNC)`: an fsync that also orders this file's writes before any
/// write issued after it, without waiting for the drive to empty its cache. `false`
/// where the filesystem does not support it (then the caller syncs in full).
#[cfg(target_vendor = "apple")]
fn barrier_fsync(fd: &impl std::os::fd::AsFd) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // rustix has no F_BARRIERFSYNC: libc's constant, and fcntl on a descriptor that the
    // borrow keeps open for the call.
    // SAFETY: fcntl with F_BARRIERFSYNC takes no argument and touches no memory.
    let ret = unsafe { libc::fcntl(fd.as_fd().as_raw_fd(), libc::F_BARRIERFSYNC) };
    if ret != -1 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOTSUP | libc::EINVAL) => Ok(false),
        _ => Err(e),
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

/// Makes everything written to `file`'s filesystem durable at once: `syncfs` on Linux
/// (`Ok(false)` elsewhere, where nothing was done and each file must be synced).
pub(crate) fn sync_filesystem(file: &File) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        rustix::fs::syncfs(file)?;
        Ok(true)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        Ok(false)
    }
}

/// The device `file` is on: files with the same one share a filesystem.
pub(crate) fn filesystem_id(file: &File) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    file.metadata().ok().map(|m| m.dev())
}

/// Whether the filesystem at `path` reports no events of other machines' writes, so a
/// watch there polls (Linux only knows; elsewhere `false`).
#[cfg(feature = "watch")]
pub(crate) fn is_network_filesystem(path: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        super::linux::is_network_filesystem(path)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        false
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
