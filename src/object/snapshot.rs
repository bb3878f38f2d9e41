//! [`ObjectSnapshot`], a set of objects that changes all at once, and its transaction
//! and view.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::store::{Multipart, create_unique, delete_quietly, get_bytes, key_path, store_error};
use crate::error::{CorruptKind, Error, Op, Result};

/// The pointer's first line.
const MAGIC: &str = "atomic-persist-snapshot 1";

/// [`ObjectSnapshot`]: a set of objects that changes all at once, the object-store
/// counterpart of [`Snapshot`](crate::Snapshot).
///
/// A snapshot at key `ckpt` is a pointer object there, naming one generation: a prefix
/// `ckpt.gen/{generation:020}-{uuid}/` that holds the set's objects, each listed in the
/// pointer with its size and CRC-32:
///
/// ```text
/// atomic-persist-snapshot 1
/// generation 3
/// prefix ckpt.gen/00000000000000000003-0190f5e2-7a3b-7c4d-8e9f-0123456789ab
/// file 1024 1a2b3c4d model.bin
/// ```
///
/// A commit uploads every object of the new set under a fresh prefix (no one else
/// writes there, and no reader looks there yet), then replaces the pointer with one
/// conditional PUT (`If-Match` the version the transaction began from, or `If-None-Match:
/// *` for the first): the commit point. A writer that lost the race gets
/// [`Error::Conflict`] and its objects are deleted again. A reader GETs the pointer
/// once and reads the objects it lists, each checked against its size and CRC-32, so it
/// never mixes two sets; an object retention removed under it is
/// [`Error::Corrupt`] ([`CorruptKind::MissingBody`]), never another set's bytes.
///
/// ```
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// use atomic_persist::object::ObjectSnapshot;
/// use std::sync::Arc;
/// let store = Arc::new(object_store::memory::InMemory::new());
/// let snap = ObjectSnapshot::new(store, "ckpt").keep(2);
/// let mut tx = snap.begin().await?;
/// tx.write("shard-0.bin", vec![0u8; 1024])?;
/// tx.write("shard-1.bin", vec![1u8; 1024])?;
/// assert_eq!(tx.commit().await?, 1);
/// let view = snap.current().await?;
/// assert_eq!(view.read("shard-1.bin").await?, vec![1u8; 1024]);
/// # Ok::<(), atomic_persist::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ObjectSnapshot {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    keep: Option<usize>,
    multipart: Multipart,
    probe: bool,
}

impl ObjectSnapshot {
    /// The snapshot whose pointer is the object `key` in `store` (nothing is read or
    /// written until a transaction or a read).
    pub fn new(store: Arc<dyn ObjectStore>, key: impl AsRef<str>) -> ObjectSnapshot {
        ObjectSnapshot {
            store,
            key: ObjectPath::from(key.as_ref()),
            keep: None,
            multipart: Multipart::default(),
            probe: true,
        }
    }

    /// Keep only the newest `n` generations (at least 1); by default all are kept.
    pub fn keep(mut self, n: usize) -> Self {
        self.keep = Some(n.max(1));
        self
    }

    /// Objects of a set larger than this many bytes are uploaded in parts (to their
    /// own key in the set's prefix, as any object of it); default
    /// [`DEFAULT_MULTIPART_THRESHOLD`](crate::object::DEFAULT_MULTIPART_THRESHOLD).
    pub fn multipart_threshold(mut self, bytes: u64) -> Self {
        self.multipart.threshold = bytes;
        self
    }

    /// The size of each part of a multipart upload but the last (default
    /// [`DEFAULT_PART_SIZE`](crate::object::DEFAULT_PART_SIZE), at least 1). S3 refuses
    /// parts under 5 MiB.
    pub fn part_size(mut self, bytes: usize) -> Self {
        self.multipart.part_size = bytes.max(1);
        self
    }

    /// Check, before the first commit to the store, that it enforces the conditional
    /// writes commits are ordered by (default `true`; once per store and process; see
    /// [`Refusal::ConditionsIgnored`](crate::Refusal::ConditionsIgnored)).
    pub fn probe_conditional_writes(mut self, on: bool) -> Self {
        self.probe = on;
        self
    }

