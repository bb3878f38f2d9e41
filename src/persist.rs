//! The [`Persist`] trait: a type that knows its own file, and `#[derive(Persist)]`.
//!
//! A type that implements [`Persist`] carries its settings as constants (default path,
//! format, envelope, durability, schema version) and gets [`load`](Persist::load),
//! [`save`](Persist::save) and [`persisted`](Persist::persisted) for free. The derive
//! (feature `derive`, on by default) fills in the constants from a `#[persist(..)]`
//! attribute; a hand-written `impl Persist` works the same.
//!
//! ```
//! # #[cfg(all(feature = "derive", feature = "toml"))] {
//! use atomic_persist::{Persist, Persisted};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Default, Persist)]
//! #[persist(path = "settings.toml")]
//! struct Settings {
//!     theme: String,
//!     font_size: u32,
//! }
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("settings.toml");
//!
//! // `load()` and `save()` use `path`; `load_from` and `save_to` take another one.
//! let mut s = Settings::load_or_default_from(&path)?;
//! s.font_size += 1;
//! s.save_to(&path)?;
//! assert_eq!(Settings::load_from(&path)?.font_size, 1);
//!
//! // The `Persisted` wrapper, for update and commit.
//! let mut p: Persisted<Settings> = Settings::builder_at(&path).open()?;
//! p.update(|s| s.theme = "dark".into())?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Attributes
//!
//! | key | value | constant | default |
//! |---|---|---|---|
//! | `path` | string, required | [`PATH`](Persist::PATH) | — |
//! | `app` | string | [`APP`](Persist::APP) | none |
//! | `format` | `"json"`, `"json-pretty"`, `"toml"`, `"yaml"`, `"ron"`, `"binary"`, or a [`CustomFormat`](crate::CustomFormat) unit struct: `format = MessagePack` | [`FORMAT`](Persist::FORMAT) | from the extension |
//! | `envelope` | bool | [`ENVELOPE`](Persist::ENVELOPE) | `false` |
//! | `hand_edits` | bool | [`HAND_EDITS`](Persist::HAND_EDITS) | `false` |
//! | `create_dirs` | bool | [`CREATE_DIRS`](Persist::CREATE_DIRS) | `false` |
//! | `backup_before_migrate` | bool | [`BACKUP_BEFORE_MIGRATE`](Persist::BACKUP_BEFORE_MIGRATE) | `false` |
//! | `durability` | `"full"`, `"data"`, `"none"` | [`DURABILITY`](Persist::DURABILITY) | `"full"` |
//! | `version` | integer, needs `envelope = true` | [`VERSION`](Persist::VERSION) | `0` |
//! | `migrate_from` | a type, needs `version` | [`decode`](Persist::decode) | — |
//!
//! Mistakes are compile errors that point at the attribute: an unknown key, a value of
//! the wrong type, an unknown format or durability, `version` without
//! `envelope = true`, `migrate_from` without `version`, a `migrate_from` type without
//! `impl From<Older> for Self` or with a `version` that is not lower, `app` without the
//! `app-dirs` feature, and unions (serde cannot store them). Generic structs and enums
//! are supported; the impl then requires the type to be `Serialize` and
//! `DeserializeOwned`.
//!
//! `version` needs the envelope because only the envelope stores the schema version in
//! the file: `#[persist(path = "settings.toml", version = 2)]` without
//! `envelope = true` is a compile error, not a promise that could not be kept.
//!
//! # Schema migrations
//!
//! `#[persist(version = 3, migrate_from = V2)]` declares that this type is schema version
//! 3 and that version 2 was `V2`, with `impl From<V2> for Self`. `V2` may itself say
//! `#[persist(version = 2, migrate_from = V1)]`, and so on: a chain.
//!
//! - Loading a file whose envelope says schema version *k* below the current one
//!   deserializes the payload (after its checksum is verified) as the type of the chain
//!   whose version is *k* (or, when no type has exactly *k*, the oldest one whose
//!   version is at least *k*), then converts it up the chain with `From`, one step at a
//!   time.
//! - The next save writes the current type with the current version: a migrated file is
//!   rewritten on its first save, never on load.
//! - A file with a newer schema version than the code is
//!   [`Error::SchemaVersion`] `{ path, found, supported }`, on load and on save: an older
//!   program does not overwrite a newer program's file.
//! - **Without the envelope** the file does not say which version it is: the current
//!   type is tried, and a file of an older shape is [`Error::Deserialize`] unless the
//!   current type still reads it (with `#[serde(default)]` on new fields, for example).
//!
//! ```
//! # #[cfg(all(feature = "derive", feature = "json"))] {
//! use atomic_persist::Persist;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Persist)]
//! #[persist(path = "app.json", envelope = true, version = 1)]
//! struct V1 { name: String }
//!
//! #[derive(Serialize, Deserialize, Persist, Debug, PartialEq)]
//! #[persist(path = "app.json", envelope = true, version = 2, migrate_from = V1)]
//! struct V2 { first: String, last: String }
//!
//! impl From<V1> for V2 {
//!     fn from(v1: V1) -> V2 {
//!         let (first, last) = v1.name.split_once(' ').unwrap_or((&v1.name, ""));
//!         V2 { first: first.into(), last: last.into() }
//!     }
//! }
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("app.json");
//!
//! V1 { name: "Ada Lovelace".into() }.save_to(&path)?;
//! let v2 = V2::load_from(&path)?;
//! assert_eq!(v2, V2 { first: "Ada".into(), last: "Lovelace".into() });
//! v2.save_to(&path)?; // now schema version 2 on disk
//! assert_eq!(atomic_persist::envelope::verify(&path)?.unwrap().schema_version, 2);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # `app`: the platform's configuration directory
//!
//! With `app = "name"` (or [`APP`](Persist::APP) `= Some("name")`), a relative `path`
//! is placed in that application's configuration directory, found by the `directories`
//! crate as `confy` does (`ProjectDirs::from("rs", "", name)`): `~/.config/name/` on
//! Linux, `~/Library/Application Support/rs.name/` on macOS, `%APPDATA%\name\config\`
//! on Windows. An absolute `path` is used as it is. [`save`](Persist::save) and
//! [`persisted`](Persist::persisted) create that directory when it is missing (`load`
//! never does). This needs the `app-dirs` feature:
//! without it, the attribute `app` is a compile error, and a hand-written `APP` makes
//! [`default_path`](Persist::default_path) (so `load`, `save`, ...) fail with an
//! [`Error::Io`] of kind `Unsupported` that names the feature.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::atomic::Durability;

