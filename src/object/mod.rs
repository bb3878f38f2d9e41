//! `ObjectPersisted<T>` and `ObjectHistory<T>`: a value, and a value with its history,
//! kept in an object store (feature `object-store`).
//!
//! Object stores (S3 and its peers, through the [`object_store`] crate; S3 with the
//! `s3` feature) have no rename and no `flock`, but a PUT is atomic — a reader sees the
//! whole old object or the whole new one — and *conditional* PUTs give ordering. An
//! [`ObjectPersisted<T>`] is the object-store twin of [`Persisted<T>`](crate::Persisted):
//! same formats, same [envelope](mod@crate::envelope) (byte for byte: an object can be
//! downloaded and opened as a file, and back), same validate hook, same errors.
//!
//! It is a separate type, not a `Persisted<T>` generic over a backend: the local path
//! keeps its streaming, zero-copy commit with no dynamic dispatch and no extra
//! allocation, and this type, whose every operation is a network request, holds the
//! store as an `Arc<dyn ObjectStore>` and is `async` throughout (the store's own async
//! calls, no blocking threads). What they share is the seam below the handle: the
//! format, the envelope's reader and writer, the checksum and the fingerprint.
//!
//! [`ObjectHistory<T>`] is likewise the twin of the local
//! [`History<T>`](crate::history): every commit a new version object, behind a `latest`
//! pointer object replaced with conditional PUTs; its docs give the layout, the commit
//! steps and what each failure leaves.
//!
//! # Semantics, side by side
//!
//! | | local file ([`Persisted`](crate::Persisted)) | object ([`ObjectPersisted`]) |
//! |---|---|---|
//! | commit | temp file, fsync, rename (+ directory fsync) | one PUT of the serialized (enveloped) bytes; above [`multipart_threshold`](ObjectPersistedBuilder::multipart_threshold), a multipart upload to a fresh body key, then one PUT of a pointer to it (see [Large values](#large-values)) |
//! | readers see | the old or the new complete file | the old or the new complete object (a PUT is atomic) |
//! | interrupted commit | temp file left behind, [`sweep`](crate::sweep) removes it | nothing visible: an unfinished PUT or upload is never an object; a large value's body uploaded but not yet pointed at is left behind, [`sweep_bodies`](ObjectPersisted::sweep_bodies) removes it |
//! | unchanged value | no write | no write (one HEAD to check the object is still the one seen) |
//! | ordering | writer lock + envelope generation check | conditional PUT: `PutMode::Create` when this handle saw no object, `PutMode::Update` with the ETag/version it last saw |
//! | lost race | [`Error::Conflict`] (generations from the envelope) | [`Error::Conflict`] (generations from the envelope when on, else 0); the check needs no envelope |
//! | overwrite anyway | `force_commit` | [`force_commit`](ObjectPersisted::force_commit): an unconditional PUT |
//! | read-modify-write | `update_locked`: lock, reload if changed, apply, commit | [`update_retry`](ObjectPersisted::update_retry): apply, conditional PUT; on a conflict reload and apply again, up to [`max_attempts`](ObjectPersistedBuilder::max_attempts) times with jittered backoff |
//! | durability | [`Durability`](crate::Durability) | the store's: a PUT that returned is durable |
//! | errors name | the path | the object key (as the error's `path`) |
//!
//! Errors: a missing object is [`Error::NotFound`]; a lost conditional PUT is
//! [`Error::Conflict`]; anything else the store reports (refused credentials, an
//! unreachable endpoint, a missing bucket, a timeout) is [`Error::Io`] with
//! [`Op::Get`], [`Op::Put`], [`Op::List`] or [`Op::Delete`], the key as `path`, and
//! the store's error as `source` (refused credentials have the kind
//! `PermissionDenied`, a missing bucket `NotFound` — never [`Error::NotFound`], which
//! `open_or_default` would take for "start fresh").
//!
//! # Large values
//!
//! A serialized object up to [`multipart_threshold`](ObjectPersistedBuilder::multipart_threshold)
//! bytes (default [`DEFAULT_MULTIPART_THRESHOLD`]) is one PUT at the key. A larger one
//! is uploaded in parts, and the object at the key becomes a small *pointer* to it:
//!
//! ```text
//! jobs/state.json                       the pointer: "atomic-persist pointer 1", then
//!                                       the body's key, size, CRC-32 and generation
//! jobs/state.json.bodies/{uuid v7}      the body: the whole serialized (enveloped)
//!                                       object, byte for byte what one PUT would hold
//! ```
//!
//! Why a pointer: `object_store` cannot make the completion of a multipart upload
//! conditional (`PutMultipartOptions` has no `PutMode`), and an unconditional
//! completion at the key would let a large commit overwrite another writer's newer
//! object, the lost update the conditional PUT exists to prevent. A fresh body key
//! has nothing to race for, so only the pointer needs the condition. A commit, in
//! order:
//!
//! 1. Upload the body in parts of [`part_size`](ObjectPersistedBuilder::part_size)
//!    (four in flight) and complete the upload only once every part is stored; a
//!    failed part aborts it. Until completion there is no object, so nothing can
//!    point at a partial body.
//! 2. PUT the pointer at the key, conditionally, exactly like a small value. This is
//!    the commit point: readers see the old pointer (and old value) or the new one.
//! 3. Delete the body the replaced pointer named (no pointer will name it again).
//!    When step 2 lost the race ([`Error::Conflict`]) the new body is deleted instead;
//!    after any other error of step 2 it is kept, since a PUT that timed out may still
//!    have been applied.
//!
//! A refused conditional PUT is not always a lost race: `object_store` retries a PUT
//! whose answer was lost (a timeout, a 5xx), and when the first attempt was applied
//! the retry is refused by the very object it created. So after a refusal the object
//! is read back: if it holds exactly the bytes sent (for a large value, the pointer to
//! the new body, which no other writer can name), the commit happened and returns
//! `Ok`. This holds for small values too; only a large value's body depends on it.
//!
//! A reader GETs the key; a pointer sends it to the body, whose size and CRC-32 must
//! match the pointer's (else [`Error::Corrupt`]). If the body is gone because a writer
//! replaced the pointer in between, it reads the pointer again. A pointer whose body
//! stays missing is [`Error::Corrupt`], never [`Error::NotFound`]. A value that fits
//! the threshold again is written back as a plain object and the last body deleted.
//!
//! A writer killed or cancelled between steps 1 and 2 (or whose step-2 PUT failed
//! without an answer) leaves an orphan body, never a visible partial value;
//! [`sweep_bodies`](ObjectPersisted::sweep_bodies) deletes orphans older than a given
//! age. An upload killed before step 1 completed is no object at all; S3 keeps its
//! parts until a lifecycle rule (`AbortIncompleteMultipartUpload`) expires them.
//!
//! # ETags
//!
//! The condition is the ETag (and version, where the store has one) of the object this
//! handle last read or wrote. S3's ETag of a single PUT is the MD5 of the bytes, so two
//! byte-identical objects share it; with the envelope every commit differs (generation,
//! time, run id), and without it an object that went away and came back byte for byte
//! holds exactly the bytes this handle saw, so overwriting it loses nothing.
//!
//! A plain TOML object is written as a fresh document: the comment-preserving merge of
//! the local type is for files people edit, not objects.
//!
//! ```
//! # #[cfg(feature = "json")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), atomic_persist::Error> {
//! use std::sync::Arc;
//! use atomic_persist::{object::ObjectPersisted, Error};
//! use object_store::memory::InMemory;
//!
//! let store = Arc::new(InMemory::new()); // or an AmazonS3 from AmazonS3Builder
//! let open = || {
//!     ObjectPersisted::<u64>::builder(store.clone(), "jobs/counter.json")
//!         .envelope(true)
//!         .open_or_default()
//! };
//! let (mut a, mut b) = (open().await?, open().await?);
//! a.set(1).await?;
//! // b never saw a's object: its PUT (If-None-Match: *) loses.
//! assert!(matches!(b.set(2).await, Err(Error::Conflict { expected: 0, found: 1, .. })));
//! // The retry loop reloads and applies again.
//! b.update_retry(|n| *n += 10).await?;
//! assert_eq!(*b, 11);
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "json"))]
//! # fn main() {}
//! ```

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::Codec;
use crate::envelope::{self, Fingerprint, Hashing, Meta};
use crate::error::{CorruptKind, Error, Op, Result};
use options::Options;
use pointer::Pointer;
use store::{Multipart, Retry, get_bytes, head, key_path, same_version, store_error};