    /// The generation the pointer names; `None` before the first commit.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] ([`CorruptKind::BadPointer`]) for a pointer that does not
    /// parse; [`Error::Io`] with [`Op::Get`] when the store fails.
    pub async fn latest_generation(&self) -> Result<Option<u64>> {
        Ok(self.pointer().await?.map(|(p, _)| p.generation))
    }

    /// The current set: the pointer read once.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] before the first commit; as
    /// [`latest_generation`](Self::latest_generation).
    pub async fn current(&self) -> Result<ObjectView> {
        match self.pointer().await? {
            Some((pointer, _)) => Ok(ObjectView {
                store: self.store.clone(),
                pointer,
            }),
            None => Err(Error::NotFound {
                path: key_path(&self.key),
            }),
        }
    }

    /// Starts a new set, to replace the one current now.
    ///
    /// # Errors
    ///
    /// As [`latest_generation`](Self::latest_generation).
    pub async fn begin(&self) -> Result<ObjectTransaction<'_>> {
        let base = self.pointer().await?;
        let generation = base.as_ref().map_or(0, |(p, _)| p.generation);
        let generation = crate::envelope::next_generation(generation, &key_path(&self.key))?;
        let prefix = format!(
            "{}.gen/{generation:020}-{}",
            self.key,
            crate::random::uuid_v7()
        );
        Ok(ObjectTransaction {
            snap: self,
            base,
            pointer: SetPointer {
                generation,
                prefix,
                files: BTreeMap::new(),
            },
            objects: Vec::new(),
        })
    }

    /// The pointer and its version; `None` when there is none.
    async fn pointer(&self) -> Result<Option<(SetPointer, UpdateVersion)>> {
        match get_bytes(&*self.store, &self.key).await {
            Ok((bytes, version)) => Ok(Some((SetPointer::parse(&bytes, &self.key)?, version))),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the objects that no commit made current and that no retained generation
    /// holds, last modified at least `min_age` ago; returns how many it deleted.
    ///
    /// A commit deletes its objects when it loses the race, so objects are only left
    /// behind by a writer that crashed or was cancelled between its uploads and its
    /// pointer PUT, whose PUT failed without saying whether it was applied (and it was
    /// not), or whose retention's deletes failed. Their prefix tells them: a generation
    /// newer than the pointer's, the pointer's generation under another prefix, or a
    /// generation older than [`keep`](Self::keep) retains. The pointer names only the
    /// current generation, so an orphan among the older generations still retained
    /// cannot be told from the generation itself: it stays until retention passes it
    /// (with every generation kept, it stays).
    ///
    /// Objects being uploaded right now are named by no pointer yet: `min_age` must be
    /// longer than the longest commit (an hour is generous), or a sweep can delete a set
    /// just before its pointer is written.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with [`Op::List`], [`Op::Get`] or [`Op::Delete`] when the store
    /// fails; [`Error::Corrupt`] ([`CorruptKind::BadPointer`]) for a pointer that does
    /// not parse (nothing is deleted then).
    pub async fn sweep(&self, min_age: Duration) -> Result<usize> {
        let root = ObjectPath::from(format!("{}.gen", self.key));
        let listed = (self.store.list_with_delimiter(Some(&root)).await)
            .map_err(|e| store_error(Op::List, &root, e))?;
        // Read after listing: a set listed before its pointer was written is young.
        let pointer = self.pointer().await?.map(|(p, _)| p);
        let current = pointer.as_ref().map_or(0, |p| p.generation);
        let oldest_kept = self
            .keep
            .map_or(0, |k| current.saturating_sub(k as u64 - 1));
        let orphan = |prefix: &ObjectPath| {
            let Some(g) = generation_of(prefix) else {
                return false; // not a generation's prefix: not ours to delete
            };
            let live = pointer
                .as_ref()
                .is_some_and(|p| p.prefix == prefix.as_ref());
            g > current || (g == current && !live) || g < oldest_kept
        };
        let mut deleted = 0;
        for prefix in listed.common_prefixes.iter().filter(|p| orphan(p)) {
            let objects = (self.store.list_with_delimiter(Some(prefix)).await)
                .map_err(|e| store_error(Op::List, prefix, e))?;
            for object in objects.objects.iter().filter(|o| old_enough(o, min_age)) {
                match self.store.delete(&object.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                    Err(e) => return Err(store_error(Op::Delete, &object.location, e)),
                }
            }
        }
        Ok(deleted)
    }

    /// Deletes the objects of the generations before the newest `keep` (best effort:
    /// what stays is deleted by a later commit).
    async fn prune(&self, current: u64) {
        let Some(keep) = self.keep else { return };
        let oldest_kept = current.saturating_sub(keep as u64 - 1);
        let root = ObjectPath::from(format!("{}.gen", self.key));
        let Ok(listed) = self.store.list_with_delimiter(Some(&root)).await else {
            return;
        };
        for prefix in listed.common_prefixes {
            if generation_of(&prefix).is_none_or(|g| g >= oldest_kept) {
                continue;
            }
            let Ok(objects) = self.store.list_with_delimiter(Some(&prefix)).await else {
                continue;
            };
            for meta in objects.objects {
                delete_quietly(&*self.store, &meta.location).await;
            }
        }
    }
}

impl fmt::Debug for ObjectSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectSnapshot")
            .field("store", &format_args!("{}", self.store))
            .field("key", &self.key)
            .field("keep", &self.keep)
            .field("probe", &self.probe)
            .finish()
    }
}

