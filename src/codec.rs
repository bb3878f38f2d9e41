//! How a handle turns its value into bytes and back: the format, the schema version, the
//! run id and the validate and decode hooks, with the two algorithms every handle runs
//! on them, "decode a loaded file" ([`Codec::value`]) and "stamp the next version"
//! ([`Codec::stamp`]).
//!
//! Every handle (local or object, single value or history) keeps one [`Codec`], resolved
//! from the [`Settings`] its builder's shared setters filled in ([`codec_setters!`]).
//! Below the handles: it depends only on the envelope, the formats and the payload.

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::envelope::{self, Meta, Split, Timestamp};
use crate::error::{Error, Result};
use crate::format::AnyFormat;
use crate::payload::{self, Decode, Payload, Validate};

/// What a builder has set of a [`Codec`]; the format may still come from the name.
pub(crate) struct Settings<T> {
    pub format: Option<AnyFormat>,
    pub schema_version: u32,
    pub run_id: Option<Uuid>,
    pub validate: Option<Validate<T>>,
    pub decode: Option<Decode<T>>,
}

impl<T> Default for Settings<T> {
    fn default() -> Self {
        Settings {
            format: None,
            schema_version: 0,
            run_id: None,
            validate: None,
            decode: None,
        }
    }
}

impl<T> Settings<T> {
    /// The codec for the file or key `name`: the format set, else the one its extension
    /// names ([`Error::UnknownFormat`] when it names none).
    pub(crate) fn resolve(self, name: impl AsRef<Path>) -> Result<Codec<T>> {
        let format = match self.format {
            Some(f) => f,
            None => AnyFormat::from_path(name)?,
        };
        Ok(Codec {
            format,
            schema_version: self.schema_version,
            run_id: self.run_id,
            validate: self.validate,
            decode: self.decode,
        })
    }

    /// Adds the settings to a builder's `Debug`.
    pub(crate) fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("format", &self.format)
            .field("schema_version", &self.schema_version)
            .field("run_id", &self.run_id)
            .field("validate", &self.validate.is_some())
            .field("decode", &self.decode.is_some());
    }
}

/// A handle's codec: see the [module docs](self).
pub(crate) struct Codec<T> {
    pub format: AnyFormat,
    /// The schema version stamped on commits, and the newest one a load accepts.
    pub schema_version: u32,
    /// `None`: this process's [`run_id()`](crate::run_id).
    pub run_id: Option<Uuid>,
    pub validate: Option<Validate<T>>,
    pub decode: Option<Decode<T>>,
}

// Not derived: `T` itself need not be `Clone`.
impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        Codec {
            format: self.format,
            schema_version: self.schema_version,
            run_id: self.run_id,
            validate: self.validate.clone(),
            decode: self.decode,
        }
    }
}

impl<T> Codec<T> {
    /// Runs the validate hook, if any, on a value just loaded or about to be committed.
    pub(crate) fn check(&self, value: &T, path: &Path) -> Result<()> {
        payload::validate(self.validate.as_ref(), value, path)
    }

    /// The meta of a new version `generation` whose payload's CRC-32 is `crc`: this
    /// handle's run id and schema version, written now but never before `not_before`
    /// (the version it follows, whatever the clock did since), checksum sealed.
    pub(crate) fn stamp(
        &self,
        generation: u64,
        not_before: Option<Timestamp>,
        crc: crc32fast::Hasher,
    ) -> Meta {
        let who = (self.run_id, self.schema_version);
        stamp(who, generation, not_before, crc)
    }
}

/// The meta of a new version `generation` whose payload's CRC-32 is `crc`, by the run
/// and schema version `who` (no run id: this process's [`run_id()`](crate::run_id)):
/// written now but never before `not_before`, checksum sealed. [`Codec::stamp`], for
/// the byte-level history that has no codec.
pub(crate) fn stamp(
    (run_id, schema_version): (Option<Uuid>, u32),
    generation: u64,
    not_before: Option<Timestamp>,
    crc: crc32fast::Hasher,
) -> Meta {
    let now = Timestamp::now();
    let mut meta = Meta {
        run_id: run_id.unwrap_or_else(crate::run_id),
        written_at: not_before.map_or(now, |t| now.max(t)),
        generation,
        schema_version,
        checksum: 0,
    };
    meta.checksum = envelope::checksum(crc, &meta);
    meta
}

