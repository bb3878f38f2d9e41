//! Save files and typed values so that they are never half-written.
//!
//! # The invariant
//!
//! **If the destination exists, its contents are complete**: through process crashes,
//! power loss (with [`Durability::Full`], the default) and any number of rewrites.
//! Readers see the old complete file or the new complete file, never a mix.
//!
//! # A tour
//!
//! ```
//! use atomic_persist::{write_atomic, AtomicFile, Durability, WriteOptions};
//! use std::io::Write;
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("state.json");
//!
//! // Replace a file in one call: temp file, fsync, rename, fsync of the directory.
//! write_atomic(&path, b"{\"items\": 1}")?;
//!
//! // Choose durability, permissions, or refuse to replace an existing file.
//! WriteOptions::new().durability(Durability::Data).mode(0o600).write(&path, b"{}")?;
//!
//! // Stream a large file; nothing is visible until commit, and a drop discards it.
//! let mut f = AtomicFile::create(&path)?;
//! f.write_all(b"{\"items\": 2}")?;
//! f.commit()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The steps of a save, and why each is there, are in the [`atomic`] module.
//!
//! # Typed values
//!
//! [`Persisted<T>`] keeps a `serde` value in a file. The format comes from the extension
//! (`.json`, `.toml`, `.yaml`/`.yml`, `.ron`, `.bin`) unless the builder names one; every
//! commit is an atomic save, skipped entirely when the value's bytes did not change.
//!
//! ```
//! # #[cfg(feature = "json")] {
//! use atomic_persist::Persisted;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, Default)]
//! struct Progress {
//!     next_item: u64,
//! }
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("progress.json");
//!
//! // With the envelope, the file also records who wrote it, when, how many commits it
//! // has seen, and a checksum that every load verifies.
//! let mut job = Persisted::<Progress>::builder(&path).envelope(true).open_or_default()?;
//! job.update(|p| p.next_item += 100)?;
//! let meta = job.meta().unwrap();
//! println!("generation {} by run {}", meta.generation, meta.run_id);
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A type can also know its own file: `#[derive(Persist)]` gives it `load()`, `save()` and
//! `persisted()`, and schema migrations from older versions of the type, checked at
//! compile time (see the [`persist`] module).
//!
//! ```
//! # #[cfg(all(feature = "derive", feature = "toml"))] {
//! use atomic_persist::Persist;
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
//! let mut s = Settings::load_or_default_from(&path)?; // or load_or_default(): "settings.toml"
//! s.font_size += 1;
//! s.save_to(&path)?;                                  // or save()
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The [`format`](mod@format) module lists the formats and their limits, [`persisted`] what a commit
//! does step by step, and [`envelope`] the envelope.
//!
//! # Several writers
//!
//! An atomic save keeps a file complete, not writers in turn: two that load, change and
//! save can lose an update. [`Persisted::update_locked`] holds the writer [`lock`] across
//! reload, change and commit; with the envelope on, [`Persisted::commit`] refuses to
//! overwrite a version it did not load ([`Error::Conflict`]). The
//! [`persisted`](persisted#writers-the-lock-and-the-generation-check) module explains both.
//!
//! # History
//!
//! [`History<T>`](history::History) keeps every commit as a numbered, enveloped file
//! (`state.7.json`) behind a `latest` pointer (`state.json`, a symlink swapped
//! atomically), with retention, a manifest, and [`rollback`](history::History::rollback);
//! see the [`history`] module (needs the `json` feature: the manifest is JSON).
//!
//! # On-disk format
//!
//! A file written without the envelope is exactly the value in its format, nothing more.
//! An enveloped file follows the **envelope format, version 1**
//! ([`envelope::ENVELOPE_VERSION`]), specified byte for byte in the [`envelope`] module:
//! the payload first, then the meta with a CRC-32 over the payload's exact bytes and the
//! meta, in a shape that stays a valid JSON or TOML document.
//!
//! # Where things are
//!
//! Every type and function a program uses is at the crate root: `atomic_persist::X`,
//! one path each (the examples use no other). The public modules are the chapters of
//! the reference, not a second way in: [`atomic`] (the save protocol and its
//! `# Security`), [`persisted`] (what a commit does, in order, and how writers are
//! ordered), [`history`] (its layout and fault promises), [`lock`], [`persist`] (the
//! derive's keys and migrations), [`envelope`] (the on-disk format, byte for byte, with
//! `verify` and `seal`), [`format`](mod@format), and `object` and `asynchronous` under their
//! features. Besides their docs they hold only what their chapter alone needs, such as
//! [`history::ManifestState`] or the [`envelope`] functions the command-line tool calls.
//! The implementation (the platform layer, the codec every handle shares, the names of
//! the files beside a data file) is private.
//!
//! # Feature flags
//!
//! - `json` (default): [`Json`] and [`JsonPretty`], for `.json` files.
//! - `toml` (default): [`Toml`], for `.toml` files; a loaded config keeps its comments.
//! - `yaml`: `Yaml`, for `.yaml` and `.yml` files (serde-saphyr: pure Rust, no unsafe
//!   code).
//! - `ron`: `Ron`, for `.ron` files (Rust Object Notation).
//! - `binary`: `Binary` (postcard), for `.bin` files.
//! - `bincode`: `format::read_bincode`, to read (and migrate) files that bincode
//!   programs wrote; bincode is unmaintained, so it is never used to write.
//! - `derive` (default): `#[derive(Persist)]`, see [`persist`].
//! - `app-dirs`: `#[persist(app = "name")]` ([`Persist::APP`]) places a relative path in
//!   the platform's configuration directory (the `directories` crate).
//! - `cli`: the `atomic-persist` command-line tool (turns on every format's feature, to
//!   read every file the crate writes).
//! - `watch`: [`Persisted::watch`] and the like ([`watch`] module): each new commit of a
//!   file as it lands, from any process (the `notify` crate).
//! - `tokio`: async wrappers that run the synchronous engine in one
//!   `tokio::task::spawn_blocking` (`write_atomic_async`, `Persisted::open_async`,
//!   `Persisted::commit_async`, ...); see the `asynchronous` module for cancellation.
//! - `object-store`: `object::ObjectPersisted`, a value kept in any
//!   `object_store::ObjectStore`, ordered by conditional PUTs (large values uploaded in
//!   parts behind a pointer), and `object::ObjectHistory`, versions behind a `latest`
//!   pointer object; see the `object` module for the semantics side by side with the
//!   local ones.
//! - `s3`: `object-store` plus `object_store`'s `aws` feature (S3 and S3-compatible
//!   servers; an HTTP and TLS stack, so it is a separate feature).
#![deny(missing_docs)]
// docs.rs builds with `--cfg docsrs` on nightly: every item gated on a feature is shown
// with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
pub mod asynchronous;
pub mod atomic;
pub mod batch;
mod codec;
pub mod envelope;
mod error;
pub mod format;
#[cfg(feature = "json")]
pub mod history;
mod local;
pub mod lock;
mod names;
#[cfg(feature = "object-store")]
pub mod object;
mod payload;
pub mod persist;
pub mod persisted;
mod pointer;
mod random;
pub mod recovery;
pub mod snapshot;
mod sys;
#[cfg(feature = "toml")]
mod toml_doc;
mod trust;
mod version;
#[cfg(feature = "watch")]
pub mod watch;

