//! [`VersionInfo`]: one version of a history, the same shape for the local `History`
//! and the `ObjectHistory` in an object store; only where the version lives differs.

use std::path::PathBuf;

use uuid::Uuid;

use crate::envelope::{Meta, Timestamp};

/// What is known about one version of a history, from its manifest or pointer or from
/// its envelope. `P` is where it lives: its file for a local history (the default), its
/// object's key (`object_store::path::Path`: `ObjectVersionInfo`, feature
/// `object-store`) for one in an object store.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::History;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("state.json");
/// let mut h = History::<u32>::open_or_default(&path)?;
/// h.set(7)?;
/// let v = &h.versions()?[0];
/// assert_eq!((v.generation, v.path.file_name().unwrap()), (1, "state.1.json".as_ref()));
/// println!("written {} by {}", v.written_at, v.run_id);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VersionInfo<P = PathBuf> {
    /// The generation: the number in the version's name and in its envelope.
    pub generation: u64,
    /// The version's file, or its object's key.
    pub path: P,
    /// The run that wrote it.
    pub run_id: Uuid,
    /// When it was written (the writer's clock; displays as RFC 3339 in UTC).
    pub written_at: Timestamp,
    /// The schema version of its value.
    pub schema_version: u32,
    /// Its size in bytes.
    pub size: u64,
    /// The envelope's CRC-32.
    pub checksum: u32,
}

impl<P> VersionInfo<P> {
    /// The version at `path` whose envelope says `meta`, `size` bytes long.
    #[cfg_attr(
        not(feature = "json"),
        allow(dead_code, reason = "the local history's")
    )]
    pub(crate) fn from_meta(path: P, meta: &Meta, size: u64) -> VersionInfo<P> {
        VersionInfo {
            generation: meta.generation,
            path,
            run_id: meta.run_id,
            written_at: meta.written_at,
            schema_version: meta.schema_version,
            size,
            checksum: meta.checksum,
        }
    }
}