impl<T: DeserializeOwned> Codec<T> {
    /// The value of the file at `path` (its bytes `file`, split and verified): a newer
    /// schema is [`Error::SchemaVersion`] before anything is decoded; then the decode
    /// hook (given the file's schema version, or for a plain file, which does not say,
    /// the handle's own) or plain deserialization; then the validate hook.
    pub(crate) fn value(&self, path: &Path, file: &[u8], split: &Split<'_>) -> Result<T> {
        let found = split.meta.as_ref().map(|m| m.schema_version);
        let newer = found.is_some_and(|f| f > self.schema_version);
        // A hook sees the payload's bytes, and a newer schema is refused before any
        // parse: both must see only what a full split accepts.
        if split.unparsed && (newer || self.decode.is_some()) {
            envelope::split(self.format, file, true).map_err(|e| e.at(path))?;
        }
        if let Some(found) = found
            && newer
        {
            return Err(Error::SchemaVersion {
                path: path.to_path_buf(),
                found,
                supported: self.schema_version,
            });
        }
        let payload = Payload::new(path, self.format, file, split);
        let value = match self.decode {
            Some(decode) => decode(found.unwrap_or(self.schema_version), payload)?,
            None => payload.deserialize()?,
        };
        self.check(&value, path)?;
        Ok(value)
    }
}

/// The setters of a builder's [`Settings`], written once for the four builders; `$handle`
/// is the handle's type name (for the docs), then the path of the builder's `Settings`
/// field.
macro_rules! codec_setters {
    ($handle:literal, $($field:ident).+) => {
        /// The format: a built-in one (`Json`, `Toml`, an [`AnyFormat`](crate::AnyFormat))
        /// or `&'static` a [`CustomFormat`](crate::CustomFormat) of your own. By default
        /// it is chosen from the extension (`.json`, `.toml`, `.yaml`/`.yml`, `.ron`,
        /// `.bin`).
        pub fn format(mut self, format: impl Into<crate::format::AnyFormat>) -> Self {
            self.$($field).+.format = Some(format.into());
            self
        }

        /// The schema version recorded in the envelope of every commit (default 0).
        /// Loading a version written with a higher one is
        /// [`Error::SchemaVersion`](crate::Error::SchemaVersion), before anything is
        /// decoded.
        pub fn schema_version(mut self, version: u32) -> Self {
            self.$($field).+.schema_version = version;
            self
        }

        /// The run id recorded in the envelope instead of this process's
        /// [`run_id()`](crate::run_id) (a job scheduler's own id, for example).
        pub fn run_id(mut self, id: uuid::Uuid) -> Self {
            self.$($field).+.run_id = Some(id);
            self
        }

        #[doc = concat!("A check of the value on every load and before every commit of the [`", $handle, "`](crate::", $handle, "):")]
        /// `Err(reason)` is [`Error::Invalid`](crate::Error::Invalid), naming the file or
        /// key; a refused commit writes nothing, a refused load returns no value.
        pub fn validate(
            mut self,
            f: impl Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static,
        ) -> Self {
            self.$($field).+.validate = Some(std::sync::Arc::new(f));
            self
        }

        /// How a loaded payload becomes a value, instead of deserializing it as `T`: `f`
        /// gets the file's schema version (for a plain file, which does not say, the
        /// builder's [`schema_version`](Self::schema_version)) and the
        /// [`Payload`](crate::Payload), checksum verified. A version newer than the
        /// builder's is refused with [`Error::SchemaVersion`](crate::Error::SchemaVersion)
        /// before `f` is called. This is the hook schema migrations use
        /// ([`Persist::decode`](crate::Persist::decode)).
        pub fn decode(mut self, f: fn(u32, crate::Payload<'_>) -> crate::Result<T>) -> Self {
            self.$($field).+.decode = Some(f);
            self
        }
    };
}

pub(crate) use codec_setters;
