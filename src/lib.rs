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
//! # Feature flags
//!
//! - `cli`: the `atomic-persist` command-line tool.
#![deny(missing_docs)]

pub mod atomic;
pub mod envelope;
mod error;
pub mod format;
pub mod persisted;
mod sys;
#[cfg(feature = "toml")]
mod toml_doc;

pub use atomic::{AtomicFile, Durability, WriteOptions, sweep, write_atomic};
pub use envelope::{Meta, run_id};
pub use error::{BoxError, Error, Op, Result};
#[cfg(feature = "binary")]
pub use format::Binary;
#[cfg(feature = "toml")]
pub use format::Toml;
pub use format::{AnyFormat, Format};
#[cfg(feature = "json")]
pub use format::{Json, JsonPretty};
pub use persisted::{Persisted, PersistedBuilder};
pub use uuid::Uuid;