use crate::error::{Error, Op, Result};
use crate::format::AnyFormat;
pub use crate::payload::Payload;
use crate::persisted::{Persisted, PersistedBuilder};

/// A type stored in a file of its own. See the [module docs](self).
///
/// Implement it with `#[derive(Persist)]`, or by hand: only [`PATH`](Self::PATH) has no
/// default.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{Durability, Persist};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Default)]
/// struct Progress { next_item: u64 }
///
/// impl Persist for Progress {
///     const PATH: &'static str = "progress.json";
///     const ENVELOPE: bool = true;
///     const DURABILITY: Durability = Durability::Data;
/// }
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("progress.json");
///
/// Progress { next_item: 7 }.save_to(&path)?;
/// assert_eq!(Progress::load_from(&path)?.next_item, 7);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Persist: Serialize + DeserializeOwned {
    /// The file, relative to the working directory (or, with [`APP`](Self::APP), to the
    /// application's configuration directory) unless absolute.
    const PATH: &'static str;

    /// The application whose configuration directory holds a relative
    /// [`PATH`](Self::PATH) (feature `app-dirs`; see the
    /// [module docs](self#app-the-platforms-configuration-directory)).
    const APP: Option<&'static str> = None;

    /// The format; `None` chooses it from the extension of the path.
    const FORMAT: Option<AnyFormat> = None;

    /// Whether the file carries the [envelope](mod@crate::envelope) (meta and checksum).
    const ENVELOPE: bool = false;

    /// Whether an enveloped JSON or TOML file that a person edited loads, re-stamped at
    /// the next save (see
    /// [`PersistedBuilder::accept_hand_edits`](crate::PersistedBuilder::accept_hand_edits));
    /// without the envelope there is no checksum, and every edit loads.
    const HAND_EDITS: bool = false;

    /// Whether a save creates the file's missing parent directories (see
    /// [`WriteOptions::create_dirs`](crate::WriteOptions::create_dirs)).
    const CREATE_DIRS: bool = false;

    /// Whether loading a file an older schema version wrote keeps it as
    /// `{name}.schema-{found}.bak` before the migrated value can replace it (see
    /// [`PersistedBuilder::backup_before_migrate`]).
    const BACKUP_BEFORE_MIGRATE: bool = false;

    /// How much of a save must reach stable storage.
    const DURABILITY: Durability = Durability::Full;

    /// The schema version this type reads and writes (stored only with the envelope).
    const VERSION: u32 = 0;

    /// Builds the value from a file's payload whose schema version is `found` (for a
    /// plain file, which does not say, `found` is [`VERSION`](Self::VERSION)).
    ///
    /// The default is [`decode_current`]: [`Error::SchemaVersion`] when `found` is
    /// newer than [`VERSION`](Self::VERSION), else the payload deserialized as `Self`.
    /// `#[derive(Persist)]` with `migrate_from = Older` overrides it: an older `found`
    /// is decoded by `Older::decode` and converted with `From`. Override it by hand for
    /// migrations the chain cannot express.
    ///
    /// # Errors
    ///
    /// [`Error::SchemaVersion`] when `found` is newer than
    /// [`VERSION`](Self::VERSION); [`Error::Deserialize`] when
    /// the payload does not fit.
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// use atomic_persist::persist::{decode_current, Payload};
    /// use atomic_persist::{Persist, Result};
    /// use serde::{Deserialize, Serialize};
    ///
    /// /// Version 0 stored a bare number; version 1 a struct.
    /// #[derive(Serialize, Deserialize, Debug, PartialEq)]
    /// struct Limits { max: u64 }
    ///
    /// impl Persist for Limits {
    ///     const PATH: &'static str = "limits.json";
    ///     const ENVELOPE: bool = true;
    ///     const VERSION: u32 = 1;
    ///     fn decode(found: u32, payload: Payload<'_>) -> Result<Self> {
    ///         match found {
    ///             0 => Ok(Limits { max: payload.deserialize()? }),
    ///             _ => decode_current(found, payload),
    ///         }
    ///     }
    /// }
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("limits.json");
    /// # atomic_persist::Persisted::<u64>::builder(&path).envelope(true).open_or_else(|| 9)?.commit()?;
    /// // `path` holds a version-0 file with the number 9.
    /// assert_eq!(Limits::load_from(&path)?, Limits { max: 9 });
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn decode(found: u32, payload: Payload<'_>) -> Result<Self> {
        decode_current(found, payload)
    }

    /// [`PATH`](Self::PATH), placed in the configuration directory of
    /// [`APP`](Self::APP) when both are set and the path is relative.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::OpenDir`] when
    /// [`APP`](Self::APP) is set and no configuration directory is known (no home
    /// directory), or the `app-dirs` feature is off.
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// use atomic_persist::Persist;
    /// # #[derive(serde::Serialize, serde::Deserialize)] struct State;
    /// impl Persist for State {
    ///     const PATH: &'static str = "state.json";
    /// }
    /// assert_eq!(State::default_path()?, std::path::Path::new("state.json"));
    /// # }
    /// # Ok::<(), atomic_persist::Error>(())
    /// ```
    fn default_path() -> Result<PathBuf> {
        resolve(Self::PATH, Self::APP)
    }

    /// A [`PersistedBuilder`] for `path` with this type's settings and its
    /// [`decode`](Self::decode) hook, for the options the constants do not cover
    /// (validation, write options, run id).
    ///
    /// ```
    /// # #[cfg(all(feature = "derive", feature = "json"))] {
    /// use atomic_persist::Persist;
    /// #[derive(serde::Serialize, serde::Deserialize, Default, Persist)]
    /// #[persist(path = "queue.json")]
    /// struct Queue { jobs: Vec<String> }
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("queue.json");
    ///
    /// let mut q = Queue::builder_at(&path)
    ///     .validate(|q| if q.jobs.len() <= 2 { Ok(()) } else { Err("too many".into()) })
    ///     .open_or_default()?;
    /// q.update(|q| q.jobs.push("a".into()))?;
    /// assert!(q.update(|q| q.jobs.extend(["b".into(), "c".into()])).is_err());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn builder_at(path: impl AsRef<Path>) -> PersistedBuilder<Self> {
        configured::<Self, Self>(path.as_ref()).decode(Self::decode)
    }

    /// A [`HistoryBuilder`](crate::history::HistoryBuilder) for `path` with this type's
    /// format, durability, schema version and migration chain: every version of the
    /// history, current or old, is read as [`load_from`](Self::load_from) would read it
    /// (older schema versions migrated, newer ones refused), and new versions are
    /// written at [`VERSION`](Self::VERSION). A history is always enveloped.
    ///
    /// ```
    /// # #[cfg(all(feature = "derive", feature = "json"))] {
    /// use atomic_persist::Persist;
    /// #[derive(serde::Serialize, serde::Deserialize, Default, Persist)]
    /// #[persist(path = "model.json", envelope = true, version = 1)]
    /// struct Model { epoch: u32 }
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("model.json");
    ///
    /// let mut h = Model::history_at(&path).keep(3).open_or_default()?;
    /// h.update(|m| m.epoch += 1)?;
    /// assert_eq!(h.versions()?[0].schema_version, 1);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "json")]
    fn history_at(path: impl AsRef<Path>) -> crate::history::HistoryBuilder<Self> {
        let mut b = crate::history::History::<Self>::builder(path)
            .schema_version(Self::VERSION)
            .write_options(
                crate::WriteOptions::new()
                    .durability(Self::DURABILITY)
                    .create_dirs(Self::CREATE_DIRS),
            )
            .decode(Self::decode);
        if let Some(format) = Self::FORMAT {
            b = b.format(format);
        }
        b
    }

    /// [`builder_at`](Self::builder_at) the [`default_path`](Self::default_path).
    ///
    /// # Errors
    ///
    /// As [`default_path`](Self::default_path).
    fn builder() -> Result<PersistedBuilder<Self>> {
        Ok(Self::builder_at(Self::default_path()?))
    }

    /// Loads the value from the [`default_path`](Self::default_path):
    /// [`Error::NotFound`] when there is no file. Older schema versions are migrated
    /// (see the [module docs](self#schema-migrations)).
    ///
    /// # Errors
    ///
    /// As [`default_path`](Self::default_path) and [`load_from`](Self::load_from).
    fn load() -> Result<Self> {
        Self::load_from(Self::default_path()?)
    }

    /// Loads the value from `path`: [`Error::NotFound`] when there is no file.
    ///
    /// # Errors
    ///
    /// As [`PersistedBuilder::open`](crate::PersistedBuilder::open):
    /// [`Error::NotFound`],
    /// [`Error::Corrupt`],
    /// [`Error::Deserialize`],
    /// [`Error::SchemaVersion`] and the rest.
    ///
    /// ```
    /// # #[cfg(all(feature = "derive", feature = "json"))] {
    /// use atomic_persist::{Error, Persist};
    /// #[derive(serde::Serialize, serde::Deserialize, Persist)]
    /// #[persist(path = "state.json")]
    /// struct State { n: u32 }
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("state.json");
    /// assert!(matches!(State::load_from(&path), Err(Error::NotFound { .. })));
    /// State { n: 3 }.save_to(&path)?;
    /// assert_eq!(State::load_from(&path)?.n, 3);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn load_from(path: impl AsRef<Path>) -> Result<Self> {
        Ok(Self::builder_at(path).open()?.into_inner())
    }

    /// Loads the value from the [`default_path`](Self::default_path), or
    /// `Self::default()` when there is no file (nothing is written).
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), except that a missing file is not an error.
    fn load_or_default() -> Result<Self>
    where
        Self: Default,
    {
        Self::load_or_default_from(Self::default_path()?)
    }

    /// Loads the value from `path`, or `Self::default()` when there is no file (nothing
    /// is written). Any other error (a damaged file, for one) is returned, not replaced
    /// by the default.
    ///
    /// # Errors
    ///
    /// As [`load_from`](Self::load_from), except that a missing file is not an error.
    fn load_or_default_from(path: impl AsRef<Path>) -> Result<Self>
    where
        Self: Default,
    {
        Ok(Self::builder_at(path).open_or_default()?.into_inner())
    }

    /// Loads the value from the [`default_path`](Self::default_path), or
    /// `Self::default()` when there is no file **or it is damaged**; a damaged file is
    /// moved aside first, never deleted, and the [`Recovery`](crate::Recovery) says
    /// where (see [`PersistedBuilder::open_or_recover`]).
    ///
    /// # Errors
    ///
    /// As [`default_path`](Self::default_path) and
    /// [`load_or_recover_from`](Self::load_or_recover_from).
    fn load_or_recover() -> Result<(Self, Option<crate::Recovery>)>
    where
        Self: Default,
    {
        Self::load_or_recover_from(Self::default_path()?)
    }

    /// Loads the value from `path`, or `Self::default()` when there is no file or it is
    /// damaged (moved aside first: [`PersistedBuilder::open_or_recover`]).
    ///
    /// # Errors
    ///
    /// As [`PersistedBuilder::open_or_recover`].
    fn load_or_recover_from(path: impl AsRef<Path>) -> Result<(Self, Option<crate::Recovery>)>
    where
        Self: Default,
    {
        let (p, recovery) = Self::builder_at(path).open_or_recover(Self::default)?;
        Ok((p.into_inner(), recovery))
    }

    /// Saves the value atomically to the [`default_path`](Self::default_path). With
    /// [`APP`](Self::APP), the application's configuration directory is created first
    /// when it does not exist yet.
    ///
    /// # Errors
    ///
    /// As [`default_path`](Self::default_path) and [`save_to`](Self::save_to);
    /// [`Error::Io`] with [`Op::OpenDir`] when the
    /// configuration directory cannot be created.
    fn save(&self) -> Result<()> {
        self.save_to(writable::<Self>()?)
    }

    /// Saves the value atomically to `path`, with the current
    /// [`VERSION`](Self::VERSION).
    ///
    /// The file already there is read first, but not deserialized: with the envelope,
    /// its generation is carried on (and a damaged envelope is [`Error::Corrupt`], a
    /// newer schema version [`Error::SchemaVersion`], and the file is left alone); a
    /// plain TOML file keeps its comments. When the bytes would not change, nothing is
    /// written.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when the file there has a damaged
    /// envelope; otherwise as [`Persisted::commit`](crate::Persisted::commit).
    fn save_to(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut p = configured::<Self, Slot<'_, Self>>(path.as_ref())
            .decode(|_, _| Ok(Slot::Unread))
            .open_or_else(|| Slot::Unread)?;
        *p.get_mut() = Slot::Value(self);
        p.commit()
    }

    /// [`load`](Self::load) on tokio's blocking pool (feature `tokio`): the same
    /// synchronous load, in one `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load), and [`Error::Io`] with
    /// [`io::ErrorKind::Interrupted`](std::io::ErrorKind::Interrupted) when the runtime
    /// cancelled the blocking task.
    ///
    /// ```standalone_crate
    /// # #[cfg(all(feature = "derive", feature = "json"))]
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), atomic_persist::Error> {
    /// use atomic_persist::Persist;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # std::env::set_current_dir(dir.path()).unwrap(); // a process of its own
    /// #[derive(serde::Serialize, serde::Deserialize, Persist)]
    /// #[persist(path = "state.json")]
    /// struct State { n: u32 }
    ///
    /// let (_, saved) = State { n: 7 }.save_async().await;
    /// saved?;
    /// assert_eq!(State::load_async().await?.n, 7);
    /// # Ok(())
    /// # }
    /// # #[cfg(not(all(feature = "derive", feature = "json")))]
    /// # fn main() {}
    /// ```
    #[cfg(feature = "tokio")]
    fn load_async() -> impl Future<Output = Result<Self>> + Send
    where
        Self: Send + 'static,
    {
        crate::asynchronous::run(Self::default_path(), Op::Read, |_| Self::load())
    }

    /// [`load_or_default`](Self::load_or_default) on tokio's blocking pool (feature
    /// `tokio`).
    ///
    /// # Errors
    ///
    /// As [`load_or_default`](Self::load_or_default), and [`Error::Io`]
    /// with [`io::ErrorKind::Interrupted`](std::io::ErrorKind::Interrupted) when the
    /// runtime cancelled the blocking task.
    #[cfg(feature = "tokio")]
    fn load_or_default_async() -> impl Future<Output = Result<Self>> + Send
    where
        Self: Default + Send + 'static,
    {
        crate::asynchronous::run(Self::default_path(), Op::Read, |_| Self::load_or_default())
    }

    /// [`save`](Self::save) on tokio's blocking pool (feature `tokio`). Takes the value
    /// and gives it back with the result, as
    /// [`Persisted::commit_async`](crate::Persisted::commit_async) does; dropping the
    /// future does not undo a save that started (see
    /// [`asynchronous`](crate::asynchronous)).
    ///
    /// # Errors
    ///
    /// As [`save`](Self::save), and [`Error::Io`] with
    /// [`io::ErrorKind::Interrupted`](std::io::ErrorKind::Interrupted) when the runtime
    /// cancelled the blocking task.
    #[cfg(feature = "tokio")]
    fn save_async(self) -> impl Future<Output = (Self, Result<()>)> + Send
    where
        Self: Send + 'static,
    {
        let path = Self::default_path().unwrap_or_else(|_| Self::PATH.into());
        crate::asynchronous::run_with(self, path, Op::Write, |v| v.save())
    }

    /// A [`Persisted<Self>`] at the [`default_path`](Self::default_path), for
    /// [`update`](Persisted::update) and [`commit`](Persisted::commit); starts from
    /// `Self::default()` when there is no file. Use [`builder`](Self::builder) to open
    /// without a default. With [`APP`](Self::APP), the application's configuration
    /// directory is created when it does not exist yet, so that commits can succeed.
    ///
    /// # Errors
    ///
    /// As [`default_path`](Self::default_path) and
    /// [`PersistedBuilder::open_or_default`](crate::PersistedBuilder::open_or_default).
    fn persisted() -> Result<Persisted<Self>>
    where
        Self: Default,
    {
        Self::builder_at(writable::<Self>()?).open_or_default()
    }

    /// Watches the file at the [`default_path`](Self::default_path) for commits (feature
    /// `watch`): each new value after the one there now, as
    /// [`Persisted::watch`](crate::Persisted::watch) yields them.
    ///
    /// # Errors
    ///
    /// As [`persisted`](Self::persisted) and [`Persisted::watch`](crate::Persisted::watch).
    #[cfg(feature = "watch")]
    fn watch() -> Result<crate::watch::Watch<Self>>
    where
        Self: Default + Send + 'static,
    {
        Self::persisted()?.watch()
    }

    /// Watches the file at `path` for commits (feature `watch`), as
    /// [`watch`](Self::watch) does the default path's.
    ///
    /// # Errors
    ///
    /// As [`PersistedBuilder::open_or_default`] and
    /// [`Persisted::watch`](crate::Persisted::watch).
    #[cfg(feature = "watch")]
    fn watch_from(path: impl AsRef<Path>) -> Result<crate::watch::Watch<Self>>
    where
        Self: Default + Send + 'static,
    {
        Self::builder_at(path).open_or_default()?.watch()
    }
}