mod history;
mod options;
mod pointer;
mod probe;
mod snapshot;
mod store;

pub use history::{ObjectHistory, ObjectHistoryBuilder, ObjectVersionInfo};
pub use options::DEFAULT_MAX_ATTEMPTS;
pub use snapshot::{ObjectSnapshot, ObjectTransaction, ObjectView};
pub use store::{DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE};

/// A value stored in an object, committed with conditional PUTs. See the
/// [module docs](self).
///
/// ```
/// # #[cfg(feature = "json")]
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), atomic_persist::Error> {
/// use std::sync::Arc;
/// use atomic_persist::ObjectPersisted;
///
/// let store = Arc::new(object_store::memory::InMemory::new());
/// let mut jobs = ObjectPersisted::<Vec<String>>::builder(store, "queue.json")
///     .envelope(true)
///     .open_or_default()
///     .await?;
/// jobs.update(|q| q.push("resize".into())).await?; // one conditional PUT
/// assert_eq!(jobs.meta().unwrap().generation, 1);
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "json"))]
/// # fn main() {}
/// ```
pub struct ObjectPersisted<T> {
    value: T,
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    config: Config<T>,
    meta: Option<Meta>,
    /// The version of the object this handle last read or wrote; `None` when it has
    /// seen none (the next commit then uses `PutMode::Create`).
    version: Option<UpdateVersion>,
    /// The payload last read or written, and the schema version when enveloped.
    disk: Option<(Fingerprint, Option<u32>)>,
    /// The body the object named when it was last read or written as a pointer: the
    /// one to delete once a commit has replaced that pointer.
    body: Option<ObjectPath>,
}