/// What the pointer says: the generation, its prefix, and each object's size and CRC-32.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SetPointer {
    generation: u64,
    prefix: String,
    files: BTreeMap<String, (u64, u32)>,
}

impl SetPointer {
    fn render(&self) -> String {
        let mut out = format!(
            "{MAGIC}\ngeneration {}\nprefix {}\n",
            self.generation, self.prefix
        );
        for (name, (size, crc)) in &self.files {
            out += &format!("file {size} {crc:08x} {name}\n");
        }
        out
    }

    fn parse(bytes: &[u8], key: &ObjectPath) -> Result<SetPointer> {
        let bad = |why: &str| {
            Error::corrupt(
                key_path(key),
                CorruptKind::BadPointer,
                format!("the snapshot pointer {why}"),
            )
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("is not UTF-8"))?;
        let mut lines = text.lines();
        if lines.next() != Some(MAGIC) {
            return Err(bad("does not start with its header"));
        }
        let generation = (lines.next().and_then(|l| l.strip_prefix("generation ")))
            .and_then(|g| g.parse().ok())
            .ok_or_else(|| bad("has no generation"))?;
        let prefix = (lines.next().and_then(|l| l.strip_prefix("prefix ")))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("has no prefix"))?
            .to_owned();
        let mut files = BTreeMap::new();
        for line in lines {
            let mut parts = line
                .strip_prefix("file ")
                .ok_or_else(|| bad("has a bad line"))?
                .splitn(3, ' ');
            let (size, crc, name) = (parts.next(), parts.next(), parts.next());
            let size = size
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad("has a bad size"))?;
            let crc = crc
                .and_then(|c| u32::from_str_radix(c, 16).ok())
                .ok_or_else(|| bad("has a bad CRC"))?;
            let name = name
                .filter(|n| valid_name(n))
                .ok_or_else(|| bad("has a bad name"))?;
            files.insert(name.to_owned(), (size, crc));
        }
        Ok(SetPointer {
            generation,
            prefix,
            files,
        })
    }

    fn object_key(&self, name: &str) -> ObjectPath {
        ObjectPath::from(format!("{}/{name}", self.prefix))
    }
}

/// The generation of a set's prefix `{key}.gen/{generation:020}-{uuid}`.
fn generation_of(prefix: &ObjectPath) -> Option<u64> {
    prefix.filename()?.get(..20)?.parse().ok()
}

/// Whether `object` was last modified at least `min_age` ago.
fn old_enough(object: &object_store::ObjectMeta, min_age: Duration) -> bool {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let age_ms = now.saturating_sub(object.last_modified.timestamp_millis());
    age_ms >= min_age.as_millis().min(i64::MAX as u128) as i64
}