/// What [`Persist::decode`] does by default: [`Error::SchemaVersion`] when `found` is
/// newer than `T::VERSION`, else the payload deserialized as `T`.
///
/// # Errors
///
/// [`Error::SchemaVersion`] when `found` is newer than
/// `T::VERSION`; [`Error::Deserialize`] (or
/// [`Error::Corrupt`] for an empty file) when the payload does not
/// fit `T`.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::persist::{decode_current, Payload};
/// use atomic_persist::{Persist, Result};
/// # #[derive(serde::Serialize, serde::Deserialize)] struct Old;
/// # #[derive(serde::Serialize, serde::Deserialize)] struct State;
/// # impl From<Old> for State { fn from(_: Old) -> State { State } }
/// impl Persist for State {
///     const PATH: &'static str = "state.json";
///     const ENVELOPE: bool = true;
///     const VERSION: u32 = 4;
///     fn decode(found: u32, payload: Payload<'_>) -> Result<Self> {
///         if found < 3 {
///             return payload.deserialize::<Old>().map(State::from);
///         }
///         decode_current(found, payload)
///     }
/// }
/// # }
/// ```
pub fn decode_current<T: Persist>(found: u32, payload: Payload<'_>) -> Result<T> {
    if found > T::VERSION {
        return Err(Error::SchemaVersion {
            path: payload.path().to_path_buf(),
            found,
            supported: T::VERSION,
        });
    }
    payload.deserialize()
}

