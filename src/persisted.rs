//! `Persisted<T>`: a value that lives in a file, saved atomically.
//!
//! A [`Persisted<T>`] holds a value and the path it belongs to. Reading happens once, at
//! open (or at [`reload`](Persisted::reload)); every [`commit`](Persisted::commit) replaces
//! the file atomically through the [`atomic`](crate::atomic) engine, so the file is always
//! the previous complete value or the new complete value.
//!
//! # What a commit does, in order
//!
//! 1. Runs the [`validate`](PersistedBuilder::validate) hook: a refused value is
//!    [`Error::Invalid`] and nothing on disk is touched.
//! 2. Serializes the value into a hasher, not into memory and not onto disk: a value that
//!    cannot be serialized is [`Error::Serialize`], and the file and its directory are
//!    exactly as they were (no temporary file was ever created).
//! 3. Compares the hash with that of the bytes last loaded or committed: when they are
//!    equal (and the envelope and schema version are too), the commit ends there, with
//!    no temporary file, no fsync and no rename. Only a fingerprint is kept (length,
//!    CRC-32 and a 64-bit SipHash), never a copy of the bytes.
//! 4. Serializes again, this time streaming through a 64 KiB buffer straight into an
//!    [`AtomicFile`](crate::AtomicFile), hashing on the way; with the envelope on, the
//!    meta and checksum follow the payload (see [`envelope`](mod@crate::envelope)). A large
//!    value therefore never has a second copy in memory. TOML has no streaming
//!    serializer, so a TOML value goes through one string (configs are small).
//! 5. Commits the file with the configured [`Durability`].
//!
//! Serializing twice costs CPU, not memory, and buys the two guarantees of steps 2-3.
//!
//! # Loading
//!
//! A missing file is [`Error::NotFound`] (or the default, with
//! [`open_or_default`](Persisted::open_or_default)); an empty file is
//! [`Error::Corrupt`] (a 0-byte file is what non-atomic savers leave after a crash;
//! only a value that is empty in its format, like an empty TOML table, loads from one); a
//! file that does not parse is [`Error::Deserialize`] with line and column for JSON and
//! TOML; a file that parses but fails the validate hook is [`Error::Invalid`]. An
//! enveloped file with a newer schema version than the builder's is
//! [`Error::SchemaVersion`].
//!
//! # Hand-edited TOML keeps its comments
//!
//! When a plain TOML file was loaded, a commit does not write a fresh document: it
//! changes only the values that differ in the loaded document (with `toml_edit`) and
//! writes that, so comments, blank lines, key order and formatting that a person gave the
//! file survive the program saving its settings. Keys the value no longer has are
//! removed, new ones are appended to their table.

// With every format's feature off, nothing can be opened and much compiles away.
#![cfg_attr(
    not(any(feature = "json", feature = "toml", feature = "binary")),
    allow(unused_variables, unused_mut, unreachable_code, dead_code)
)]

use std::fmt;
use std::io::{BufWriter, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::atomic::{Durability, WriteOptions};
use crate::envelope::{self, Fingerprint, Hashing, Meta};
use crate::error::{Error, Op, Result};
use crate::format::{AnyFormat, Format};

/// The validate hook's type.
type Validate<T> = Box<dyn Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static>;

/// The buffer between the serializer and the hasher: serializers make many tiny writes.
const STREAM_BUFFER: usize = 64 * 1024;

/// A value stored in a file, committed atomically. See the [module docs](self).
///
/// ```
/// # #[cfg(feature = "toml")] {
/// use atomic_persist::Persisted;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Default)]
/// struct Settings {
///     volume: u8,
///     theme: String,
/// }
///
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("settings.toml");
/// let mut settings = Persisted::<Settings>::open_or_default(&path)?;
/// settings.update(|s| s.volume = 7)?;
/// assert_eq!(settings.volume, 7); // Deref to the value
///
/// let again = Persisted::<Settings>::open(&path)?;
/// assert_eq!(again.get().volume, 7);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Persisted<T> {
    value: T,
    path: PathBuf,
    config: Config<T>,
    meta: Option<Meta>,
    /// What this handle last read from or wrote to the file; `None` before either.
    disk: Option<OnDisk>,
    /// The loaded plain TOML document, kept so a commit can preserve its comments.
    #[cfg(feature = "toml")]
    document: Option<toml_edit::DocumentMut>,
}

/// The builder's settings, kept by the `Persisted` they configure.
struct Config<T> {
    format: AnyFormat,
    envelope: bool,
    schema_version: u32,
    options: WriteOptions,
    run_id: Option<Uuid>,
    validate: Option<Validate<T>>,
}

/// What is on disk, as far as this handle knows.
#[derive(Clone, Copy, Debug)]
struct OnDisk {
    payload: Fingerprint,
    /// The schema version of an enveloped file; `None` for a plain one.
    enveloped: Option<u32>,
}