struct Config<T> {
    codec: Codec<T>,
    envelope: bool,
    max_attempts: u32,
    multipart: Multipart,
    probe: bool,
}

/// Builds an [`ObjectPersisted<T>`]: `ObjectPersisted::<T>::builder(store, key)`.
pub struct ObjectPersistedBuilder<T> {
    options: Options<T>,
    envelope: bool,
}

/// An object read from the store.
struct Loaded<T> {
    value: T,
    meta: Option<Meta>,
    version: UpdateVersion,
    disk: (Fingerprint, Option<u32>),
    body: Option<ObjectPath>,
}

/// The bytes of the value at a key: the object itself, or the body its pointer names.
struct Fetched {
    bytes: Bytes,
    /// The version of the object at the key (the pointer's, for a large value).
    version: UpdateVersion,
    body: Option<ObjectPath>,
}

/// How a commit treats the object already there.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Checked,
    Forced,
}

impl<T> ObjectPersistedBuilder<T> {
    options::shared_setters!("ObjectPersisted");

    /// Wrap the value in the [envelope](mod@crate::envelope) (default `false`).
    pub fn envelope(mut self, on: bool) -> Self {
        self.envelope = on;
        self
    }

    fn config(self) -> Result<(Arc<dyn ObjectStore>, ObjectPath, Config<T>)> {
        let o = self.options;
        let config = Config {
            codec: o.codec.resolve(&o.key)?,
            envelope: self.envelope,
            max_attempts: o.max_attempts,
            multipart: o.multipart,
            probe: o.probe,
        };
        Ok((o.store, ObjectPath::from(o.key.as_str()), config))
    }
}

