//! A loaded file's payload, checksum verified, before it becomes a value: what every
//! handle decodes and what a `decode` hook (schema migrations) is given.
//!
//! Below the handles and the [`Persist`](crate::Persist) trait, which all use it: it
//! depends only on the envelope and the formats.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;

use crate::envelope::{self, Meta, Split};
use crate::error::{Error, Result};
use crate::format::AnyFormat;

/// A file's payload, checksum verified, not yet deserialized: what a
/// [`decode`](crate::Persist::decode) hook (or
/// [`PersistedBuilder::decode`](crate::PersistedBuilder::decode)) gets.
///
/// It is `Copy`: a hook may try one type, then another.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::Persisted;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("n.json");
/// # std::fs::write(&path, "\"12\"")?;
/// // Accepts a number, or a number written as a string by an older program.
/// let n = Persisted::<u64>::builder(&path)
///     .decode(|_, payload| match payload.deserialize::<u64>() {
///         Ok(n) => Ok(n),
///         Err(e) => payload.deserialize::<String>()?.parse().map_err(|_| e),
///     })
///     .open()?;
/// assert_eq!(*n, 12);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy)]
pub struct Payload<'a> {
    path: &'a Path,
    format: AnyFormat,
    file: &'a [u8],
    split: &'a Split<'a>,
}

impl<'a> Payload<'a> {
    pub(crate) fn new(
        path: &'a Path,
        format: AnyFormat,
        file: &'a [u8],
        split: &'a Split<'a>,
    ) -> Self {
        Payload {
            path,
            format,
            file,
            split,
        }
    }

    /// Deserializes the payload as `T`: [`Error::Deserialize`] (with line and column in
    /// the file for JSON and TOML) when it does not fit, [`Error::Corrupt`] for an empty
    /// file that is not a valid `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Deserialize`](crate::Error::Deserialize) when the payload does not fit `T`;
    /// [`Error::Corrupt`](crate::Error::Corrupt) for an empty file that is not a valid `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        envelope::decode(self.format, self.file, self.split).map_err(|e| {
            if self.file.is_empty() {
                envelope::empty_file().at(self.path)
            } else {
                e.at(self.path)
            }
        })
    }

    /// The file's path.
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The file's format.
    pub fn format(&self) -> AnyFormat {
        self.format
    }

    /// The verified meta of an enveloped file; `None` for a plain file.
    pub fn meta(&self) -> Option<&'a Meta> {
        self.split.meta.as_ref()
    }

    /// The payload's bytes as they are in the file (the whole file when plain).
    pub fn bytes(&self) -> &'a [u8] {
        self.split.payload
    }
}

impl fmt::Debug for Payload<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payload")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("meta", &self.meta())
            .field("len", &self.bytes().len())
            .finish()
    }
}

/// The validate hook's type: `Err(reason)` refuses a value ([`Error::Invalid`]). Shared,
/// so that a watch can check what it reads as its handle does.
pub(crate) type Validate<T> =
    std::sync::Arc<dyn Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static>;

/// The decode hook's type: the file's schema version and its verified payload, to a
/// value.
pub(crate) type Decode<T> = fn(u32, Payload<'_>) -> Result<T>;

/// Runs the validate hook, if any, on a value just loaded or about to be committed.
pub(crate) fn validate<T>(hook: Option<&Validate<T>>, value: &T, path: &Path) -> Result<()> {
    match hook {
        Some(validate) => validate(value).map_err(|reason| Error::Invalid {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}