/// A value read from a file.
struct Loaded<T> {
    value: T,
    meta: Option<Meta>,
    disk: OnDisk,
    #[cfg(feature = "toml")]
    document: Option<toml_edit::DocumentMut>,
}

/// Builds a [`Persisted<T>`]: `Persisted::<T>::builder(path)`.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{Durability, JsonPretty, Persisted};
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("queue.json");
/// let mut queue = Persisted::<Vec<String>>::builder(&path)
///     .format(JsonPretty)
///     .envelope(true)
///     .schema_version(2)
///     .durability(Durability::Data)
///     .validate(|q| if q.len() <= 1000 { Ok(()) } else { Err("queue too long".into()) })
///     .open_or_default()?;
/// queue.update(|q| q.push("job-1".into()))?;
/// assert_eq!(queue.meta().unwrap().schema_version, 2);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PersistedBuilder<T> {
    path: PathBuf,
    format: Option<AnyFormat>,
    envelope: bool,
    schema_version: u32,
    options: WriteOptions,
    run_id: Option<Uuid>,
    validate: Option<Validate<T>>,
    // Layer 3 (lock, lock_timeout) adds its settings here.
}

impl<T> PersistedBuilder<T> {
    /// The file format; by default it is chosen from the extension (`.json`, `.toml`,
    /// `.bin`).
    pub fn format(mut self, format: impl Format) -> Self {
        self.format = Some(crate::format::any_of(&format));
        self
    }

    /// Wrap the value in the [envelope](mod@crate::envelope): metadata and a checksum
    /// verified on every load (default `false`: the file is the plain value).
    pub fn envelope(mut self, on: bool) -> Self {
        self.envelope = on;
        self
    }

    /// The schema version written into the envelope (default 0). Loading an enveloped
    /// file with a higher version is [`Error::SchemaVersion`].
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema_version = version;
        self
    }

    /// How much of a commit must reach stable storage (default [`Durability::Full`]).
    /// Applies to the current write options; a later
    /// [`write_options`](Self::write_options) replaces it.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.options = self.options.durability(durability);
        self
    }

    /// All options of the atomic write: durability, mode, permissions.
    pub fn write_options(mut self, options: WriteOptions) -> Self {
        self.options = options;
        self
    }

    /// The run id recorded in the envelope, instead of this process's
    /// [`run_id()`](crate::run_id) (a job scheduler's own id, for example).
    pub fn run_id(mut self, id: Uuid) -> Self {
        self.run_id = Some(id);
        self
    }

    /// A check of the value on every commit and load: `Err(reason)` refuses a commit with
    /// [`Error::Invalid`] (the file is untouched) and makes a load fail the same way.
    pub fn validate(
        mut self,
        f: impl Fn(&T) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.validate = Some(Box::new(f));
        self
    }

    fn config(self) -> Result<(PathBuf, Config<T>)> {
        let format = match self.format {
            Some(f) => f,
            None => AnyFormat::from_path(&self.path)?,
        };
        let config = Config {
            format,
            envelope: self.envelope,
            schema_version: self.schema_version,
            options: self.options,
            run_id: self.run_id,
            validate: self.validate,
        };
        Ok((self.path, config))
    }
}

impl<T: Serialize + DeserializeOwned> PersistedBuilder<T> {
    /// Opens an existing file: [`Error::NotFound`] when it does not exist.
    pub fn open(self) -> Result<Persisted<T>> {
        let (path, config) = self.config()?;
        let loaded = load(&path, &config)?;
        Ok(Persisted::from_loaded(path, config, loaded))
    }

    /// Opens the file, or starts from `T::default()` when it does not exist (nothing is
    /// written until the first commit).
    pub fn open_or_default(self) -> Result<Persisted<T>>
    where
        T: Default,
    {
        self.open_or_else(T::default)
    }

    /// Opens the file, or starts from `f()` when it does not exist (nothing is written
    /// until the first commit).
    pub fn open_or_else(self, f: impl FnOnce() -> T) -> Result<Persisted<T>> {
        let (path, config) = self.config()?;
        match load(&path, &config) {
            Ok(loaded) => Ok(Persisted::from_loaded(path, config, loaded)),
            Err(Error::NotFound { .. }) => Ok(Persisted {
                value: f(),
                path,
                config,
                meta: None,
                disk: None,
                #[cfg(feature = "toml")]
                document: None,
            }),
            Err(e) => Err(e),
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for PersistedBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersistedBuilder")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("envelope", &self.envelope)
            .field("schema_version", &self.schema_version)
            .field("options", &self.options)
            .field("run_id", &self.run_id)
            .field("validate", &self.validate.is_some())
            .finish()
    }
}

impl<T: Serialize + DeserializeOwned> Persisted<T> {
    /// Opens an existing file with the defaults (format from the extension, no
    /// envelope): [`Error::NotFound`] when it does not exist.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::builder(path).open()
    }

