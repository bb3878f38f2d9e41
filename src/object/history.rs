//! `ObjectHistory<T>`: a history kept in an object store (feature `object-store`); the
//! layout, the commit steps and their failures are in [`ObjectHistory`]'s docs.

use std::collections::HashSet;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::options::Options;
use super::store::{
    Multipart, Retry, create_unique, delete_quietly, get_bytes, head, key_path, same_version,
    store_error,
};
use crate::codec::Codec;
use crate::envelope::{self, Fingerprint, Meta, Timestamp};
use crate::error::{CorruptKind, Error, Op, Result};
use crate::format::AnyFormat;
use crate::version::VersionInfo;

/// The first line of a pointer object, with the version of its layout.
const POINTER_MAGIC: &str = "atomic-persist-history 1";

/// How often a reader reads the pointer again when retention deleted the version it
/// named just before it could be read.
const READ_RETRIES: usize = 100;

/// What the pointer says about one retained version of an [`ObjectHistory`]: a
/// [`VersionInfo`] whose `path` is the version object's key.
pub type ObjectVersionInfo = VersionInfo<ObjectPath>;

// ---------------------------------------------------------------------------------------
// The pointer

/// One `version` line of the pointer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    generation: u64,
    /// The object's name under `{key}.versions/`.
    name: String,
    size: u64,
    written_at: Timestamp,
    run_id: Uuid,
    schema_version: u32,
    checksum: u32,
}

/// The pointer's contents: the retained versions, oldest first; the last is current.
/// Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Manifest {
    entries: Vec<Entry>,
}

impl Manifest {
    fn current(&self) -> &Entry {
        self.entries.last().expect("a manifest is never empty")
    }

    fn get(&self, generation: u64) -> Option<&Entry> {
        self.entries.iter().find(|e| e.generation == generation)
    }

    fn render(&self) -> String {
        let mut out = format!("{POINTER_MAGIC}\ncurrent {}\n", self.current().generation);
        for e in &self.entries {
            out.push_str(&format!(
                "version {} {} {} {} {} {} crc32:{:08x}\n",
                e.generation, e.name, e.size, e.written_at, e.run_id, e.schema_version, e.checksum
            ));
        }
        out
    }

    /// Parses a pointer; the error is the reason it is corrupt.
    fn parse(bytes: &[u8], layout: &Layout) -> std::result::Result<Manifest, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "the pointer is not UTF-8 text")?;
        let mut lines = text.lines();
        if lines.next() != Some(POINTER_MAGIC) {
            return Err(format!(
                "not a history pointer (its first line is not {POINTER_MAGIC:?}); \
                 an object written by ObjectPersisted or another program is not a history"
            ));
        }
        let current: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("current "))
            .and_then(|g| g.parse().ok())
            .ok_or("the second line is not `current GENERATION`")?;
        let mut entries: Vec<Entry> = Vec::new();
        for (i, line) in lines.enumerate() {
            let bad = |what: &str| format!("line {}: {what}: {line:?}", i + 3);
            let fields: Vec<&str> = line.split(' ').collect();
            let [
                "version",
                generation,
                name,
                size,
                written_at,
                run_id,
                schema_version,
                checksum,
            ] = fields[..]
            else {
                return Err(bad("not a `version` line of 8 fields"));
            };
            let generation: u64 = generation.parse().map_err(|_| bad("bad generation"))?;
            if layout.parse_name(name) != Some(generation) {
                return Err(bad("the object name does not match the generation"));
            }
            if entries.last().is_some_and(|e| e.generation >= generation) {
                return Err(bad("generations out of order"));
            }
            let written_at = Timestamp::parse(written_at).ok_or_else(|| bad("bad time"))?;
            let checksum = checksum
                .strip_prefix("crc32:")
                .filter(|h| h.len() == 8)
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad("bad checksum"))?;
            entries.push(Entry {
                generation,
                name: name.to_owned(),
                size: size.parse().map_err(|_| bad("bad size"))?,
                written_at,
                run_id: run_id.parse().map_err(|_| bad("bad run id"))?,
                schema_version: schema_version
                    .parse()
                    .map_err(|_| bad("bad schema version"))?,
                checksum,
            });
        }
        match entries.last() {
            None => Err("the pointer lists no version".into()),
            Some(last) if last.generation != current => Err(format!(
                "`current {current}` is not the newest version listed ({})",
                last.generation
            )),
            Some(_) => Ok(Manifest { entries }),
        }
    }
}

/// Where a history's objects are.
struct Layout {
    /// The pointer.
    key: ObjectPath,
    /// `{key}.versions`, the prefix of the version objects.
    versions: ObjectPath,
    /// The key's extension with its dot (`.json`), or empty.
    ext: String,
}