impl<T: Serialize + DeserializeOwned> ObjectPersistedBuilder<T> {
    /// Reads an existing object: [`Error::NotFound`] when there is none.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no object;
    /// [`Error::UnknownFormat`] when the key's extension names
    /// no format; [`Error::Corrupt`] for a damaged object (or a
    /// pointer to a missing body,
    /// [`CorruptKind::MissingBody`]);
    /// [`Error::Deserialize`],
    /// [`Error::SchemaVersion`],
    /// [`Error::Invalid`] and
    /// [`Error::UnexpectedEnvelope`] as for a local file;
    /// [`Error::Io`] with [`Op::Get`] when the store
    /// fails.
    pub async fn open(self) -> Result<ObjectPersisted<T>> {
        let (store, key, config) = self.config()?;
        let loaded = load(&*store, &key, &config).await?;
        let mut p = ObjectPersisted::empty(store, key, config, loaded.value);
        p.meta = loaded.meta;
        p.version = Some(loaded.version);
        p.disk = Some(loaded.disk);
        p.body = loaded.body;
        Ok(p)
    }

    /// Reads the object, or starts from `T::default()` when there is none (nothing is
    /// written until the first commit, which then creates the object only if it still
    /// does not exist).
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that a missing object is not an error.
    pub async fn open_or_default(self) -> Result<ObjectPersisted<T>>
    where
        T: Default,
    {
        self.open_or_else(T::default).await
    }

    /// Reads the object, or starts from `f()` when there is none.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open), except that a missing object is not an error.
    pub async fn open_or_else(self, f: impl FnOnce() -> T) -> Result<ObjectPersisted<T>> {
        let (store, key, config) = self.config()?;
        match load(&*store, &key, &config).await {
            Ok(loaded) => {
                let mut p = ObjectPersisted::empty(store, key, config, loaded.value);
                p.meta = loaded.meta;
                p.version = Some(loaded.version);
                p.disk = Some(loaded.disk);
                p.body = loaded.body;
                Ok(p)
            }
            Err(Error::NotFound { .. }) => Ok(ObjectPersisted::empty(store, key, config, f())),
            Err(e) => Err(e),
        }
    }
}

impl<T> fmt::Debug for ObjectPersistedBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ObjectPersistedBuilder");
        self.options.debug_fields(&mut d);
        d.field("envelope", &self.envelope).finish()
    }
}

impl<T: Serialize + DeserializeOwned> ObjectPersisted<T> {
    /// A builder for the object `key` in `store`.
    pub fn builder(store: Arc<dyn ObjectStore>, key: impl AsRef<str>) -> ObjectPersistedBuilder<T> {
        ObjectPersistedBuilder {
            options: Options::new(store, key.as_ref()),
            envelope: false,
        }
    }

    /// Reads an existing object with the defaults (format from the key's extension, no
    /// envelope): [`Error::NotFound`] when there is none.
    ///
    /// # Errors
    ///
    /// As [`ObjectPersistedBuilder::open`].
    pub async fn open(store: Arc<dyn ObjectStore>, key: impl AsRef<str>) -> Result<Self> {
        Self::builder(store, key).open().await
    }

    /// Reads the object, or starts from `T::default()` when there is none.
    ///
    /// # Errors
    ///
    /// As [`ObjectPersistedBuilder::open_or_default`].
    pub async fn open_or_default(store: Arc<dyn ObjectStore>, key: impl AsRef<str>) -> Result<Self>
    where
        T: Default,
    {
        Self::builder(store, key).open_or_default().await
    }

    fn empty(store: Arc<dyn ObjectStore>, key: ObjectPath, config: Config<T>, value: T) -> Self {
        ObjectPersisted {
            value,
            store,
            key,
            config,
            meta: None,
            version: None,
            disk: None,
            body: None,
        }
    }

    /// The value.
    pub fn get(&self) -> &T {
        &self.value
    }

