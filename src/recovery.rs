//! Recovering from a damaged file at start-up: what
//! [`PersistedBuilder::open_or_recover`](crate::PersistedBuilder::open_or_recover) and
//! [`HistoryBuilder::open_or_recover`](crate::HistoryBuilder::open_or_recover) did, as a
//! [`Recovery`] record.
//!
//! A program that keeps settings or state should neither refuse to start over a damaged
//! file nor silently start over and lose it. The recovering opens do neither: a file
//! that is *damaged* ([`is_damage`]: a checksum that does not match, a file cut short or
//! empty, an envelope whose structure is broken, a document that does not parse or does
//! not fit the type) is moved aside, and the handle starts from the default (a history
//! from its newest intact version). Nothing is lost: the damaged file keeps its bytes under a name that says what it is and when,
//!
//! ```text
//! settings.toml.corrupt-20261204T101500Z
//! ```
//!
//! beside it (`-2`, `-3`, ... when that name is taken: the move never replaces a file).
//!
//! What is *not* damage is returned as the error it is, and nothing is moved: a file of
//! a newer schema or envelope version (upgrade the program; a downgrade must not eat
//! it), a file that changed while it was read, a value the validate hook refuses, an
//! enveloped file opened without the envelope (or the reverse), and every I/O error.
//!
//! # Security
//!
//! The file moved is the one the save would replace: a symlink is followed as a save
//! follows it (another user's link is refused), and the move is a rename inside that
//! file's own directory, never a copy. In a shared directory the move is refused as a
//! save would be.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{CorruptKind, Error, Op, Result};
use crate::trust;

/// How many taken names (`-2`, `-3`, ...) a move aside tries before it gives up.
const MAX_SUFFIX: u32 = 100;

/// What a recovering open did about a damaged file: where the file went, what was wrong
/// with it, and what the handle starts from instead.
#[derive(Debug)]
#[non_exhaustive]
pub struct Recovery {
    /// The damaged file's new path: `{name}.corrupt-{UTC time}` beside it.
    pub moved_to: PathBuf,
    /// Why it could not be opened (an error [`is_damage`] accepts).
    pub cause: Error,
    /// What the handle holds now.
    pub restored: Restored,
}

/// What a recovering open started from, in place of the damaged file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restored {
    /// The default value (or the value of the function given); nothing is written until
    /// the first commit.
    Default,
    /// A history's newest intact version `from`, made current again as the new
    /// version `generation` (as [`History::rollback`](crate::History::rollback) does).
    Version {
        /// The intact version whose value was restored.
        from: u64,
        /// The generation that now holds it.
        generation: u64,
    },
}

/// Whether `error` says the file is damaged, so that a recovering open moves it aside:
/// [`Error::Corrupt`] (but not [`CorruptKind::NewerEnvelope`], a file of a newer
/// program, nor [`CorruptKind::Changed`], a file rewritten while it was read) and
/// [`Error::Deserialize`] (a document that does not parse, or not as the type).
///
/// ```
/// use atomic_persist::{CorruptKind, Error, recovery};
/// let damaged = Error::Corrupt {
///     path: "a.json".into(),
///     kind: CorruptKind::Checksum,
///     reason: "the checksum does not match".into(),
/// };
/// assert!(recovery::is_damage(&damaged));
/// let newer = Error::SchemaVersion { path: "a.json".into(), found: 3, supported: 2 };
/// assert!(!recovery::is_damage(&newer));
/// ```
pub fn is_damage(error: &Error) -> bool {
    match error {
        Error::Corrupt { kind, .. } => !matches!(
            kind,
            CorruptKind::NewerEnvelope { .. } | CorruptKind::Changed
        ),
        Error::Deserialize { .. } => true,
        _ => false,
    }
}

/// Moves the file at `path` aside to `{name}.corrupt-{time}` in its own directory, never
/// replacing anything, and syncs the directory: the damaged file must not lose its name
/// to the next commit in a power cut. `follow` is the save's own rule: through a symlink
/// when saves follow one (the target is what a save replaces), else the link itself.
/// Returns the new path.
pub(crate) fn move_aside(path: &Path, follow: bool) -> Result<PathBuf> {
    let target = trust::resolve(path, follow)?;
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    for n in 1..=MAX_SUFFIX {
        let name = aside_name(&target.name, &stamp, n);
        match target.dir.rename_noreplace(&target.name, &name) {
            Ok(()) => {
                // The move is the only copy of the damaged bytes: durable before any
                // commit may put a new file under the old name.
                let moved = target.dir_path.join(&name);
                target
                    .dir
                    .sync()
                    .map_err(|e| Error::io(Op::SyncDir, &moved, e))?;
                return Ok(moved);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(Op::Rename, &target.path, e)),
        }
    }
    let e = io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free name to move it aside",
    );
    Err(Error::io(Op::Rename, &target.path, e))
}

/// Keeps the file at `path`, which schema version `found` wrote, under
/// `{name}.schema-{found}.bak` beside it before a migrated value replaces it: a hard
/// link in the directory already open (so nothing is copied, and nothing swapped in
/// between resolves the name again), and the directory synced, so the link is durable
/// before the commit that replaces the name. `follow` as in [`move_aside`]. An existing
/// backup of that version is kept, never replaced. Returns the backup's path.
pub(crate) fn keep_before_migrate(path: &Path, found: u32, follow: bool) -> Result<PathBuf> {
    let target = trust::resolve(path, follow)?;
    let mut name = target.name.clone();
    name.push(format!(".schema-{found}.bak"));
    let backup = target.dir_path.join(&name);
    match target.dir.hard_link(&target.name, &name) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(backup),
        Err(e) => return Err(Error::io(Op::Rename, &backup, e)),
    }
    // Durable before any commit can put the migrated file under the old name.
    target
        .dir
        .sync()
        .map_err(|e| Error::io(Op::SyncDir, &backup, e))?;
    Ok(backup)
}

/// `{name}.corrupt-{stamp}`, and `-{n}` after it from the second try on.
fn aside_name(name: &std::ffi::OsStr, stamp: &str, n: u32) -> OsString {
    let mut out = name.to_os_string();
    out.push(format!(".corrupt-{stamp}"));
    if n > 1 {
        out.push(format!("-{n}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aside_name_says_corrupt_and_when_and_counts_from_the_second() {
        let name = std::ffi::OsStr::new("settings.toml");
        let stamp = "20261204T101500Z";
        assert_eq!(
            aside_name(name, stamp, 1),
            "settings.toml.corrupt-20261204T101500Z"
        );
        assert_eq!(
            aside_name(name, stamp, 3),
            "settings.toml.corrupt-20261204T101500Z-3"
        );
    }
}