impl Layout {
    fn new(key: &str) -> Layout {
        let ext = std::path::Path::new(key)
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.bytes().all(|b| b.is_ascii_alphanumeric()))
            .map_or(String::new(), |e| format!(".{e}"));
        Layout {
            key: ObjectPath::from(key),
            versions: ObjectPath::from(format!("{key}.versions")),
            ext,
        }
    }

    fn version_name(&self, generation: u64, id: Uuid) -> String {
        format!("{generation:020}-{}{}", id.hyphenated(), self.ext)
    }

    /// The generation in a version object's name; `None` when it is not one.
    fn parse_name(&self, name: &str) -> Option<u64> {
        let stem = name.strip_suffix(self.ext.as_str())?;
        let (generation, id) = stem.split_once('-')?;
        if generation.len() != 20 || !generation.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Uuid::try_parse(id).ok().filter(|_| id.len() == 36)?;
        generation.parse().ok()
    }

    fn version_key(&self, name: &str) -> ObjectPath {
        self.versions.clone().join(name)
    }

    fn info(&self, e: &Entry) -> ObjectVersionInfo {
        VersionInfo {
            generation: e.generation,
            path: self.version_key(&e.name),
            run_id: e.run_id,
            written_at: e.written_at,
            schema_version: e.schema_version,
            size: e.size,
            checksum: e.checksum,
        }
    }

    fn corrupt(&self, kind: CorruptKind, reason: impl Into<String>) -> Error {
        Error::corrupt(key_path(&self.key), kind, reason)
    }

    /// The error for a generation the pointer does not list.
    fn not_listed(&self, generation: u64) -> Error {
        Error::NotFound {
            path: key_path(&self.versions).join(format!("{generation:020}-*{}", self.ext)),
        }
    }

    /// The pointer and its version; `None` when there is no pointer.
    async fn read_pointer(
        &self,
        store: &dyn ObjectStore,
    ) -> Result<Option<(UpdateVersion, Manifest)>> {
        match get_bytes(store, &self.key).await {
            Ok((bytes, version)) => {
                let manifest = Manifest::parse(&bytes, self)
                    .map_err(|r| self.corrupt(CorruptKind::BadPointer, r))?;
                Ok(Some((version, manifest)))
            }
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads a version the pointer names (the current one when `generation` is `None`):
    /// the pointer as read, the version's entry and bytes. `None` when there is no
    /// pointer. The bytes are not verified yet.
    async fn read_version(
        &self,
        store: &dyn ObjectStore,
        generation: Option<u64>,
    ) -> Result<Option<Read>> {
        let mut pointer = self.read_pointer(store).await?;
        for _ in 0..READ_RETRIES {
            let Some((version, manifest)) = pointer else {
                return Ok(None);
            };
            let entry = match generation {
                None => manifest.current().clone(),
                Some(g) => manifest.get(g).ok_or_else(|| self.not_listed(g))?.clone(),
            };
            let key = self.version_key(&entry.name);
            match get_bytes(store, &key).await {
                Ok((bytes, _)) => {
                    return Ok(Some(Read {
                        pointer: version,
                        manifest,
                        entry,
                        bytes,
                    }));
                }
                Err(Error::NotFound { .. }) => {
                    // Retention deleted it after we read the pointer: the pointer has
                    // moved on since. If it still names this version, it is gone for good.
                    pointer = self.read_pointer(store).await?;
                    let named = pointer.as_ref().and_then(|(_, m)| match generation {
                        None => Some(m.current()),
                        Some(g) => m.get(g),
                    });
                    if named.is_some_and(|e| e.name == entry.name) {
                        return Err(self.corrupt(
                            CorruptKind::MissingBody,
                            format!(
                                "the pointer names version {} ({key}), which does not exist",
                                entry.generation
                            ),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(self.corrupt(
            CorruptKind::MissingBody,
            format!("the version the pointer named went missing {READ_RETRIES} times in a row"),
        ))
    }
}

/// A version as read, before it is verified.
struct Read {
    pointer: UpdateVersion,
    manifest: Manifest,
    entry: Entry,
    bytes: Bytes,
}

impl Read {
    /// Checks the version against its pointer line and its own envelope.
    fn verify(&self, layout: &Layout, format: AnyFormat) -> Result<envelope::Split<'_>> {
        let key = layout.version_key(&self.entry.name);
        let path = key_path(&key);
        let corrupt = |reason: String| Error::corrupt(&path, CorruptKind::BadVersion, reason);
        let e = &self.entry;
        if self.bytes.len() as u64 != e.size {
            return Err(corrupt(format!(
                "{} bytes, the pointer says {}",
                self.bytes.len(),
                e.size
            )));
        }
        let split = envelope::split(format, &self.bytes, true).map_err(|e| e.at(&path))?;
        match &split.meta {
            None => Err(corrupt("a version object must have an envelope".into())),
            Some(m) if m.generation != e.generation => Err(corrupt(format!(
                "its envelope says generation {}, the pointer says {}",
                m.generation, e.generation
            ))),
            Some(m) if m.checksum != e.checksum => Err(corrupt(format!(
                "checksum crc32:{:08x}, the pointer says crc32:{:08x}",
                m.checksum, e.checksum
            ))),
            Some(_) => Ok(split),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The handle

/// A value whose every commit is a new version object, behind a pointer object replaced
/// with conditional PUTs: the object-store twin of the local `History<T>`.
///
/// Every commit is a new, enveloped version, a `latest` pointer says which one is
/// current, and old versions can be listed, read and rolled back to. Object stores have no symlink, no rename and no
/// lock, so the pointer is a small object replaced with a *conditional* PUT, which
/// orders writers the way the lock and the pointer swap do on disk.
///
/// # In the store
///
/// For `ObjectHistory::<T>::builder(store, "jobs/state.json")`:
///
/// ```text
/// jobs/state.json                                          the pointer and manifest
/// jobs/state.json.versions/00000000000000000006-0193….json version 6 ┐ each the whole
/// jobs/state.json.versions/00000000000000000007-0193….json version 7 ┘ enveloped value
/// ```
///
/// A version object is named `{generation:020}-{uuid}{.ext}`: the generation (zero-padded,
/// so the names sort by generation), a fresh UUIDv7 and the key's extension (so a
/// downloaded version opens as a file of its format). It holds exactly what a local
/// version file holds: the value in the [envelope](mod@crate::envelope), with the
/// generation, run id, time, schema version and checksum. The UUID makes every version
/// key unique, so writers racing for the same generation never write the same key, and
/// a version can be uploaded in parts (an unconditional completion, see below) without
/// overwriting anything.
///
/// The pointer `jobs/state.json` is a few lines of text (no JSON parser needed, so it
/// does not depend on the `json` feature):
///
/// ```text
/// atomic-persist-history 1
/// current 7
/// version 6 00000000000000000006-0193….json 118 2026-05-01T10:00:00.5Z 0193… 0 crc32:1a2b3c4d
/// version 7 00000000000000000007-0193….json 118 2026-05-01T10:01:00.1Z 0193… 0 crc32:5e6f7a8b
/// ```
///
/// Each `version` line is one retained version, oldest first: generation, object name,
/// size in bytes, time written (RFC 3339), run id, schema version and the envelope's
/// CRC-32. `current` names the newest, which is always the last line. Because one
/// conditional PUT replaces the whole pointer, adding a version, moving `latest` and
/// applying retention happen at once: there is no separate manifest to go stale.
///
/// # A commit, in order
///
/// 1. Serialize the value into memory (and run the validate hook). A value whose
///    payload bytes equal the current version's makes no new version: one HEAD checks
///    that the pointer is still the one this handle saw (else [`Error::Conflict`]).
///    *Why:* a value that cannot be serialized changes nothing, and an unchanged value
///    costs no version.
/// 2. Upload the version object `{key}.versions/{g+1:020}-{uuid}{.ext}` (one PUT with
///    `PutMode::Create`, or a multipart upload above
///    [`multipart_threshold`](ObjectHistoryBuilder::multipart_threshold)). *Why:* the
///    version must be complete in the store before any pointer names it.
/// 3. PUT the new pointer (the retained versions plus the new one, `current` moved to
///    it) with `PutMode::Update` and the ETag/version of the pointer this handle last
///    read or wrote (`PutMode::Create` when it saw none). *Why:* the condition makes the
///    commit happen only if nobody else committed since: no lost update.
/// 4. Delete the versions retention ([`keep`](ObjectHistoryBuilder::keep)) dropped from
///    the pointer, best effort. *Why:* the pointer no longer names them; a reader that
///    was about to read one reads the pointer again.
///
/// # When a step fails, or the process dies
///
/// | where | the store afterwards | the commit returns |
/// |---|---|---|
/// | step 1 | unchanged | the serialization or validation error |
/// | step 2 | unchanged (a failed multipart upload is aborted; a failed single PUT's object, if the store kept it anyway, is deleted again, or left for [`sweep`](ObjectHistory::sweep)) | the store's error |
/// | step 3, lost race (`412 Precondition Failed` / already exists) | the other writer's pointer; this version deleted again | [`Error::Conflict`] |
/// | step 3, any other error (timeout, 5xx, connection lost) | the old pointer *or* the new one: the PUT may have been applied. The version object is kept | the store's error; the next commit of this handle is a conflict if the PUT was applied, so [`reload`](ObjectHistory::reload) |
/// | step 4 | the new pointer; a version not deleted is an orphan | `Ok` (the commit has happened); [`sweep`](ObjectHistory::sweep) removes orphans |
/// | crash or cancelled future before step 3 | the old pointer; maybe an orphan version | — |
/// | crash during step 3 | the old pointer or the new one, each naming complete versions | — |
///
/// A lost race is checked once more before the version object is deleted: the store's
/// client retries a PUT after a 5xx or a timeout, and a retry of a conditional PUT that
/// the store had in fact applied is answered `412`. The commit reads the pointer again;
/// if it lists the new version, the commit has happened and returns `Ok`, and the
/// version object is of course kept.
///
/// In every case the pointer names only complete versions, so a reader always gets a
/// complete value. What a crash can leave behind is orphan version objects that no
/// pointer names: [`sweep`](ObjectHistory::sweep) deletes those older than a given age.
///
/// # Readers
///
/// A reader GETs the pointer, then the current version. Retention may delete that
/// version in between (another writer committed [`keep`](ObjectHistoryBuilder::keep)
/// times meanwhile); the reader then GETs the pointer again and retries, a bounded
/// number of times. A version that is missing while the pointer still names it is
/// [`Error::Corrupt`] naming the pointer's key — never [`Error::NotFound`], which
/// [`open_or_default`](ObjectHistoryBuilder::open_or_default) would take for "no history
/// yet, start fresh". Every version read is checked against its pointer line: size,
/// generation and checksum must match, and the envelope's own checksum must verify
/// ([`Error::Corrupt`] naming the version's key otherwise). A pointer that does not
/// parse is [`Error::Corrupt`] naming the pointer's key.
///
/// # History is append-only
///
/// [`rollback(g)`](ObjectHistory::rollback) writes version `g`'s payload again as a new
/// generation (a commit like any other, conditional on the pointer this handle saw), so
/// the versions in between stay listed and a rollback can itself be rolled back.
///
/// # Semantics, side by side
///
/// | | local `History<T>` (module `history`) | `ObjectHistory<T>` |
/// |---|---|---|
/// | versions | `state.7.json` beside the pointer, written atomically and durably | `state.json.versions/{g:020}-{uuid}.json`, one PUT (or a multipart upload) each |
/// | `latest` pointer | a symlink swapped with `rename` (a small file on Windows) | the object `state.json`: text naming the retained versions and the current one |
/// | manifest | `state.manifest.json`, a cache written after the swap, rebuilt when stale | inside the pointer: replaced with it in one PUT, never stale |
/// | ordering | writer lock + generation check | conditional PUT of the pointer (`If-Match` its ETag) |
/// | lost race | [`Error::Conflict`], nothing written | [`Error::Conflict`]; the uploaded version is deleted again |
/// | retention | files removed after the swap | objects deleted after the pointer PUT |
/// | debris of a crash | a temporary symlink, removed by [`sweep`](crate::sweep) | orphan versions, removed by [`ObjectHistory::sweep`] (older than a given age) |
/// | readers | resolve the pointer, read the version; again if retention removed it | the same, with GETs |
/// | read `state.json` directly | the current version (through the symlink) | the pointer text: read the version it names |
/// | an existing plain value at the key | loaded; the first commit replaces it with the pointer | [`Error::Corrupt`] (not a pointer) |
///
/// The pointer lists every retained version, so with the default (keep everything) it
/// grows by about 150 bytes per commit and every commit rewrites it: set
/// [`keep`](ObjectHistoryBuilder::keep) for a long-lived history.
///
/// ```
/// # #[cfg(feature = "json")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), atomic_persist::Error> {
/// use std::sync::Arc;
/// use atomic_persist::ObjectHistory;
/// use object_store::memory::InMemory;
///
/// let store = Arc::new(InMemory::new()); // or an AmazonS3 from AmazonS3Builder
/// let mut jobs = ObjectHistory::<Vec<String>>::builder(store.clone(), "jobs/state.json")
///     .keep(10)
///     .open_or_default()
///     .await?;
/// jobs.update(|j| j.push("a".into())).await?; // generation 1
/// jobs.update(|j| j.push("b".into())).await?; // generation 2
/// jobs.rollback(1).await?; // generation 3 = generation 1's value
/// assert_eq!(*jobs, ["a"]);
/// let generations: Vec<u64> = jobs.versions().await?.iter().map(|v| v.generation).collect();
/// assert_eq!(generations, [1, 2, 3]);
/// assert_eq!(jobs.version(2).await?, ["a", "b"]);
///
/// // Another handle that saw generation 3 loses to one that committed since.
/// let mut other = ObjectHistory::<Vec<String>>::open(store.clone(), "jobs/state.json").await?;
/// jobs.update(|j| j.push("c".into())).await?;
/// assert!(matches!(
///     other.update(|j| j.push("d".into())).await,
///     Err(atomic_persist::Error::Conflict { expected: 3, found: 4, .. })
/// ));
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "json"))]
/// # fn main() {}
/// ```
pub struct ObjectHistory<T> {
    value: T,
    store: Arc<dyn ObjectStore>,
    layout: Layout,
    config: Config<T>,
    /// The ETag/version of the pointer this handle last read or wrote, the condition of
    /// the next commit. `None` with `manifest` set: this handle's commit happened but
    /// the pointer has moved on since (its next commit is a conflict).
    pointer: Option<UpdateVersion>,
    /// The pointer's contents as last read or written; `None` before the first version.
    manifest: Option<Manifest>,
    /// The current version's meta.
    meta: Option<Meta>,
    /// The current version's payload.
    payload: Option<Fingerprint>,
}

struct Config<T> {
    codec: Codec<T>,
    keep: Option<usize>,
    max_attempts: u32,
    multipart: Multipart,
    probe: bool,
}

/// Builds an [`ObjectHistory<T>`]: `ObjectHistory::<T>::builder(store, key)`.
pub struct ObjectHistoryBuilder<T> {
    options: Options<T>,
    keep: Option<usize>,
}

/// The current version, read and verified.
struct Loaded<T> {
    value: T,
    pointer: UpdateVersion,
    manifest: Manifest,
    meta: Meta,
    payload: Fingerprint,
}

impl<T> ObjectHistoryBuilder<T> {
    super::options::shared_setters!("ObjectHistory");

    /// Keep only the newest `n` versions (at least 1); by default all are kept (the
    /// pointer then grows with every commit).
    pub fn keep(mut self, n: usize) -> Self {
        self.keep = Some(n.max(1));
        self
    }

    fn config(self) -> Result<(Arc<dyn ObjectStore>, Layout, Config<T>)> {
        let o = self.options;
        let config = Config {
            codec: o.codec.resolve(&o.key)?,
            keep: self.keep,
            max_attempts: o.max_attempts,
            multipart: o.multipart,
            probe: o.probe,
        };
        Ok((o.store, Layout::new(&o.key), config))
    }
}

impl<T: Serialize + DeserializeOwned> ObjectHistoryBuilder<T> {
    /// Reads the current version: [`Error::NotFound`] when there is no pointer.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) when there is no version;
    /// [`Error::UnknownFormat`](crate::Error::UnknownFormat) when the key's extension names
    /// no format; [`Error::Corrupt`](crate::Error::Corrupt) for a damaged object (or a
    /// pointer to a missing body,
    /// [`CorruptKind::MissingBody`](crate::CorruptKind::MissingBody));
    /// [`Error::Deserialize`](crate::Error::Deserialize),
    /// [`Error::SchemaVersion`](crate::Error::SchemaVersion),
    /// [`Error::Invalid`](crate::Error::Invalid) and
    /// [`Error::UnexpectedEnvelope`](crate::Error::UnexpectedEnvelope) as for a local file;
    /// [`Error::Io`](crate::Error::Io) with [`Op::Get`](crate::Op::Get) when the store
    /// fails.
    pub async fn open(self) -> Result<ObjectHistory<T>> {
        let (store, layout, config) = self.config()?;
        match load(&*store, &layout, &config).await? {
            Some(loaded) => Ok(ObjectHistory::loaded(store, layout, config, loaded)),
            None => Err(Error::NotFound {
                path: key_path(&layout.key),
            }),
        }
    }

    /// Reads the current version, or starts from `T::default()` when there is no
    /// pointer (nothing is written until the first commit, which then creates the
    /// pointer only if it still does not exist).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that a history with no version yet is not an error.
    pub async fn open_or_default(self) -> Result<ObjectHistory<T>>
    where
        T: Default,
    {
        self.open_or_else(T::default).await
    }

    /// Reads the current version, or starts from `f()` when there is no pointer.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that a history with no version yet is not an error.
    pub async fn open_or_else(self, f: impl FnOnce() -> T) -> Result<ObjectHistory<T>> {
        let (store, layout, config) = self.config()?;
        match load(&*store, &layout, &config).await? {
            Some(loaded) => Ok(ObjectHistory::loaded(store, layout, config, loaded)),
            None => Ok(ObjectHistory {
                value: f(),
                store,
                layout,
                config,
                pointer: None,
                manifest: None,
                meta: None,
                payload: None,
            }),
        }
    }
}

impl<T> fmt::Debug for ObjectHistoryBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ObjectHistoryBuilder");
        self.options.debug_fields(&mut d);
        d.field("keep", &self.keep).finish()
    }
}

/// Reads and verifies the current version; `None` when there is no pointer.
async fn load<T: DeserializeOwned>(
    store: &dyn ObjectStore,
    layout: &Layout,
    config: &Config<T>,
) -> Result<Option<Loaded<T>>> {
    let Some(read) = layout.read_version(store, None).await? else {
        return Ok(None);
    };
    let (value, meta, payload) = decode(&read, layout, config)?;
    Ok(Some(Loaded {
        value,
        meta,
        payload: Fingerprint::of(payload),
        pointer: read.pointer.clone(),
        manifest: read.manifest,
    }))
}

/// Verifies and decodes a version; refuses a schema newer than the configured one.
fn decode<'a, T: DeserializeOwned>(
    read: &'a Read,
    layout: &Layout,
    config: &Config<T>,
) -> Result<(T, Meta, &'a [u8])> {
    let path = key_path(&layout.version_key(&read.entry.name));
    let split = read.verify(layout, config.codec.format)?;
    let meta = split.meta.clone().expect("verified: enveloped");
    let value = config.codec.value(&path, &read.bytes, &split)?;
    Ok((value, meta, split.payload))
}

impl<T: Serialize + DeserializeOwned> ObjectHistory<T> {
    /// A builder for the history whose pointer is the object `key` in `store`.
    pub fn builder(store: Arc<dyn ObjectStore>, key: impl AsRef<str>) -> ObjectHistoryBuilder<T> {
        ObjectHistoryBuilder {
            options: Options::new(store, key.as_ref()),
            keep: None,
        }
    }

    /// Reads the current version with the defaults: [`Error::NotFound`] when there is
    /// no pointer.
    ///
    /// # Errors
    ///
    /// As [`ObjectHistoryBuilder::open`].
    pub async fn open(store: Arc<dyn ObjectStore>, key: impl AsRef<str>) -> Result<Self> {
        Self::builder(store, key).open().await
    }

    /// Reads the current version, or starts from `T::default()`.
    ///
    /// # Errors
    ///
    /// As [`ObjectHistoryBuilder::open_or_default`].
    pub async fn open_or_default(store: Arc<dyn ObjectStore>, key: impl AsRef<str>) -> Result<Self>
    where
        T: Default,
    {
        Self::builder(store, key).open_or_default().await
    }

    fn loaded(
        store: Arc<dyn ObjectStore>,
        layout: Layout,
        config: Config<T>,
        loaded: Loaded<T>,
    ) -> Self {
        ObjectHistory {
            value: loaded.value,
            store,
            layout,
            config,
            pointer: Some(loaded.pointer),
            manifest: Some(loaded.manifest),
            meta: Some(loaded.meta),
            payload: Some(loaded.payload),
        }
    }

    /// The current value (also through `Deref`).
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The value, to change in place before a [`commit`](Self::commit).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Changes the value with `f`, then commits it as a new version; returns what `f`
    /// returned. On a failed commit the changed value stays in memory;
    /// [`reload`](Self::reload) to go back.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub async fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let r = f(&mut self.value);
        self.commit().await?;
        Ok(r)
    }

    /// Replaces the value, then commits it as a new version.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub async fn set(&mut self, value: T) -> Result<()> {
        self.value = value;
        self.commit().await
    }

    /// Writes the value as a new version and points the pointer at it (see the
    /// [type docs](ObjectHistory) for the steps and their failures). Nothing is written when
    /// the value's bytes equal the current version's (one HEAD checks that the pointer
    /// has not moved). [`Error::Conflict`] when another writer committed since this
    /// handle last read or wrote: [`reload`](Self::reload) and apply the change again,
    /// or use [`update_retry`](Self::update_retry).
    ///
    /// Cancellation: dropping the future before the pointer PUT is sent leaves the
    /// pointer as it was (and perhaps an orphan version for [`sweep`](Self::sweep));
    /// after, the PUT may or may not have been applied, and this handle does not know
    /// which: reload it.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`](crate::Error::Conflict) when the conditional PUT lost to another
    /// writer (the pointer changed since this handle last read or wrote it);
    /// [`Error::Invalid`](crate::Error::Invalid) and
    /// [`Error::Serialize`](crate::Error::Serialize) as for a local commit;
    /// [`Error::Io`](crate::Error::Io) with [`Op::Put`](crate::Op::Put) when the store
    /// fails, after which the object may hold the old or the new value (reload to know);
    /// [`Error::Refused`](crate::Error::Refused)
    /// ([`Refusal::ConditionsIgnored`](crate::Refusal::ConditionsIgnored)) for a store
    /// that does not enforce conditional writes (nothing is written; see
    /// [`probe_conditional_writes`](ObjectHistoryBuilder::probe_conditional_writes)).
    pub async fn commit(&mut self) -> Result<()> {
        self.check(&self.value)?;
        let mut payload = Vec::new();
        envelope::write_payload(self.config.codec.format, true, &self.value, &mut payload)
            .map_err(|e| e.at(&key_path(&self.layout.key)))?;
        self.commit_payload(payload).await.map(|_| ())
    }

    /// The read-modify-write loop, as
    /// [`ObjectPersisted::update_retry`](super::ObjectPersisted::update_retry): applies
    /// `f` and commits; on [`Error::Conflict`] reloads, applies `f` again to what is
    /// there and tries again, at most
    /// [`max_attempts`](ObjectHistoryBuilder::max_attempts) times, with a short,
    /// jittered, growing pause between attempts. `f` must be a change that can be
    /// applied again to a fresh value (`n += 1`, not `n = old + 1`).
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit), except that a lost race is retried (reloaded and
    /// applied again) up to the builder's attempt limit before it is returned.
    pub async fn update_retry<R>(&mut self, mut f: impl FnMut(&mut T) -> R) -> Result<R> {
        let mut retry = Retry::new(self.config.max_attempts);
        loop {
            let r = f(&mut self.value);
            match self.commit().await {
                Err(Error::Conflict { .. }) if retry.again().await => self.reload().await?,
                done => return done.map(|()| r),
            }
        }
    }

    /// Reads the current version again, dropping unsaved changes. Does nothing when
    /// there is no pointer and this handle never saw one; [`Error::NotFound`] when the
    /// pointer it saw has been deleted.
    ///
    /// # Errors
    ///
    /// As [`ObjectHistoryBuilder::open`].
    pub async fn reload(&mut self) -> Result<()> {
        match load(&*self.store, &self.layout, &self.config).await? {
            Some(loaded) => {
                self.value = loaded.value;
                self.pointer = Some(loaded.pointer);
                self.manifest = Some(loaded.manifest);
                self.meta = Some(loaded.meta);
                self.payload = Some(loaded.payload);
                Ok(())
            }
            None if self.manifest.is_none() => Ok(()),
            None => Err(Error::NotFound {
                path: key_path(&self.layout.key),
            }),
        }
    }

    /// The value of version `generation`, read from its object (verified against the
    /// pointer). [`Error::NotFound`] when the pointer does not list it (never written,
    /// or dropped by retention).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) when there is no version `generation`;
    /// as [`ObjectHistoryBuilder::open`] for a damaged one or one that does not decode
    /// or validate.
    pub async fn version(&self, generation: u64) -> Result<T> {
        let Some(read) = self
            .layout
            .read_version(&*self.store, Some(generation))
            .await?
        else {
            return Err(self.layout.not_listed(generation));
        };
        // The same decode as the current version's: a migration and the validate hook
        // apply to old versions too.
        decode(&read, &self.layout, &self.config).map(|(value, ..)| value)
    }

    /// The retained versions, oldest first, as the pointer lists them now (empty when
    /// there is no pointer).
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`](crate::Error::Corrupt) when the pointer is damaged;
    /// [`Error::Io`](crate::Error::Io) with [`Op::Get`](crate::Op::Get) when the store
    /// fails.
    pub async fn versions(&self) -> Result<Vec<ObjectVersionInfo>> {
        Ok(match self.layout.read_pointer(&*self.store).await? {
            Some((_, m)) => m.entries.iter().map(|e| self.layout.info(e)).collect(),
            None => Vec::new(),
        })
    }

    /// Makes version `generation`'s value the newest version (a new generation carrying
    /// its payload byte for byte; history is append-only) and the handle's value,
    /// dropping unsaved changes. A commit like any other: [`Error::Conflict`] when
    /// another writer committed since this handle last read or wrote (the handle's value
    /// is then left as it was). Returns the new generation (the current one when version
    /// `generation`'s payload is the current one's).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`](crate::Error::NotFound) when there is no version `generation`;
    /// otherwise as [`commit`](Self::commit).
    pub async fn rollback(&mut self, generation: u64) -> Result<u64> {
        let Some(read) = self
            .layout
            .read_version(&*self.store, Some(generation))
            .await?
        else {
            return Err(self.layout.not_listed(generation));
        };
        let (value, _, payload) = decode(&read, &self.layout, &self.config)?;
        self.check(&value)?;
        let new = self.commit_payload(payload.to_vec()).await?;
        self.value = value;
        Ok(new)
    }

    /// Deletes the version objects under `{key}.versions/` that the pointer does not
    /// name and that were last modified more than `min_age` ago; returns how many.
    ///
    /// These are orphans: versions of commits that lost a race, were cancelled or
    /// crashed before their pointer PUT, or whose retention delete failed. `min_age`
    /// must exceed the longest commit (from the start of the version upload to the end
    /// of the pointer PUT) plus the clock difference between this machine and the store:
    /// a younger unnamed version may belong to a commit still in flight, whose pointer
    /// would name a deleted object. An hour is a safe choice for most uses.
    ///
    /// Objects whose names are not version names are left alone. A pointer that does
    /// not parse is [`Error::Corrupt`] and nothing is deleted.
    ///
    /// # Errors
    ///
    /// [`Error::Io`](crate::Error::Io) with [`Op::List`](crate::Op::List),
    /// [`Op::Get`](crate::Op::Get) or [`Op::Delete`](crate::Op::Delete) when the store
    /// fails.
    pub async fn sweep(&self, min_age: Duration) -> Result<usize> {
        let store = &*self.store;
        let versions = &self.layout.versions;
        // List first, then read the pointer: a version named by a pointer written after
        // the listing belongs to a commit longer than `min_age`.
        let listed = store
            .list_with_delimiter(Some(versions))
            .await
            .map_err(|e| store_error(Op::List, versions, e))?;
        let named: HashSet<String> = match self.layout.read_pointer(store).await? {
            Some((_, m)) => m.entries.into_iter().map(|e| e.name).collect(),
            None => HashSet::new(),
        };
        let now = SystemTime::now();
        let mut removed = 0;
        for object in listed.objects {
            let Some(name) = object.location.filename() else {
                continue;
            };
            if self.layout.parse_name(name).is_none() || named.contains(name) {
                continue;
            }
            let modified = SystemTime::from(object.last_modified);
            if now.duration_since(modified).unwrap_or(Duration::ZERO) < min_age {
                continue;
            }
            match store.delete(&object.location).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(Op::Delete, &object.location, e)),
            }
        }
        Ok(removed)
    }

    /// The meta of the current version as this handle last read or wrote it (`None`
    /// before the first version).
    pub fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }

    /// The generation this handle last read or wrote (0 before the first version).
    pub fn generation(&self) -> u64 {
        self.manifest.as_ref().map_or(0, |m| m.current().generation)
    }

    /// The pointer's key (the key the history was opened with).
    pub fn key(&self) -> &ObjectPath {
        &self.layout.key
    }

    /// The prefix of the version objects: `{key}.versions`.
    pub fn versions_prefix(&self) -> &ObjectPath {
        &self.layout.versions
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The value, giving up the handle.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Runs the validate hook.
    fn check(&self, value: &T) -> Result<()> {
        self.config.codec.check(value, &key_path(&self.layout.key))
    }

    /// Steps 1 to 4 for an enveloped payload: returns the new generation.
    async fn commit_payload(&mut self, payload: Vec<u8>) -> Result<u64> {
        let fingerprint = Fingerprint::of(&payload);
        if self.unchanged(fingerprint) {
            return self.still_current().await;
        }
        let put_mode = match (&self.pointer, &self.manifest) {
            (Some(v), _) => PutMode::Update(v.clone()),
            (None, None) => PutMode::Create,
            (None, Some(_)) => return Err(self.conflict().await),
        };
        if self.config.probe {
            super::probe::ensure(&*self.store, &self.layout.key).await?;
        }
        let previous = self.manifest.as_ref().map(|m| m.current());
        let generation = previous.map_or(0, |e| e.generation);
        let generation = envelope::next_generation(generation, &key_path(&self.layout.key))?;
        let (meta, entry) = self.put_version(&payload, generation, previous).await?;
        let (manifest, dropped) = self.next_manifest(&entry);
        let pointer = self.put_pointer(&manifest, put_mode, &entry).await?;
        // Step 4: retention. Only when the pointer is known to be ours: a newer one may
        // have dropped other versions, or none.
        if pointer.is_some() {
            for e in &dropped {
                delete_quietly(&*self.store, &self.layout.version_key(&e.name)).await;
            }
        }
        self.pointer = pointer;
        self.manifest = Some(manifest);
        self.meta = Some(meta);
        self.payload = Some(fingerprint);
        Ok(generation)
    }

    /// Whether a payload with `fingerprint` is the current version's, in the same schema.
    fn unchanged(&self, fingerprint: Fingerprint) -> bool {
        let schema = self.config.codec.schema_version;
        self.payload == Some(fingerprint)
            && self
                .meta
                .as_ref()
                .is_some_and(|m| m.schema_version == schema)
    }

    /// An unchanged commit: nothing to write if the pointer is still the one this handle
    /// saw (the current generation), else a conflict.
    async fn still_current(&self) -> Result<u64> {
        match (&self.pointer, head(&*self.store, &self.layout.key).await) {
            (Some(v), Ok(m)) if same_version(v, &m) => Ok(self.generation()),
            (_, Err(e @ Error::Io { .. })) => Err(e),
            _ => Err(self.conflict().await),
        }
    }

    /// Step 2: the version object of `payload` as `generation`, created under a key no
    /// other writer uses; its meta and pointer line.
    async fn put_version(
        &self,
        payload: &[u8],
        generation: u64,
        previous: Option<&Entry>,
    ) -> Result<(Meta, Entry)> {
        let store = &*self.store;
        let (bytes, meta, entry) = self.encode_version(payload, generation, previous)?;
        let version_key = self.layout.version_key(&entry.name);
        let multipart = self.config.multipart;
        if let Err(e) = create_unique(store, &version_key, Bytes::from(bytes), multipart).await {
            // Nothing names it; a single PUT that failed may still have been stored.
            delete_quietly(store, &version_key).await;
            return Err(e);
        }
        Ok((meta, entry))
    }

    /// The pointer's next content with `entry` added, and the entries retention drops.
    fn next_manifest(&self, entry: &Entry) -> (Manifest, Vec<Entry>) {
        let mut entries = (self.manifest.as_ref()).map_or_else(Vec::new, |m| m.entries.clone());
        entries.push(entry.clone());
        let keep = self.config.keep;
        let excess = keep.map_or(0, |k| entries.len().saturating_sub(k));
        let dropped = entries.drain(..excess).collect();
        (Manifest { entries }, dropped)
    }

    /// Step 3: the pointer, conditionally on the version this handle saw. Its new
    /// version, or `None` when a PUT the store refused had in fact been applied (see
    /// [`refused`](Self::refused)).
    async fn put_pointer(
        &self,
        manifest: &Manifest,
        put_mode: PutMode,
        entry: &Entry,
    ) -> Result<Option<UpdateVersion>> {
        let key = &self.layout.key;
        let body = PutPayload::from(manifest.render().into_bytes());
        match self
            .store
            .put_opts(key, body, PutOptions::from(put_mode))
            .await
        {
            Ok(put) => Ok(Some(UpdateVersion::from(put))),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => self.refused(entry).await,
            // The PUT may have been applied: the version object stays.
            Err(e) => Err(store_error(Op::Put, key, e)),
        }
    }

    /// The version object of `payload` as generation `generation`: its bytes, meta and
    /// pointer line.
    fn encode_version(
        &self,
        payload: &[u8],
        generation: u64,
        previous: Option<&Entry>,
    ) -> Result<(Vec<u8>, Meta, Entry)> {
        let mut crc = crc32fast::Hasher::new();
        crc.update(payload);
        // Never before the previous version, even if the clock went back.
        let not_before = previous.map(|e| e.written_at);
        let meta = self.config.codec.stamp(generation, not_before, crc);
        let format = self.config.codec.format;
        let mut bytes = Vec::with_capacity(payload.len() + 256);
        let path = key_path(&self.layout.key);
        envelope::write_head(format, &mut bytes).map_err(|e| Error::io(Op::Write, &path, e))?;
        bytes.extend_from_slice(payload);
        envelope::write_tail(format, &meta, payload.len() as u64, &mut bytes)
            .map_err(|e| Error::io(Op::Write, &path, e))?;
        let entry = Entry {
            generation,
            name: self
                .layout
                .version_name(generation, crate::random::uuid_v7()),
            size: bytes.len() as u64,
            written_at: meta.written_at,
            run_id: meta.run_id,
            schema_version: meta.schema_version,
            checksum: meta.checksum,
        };
        Ok((bytes, meta, entry))
    }

    /// The pointer PUT for `entry` was refused: lost to another writer, or our own PUT
    /// applied and then retried by the client (a retry of an applied conditional PUT
    /// is refused). The pointer says which. Ours: the commit happened, and the
    /// pointer's version is returned (`None` when another commit has already followed,
    /// which makes this handle's next commit a conflict). Lost: the version object is
    /// deleted and the result is [`Error::Conflict`].
    async fn refused(&self, entry: &Entry) -> Result<Option<UpdateVersion>> {
        let store = &*self.store;
        let conflict = |found| Error::Conflict {
            path: key_path(&self.layout.key),
            expected: self.generation(),
            found,
        };
        match self.layout.read_pointer(store).await {
            Ok(Some((v, m)))
                if m.get(entry.generation)
                    .is_some_and(|e| e.name == entry.name) =>
            {
                Ok((m.current().name == entry.name).then_some(v))
            }
            Ok(found) => {
                delete_quietly(store, &self.layout.version_key(&entry.name)).await;
                Err(conflict(found.map_or(0, |(_, m)| m.current().generation)))
            }
            // Unknown: keep the version object (a sweep removes it if unnamed).
            Err(_) => Err(conflict(0)),
        }
    }

    /// The error for a commit that lost: the generation the pointer names now.
    async fn conflict(&self) -> Error {
        let found = match self.layout.read_pointer(&*self.store).await {
            Ok(Some((_, m))) => m.current().generation,
            _ => 0,
        };
        Error::Conflict {
            path: key_path(&self.layout.key),
            expected: self.generation(),
            found,
        }
    }
}

