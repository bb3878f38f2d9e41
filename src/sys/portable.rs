//! Platforms without POSIX `*at` calls (Windows among them), on `std::fs` alone.
//!
//! The directory "handle" is its path. `std::fs::rename` replaces the destination
//! atomically (`MoveFileExW` with `MOVEFILE_REPLACE_EXISTING` on Windows); directories
//! cannot be opened for syncing there, so the directory sync is a no-op.

use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::{Access, DirTrust, Flush};
use crate::error::FileKind;

/// A directory, by path.
#[derive(Debug)]
pub(crate) struct Dir(PathBuf);

/// What is at a name, as `symlink_metadata` sees it.
#[derive(Debug, Clone)]
pub(crate) struct Existing(std::fs::Metadata);

/// The marker of a refused link (there is no `O_NOFOLLOW` here).
#[derive(Debug)]
struct IsSymlink;

impl std::fmt::Display for IsSymlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a symlink where none is followed")
    }
}

impl std::error::Error for IsSymlink {}

/// Whether a failed rename may succeed if tried again: on Windows, access denied (5) or
/// a sharing violation (32), what `MoveFileExW` says while another program (antivirus,
/// an indexer) holds the destination open without `FILE_SHARE_DELETE`.
pub(crate) fn is_transient_rename_error(e: &io::Error) -> bool {
    const ERROR_ACCESS_DENIED: i32 = 5;
    const ERROR_SHARING_VIOLATION: i32 = 32;
    cfg!(windows)
        && matches!(
            e.raw_os_error(),
            Some(ERROR_ACCESS_DENIED | ERROR_SHARING_VIOLATION)
        )
}

/// No uids here: never compared, since [`Existing::owner`] is `None`.
pub(crate) fn caller() -> u32 {
    0
}

/// Whether an open was refused because the path is a link.
pub(crate) fn is_symlink_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<IsSymlink>())
}

/// Opens the existing file at `path`, refusing a link (looked at first: without
/// `O_NOFOLLOW` that check and the open are two steps).
pub(crate) fn open_path(path: &Path, access: Access) -> io::Result<(File, Existing)> {
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_symlink()
    {
        return Err(io::Error::other(IsSymlink));
    }
    let mut opts = OpenOptions::new();
    match access {
        Access::Read => opts.read(true),
        Access::ReadWrite => opts.read(true).write(true),
        Access::Create(_) => opts.read(true).write(true).create_new(true),
    };
    let file = opts.open(path)?;
    let meta = file.metadata()?;
    Ok((file, Existing(meta)))
}

/// Opens `path` read-only.
pub(crate) fn open_nonblocking(path: &Path) -> io::Result<File> {
    File::open(path)
}

