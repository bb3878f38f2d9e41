//! The crate's one error type.
//!
//! Every variant names the path it is about, so a message read in a log is enough to
//! find the file. Variants are data: match on them rather than on message text.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// A boxed error from a serializer or deserializer.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while saving or loading.
///
/// Match on the variant (or its [`category`](Error::category)) to decide what to do; the
/// message names the operation and the path.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{CorruptKind, Error, Persisted};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("job.json");
/// std::fs::write(&path, r#"{"atomic_persist":1,"data":7,"meta":{"run_id":"x"#)?;
/// match Persisted::<u64>::builder(&path).envelope(true).open() {
///     Err(Error::Corrupt { kind: CorruptKind::Truncated, .. }) => {} // restore a backup
///     Err(Error::NotFound { .. }) => {}                              // first run
///     other => panic!("{other:?}"),
/// }
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("cannot {op} {}: {source}{}", path.display(), op.hint(source))]
    Io {
        /// What was being done.
        op: Op,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The file does not exist.
    #[error("{} does not exist", path.display())]
    NotFound {
        /// The missing file.
        path: PathBuf,
    },

    /// The destination exists and the write was asked not to replace it.
    #[error("{} already exists", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },

    /// The value could not be serialized; nothing on disk was touched.
    #[error("cannot serialize the value for {}: {source}", path.display())]
    Serialize {
        /// The file the value was meant for.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: BoxError,
    },

    /// The file's bytes are not a valid document of its format.
    #[error("cannot parse {} as {format}{}: {source}", path.display(), Position(*line, *column))]
    Deserialize {
        /// The file that was read.
        path: PathBuf,
        /// The format's name, such as `"json"`.
        format: &'static str,
        /// The 1-based line of the error, when the format reports one.
        line: Option<usize>,
        /// The 1-based column of the error, when the format reports one.
        column: Option<usize>,
        /// The deserializer's error.
        #[source]
        source: BoxError,
    },

    /// The file fails an integrity check (checksum or envelope).
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The corrupt file (or object).
        path: PathBuf,
        /// What kind of damage, to match on.
        kind: CorruptKind,
        /// What is wrong with it, in words.
        reason: String,
    },

    /// The file has an atomic-persist envelope, but the handle was opened without one:
    /// open it with the envelope on (`PersistedBuilder::envelope(true)`, or
    /// `envelope = true` in `#[persist(..)]`) rather than read the value from the wrong
    /// place.
    #[error(
        "{} has an atomic-persist envelope (meta + data); open it with the envelope on \
         (the builder's `.envelope(true)`)",
        path.display()
    )]
    UnexpectedEnvelope {
        /// The file.
        path: PathBuf,
    },

    /// The operation needs an enveloped file and the file is plain: it has no meta or
    /// checksum to act on ([`envelope::seal`](crate::envelope::seal)).
    #[error("{} has no atomic-persist envelope (it is a plain file)", path.display())]
    NotEnveloped {
        /// The file.
        path: PathBuf,
    },

    /// Another writer committed since this one last loaded the file.
    #[error(
        "{} changed on disk: expected generation {expected}, found {found}",
        path.display()
    )]
    Conflict {
        /// The file.
        path: PathBuf,
        /// The generation this writer last saw.
        expected: u64,
        /// The generation on disk.
        found: u64,
    },

    /// The writer lock could not be taken in time.
    #[error("{} is locked by another writer", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },

    /// The file was written by a newer schema than this code supports.
    #[error(
        "{} has schema version {found}, this program supports up to {supported}",
        path.display()
    )]
    SchemaVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u32,
        /// The newest version this code reads.
        supported: u32,
    },

    /// No format is known for the file: an unknown extension, or one whose Cargo
    /// feature is off. Choose a format explicitly on the builder.
    #[error("no format for {}: {reason}; choose one with the builder's `.format(..)`", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// Why no format was chosen.
        reason: String,
    },

    /// The value was refused by a validation hook.
    #[error("invalid value for {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The hook's reason.
        reason: String,
    },

    /// The crate would not act on what it found at the path: another user could have
    /// planted it, or it is not a regular file. Nothing was written or read. See the
    /// `# Security` section of the [`atomic`](crate::atomic) module docs.
    #[error("refused {}: {reason}", path.display())]
    Refused {
        /// The entry refused (a symlink, a file, a lock sidecar).
        path: PathBuf,
        /// Why.
        reason: Refusal,
    },

    /// A [`Batch`](crate::Batch) commit failed after it had begun to rename its files
    /// into place: the files in `committed` are new (for a failed directory sync, new
    /// but perhaps not yet durable), every other file of the batch is as it was, and no
    /// temporary file is left. `source` says what failed, naming its file.
    #[error("batch stopped with {} of its files committed: {source}", committed.len())]
    Batch {
        /// The destinations already replaced, in the order they were renamed.
        committed: Vec<PathBuf>,
        /// What failed.
        #[source]
        source: Box<Error>,
    },

    /// The file's generation is `u64::MAX`: no commit can follow it. Only a damaged or
    /// forged file gets there; nothing was written.
    #[error("{} is at the last generation (u64::MAX); no commit can follow it", path.display())]
    GenerationOverflow {
        /// The file.
        path: PathBuf,
    },

    /// The file is larger than the limit set for reading it
    /// ([`PersistedBuilder::max_size`](crate::PersistedBuilder::max_size)); it was not
    /// read.
    #[error("{} is {size} bytes, over the limit of {limit}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least; it may still be growing).
        size: u64,
        /// The limit.
        limit: u64,
    },
}