/// One plain object name: not empty, no `/`, no line break, not `.` or `..`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\n', '\r']) && name != "." && name != ".."
}

/// A new set of objects being written: see [`ObjectSnapshot::begin`]. The objects are
/// kept in memory and uploaded at [`commit`](Self::commit).
pub struct ObjectTransaction<'s> {
    snap: &'s ObjectSnapshot,
    /// The pointer the transaction began from.
    base: Option<(SetPointer, UpdateVersion)>,
    pointer: SetPointer,
    objects: Vec<(String, Bytes)>,
}

impl ObjectTransaction<'_> {
    /// Adds `bytes` as the object `name` of the new set (a later write of the same name
    /// replaces it).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] (`InvalidInput`) for a name that is empty, `.`, `..`, or holds a
    /// `/` or a line break.
    pub fn write(&mut self, name: impl AsRef<str>, bytes: impl Into<Bytes>) -> Result<()> {
        let name = name.as_ref();
        if !valid_name(name) {
            let e = std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not one plain object name",
            );
            return Err(Error::io(
                Op::Put,
                key_path(&self.pointer.object_key(name)),
                e,
            ));
        }
        let bytes = bytes.into();
        let entry = (bytes.len() as u64, crc32fast::hash(&bytes));
        self.pointer.files.insert(name.to_owned(), entry);
        self.objects.retain(|(n, _)| n != name);
        self.objects.push((name.to_owned(), bytes));
        Ok(())
    }

    /// Serializes `value` as the object `name` of the new set, in the format its
    /// extension names (`.json`, `.toml`, `.yaml`, `.ron`, `.bin`), without the envelope: the pointer's
    /// CRC-32 checks it on every read.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownFormat`] for an extension that names no format;
    /// [`Error::Serialize`] naming the object; as [`write`](Self::write) for the name.
    pub fn put<T: serde::Serialize + ?Sized>(
        &mut self,
        name: impl AsRef<str>,
        value: &T,
    ) -> Result<()> {
        let name = name.as_ref();
        let path = key_path(&self.pointer.object_key(name));
        let format = crate::format::AnyFormat::from_path(name).map_err(|e| e.at(&path))?;
        let mut bytes = Vec::new();
        crate::envelope::write_payload(format, false, value, &mut bytes)
            .map_err(|e| e.at(&path))?;
        self.write(name, bytes)
    }

    /// The generation this transaction commits, unless another writer commits first.
    pub fn generation(&self) -> u64 {
        self.pointer.generation
    }

    /// Uploads the set and makes it current with one conditional PUT of the pointer;
    /// returns its generation.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when another writer committed since
    /// [`begin`](ObjectSnapshot::begin) (its objects are deleted again, the snapshot is
    /// unchanged; a refusal after which the pointer names this set is the retry of an
    /// applied PUT, and the commit returns `Ok`); [`Error::Io`] with [`Op::Put`] when the
    /// store fails (before the pointer's PUT, nothing changed; for the PUT itself, the
    /// pointer may or may not have been replaced, as the store did not say, and the
    /// objects stay: [`ObjectSnapshot::sweep`] removes them if it was not);
    /// [`Error::Refused`] ([`Refusal::ConditionsIgnored`](crate::Refusal::ConditionsIgnored))
    /// for a store that does not enforce conditional writes (nothing is written; see
    /// [`probe_conditional_writes`](ObjectSnapshot::probe_conditional_writes)).
    pub async fn commit(self) -> Result<u64> {
        let store = &*self.snap.store;
        if self.snap.probe {
            super::probe::ensure(store, &self.snap.key).await?;
        }
        let mut uploaded = Vec::with_capacity(self.objects.len());
        for (name, bytes) in &self.objects {
            let key = self.pointer.object_key(name);
            if let Err(e) = create_unique(store, &key, bytes.clone(), self.snap.multipart).await {
                uploaded.push(key);
                self.delete(&uploaded).await;
                return Err(e);
            }
            uploaded.push(key);
        }
        let mode = match &self.base {
            Some((_, version)) => PutMode::Update(version.clone()),
            None => PutMode::Create,
        };
        let body = PutPayload::from(self.pointer.render().into_bytes());
        let put = store
            .put_opts(&self.snap.key, body, PutOptions::from(mode))
            .await;
        match put {
            Ok(_) => {}
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) if self.applied().await => {}
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. },
            ) => {
                self.delete(&uploaded).await;
                let found = self
                    .snap
                    .latest_generation()
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                return Err(Error::Conflict {
                    path: key_path(&self.snap.key),
                    expected: self.pointer.generation - 1,
                    found,
                });
            }
            // The PUT may have been applied: the objects stay.
            Err(e) => return Err(store_error(Op::Put, &self.snap.key, e)),
        }
        self.snap.prune(self.pointer.generation).await;
        Ok(self.pointer.generation)
    }

    /// Whether the pointer names this transaction's set after a refused PUT: the
    /// refusal of a client's automatic retry of a PUT that was applied but whose answer
    /// was lost (the first attempt changed the version the retry was conditional on).
    /// Its prefix is unique to this transaction, so no other writer's pointer matches.
    async fn applied(&self) -> bool {
        matches!(self.snap.pointer().await, Ok(Some((p, _))) if p == self.pointer)
    }

    async fn delete(&self, keys: &[ObjectPath]) {
        for key in keys {
            delete_quietly(&*self.snap.store, key).await;
        }
    }
}