    /// Opens the file, or starts from `T::default()` when it does not exist.
    pub fn open_or_default(path: impl AsRef<Path>) -> Result<Self>
    where
        T: Default,
    {
        Self::builder(path).open_or_default()
    }

    /// Opens the file, or starts from `f()` when it does not exist.
    pub fn open_or_else(path: impl AsRef<Path>, f: impl FnOnce() -> T) -> Result<Self> {
        Self::builder(path).open_or_else(f)
    }

    /// A builder for the other settings: format, envelope, durability, validation.
    pub fn builder(path: impl AsRef<Path>) -> PersistedBuilder<T> {
        PersistedBuilder {
            path: path.as_ref().to_path_buf(),
            format: None,
            envelope: false,
            schema_version: 0,
            options: WriteOptions::default(),
            run_id: None,
            validate: None,
        }
    }

    /// The value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The value, to change in place before a [`commit`](Self::commit). Prefer
    /// [`update`](Self::update), which commits for you.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Changes the value with `f`, then commits; returns what `f` returned.
    ///
    /// If the commit fails, the changed value stays in memory (not on disk):
    /// [`reload`](Self::reload) to go back to the file.
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let r = f(&mut self.value);
        self.commit()?;
        Ok(r)
    }

    /// Replaces the value, then commits.
    pub fn set(&mut self, value: T) -> Result<()> {
        self.value = value;
        self.commit()
    }

    /// Saves the value atomically; does nothing at all when its bytes equal those last
    /// loaded or committed. See the [module docs](self) for the steps.
    pub fn commit(&mut self) -> Result<()> {
        // Layer 3 wraps this: writer lock, then the on-disk generation check.
        self.write()
    }

    /// Reads the file again, replacing the value in memory.
    pub fn reload(&mut self) -> Result<()> {
        let loaded = load(&self.path, &self.config)?;
        self.apply(loaded);
        Ok(())
    }

    /// The envelope's meta of the file as last loaded or committed: `None` without the
    /// envelope, before the first commit of a new file, or after loading a plain file.
    pub fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }

    /// The file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value, leaving the file as it is.
    pub fn into_inner(self) -> T {
        self.value
    }

    fn from_loaded(path: PathBuf, config: Config<T>, loaded: Loaded<T>) -> Self {
        let mut p = Persisted {
            value: loaded.value,
            path,
            config,
            meta: None,
            disk: None,
            #[cfg(feature = "toml")]
            document: None,
        };
        p.meta = loaded.meta;
        p.disk = Some(loaded.disk);
        #[cfg(feature = "toml")]
        {
            p.document = loaded.document;
        }
        p
    }

    fn apply(&mut self, loaded: Loaded<T>) {
        self.value = loaded.value;
        self.meta = loaded.meta;
        self.disk = Some(loaded.disk);
        #[cfg(feature = "toml")]
        {
            self.document = loaded.document;
        }
    }

    /// The meta of the next commit, checksum still to come.
    fn next_meta(&self) -> Meta {
        let now = SystemTime::now();
        let (generation, written_at) = match &self.meta {
            // Never earlier than the last commit, whatever the clock did since.
            Some(m) => (m.generation + 1, now.max(m.written_at)),
            None => (1, now),
        };
        Meta {
            run_id: self.config.run_id.unwrap_or_else(crate::run_id),
            written_at,
            generation,
            schema_version: self.config.schema_version,
            checksum: 0,
        }
    }

    /// Steps 1-3 of a commit: validate, serialize into a hasher (or, for TOML, a string).
    fn stage(&self) -> Result<Staged> {
        let path = &self.path;
        check(&self.config, &self.value, path)?;
        let (format, enveloped) = (self.config.format, self.config.envelope);
        #[cfg(feature = "toml")]
        if format == AnyFormat::Toml {
            let mut document = None;
            let bytes = if enveloped {
                let mut bytes = Vec::new();
                envelope::write_payload(format, true, &self.value, &mut bytes)
                    .map_err(|e| e.at(path))?;
                bytes
            } else {
                // A plain file is merged into the loaded document (or an empty one), so
                // what a person wrote in it survives.
                let empty = toml_edit::DocumentMut::new();
                let old = self.document.as_ref().unwrap_or(&empty);
                let (doc, bytes) =
                    crate::toml_doc::merged(old, &self.value).map_err(|e| e.at(path))?;
                document = Some(doc);
                bytes
            };
            let mut h = Hashing::new(std::io::sink());
            let _ = h.write_all(&bytes);
            return Ok(Staged {
                payload: h.fingerprint(),
                crc: h.crc,
                bytes: Some(bytes),
                document,
            });
        }
        let mut h = Hashing::new(std::io::sink());
        let mut buf = BufWriter::with_capacity(STREAM_BUFFER, &mut h);
        envelope::write_payload(format, enveloped, &self.value, &mut buf)
            .map_err(|e| e.at(path))?;
        buf.flush()
            .map_err(|e| crate::format::io_serialize_error(e).at(path))?;
        drop(buf);
        Ok(Staged {
            payload: h.fingerprint(),
            crc: h.crc,
            bytes: None,
            #[cfg(feature = "toml")]
            document: None,
        })
    }

    fn write(&mut self) -> Result<()> {
        let staged = self.stage()?;
        let enveloped = self.config.envelope.then_some(self.config.schema_version);
        if let Some(disk) = &self.disk
            && disk.payload == staged.payload
            && disk.enveloped == enveloped
        {
            return Ok(()); // the same bytes are already there
        }
        let format = self.config.format;
        let path = self.path.clone();
        let write_error = |e: std::io::Error| Error::io(Op::Write, &path, e);
        let mut file = self.config.options.create(&self.path)?;
        if enveloped.is_some() {
            envelope::write_head(format, &mut file).map_err(write_error)?;
        }
        let (payload, crc) = match &staged.bytes {
            Some(bytes) => {
                file.write_all(bytes).map_err(write_error)?;
                (staged.payload, staged.crc.clone())
            }
            None => {
                let mut h = Hashing::new(&mut file);
                let mut buf = BufWriter::with_capacity(STREAM_BUFFER, &mut h);
                let written =
                    envelope::write_payload(format, enveloped.is_some(), &self.value, &mut buf)
                        .and_then(|()| buf.flush().map_err(crate::format::io_serialize_error));
                drop(buf);
                if let Err(e) = written {
                    return Err(match h.error.take() {
                        Some(io) => write_error(io),
                        None => e.at(&path),
                    });
                }
                (h.fingerprint(), h.crc)
            }
        };
        let meta = match enveloped {
            Some(_) => {
                let mut meta = self.next_meta();
                meta.checksum = envelope::checksum(crc, &meta);
                envelope::write_tail(format, &meta, payload.len(), &mut file)
                    .map_err(write_error)?;
                Some(meta)
            }
            None => None,
        };
        file.commit()?;
        self.disk = Some(OnDisk { payload, enveloped });
        if meta.is_some() {
            self.meta = meta;
        }
        #[cfg(feature = "toml")]
        {
            self.document = staged.document;
        }
        Ok(())
    }
}