/// `symlink_metadata` of `path`; `None` when nothing is there.
pub(crate) fn lstat(path: &Path) -> io::Result<Option<Existing>> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(Existing(meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Extended attributes are not carried over here.
pub(crate) fn xattrs(_path: &Path) -> io::Result<NoXattrs> {
    Ok(NoXattrs)
}

/// No Unix modes here.
pub(crate) fn set_mode(_file: &File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// No umask here; the value only shapes Unix modes, which have no meaning.
pub(crate) fn umask() -> u32 {
    0o022
}

/// The permissions to give a new file: only read-only-ness exists here.
#[derive(Debug, Clone)]
pub(crate) struct Perms(Option<std::fs::Permissions>);

impl Perms {
    /// A new file; Unix mode bits have no meaning here.
    pub(crate) fn new(_explicit: Option<u32>) -> Perms {
        Perms(None)
    }
}

/// What [`Perms::settle`] found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The file's metadata is as created.
    AsCreated,
    /// The permissions were changed after creation.
    Changed,
    /// Never reported here: see `settle`.
    #[allow(dead_code)]
    Unlinked,
}

impl Perms {
    /// Gives a just-created file the permissions. Whether a sweep removed its name
    /// cannot be asked portably: a save that loses that race fails at its rename, with a
    /// typed error.
    pub(crate) fn settle(&self, file: &File, _named: bool) -> io::Result<(Settled, Option<u32>)> {
        match &self.0 {
            Some(p) => file
                .set_permissions(p.clone())
                .map(|()| (Settled::Changed, None)),
            None => Ok((Settled::AsCreated, None)),
        }
    }

    /// No special bits here.
    pub(crate) fn finish(&self, _file: &File) -> io::Result<bool> {
        Ok(false)
    }
}

/// Extended attributes are not carried over here (documented in `atomic`).
#[derive(Debug, Clone, Default)]
pub(crate) struct NoXattrs;

impl Existing {
    pub(crate) fn is_symlink(&self) -> bool {
        self.0.file_type().is_symlink()
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.0.is_dir()
    }

    pub(crate) fn is_file(&self) -> bool {
        self.0.is_file()
    }

    pub(crate) fn kind(&self) -> FileKind {
        let t = self.0.file_type();
        if t.is_file() {
            FileKind::File
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_symlink() {
            FileKind::Symlink
        } else {
            FileKind::Other
        }
    }

    /// No uids here.
    pub(crate) fn owner(&self) -> Option<u32> {
        None
    }

    pub(crate) fn size(&self) -> u64 {
        self.0.len()
    }

    /// A Unix-like picture of the permissions: read-only or not.
    pub(crate) fn mode_bits(&self) -> u32 {
        if self.0.permissions().readonly() {
            0o444
        } else {
            0o666
        }
    }

    pub(crate) fn perms(&self, _explicit: Option<u32>, _xattrs: NoXattrs) -> Perms {
        Perms(Some(self.0.permissions()))
    }
}

impl Dir {
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let path = if path.as_os_str().is_empty() {
            Path::new(".")
        } else {
            path
        };
        if !std::fs::metadata(path)?.is_dir() {
            return Err(io::ErrorKind::NotADirectory.into());
        }
        Ok(Dir(path.to_path_buf()))
    }

    pub(crate) fn inspect(&self, name: &OsStr) -> io::Result<Option<Existing>> {
        match std::fs::symlink_metadata(self.0.join(name)) {
            Ok(meta) => Ok(Some(Existing(meta))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn trust(&self) -> io::Result<DirTrust> {
        Ok(DirTrust {
            owner: 0,
            shared: false,
        })
    }

    pub(crate) fn open_entry(&self, name: &OsStr, access: Access) -> io::Result<(File, Existing)> {
        open_path(&self.0.join(name), access)
    }

    pub(crate) fn read_link(&self, name: &OsStr) -> io::Result<PathBuf> {
        std::fs::read_link(self.0.join(name))
    }

    pub(crate) fn create_new(&self, name: &OsStr, perms: &Perms) -> io::Result<File> {
        let _ = perms; // applied by `Perms::settle` once the file exists
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.0.join(name))
    }

    pub(crate) fn create_anonymous(&self, _perms: &Perms) -> io::Result<Option<File>> {
        Ok(None)
    }

    pub(crate) fn link_anonymous(&self, _file: &File, _name: &OsStr) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Whether `name` is a mount point: not known here, so never said.
    pub(crate) fn is_mount_point(&self, _name: &OsStr) -> bool {
        false
    }

    pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        std::fs::rename(self.0.join(from), self.0.join(to))
    }

    pub(crate) fn rename_noreplace(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        // hard_link never replaces; then drop the temp name.
        std::fs::hard_link(self.0.join(from), self.0.join(to))?;
        self.remove(from)
    }

    pub(crate) fn hard_link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        std::fs::hard_link(self.0.join(from), self.0.join(to))
    }

    pub(crate) fn remove(&self, name: &OsStr) -> io::Result<()> {
        std::fs::remove_file(self.0.join(name))
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    /// No barrier here (it is Apple's): as [`Dir::sync`].
    pub(crate) fn sync_with(&self, _flush: Flush) -> io::Result<()> {
        self.sync()
    }

    pub(crate) fn create_dir(&self, name: &OsStr) -> io::Result<()> {
        std::fs::create_dir(self.0.join(name))
    }

    pub(crate) fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        Dir::open(&self.0.join(name))
    }

    pub(crate) fn sync_filesystem(&self) -> io::Result<bool> {
        Ok(false)
    }

    /// No directory locks here: every directory counts as held, so none is swept.
    pub(crate) fn try_lock(&self) -> io::Result<bool> {
        Ok(false)
    }
}

/// Syncs `file`'s data (and its metadata too unless `data_only`); no barrier here (it is
/// Apple's), so every sync is a full one.
pub(crate) fn sync_file(file: &File, data_only: bool, _flush: Flush) -> io::Result<()> {
    match data_only {
        true => file.sync_data(),
        false => file.sync_all(),
    }
}

/// No `syncfs` here: each file of a batch is synced on its own.
pub(crate) fn sync_filesystem(_file: &File) -> io::Result<bool> {
    Ok(false)
}

/// No device numbers here.
pub(crate) fn filesystem_id(_file: &File) -> Option<u64> {
    None
}

pub(crate) fn sync_again_after_link(_file: &File) -> bool {
    false
}

pub(crate) fn name_bytes(name: &OsStr) -> &[u8] {
    name.as_encoded_bytes()
}

pub(crate) fn name_from_bytes(bytes: Vec<u8>) -> OsString {
    // Only ever called with a prefix of a valid name cut at an ASCII byte, plus ASCII.
    OsString::from(String::from_utf8_lossy(&bytes).into_owned())
}

/// What tells one version of a file from another without reading it. Never made here:
/// without inode numbers a file cannot be told from its replacement by metadata, so
/// callers compare contents instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId(());

/// The [`FileId`] of a file's metadata: `None` on this platform.
pub(crate) fn file_id(_meta: &std::fs::Metadata) -> Option<FileId> {
    None
}

/// The names in the directory at `path`.
pub(crate) fn list_names(path: &Path) -> io::Result<Vec<OsString>> {
    std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.file_name()))
        .collect()
}

/// Whether the filesystem at `path` reports no events of other machines' writes: not
/// known here, so `false` (a watch uses the platform's events).
#[cfg(feature = "watch")]
pub(crate) fn is_network_filesystem(_path: &Path) -> bool {
    false
}