/// A builder for `path` with `T`'s constants, for a `Persisted<U>`.
fn configured<T: Persist, U: Serialize + DeserializeOwned>(path: &Path) -> PersistedBuilder<U> {
    let mut b = Persisted::<U>::builder(path)
        .envelope(T::ENVELOPE)
        .accept_hand_edits(T::HAND_EDITS)
        .schema_version(T::VERSION)
        .durability(T::DURABILITY)
        .create_dirs(T::CREATE_DIRS)
        .backup_before_migrate(T::BACKUP_BEFORE_MIGRATE);
    if let Some(format) = T::FORMAT {
        b = b.format(format);
    }
    b
}

/// The value [`Persist::save_to`] commits: borrowed, so saving needs no `Clone`. The
/// file's old payload is never deserialized (`Unread`).
enum Slot<'a, T> {
    Unread,
    Value(&'a T),
}

impl<T: Serialize> Serialize for Slot<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Slot::Value(v) => v.serialize(s),
            Slot::Unread => Err(serde::ser::Error::custom("no value to save")),
        }
    }
}

impl<'de, T> Deserialize<'de> for Slot<'_, T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Slot::Unread)
    }
}

/// `T::default_path()`, with the configuration directory created when `T::APP` placed
/// the file there (the working directory, or the directory of an absolute `PATH`, is
/// the caller's business).
fn writable<T: Persist>() -> Result<PathBuf> {
    let path = T::default_path()?;
    if T::APP.is_some()
        && Path::new(T::PATH).is_relative()
        && let Some(dir) = path.parent()
    {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(Op::OpenDir, &path, e))?;
    }
    Ok(path)
}