/// A value serialized for a commit.
struct Staged {
    payload: Fingerprint,
    crc: crc32fast::Hasher,
    /// The bytes, for formats that cannot stream (TOML); `None` means "serialize again".
    bytes: Option<Vec<u8>>,
    /// The plain TOML document the bytes are the text of.
    #[cfg(feature = "toml")]
    document: Option<toml_edit::DocumentMut>,
}

impl<T> Deref for Persisted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Persisted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Persisted")
            .field("path", &self.path)
            .field("value", &self.value)
            .field("format", &self.config.format)
            .field("envelope", &self.config.envelope)
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Runs the validate hook.
fn check<T>(config: &Config<T>, value: &T, path: &Path) -> Result<()> {
    match &config.validate {
        Some(validate) => validate(value).map_err(|reason| Error::Invalid {
            path: path.to_path_buf(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Reads a whole file; a missing file is [`Error::NotFound`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            path: path.to_path_buf(),
        },
        _ => Error::io(Op::Read, path, e),
    })
}

fn load<T: DeserializeOwned>(path: &Path, config: &Config<T>) -> Result<Loaded<T>> {
    let bytes = read_file(path)?;
    let format = config.format;
    let split = envelope::split(format, &bytes, config.envelope).map_err(|e| e.at(path))?;
    if let Some(meta) = &split.meta
        && meta.schema_version > config.schema_version
    {
        return Err(Error::SchemaVersion {
            path: path.to_path_buf(),
            found: meta.schema_version,
            supported: config.schema_version,
        });
    }
    let value: T = envelope::decode(format, &bytes, &split).map_err(|e| {
        if bytes.is_empty() {
            envelope::empty_file().at(path)
        } else {
            e.at(path)
        }
    })?;
    check(config, &value, path)?;
    let disk = OnDisk {
        payload: Fingerprint::of(split.payload),
        enveloped: split.meta.as_ref().map(|m| m.schema_version),
    };
    #[cfg(feature = "toml")]
    let document = (format == AnyFormat::Toml && split.meta.is_none() && !config.envelope)
        .then(|| std::str::from_utf8(&bytes).ok()?.parse().ok())
        .flatten();
    Ok(Loaded {
        value,
        meta: split.meta,
        disk,
        #[cfg(feature = "toml")]
        document,
    })
}

impl<T> PersistedBuilder<T> {
    /// The path the builder was made for.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}