/// What kind of damage an [`Error::Corrupt`] found.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{CorruptKind, Error, Persisted};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("job.json");
/// # Persisted::<u32>::builder(&path).envelope(true).open_or_default()?.set(7)?;
/// let bytes = std::fs::read(&path)?;
/// std::fs::write(&path, &bytes[..bytes.len() / 2])?; // cut in half
/// match Persisted::<u32>::builder(&path).envelope(true).open() {
///     Err(Error::Corrupt { kind: CorruptKind::Truncated, .. }) => {} // restore a backup
///     other => panic!("{other:?}"),
/// }
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CorruptKind {
    /// The checksum does not match the contents: damaged on disk, or edited by hand.
    Checksum,
    /// The file ends early: a header without its meta, a trailer that says more bytes
    /// than there are.
    Truncated,
    /// A 0-byte file where a value must be: typically what a program that does not save
    /// atomically leaves after a crash.
    Empty,
    /// The envelope is of a newer format version than this build reads: upgrade the
    /// program, the file is likely fine.
    NewerEnvelope {
        /// The envelope version in the file.
        version: u64,
    },
    /// The envelope's structure or meta is damaged: keys, types or fields not as the
    /// on-disk format gives them.
    Damaged,
    /// The file changed while it was being read.
    Changed,
    /// A history's `latest` pointer (or an object's pointer or manifest) is damaged or
    /// names no version of it.
    BadPointer,
    /// A version does not match what names it: a version file without an envelope or of
    /// another generation than its name, a version object unlike its pointer entry.
    BadVersion,
    /// What a pointer names is missing, or is not the body it was written for.
    MissingBody,
    /// A plain file (no envelope) that is not a document of its format: cut short, or
    /// damaged by a program that does not save atomically. Reported by
    /// [`envelope::verify`](crate::envelope::verify); a load says
    /// [`Error::Deserialize`], with the position.
    Unparsable,
}

/// What kind of failure an [`Error`] is, for a caller that decides by kind: restore a
/// backup, retry later, or fix the call ([`Error::category`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// What is stored is damaged, or not what this program can read:
    /// [`Corrupt`](Error::Corrupt), [`Deserialize`](Error::Deserialize),
    /// [`SchemaVersion`](Error::SchemaVersion),
    /// [`UnexpectedEnvelope`](Error::UnexpectedEnvelope),
    /// [`NotEnveloped`](Error::NotEnveloped),
    /// [`GenerationOverflow`](Error::GenerationOverflow).
    Integrity,
    /// The system or the filesystem stopped the operation, or what is there may not be
    /// used: [`Io`](Error::Io), [`NotFound`](Error::NotFound),
    /// [`Refused`](Error::Refused), [`TooLarge`](Error::TooLarge).
    Environment,
    /// Another writer was first: [`Conflict`](Error::Conflict),
    /// [`Locked`](Error::Locked), [`AlreadyExists`](Error::AlreadyExists). Reload and
    /// retry, or give up.
    Concurrency,
    /// The call asked for what cannot be done: [`Serialize`](Error::Serialize),
    /// [`Invalid`](Error::Invalid), [`UnknownFormat`](Error::UnknownFormat).
    Caller,
}