/// `path` in `app`'s configuration directory when it is relative.
fn resolve(path: &'static str, app: Option<&'static str>) -> Result<PathBuf> {
    let file = Path::new(path);
    let Some(app) = app.filter(|_| file.is_relative()) else {
        return Ok(file.to_path_buf());
    };
    #[cfg(feature = "app-dirs")]
    {
        match directories::ProjectDirs::from("rs", "", app) {
            Some(dirs) => Ok(dirs.config_dir().join(file)),
            None => Err(Error::io(
                Op::OpenDir,
                file,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "no configuration directory for the app `{app}`: no home \
                         directory is known"
                    ),
                ),
            )),
        }
    }
    #[cfg(not(feature = "app-dirs"))]
    {
        Err(Error::io(
            Op::OpenDir,
            file,
            std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                format!(
                    "APP = {app:?} places the file in a configuration directory, which \
                     needs the `app-dirs` feature of atomic-persist"
                ),
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_ignore_app() {
        let abs = if cfg!(windows) {
            "C:\\x\\a.json"
        } else {
            "/x/a.json"
        };
        assert_eq!(resolve(abs, Some("app")).unwrap(), Path::new(abs));
        assert_eq!(resolve("a.json", None).unwrap(), Path::new("a.json"));
    }

    #[cfg(feature = "app-dirs")]
    #[test]
    fn app_puts_relative_paths_in_the_config_dir() {
        let p = resolve("settings.toml", Some("my-app")).unwrap();
        let dirs = directories::ProjectDirs::from("rs", "", "my-app").unwrap();
        assert_eq!(p, dirs.config_dir().join("settings.toml"));
        assert!(p.is_absolute());
    }

    #[cfg(not(feature = "app-dirs"))]
    #[test]
    fn app_without_the_feature_is_a_clear_error() {
        let e = resolve("settings.toml", Some("my-app")).unwrap_err();
        assert!(e.to_string().contains("app-dirs"), "{e}");
    }
}