    /// The value, to change in place before a [`commit`](Self::commit).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Changes the value with `f`, then commits; returns what `f` returned. On a failed
    /// commit the changed value stays in memory; [`reload`](Self::reload) to go back.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub async fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let r = f(&mut self.value);
        self.commit().await?;
        Ok(r)
    }

    /// Replaces the value, then commits.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit).
    pub async fn set(&mut self, value: T) -> Result<()> {
        self.value = value;
        self.commit().await
    }

    /// Saves the value with one conditional PUT: `PutMode::Create` when this handle has
    /// seen no object, else `PutMode::Update` with the ETag/version it last saw. When
    /// another writer got there first the object is untouched and the result is
    /// [`Error::Conflict`]: [`reload`](Self::reload) and redo the change, use
    /// [`update_retry`](Self::update_retry), or [`force_commit`](Self::force_commit).
    ///
    /// A value whose bytes equal those last read or written costs one HEAD (is the
    /// object still that version?) and no PUT.
    ///
    /// Cancellation: dropping the future before the PUT is sent changes nothing; after,
    /// the PUT may or may not have been applied by the store (the object is then the old
    /// or the new complete value), and this handle does not know which: reload it.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when the conditional PUT lost to another
    /// writer (the object changed since this handle last read or wrote it);
    /// [`Error::Invalid`] and
    /// [`Error::Serialize`] as for a local commit;
    /// [`Error::Io`] with [`Op::Put`] when the store
    /// fails, after which the object may hold the old or the new value (reload to know);
    /// [`Error::Refused`] ([`Refusal::ConditionsIgnored`](crate::Refusal::ConditionsIgnored))
    /// for a store that does not enforce conditional writes (nothing is written; see
    /// [`probe_conditional_writes`](ObjectPersistedBuilder::probe_conditional_writes)).
    pub async fn commit(&mut self) -> Result<()> {
        self.write(Mode::Checked).await
    }

    /// Saves the value with an unconditional PUT, over whatever object is there. The
    /// new generation is one more than the larger of this handle's and the object's.
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit), without [`Error::Conflict`].
    pub async fn force_commit(&mut self) -> Result<()> {
        self.write(Mode::Forced).await
    }

    /// The read-modify-write loop, the object-store counterpart of
    /// [`Persisted::update_locked`](crate::Persisted::update_locked): applies `f` to the value and
    /// commits; when the conditional PUT loses a race ([`Error::Conflict`]), reloads the
    /// object, applies `f` again to what is there, and tries again — at most
    /// [`max_attempts`](ObjectPersistedBuilder::max_attempts) times, with a short,
    /// jittered, growing pause between attempts. `f` must therefore be a change that can
    /// be applied again to a fresh value (`n += 1`, not `n = old + 1`). Returns what the
    /// successful call of `f` returned; after the last attempt, the last conflict.
    ///
    /// An object this handle saw that has since been deleted is [`Error::NotFound`]
    /// (nothing to update; [`force_commit`](Self::force_commit) writes it again).
    ///
    /// # Errors
    ///
    /// As [`commit`](Self::commit), except that a lost race is retried up to the builder's
    /// attempt limit; [`Error::NotFound`] when the object this
    /// handle saw was deleted.
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

    /// Reads the object again, replacing the value in memory.
    ///
    /// # Errors
    ///
    /// As [`ObjectPersistedBuilder::open`].
    pub async fn reload(&mut self) -> Result<()> {
        let loaded = load(&*self.store, &self.key, &self.config).await?;
        self.value = loaded.value;
        self.meta = loaded.meta;
        self.version = Some(loaded.version);
        self.disk = Some(loaded.disk);
        self.body = loaded.body;
        Ok(())
    }

    /// Deletes the bodies of large values that the object no longer names and that
    /// were last modified at least `min_age` ago; returns how many it deleted.
    ///
    /// A commit deletes the body it replaces, so bodies are only left behind by a
    /// writer that crashed or was cancelled between its upload and its pointer PUT, or
    /// whose pointer PUT failed without saying whether it was applied. A body being
    /// uploaded right now is not named by the pointer yet: `min_age` must be longer
    /// than the longest commit (an hour is generous), or a sweep can delete a body
    /// just before its pointer is written, and the value with it. (S3 dates a
    /// multipart object from the start of its upload.)
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::List`] or
    /// [`Op::Delete`] when the store fails.
    pub async fn sweep_bodies(&self, min_age: Duration) -> Result<usize> {
        let prefix = Pointer::bodies(&self.key);
        let listed = self
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| store_error(Op::List, &prefix, e))?;
        // Read after listing: a body listed before its pointer was written is young.
        let live = match fetch(&*self.store, &self.key).await {
            Ok(fetched) => fetched.body,
            Err(Error::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut deleted = 0;
        for object in listed.objects {
            let age_ms = now.saturating_sub(object.last_modified.timestamp_millis());
            let young = age_ms < min_age.as_millis().min(i64::MAX as u128) as i64;
            if young || Some(&object.location) == live.as_ref() {
                continue;
            }
            match self.store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => return Err(store_error(Op::Delete, &object.location, e)),
            }
        }
        Ok(deleted)
    }

    /// The envelope's meta of the object as last read or written (`None` without the
    /// envelope or before the first commit of a new object).
    pub fn meta(&self) -> Option<&Meta> {
        self.meta.as_ref()
    }

    /// The ETag and version of the object as last read or written, the condition of the
    /// next commit; `None` when this handle has seen no object.
    pub fn version(&self) -> Option<&UpdateVersion> {
        self.version.as_ref()
    }

    /// The object's key.
    pub fn key(&self) -> &ObjectPath {
        &self.key
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The value, leaving the object as it is.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Validates and serializes the value, envelope included: the bytes, the payload's
    /// fingerprint and the meta they carry.
    fn encode(&self, found_generation: u64) -> Result<(Vec<u8>, Fingerprint, Option<Meta>)> {
        let path = key_path(&self.key);
        self.config.codec.check(&self.value, &path)?;
        let (format, enveloped) = (self.config.codec.format, self.config.envelope);
        let mut out = Vec::new();
        if enveloped {
            envelope::write_head(format, &mut out).map_err(|e| Error::io(Op::Write, &path, e))?;
        }
        let mut h = Hashing::new(&mut out);
        envelope::write_payload(format, enveloped, &self.value, &mut h).map_err(|e| e.at(&path))?;
        let (payload, crc) = (h.fingerprint(), h.crc);
        let meta = match enveloped {
            true => {
                let next = |g| envelope::next_generation(g, &path);
                let mine = self.meta.as_ref().map_or(Ok(1), |m| next(m.generation))?;
                // A forced commit: never behind the generation it overwrites.
                let generation = mine.max(next(found_generation)?);
                let not_before = self.meta.as_ref().map(|m| m.written_at);
                let meta = self.config.codec.stamp(generation, not_before, crc);
                envelope::write_tail(format, &meta, payload.len(), &mut out)
                    .map_err(|e| Error::io(Op::Write, &path, e))?;
                Some(meta)
            }
            false => None,
        };
        Ok((out, payload, meta))
    }

    async fn write(&mut self, mode: Mode) -> Result<()> {
        let enveloped = self
            .config
            .envelope
            .then_some(self.config.codec.schema_version);
        // A forced commit never goes back in generations: read what it overwrites.
        let found = match (mode, enveloped) {
            (Mode::Forced, Some(_)) => self.current_generation().await?,
            _ => 0,
        };
        let (bytes, payload, meta) = self.encode(found)?;
        if mode == Mode::Checked && self.disk == Some((payload, enveloped)) {
            // The same bytes: nothing to write if the object is still the one we saw.
            match (&self.version, head(&*self.store, &self.key).await) {
                (Some(v), Ok(m)) if same_version(v, &m) => return Ok(()),
                (None, Err(Error::NotFound { .. })) => {}
                (_, Err(e @ Error::Io { .. })) => return Err(e),
                _ => return Err(self.conflict().await),
            }
        }
        if self.config.probe && mode == Mode::Checked {
            probe::ensure(&*self.store, &self.key).await?;
        }
        let generation = meta.as_ref().map_or(0, |m| m.generation);
        let (object, new_body) = self.upload_body(bytes, generation).await?;
        let put_mode = match (mode, &self.version) {
            (Mode::Forced, _) => PutMode::Overwrite,
            (Mode::Checked, None) => PutMode::Create,
            (Mode::Checked, Some(v)) => PutMode::Update(v.clone()),
        };
        let opts = PutOptions::from(put_mode);
        let payload_put = PutPayload::from(object.clone());
        let result = self.store.put_opts(&self.key, payload_put, opts).await;
        let version = match result {
            Ok(put) => UpdateVersion::from(put),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) if mode == Mode::Checked => self.refused(&object, new_body.as_ref()).await?,
            // Any other error may come after the store applied the PUT (a timeout): the
            // new body may be live, so it stays (`sweep_bodies` removes it if not).
            Err(e) => return Err(store_error(Op::Put, &self.key, e)),
        };
        self.version = Some(version);
        self.disk = Some((payload, enveloped));
        if meta.is_some() {
            self.meta = meta;
        }
        // The replaced pointer named this body and nothing else ever will: it can go (a
        // reader that still follows the old pointer reads it again).
        if let Some(old) = std::mem::replace(&mut self.body, new_body) {
            store::delete_quietly(&*self.store, &old).await;
        }
        Ok(())
    }

    /// A conditional PUT was refused: another writer got there first, or this PUT was
    /// applied, its answer lost, and the client's automatic retry refused by the object
    /// the first attempt created. The object tells which: when it holds exactly the
    /// bytes sent (for a large value, a pointer naming the new body, which no one else
    /// can name), the commit happened and its version is returned.
    async fn refused(&self, sent: &Bytes, new_body: Option<&ObjectPath>) -> Result<UpdateVersion> {
        let now = get_bytes(&*self.store, &self.key).await;
        if let Ok((bytes, version)) = &now
            && bytes == sent
        {
            return Ok(version.clone());
        }
        // Deleted only when the object is known not to name it; after a failed read
        // the PUT may yet be the one applied, and `sweep_bodies` decides later.
        if let (Some(body), Ok(_) | Err(Error::NotFound { .. })) = (new_body, &now) {
            store::delete_quietly(&*self.store, body).await;
        }
        Err(self.conflict().await)
    }

    /// The object to PUT at the key: the bytes themselves, or, above the multipart
    /// threshold, a pointer to a new body uploaded first (with its key).
    async fn upload_body(
        &self,
        bytes: Vec<u8>,
        generation: u64,
    ) -> Result<(Bytes, Option<ObjectPath>)> {
        if !self.config.multipart.applies(bytes.len()) {
            return Ok((Bytes::from(bytes), None));
        }
        let pointer = Pointer {
            body: Pointer::new_body_key(&self.key),
            size: bytes.len() as u64,
            crc32: crc32fast::hash(&bytes),
            generation,
        };
        // The body is complete and stored before any pointer names it.
        let body = Bytes::from(bytes);
        store::create_unique(&*self.store, &pointer.body, body, self.config.multipart).await?;
        Ok((Bytes::from(pointer.encode()), Some(pointer.body)))
    }

    /// The generation of the object in the store now: 0 when there is none, or it is
    /// plain or unreadable.
    async fn current_generation(&self) -> Result<u64> {
        let bytes = match get_bytes(&*self.store, &self.key).await {
            Ok((bytes, _)) => bytes,
            Err(Error::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        // A pointer carries its body's generation: no need to download the body.
        if let Some(pointer) = Pointer::parse(&self.key, &bytes) {
            return Ok(pointer.map_or(0, |p| p.generation));
        }
        Ok(envelope::split(self.config.codec.format, &bytes, true)
            .ok()
            .and_then(|s| s.meta)
            .map_or(0, |m| m.generation))
    }

    /// The error for a lost conditional PUT, with the generation now in the store.
    async fn conflict(&self) -> Error {
        let found = match self.config.envelope {
            true => self.current_generation().await.unwrap_or(0),
            false => 0,
        };
        Error::Conflict {
            path: key_path(&self.key),
            expected: self.meta.as_ref().map_or(0, |m| m.generation),
            found,
        }
    }
}

impl<T> Deref for ObjectPersisted<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for ObjectPersisted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectPersisted")
            .field("store", &format_args!("{}", self.store))
            .field("key", &self.key)
            .field("value", &self.value)
            .field("format", &self.config.codec.format)
            .field("envelope", &self.config.envelope)
            .field("meta", &self.meta)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// How often a reader reads a pointer again when its body has just been deleted by
/// a writer that replaced the pointer (each time, the pointer has moved on).
const BODY_RETRIES: u32 = 100;

/// The bytes of the value at `key`, following a pointer to its body.
async fn fetch(store: &dyn ObjectStore, key: &ObjectPath) -> Result<Fetched> {
    let mut missing = None;
    for _ in 0..BODY_RETRIES {
        let (bytes, version) = get_bytes(store, key).await?;
        let Some(pointer) = Pointer::parse(key, &bytes) else {
            return Ok(Fetched {
                bytes,
                version,
                body: None,
            });
        };
        let pointer = pointer?;
        if missing.as_ref() == Some(&pointer.body) {
            break; // still named, still missing
        }
        match get_bytes(store, &pointer.body).await {
            Ok((bytes, _)) => {
                check_body(key, &pointer, &bytes)?;
                let body = Some(pointer.body);
                return Ok(Fetched {
                    bytes,
                    version,
                    body,
                });
            }
            // A writer replaced the pointer and deleted this body between the two
            // GETs, or the body is lost: the pointer, read again, tells which.
            Err(Error::NotFound { .. }) => missing = Some(pointer.body),
            Err(e) => return Err(e),
        }
    }
    // Not `NotFound`: `open_or_default` would start afresh over a live value.
    Err(Error::Corrupt {
        path: key_path(key),
        kind: CorruptKind::MissingBody,
        reason: format!(
            "its pointer names {}, which does not exist",
            missing.map_or_else(String::new, |b| b.to_string())
        ),
    })
}

/// A body must be the one its pointer was written for.
fn check_body(key: &ObjectPath, pointer: &Pointer, bytes: &[u8]) -> Result<()> {
    let (size, crc32) = (bytes.len() as u64, crc32fast::hash(bytes));
    if (size, crc32) == (pointer.size, pointer.crc32) {
        return Ok(());
    }
    Err(Error::Corrupt {
        path: key_path(key),
        kind: CorruptKind::MissingBody,
        reason: format!(
            "its body {} has {size} bytes with CRC-32 {crc32}, the pointer says {} bytes with {}",
            pointer.body, pointer.size, pointer.crc32
        ),
    })
}

async fn load<T: DeserializeOwned>(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    config: &Config<T>,
) -> Result<Loaded<T>> {
    let Fetched {
        bytes,
        version,
        body,
    } = fetch(store, key).await?;
    let path = key_path(key);
    let format = config.codec.format;
    let split =
        envelope::split_for_decode(format, &bytes, config.envelope, envelope::Edits::Refuse)
            .map_err(|e| e.at(&path))?;
    let value: T = config.codec.value(&path, &bytes, &split)?;
    let disk = (
        Fingerprint::of(split.payload),
        split.meta.as_ref().map(|m| m.schema_version),
    );
    Ok(Loaded {
        value,
        meta: split.meta,
        version,
        disk,
        body,
    })
}