#[cfg(feature = "tokio")]
pub use asynchronous::write_atomic_async;
pub use atomic::{
    AtomicFile, DEFAULT_RENAME_RETRY, Durability, Swept, WriteOptions, sweep, write_atomic,
};
/// `#[derive(Persist)]`: implements [`Persist`] from a `#[persist(..)]` attribute (feature
/// `derive`); see the [`persist`] module for the keys.
///
/// ```
/// # #[cfg(feature = "toml")] {
/// use atomic_persist::Persist;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, Default, Persist)]
/// #[persist(path = "settings.toml", create_dirs = true)]
/// struct Settings {
///     volume: u32,
/// }
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("app/settings.toml");
/// Settings { volume: 7 }.save_to(&path)?; // Settings::save() uses `path`
/// assert_eq!(Settings::load_from(&path)?.volume, 7);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "derive")]
pub use atomic_persist_derive::Persist;
pub use batch::{Batch, BatchSync};
pub use envelope::{Meta, Timestamp, run_id};
pub use error::{BoxError, Category, CorruptKind, Error, FileKind, Op, Refusal, Result};
#[cfg(feature = "binary")]
pub use format::Binary;
#[cfg(feature = "ron")]
pub use format::Ron;
#[cfg(feature = "toml")]
pub use format::Toml;
#[cfg(feature = "yaml")]
pub use format::Yaml;
pub use format::{AnyFormat, CustomFormat, Format, FormatError};
#[cfg(feature = "json")]
pub use format::{Json, JsonPretty};
#[cfg(feature = "json")]
pub use history::{History, HistoryBuilder, RawHistory};
pub use lock::Lock;
#[cfg(feature = "object-store")]
pub use object::{ObjectHistory, ObjectPersisted};
pub use persist::{Payload, Persist};
pub use persisted::{Persisted, PersistedBuilder};
pub use recovery::Recovery;
pub use snapshot::{Snapshot, SnapshotBuilder, Transaction, View};
/// The `uuid` crate, whose [`Uuid`](uuid::Uuid) is a run id
/// ([`Meta::run_id`], [`PersistedBuilder::run_id`]).
pub use uuid;
pub use version::VersionInfo;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// What `#[derive(Persist)]` expands to refers to; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}