impl fmt::Debug for ObjectTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectTransaction")
            .field("key", &self.snap.key)
            .field("generation", &self.pointer.generation)
            .field("objects", &self.objects.len())
            .finish()
    }
}

/// One generation of an [`ObjectSnapshot`]: the pointer as it was read.
pub struct ObjectView {
    store: Arc<dyn ObjectStore>,
    pointer: SetPointer,
}

impl ObjectView {
    /// This set's generation.
    pub fn generation(&self) -> u64 {
        self.pointer.generation
    }

    /// The names of this set's objects, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pointer.files.keys().map(String::as_str)
    }

    /// The bytes of the object `name` of this set, checked against the pointer.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the set has no object `name`; [`Error::Corrupt`]
    /// ([`CorruptKind::MissingBody`]) when the object is gone (retention removed this
    /// generation) or is not what the pointer lists; [`Error::Io`] with [`Op::Get`]
    /// when the store fails.
    pub async fn read(&self, name: impl AsRef<str>) -> Result<Vec<u8>> {
        let name = name.as_ref();
        let key = self.pointer.object_key(name);
        let Some(&(size, crc)) = self.pointer.files.get(name) else {
            return Err(Error::NotFound {
                path: key_path(&key),
            });
        };
        let missing = |why: String| Error::corrupt(key_path(&key), CorruptKind::MissingBody, why);
        let bytes = match get_bytes(&*self.store, &key).await {
            Ok((bytes, _)) => bytes,
            Err(Error::NotFound { .. }) => {
                return Err(missing(format!(
                    "generation {} no longer holds it",
                    self.generation()
                )));
            }
            Err(e) => return Err(e),
        };
        if (bytes.len() as u64, crc32fast::hash(&bytes)) != (size, crc) {
            return Err(missing("it is not the object the pointer lists".into()));
        }
        Ok(bytes.to_vec())
    }
}

impl ObjectView {
    /// The object `name` of this set, deserialized in the format its extension names.
    ///
    /// # Errors
    ///
    /// As [`read`](Self::read); [`Error::UnknownFormat`] for an extension that names no
    /// format; [`Error::Deserialize`] when the value does not fit `T`.
    pub async fn get<T: serde::de::DeserializeOwned>(&self, name: impl AsRef<str>) -> Result<T> {
        let name = name.as_ref();
        let path = key_path(&self.pointer.object_key(name));
        let format = crate::format::AnyFormat::from_path(name).map_err(|e| e.at(&path))?;
        let bytes = self.read(name).await?;
        let split = crate::envelope::split(format, &bytes, false).map_err(|e| e.at(&path))?;
        crate::envelope::decode(format, &bytes, &split).map_err(|e| e.at(&path))
    }
}

impl fmt::Debug for ObjectView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectView")
            .field("generation", &self.pointer.generation)
            .field("objects", &self.pointer.files.len())
            .finish()
    }
}