/// Why the crate refused an entry ([`Error::Refused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// A symlink in a shared sticky directory (writable by others, like `/tmp`) owned by
    /// neither the caller nor the directory's owner: the kernel's `protected_symlinks`
    /// rule, applied whatever the sysctl says.
    ForeignSymlink {
        /// The link's owner (uid).
        owner: u32,
    },
    /// A file in a shared sticky directory owned by neither the caller nor the
    /// directory's owner: someone else planted it (the `protected_regular` rule).
    ForeignFile {
        /// The file's owner (uid).
        owner: u32,
    },
    /// Not a regular file where one is needed (a FIFO would block, a device would be
    /// read without end, a directory cannot be replaced).
    NotRegular {
        /// What is there.
        kind: FileKind,
    },
    /// A symlink where the crate never follows one: a lock sidecar, a history version or
    /// manifest, a temporary file.
    Symlink,
    /// The destination is a mount point: a file bind-mounted over it, as
    /// `docker run -v ./app.toml:/app.toml`, Podman or Flatpak do. No rename can replace
    /// it (`EBUSY`); mount the directory that holds the file instead, so that the save
    /// can rename inside it.
    MountPoint,
    /// An object store that does not enforce a conditional write (it accepted a PUT
    /// its condition should have refused): commits could not be ordered on it, and
    /// updates would be lost. The `path` of the error names the store.
    ConditionsIgnored {
        /// The condition it ignored: `If-None-Match: *` or `If-Match`.
        condition: &'static str,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::ForeignSymlink { owner } => write!(
                f,
                "a symlink owned by uid {owner} in a shared sticky directory is not followed \
                 (only links of the caller or of the directory's owner are)"
            ),
            Refusal::ForeignFile { owner } => write!(
                f,
                "a file owned by uid {owner} in a shared sticky directory is not trusted \
                 (only files of the caller or of the directory's owner are)"
            ),
            Refusal::NotRegular { kind } => write!(f, "a {kind}, not a regular file"),
            Refusal::Symlink => f.write_str("a symlink where none is followed"),
            Refusal::ConditionsIgnored { condition } => write!(
                f,
                "an object store that ignores `{condition}`: commits cannot be ordered on it \
                 (use a store that enforces conditional writes)"
            ),
            Refusal::MountPoint => f.write_str(
                "a mount point (a file bind-mounted over it), which no rename can replace: \
                 mount the directory that holds it instead",
            ),
        }
    }
}

/// What a directory entry is, as [`Refusal::NotRegular`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device (`/dev/null`, a terminal).
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Something else.
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::File => "regular file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "FIFO",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Other => "special file",
        })
    }
}

impl Error {
    /// What kind of failure this is.
    ///
    /// ```
    /// use atomic_persist::{Category, Error};
    /// let e = Error::Locked { path: "state.json".into() };
    /// assert_eq!(e.category(), Category::Concurrency);
    /// ```
    pub fn category(&self) -> Category {
        match self {
            Error::Corrupt { .. }
            | Error::Deserialize { .. }
            | Error::SchemaVersion { .. }
            | Error::UnexpectedEnvelope { .. }
            | Error::NotEnveloped { .. }
            | Error::GenerationOverflow { .. } => Category::Integrity,
            Error::Io { .. }
            | Error::NotFound { .. }
            | Error::Refused { .. }
            | Error::TooLarge { .. } => Category::Environment,
            Error::Conflict { .. } | Error::Locked { .. } | Error::AlreadyExists { .. } => {
                Category::Concurrency
            }
            Error::Serialize { .. } | Error::Invalid { .. } | Error::UnknownFormat { .. } => {
                Category::Caller
            }
            Error::Batch { source, .. } => source.category(),
        }
    }

