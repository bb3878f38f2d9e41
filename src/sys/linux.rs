//! What only Linux offers: `renameat2(RENAME_NOREPLACE)`, `O_TMPFILE`, and `statx`'s
//! mount-root attribute.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, XattrFlags};
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

/// Whether `name` in `dir` is the root of a mount (a bind-mounted file sits there);
/// `None` where the kernel does not say (before Linux 5.8).
pub(super) fn is_mount_root(dir: &OwnedFd, name: &OsStr) -> Option<bool> {
    use rustix::fs::{StatxAttributes, StatxFlags};
    let st = rustix::fs::statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::empty()).ok()?;
    let root = StatxAttributes::MOUNT_ROOT;
    (st.stx_attributes_mask.contains(root)).then_some(st.stx_attributes.contains(root))
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

/// Whether the filesystem at `path` is one whose changes by other machines no inotify
/// event reports: NFS, SMB/CIFS (both magics), 9p, FUSE (sshfs and the like).
#[cfg(feature = "watch")]
pub(super) fn is_network_filesystem(path: &std::path::Path) -> bool {
    const MAGICS: [u32; 6] = [
        0x6969,      // NFS
        0x517B,      // SMB
        0xFF53_4D42, // CIFS
        0xFE53_4D42, // SMB2
        0x0102_1997, // 9p
        0x6573_5546, // FUSE
    ];
    rustix::fs::statfs(path).is_ok_and(|fs| MAGICS.contains(&(fs.f_type as u32)))
}

/// The name of the xattr that holds a file's POSIX access ACL.
const ACL_ACCESS: &[u8] = b"system.posix_acl_access";

/// The extended attributes of a file about to be replaced, to put on the new one: its
/// POSIX ACL (`system.posix_acl_access`), `user.*`, and `security.*`/`trusted.*` where
/// the caller may set them. Without this a rename would drop them, and a dropped deny
/// entry would let in the user it denied.
#[derive(Debug, Clone, Default)]
pub(crate) struct Xattrs(Vec<(Vec<u8>, Vec<u8>)>);

impl Xattrs {
    /// The attributes of the file at `path` (not following a link). By path, not
    /// through `/proc/self/fd/N/name` (walking procfs cost more than the rest of a
    /// tmpfs save's extras together) nor `llistxattrat` (Linux 6.13, not in rustix):
    /// whoever could swap a component of `path` meanwhile could have redirected the
    /// whole save before the directory was opened. Nothing when the filesystem has no
    /// xattrs.
    pub(crate) fn of(path: &std::path::Path) -> io::Result<Xattrs> {
        use std::os::unix::ffi::OsStrExt;
        let mut list = [0u8; 1024];
        let list = match rustix::fs::llistxattr(path, &mut list[..]) {
            Ok(0) => return Ok(Xattrs::default()), // the common case: one syscall
            Ok(n) => list[..n].to_vec(),
            Err(Errno::RANGE) => grown(|buf| rustix::fs::llistxattr(path, buf))?,
            // No xattrs here, or the file went away: nothing to carry over.
            Err(Errno::NOTSUP | Errno::NOENT | Errno::NOSYS) => return Ok(Xattrs::default()),
            Err(e) => return Err(e.into()),
        };
        let mut attrs = Vec::new();
        for key in list.split(|&b| b == 0).filter(|k| !k.is_empty()) {
            let key_os = OsStr::from_bytes(key);
            let mut value = [0u8; 256];
            let value = match rustix::fs::lgetxattr(path, key_os, &mut value[..]) {
                Ok(n) => value[..n].to_vec(),
                Err(Errno::RANGE) => grown(|buf| rustix::fs::lgetxattr(path, key_os, buf))?,
                Err(Errno::NODATA) => continue, // removed meanwhile
                Err(e) => return Err(e.into()),
            };
            attrs.push((key.to_vec(), value));
        }
        Ok(Xattrs(attrs))
    }

    /// Whether a POSIX ACL is among them.
    pub(crate) fn has_acl(&self) -> bool {
        self.0.iter().any(|(k, _)| k == ACL_ACCESS)
    }

    /// Puts them on `file`; `true` when there were any. The ACL must take (dropping it
    /// could widen access); the rest is best effort, since `security.*` and `trusted.*`
    /// need privileges the caller may lack.
    pub(crate) fn apply(&self, file: &File) -> io::Result<bool> {
        use std::os::unix::ffi::OsStrExt;
        for (key, value) in &self.0 {
            match rustix::fs::fsetxattr(file, OsStr::from_bytes(key), value, XattrFlags::empty()) {
                Ok(()) => {}
                Err(e) if key == ACL_ACCESS => return Err(e.into()),
                Err(_) => {}
            }
        }
        Ok(!self.0.is_empty())
    }
}

/// Calls `f` with a buffer of the size it asks for (`f(&mut [])` returns it).
fn grown(f: impl Fn(&mut [u8]) -> rustix::io::Result<usize>) -> io::Result<Vec<u8>> {
    let len = f(&mut [])?;
    let mut buf = vec![0u8; len];
    let n = f(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}
