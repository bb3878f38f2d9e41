//! What only Linux offers: `renameat2(RENAME_NOREPLACE)` and `O_TMPFILE`.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Set once a filesystem has refused `renameat2` (ZFS says EINVAL, old kernels ENOSYS):
/// asking again on every save would cost a failing syscall each time.
static NOREPLACE_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// `renameat2(RENAME_NOREPLACE)`; `None` when it is not supported here, so the caller
/// falls back to link + unlink.
pub(super) fn rename_noreplace(dir: &OwnedFd, from: &OsStr, to: &OsStr) -> Option<io::Result<()>> {
    if NOREPLACE_UNSUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            NOREPLACE_UNSUPPORTED.store(true, Ordering::Relaxed);
            None
        }
        result => Some(result.map_err(io::Error::from)),
    }
}

/// Opens an unnamed file in `dir`; `None` where the filesystem has no `O_TMPFILE`.
pub(super) fn open_tmpfile(dir: &OwnedFd, mode: u32) -> io::Result<Option<File>> {
    let flags = OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC;
    match rustix::fs::openat(dir, ".", flags, Mode::from_raw_mode(mode as _)) {
        Ok(fd) => Ok(Some(File::from(fd))),
        // Filesystems without O_TMPFILE say one of these; the caller uses a named temp.
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Links an `O_TMPFILE` file into `dir` as `name`.
pub(super) fn link_tmpfile(file: &File, dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    match rustix::fs::linkat(file.as_fd(), "", dir, name, AtFlags::EMPTY_PATH) {
        // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH on older kernels; the /proc path does not.
        Err(Errno::NOENT | Errno::PERM) => {
            use std::os::fd::AsRawFd;
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc_path.as_str(),
                dir,
                name,
                AtFlags::SYMLINK_FOLLOW,
            )
            .map_err(io::Error::from)
        }
        result => result.map_err(io::Error::from),
    }
}

/// btrfs ignores an fsync of a file that has no name yet.
pub(super) fn is_btrfs(file: &File) -> bool {
    const BTRFS_SUPER_MAGIC: u32 = 0x9123_683E;
    // `f_type` is i64 or i32 by architecture; the magic's low 32 bits identify it.
    rustix::fs::fstatfs(file).is_ok_and(|fs| fs.f_type as u32 == BTRFS_SUPER_MAGIC)
}