    /// The path the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            Error::Io { path, .. }
            | Error::NotFound { path }
            | Error::AlreadyExists { path }
            | Error::Serialize { path, .. }
            | Error::Deserialize { path, .. }
            | Error::Corrupt { path, .. }
            | Error::Conflict { path, .. }
            | Error::Locked { path }
            | Error::SchemaVersion { path, .. }
            | Error::UnknownFormat { path, .. }
            | Error::Invalid { path, .. }
            | Error::Refused { path, .. }
            | Error::UnexpectedEnvelope { path }
            | Error::NotEnveloped { path }
            | Error::GenerationOverflow { path }
            | Error::TooLarge { path, .. } => path,
            Error::Batch { source, .. } => source.path(),
        }
    }

    /// The same error about `path` (the crate's errors from a format, unplaced, have an
    /// empty path until the file is known; none reaches a caller so).
    pub(crate) fn at(mut self, path: &std::path::Path) -> Error {
        match &mut self {
            Error::Io { path: p, .. }
            | Error::NotFound { path: p }
            | Error::AlreadyExists { path: p }
            | Error::Serialize { path: p, .. }
            | Error::Deserialize { path: p, .. }
            | Error::Corrupt { path: p, .. }
            | Error::Conflict { path: p, .. }
            | Error::Locked { path: p }
            | Error::SchemaVersion { path: p, .. }
            | Error::UnknownFormat { path: p, .. }
            | Error::Invalid { path: p, .. }
            | Error::Refused { path: p, .. }
            | Error::UnexpectedEnvelope { path: p }
            | Error::NotEnveloped { path: p }
            | Error::GenerationOverflow { path: p }
            | Error::TooLarge { path: p, .. } => {
                if p.as_os_str().is_empty() {
                    *p = path.to_path_buf();
                }
            }
            Error::Batch { .. } => {}
        }
        self
    }

    /// Builds an [`Error::Corrupt`].
    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        kind: CorruptKind,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupt {
            path: path.into(),
            kind,
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Refused`].
    pub(crate) fn refused(path: impl Into<PathBuf>, reason: Refusal) -> Error {
        Error::Refused {
            path: path.into(),
            reason,
        }
    }

    /// Builds an [`Error::Io`].
    pub(crate) fn io(op: Op, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// The filesystem operation an [`Error::Io`] was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// Opening the destination's directory.
    OpenDir,
    /// Creating a missing parent directory ([`WriteOptions::create_dirs`](crate::WriteOptions::create_dirs)).
    CreateDir,
    /// Looking at the destination (stat, readlink).
    Inspect,
    /// Creating the temporary file.
    CreateTemp,
    /// Writing bytes into the temporary file.
    Write,
    /// Copying the destination's owner or mode onto the temporary file.
    SetPermissions,
    /// Flushing the temporary file to stable storage (fsync/fdatasync).
    SyncFile,
    /// Renaming (or linking) the temporary file over the destination.
    Rename,
    /// Flushing the directory, so the rename itself is durable.
    SyncDir,
    /// Removing a temporary file.
    RemoveTemp,
    /// Reading a file.
    Read,
    /// Listing a directory.
    ReadDir,
    /// Taking or releasing a lock.
    Lock,
    /// Reading an object from an object store (GET or HEAD; feature `object-store`).
    Get,
    /// Writing an object to an object store (PUT; feature `object-store`).
    Put,
    /// Listing the objects under a prefix of an object store (feature `object-store`).
    List,
    /// Deleting an object from an object store (feature `object-store`).
    Delete,
    /// Watching a directory for changes (feature `watch`).
    Watch,
}

impl Op {
    /// A suggestion appended to the message where one is known to help.
    fn hint(self, source: &io::Error) -> &'static str {
        // Some network and shared-folder filesystems refuse fsync on a directory
        // (EINVAL); say what to do rather than leave the user to guess.
        if self == Op::SyncDir && source.kind() == io::ErrorKind::InvalidInput {
            " (this filesystem cannot sync a directory; Durability::Data skips that step)"
        } else {
            ""
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::OpenDir => "open the directory of",
            Op::CreateDir => "create the directory",
            Op::Inspect => "inspect",
            Op::CreateTemp => "create a temporary file for",
            Op::Write => "write the temporary file for",
            Op::SetPermissions => "set permissions of the temporary file for",
            Op::SyncFile => "sync the temporary file for",
            Op::Rename => "rename the temporary file over",
            Op::SyncDir => "sync the directory of",
            Op::RemoveTemp => "remove temporary file",
            Op::Read => "read",
            Op::ReadDir => "list directory",
            Op::Lock => "lock",
            Op::Get => "get object",
            Op::Put => "put object",
            Op::List => "list objects under",
            Op::Delete => "delete object",
            Op::Watch => "watch",
        })
    }
}

/// ` at line L column C`, or nothing when the format gave no position.
pub(crate) struct Position(pub(crate) Option<usize>, pub(crate) Option<usize>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, " at line {line} column {column}"),
            (Some(line), None) => write!(f, " at line {line}"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_error_names_operation_and_path() {
        let e = Error::io(Op::Rename, "/tmp/x.json", io::Error::other("boom"));
        assert_eq!(
            e.to_string(),
            "cannot rename the temporary file over /tmp/x.json: boom"
        );
    }

    #[test]
    fn dir_sync_einval_suggests_data_durability() {
        let e = Error::io(
            Op::SyncDir,
            "/mnt/share/x",
            io::Error::from(io::ErrorKind::InvalidInput),
        );
        assert!(e.to_string().contains("Durability::Data"), "{e}");
    }

    #[test]
    fn deserialize_error_shows_position() {
        let e = Error::Deserialize {
            path: "a.json".into(),
            format: "json",
            line: Some(3),
            column: Some(7),
            source: "expected value".into(),
        };
        assert_eq!(
            e.to_string(),
            "cannot parse a.json as json at line 3 column 7: expected value"
        );
    }
}
