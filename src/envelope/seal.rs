//! Accepting a hand edit of an enveloped file once, from outside the program that owns it.

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use super::{
    Edits, Meta, Timestamp, checksum, decode, next_generation, split, split_with, write_tail,
};
use crate::atomic::WriteOptions;
use crate::error::{Error, Op, Result};
use crate::format::AnyFormat;
use crate::lock::Lock;
use crate::trust;

/// How long [`seal`] waits for a writer that holds the file's lock.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// What [`seal`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sealed {
    /// The checksum matched already: nothing was written.
    Intact(Meta),
    /// The file was a hand edit: it was written again around the same payload bytes,
    /// with a new checksum and the next generation.
    Resealed {
        /// The meta the file carried before (with the checksum the edit broke).
        was: Meta,
        /// The meta it carries now.
        now: Meta,
    },
}

/// Accepts a hand edit of the enveloped JSON or TOML file at `path` (format from its
/// extension): when its checksum does not match but the envelope around the value is
/// whole and the value parses, writes the file again, atomically, with the payload's
/// bytes exactly as the person left them (comments and layout included), a new checksum,
/// the next generation, this process's [`run_id`](crate::run_id()) and the current time.
/// This is `atomic-persist seal FILE`; inside a program,
/// [`accept_hand_edits`](crate::PersistedBuilder::accept_hand_edits) does the same at
/// load time.
///
/// The file's writer lock ([`Lock`]) is held from the read to the rename, and the file
/// is read again just before the rename: a commit by another writer in between makes
/// the seal fail with [`Error::Conflict`] rather than be overwritten.
///
/// # Errors
///
/// - [`Error::NotEnveloped`] for a plain file: it has no checksum to repair.
/// - [`Error::Corrupt`] when the envelope itself is broken (truncated, no `meta`, a
///   newer version), the payload does not parse, or the file is binary and its checksum
///   does not match: a binary file is never hand-edited, so that is damage.
/// - [`Error::Locked`] when another writer holds the lock for 10 seconds.
/// - [`Error::Conflict`] when the file changed while it was being sealed.
/// - [`Error::UnknownFormat`], [`Error::NotFound`], [`Error::Refused`] and
///   [`Error::Io`] as for any read or save.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::envelope::{Sealed, seal, verify};
/// use atomic_persist::Persisted;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("limits.json");
/// Persisted::<Vec<u32>>::builder(&path).envelope(true).open_or_default()?.set(vec![1])?;
/// let text = std::fs::read_to_string(&path)?;
/// std::fs::write(&path, text.replace("[1]", "[1, 2]"))?; // a hand edit
/// assert!(verify(&path).is_err()); // the checksum no longer matches
///
/// let Sealed::Resealed { now, .. } = seal(&path)? else { panic!("was edited") };
/// assert_eq!(now.generation, 2);
/// assert_eq!(verify(&path)?, Some(now));
/// assert!(std::fs::read_to_string(&path)?.contains("[1, 2]")); // the edit, byte for byte
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn seal(path: impl AsRef<Path>) -> Result<Sealed> {
    let path = path.as_ref();
    let format = AnyFormat::from_path(path)?;
    // Held to the rename: no writer that locks commits between the read and the rename.
    let _lock = Lock::exclusive_timeout(path, LOCK_WAIT)?;
    let bytes = trust::read(path, trust::Read::DATA)?;
    let (sealed, head, payload) = {
        let split = split_with(format, &bytes, true, Edits::Accept).map_err(|e| e.at(path))?;
        let Some(was) = split.meta.clone() else {
            return Err(Error::NotEnveloped {
                path: path.to_path_buf(),
            });
        };
        if !split.edited {
            return Ok(Sealed::Intact(was));
        }
        // An edit that does not parse is not accepted: the owner could not load it.
        decode::<serde::de::IgnoredAny>(format, &bytes, &split).map_err(|e| e.at(path))?;
        let now = restamped(&was, split.payload, path)?;
        let head = bytes[..split.offset].to_vec();
        (Sealed::Resealed { was, now }, head, split.payload.to_vec())
    };
    let Sealed::Resealed { now, .. } = &sealed else {
        unreachable!("returned above")
    };
    write_sealed(path, format, &bytes, (&head, &payload), now)?;
    Ok(sealed)
}

/// The meta after `was` for `payload`: the next generation, now, this run.
fn restamped(was: &Meta, payload: &[u8], path: &Path) -> Result<Meta> {
    let mut meta = Meta {
        run_id: crate::run_id(),
        // Never earlier than the version it follows, whatever the clock says.
        written_at: Timestamp::now().max(was.written_at),
        generation: next_generation(was.generation, path)?,
        schema_version: was.schema_version,
        checksum: 0,
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(payload);
    meta.checksum = checksum(crc, &meta);
    Ok(meta)
}

/// Writes `head`, `payload` and a tail with `meta` over `path`, if the file still holds
/// `read` when the rename comes.
fn write_sealed(
    path: &Path,
    format: AnyFormat,
    read: &[u8],
    (head, payload): (&[u8], &[u8]),
    meta: &Meta,
) -> Result<()> {
    // The tail in the layout of the head: a JSON envelope indented as the crate indents
    // it keeps its indented tail.
    let tail_format = match format {
        #[cfg(feature = "json")]
        AnyFormat::Json if head.contains(&b'\n') => AnyFormat::JsonPretty,
        other => other,
    };
    let mut file = WriteOptions::new().create(path)?;
    let written = file
        .write_all(head)
        .and_then(|()| file.write_all(payload))
        .and_then(|()| write_tail(tail_format, meta, payload.len() as u64, &mut file));
    written.map_err(|e| Error::io(Op::Write, path, e))?;
    file.commit_with(|_| {
        let current = trust::read(path, trust::Read::DATA)?;
        if current == read {
            return Ok(());
        }
        let found = split(format, &current, true)
            .ok()
            .and_then(|s| s.meta)
            .map_or(0, |m| m.generation);
        Err(Error::Conflict {
            path: path.to_path_buf(),
            expected: meta.generation - 1,
            found,
        })
    })
}