impl<T> Deref for ObjectHistory<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for ObjectHistory<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectHistory")
            .field("store", &format_args!("{}", self.store))
            .field("key", &self.layout.key)
            .field("value", &self.value)
            .field("format", &self.config.codec.format)
            .field("keep", &self.config.keep)
            .field("meta", &self.meta)
            .field("pointer", &self.pointer)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new("jobs/state.json")
    }

    fn entry(l: &Layout, generation: u64) -> Entry {
        Entry {
            generation,
            name: l.version_name(generation, crate::random::uuid_v7()),
            size: 100 + generation,
            written_at: (SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)).into(),
            run_id: crate::random::uuid_v7(),
            schema_version: 3,
            checksum: 0xdead_beef,
        }
    }

    #[test]
    fn pointer_round_trips() {
        let l = layout();
        let m = Manifest {
            entries: vec![entry(&l, 4), entry(&l, 5)],
        };
        let text = m.render();
        assert!(text.starts_with("atomic-persist-history 1\ncurrent 5\nversion 4 0000"));
        assert_eq!(Manifest::parse(text.as_bytes(), &l), Ok(m));
    }

    #[test]
    fn names_parse_back() {
        let l = layout();
        let name = l.version_name(42, crate::random::uuid_v7());
        assert_eq!(name.len(), 20 + 1 + 36 + 5);
        assert_eq!(l.parse_name(&name), Some(42));
        assert_eq!(l.parse_name("00000000000000000042-x.json"), None);
        assert_eq!(l.parse_name(&name.replace(".json", ".toml")), None);
        assert_eq!(
            l.version_key(&name).as_ref(),
            format!("jobs/state.json.versions/{name}")
        );
        assert_eq!(Layout::new("plain").ext, "");
    }

    #[test]
    fn malformed_pointers_are_refused() {
        let l = layout();
        let good = Manifest {
            entries: vec![entry(&l, 1), entry(&l, 2)],
        }
        .render();
        let bad = [
            String::new(),
            "{\"data\":1}".into(),
            good.replace("current 2", "current 1"),
            good.replace("current 2", "current x"),
            good.replace("crc32:deadbeef", "crc32:nothex00"),
            good.replace(" 3 crc32", " 3 extra crc32"),
            good.lines().take(2).collect::<Vec<_>>().join("\n"),
            good.replace(
                "version 1 00000000000000000001",
                "version 3 00000000000000000001",
            ),
            format!("{good}garbage\n"),
        ];
        for b in bad {
            assert!(Manifest::parse(b.as_bytes(), &l).is_err(), "{b:?}");
        }
        assert!(Manifest::parse(&[0xff, 0xfe], &l).is_err());
    }
}
