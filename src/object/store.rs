//! The requests both object-store types make, and how their errors become this crate's.
//!
//! Everything here is one request (or one upload) with its error mapped to an
//! [`Error`] naming the key; the ordering decisions are made by the callers.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use object_store::{
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    UpdateVersion, WriteMultipart,
};

use crate::error::{Error, Op, Result};

/// Serialized values larger than this are uploaded in parts by default (see
/// [`ObjectPersistedBuilder::multipart_threshold`](super::ObjectPersistedBuilder::multipart_threshold)):
/// a single PUT holds the whole request in flight and, on S3, cannot exceed 5 GiB.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;

/// The default size of one part of a multipart upload. S3 requires at least 5 MiB for
/// every part but the last.
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;

/// How many parts of one upload are in flight at once.
const PART_CONCURRENCY: usize = 4;

/// When and how an object is uploaded in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Multipart {
    /// Objects strictly larger than this many bytes go in parts.
    pub threshold: u64,
    /// The size of each part but the last.
    pub part_size: usize,
}

impl Default for Multipart {
    fn default() -> Self {
        Multipart {
            threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

impl Multipart {
    /// Whether an object of `len` bytes goes in parts.
    pub fn applies(&self, len: usize) -> bool {
        len as u64 > self.threshold
    }
}

/// The key as the `path` of an [`Error`].
pub(crate) fn key_path(key: &ObjectPath) -> PathBuf {
    PathBuf::from(key.as_ref())
}

/// Whether the object described by `m` is the version `v`.
pub(crate) fn same_version(v: &UpdateVersion, m: &object_store::ObjectMeta) -> bool {
    match (&v.version, &m.version, &v.e_tag, &m.e_tag) {
        (Some(a), Some(b), _, _) => a == b,
        (_, _, Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// The attempts of an `update_retry` loop: at most `max`, with a pause before each
/// retry of 5 ms, doubling up to 500 ms, plus jitter.
pub(crate) struct Retry {
    attempt: u32,
    max: u32,
    pause: Duration,
}

impl Retry {
    pub fn new(max: u32) -> Retry {
        Retry {
            attempt: 1,
            max,
            pause: Duration::from_millis(5),
        }
    }

    /// Waits before the next attempt; `false`, at once, when none is left.
    pub async fn again(&mut self) -> bool {
        if self.attempt >= self.max {
            return false;
        }
        self.attempt += 1;
        tokio::time::sleep(jitter(self.pause)).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(500));
        true
    }
}

/// Up to half of `d` added at random, so that racing writers spread out.
fn jitter(d: Duration) -> Duration {
    // The low 62 bits of a v7 are random.
    let random = crate::random::u64();
    d + d.mul_f64((random % 1000) as f64 / 2000.0)
}

/// Maps an `object_store` error about `key` to this crate's [`Error`].
pub(crate) fn store_error(op: Op, key: &ObjectPath, e: object_store::Error) -> Error {
    use std::io::ErrorKind;
    let path = key_path(key);
    let kind = match &e {
        object_store::Error::NotFound { .. } => {
            // S3 answers 404 for a missing bucket too: that is not "no such object",
            // which open_or_default would take as "start fresh".
            let missing_bucket = e.to_string().contains("NoSuchBucket");
            if op == Op::Get && !missing_bucket {
                return Error::NotFound { path };
            }
            ErrorKind::NotFound
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => ErrorKind::PermissionDenied,
        object_store::Error::NotImplemented { .. } | object_store::Error::NotSupported { .. } => {
            ErrorKind::Unsupported
        }
        _ => ErrorKind::Other,
    };
    Error::io(op, path, std::io::Error::new(kind, e))
}

/// HEAD of `key`.
pub(crate) async fn head(
    store: &dyn ObjectStore,
    key: &ObjectPath,
) -> Result<object_store::ObjectMeta> {
    store
        .head(key)
        .await
        .map_err(|e| store_error(Op::Get, key, e))
}

/// The whole object at `key` and its version.
pub(crate) async fn get_bytes(
    store: &dyn ObjectStore,
    key: &ObjectPath,
) -> Result<(Bytes, UpdateVersion)> {
    let got = store
        .get(key)
        .await
        .map_err(|e| store_error(Op::Get, key, e))?;
    let version = UpdateVersion {
        e_tag: got.meta.e_tag.clone(),
        version: got.meta.version.clone(),
    };
    let bytes = got
        .bytes()
        .await
        .map_err(|e| store_error(Op::Get, key, e))?;
    Ok((bytes, version))
}

/// Creates the object `key`, which no one else writes (a fresh, unique key): one PUT
/// with `PutMode::Create`, or above the threshold a multipart upload.
///
/// A multipart upload only becomes an object when it is completed, after every part
/// has been stored; a failed part aborts it, so an error leaves no object. (A future
/// dropped in the middle leaves the unfinished upload to the store's own expiry, as
/// an S3 lifecycle rule does; it is never visible as an object.) The completion cannot
/// be conditional — `object_store` has no `PutMode` for it — which is why only unique
/// keys are uploaded this way.
pub(crate) async fn create_unique(
    store: &dyn ObjectStore,
    key: &ObjectPath,
    bytes: Bytes,
    multipart: Multipart,
) -> Result<PutResult> {
    if !multipart.applies(bytes.len()) {
        let opts = PutOptions::from(PutMode::Create);
        return store
            .put_opts(key, PutPayload::from(bytes), opts)
            .await
            .map_err(|e| store_error(Op::Put, key, e));
    }
    let upload = store
        .put_multipart_opts(key, PutMultipartOptions::default())
        .await
        .map_err(|e| store_error(Op::Put, key, e))?;
    let mut parts = WriteMultipart::new_with_chunk_size(upload, multipart.part_size.max(1));
    for part in bytes.chunks(multipart.part_size.max(1)) {
        // Back-pressure: at most PART_CONCURRENCY parts in flight; an error here has
        // already happened to a part, so the upload is aborted.
        if let Err(e) = parts.wait_for_capacity(PART_CONCURRENCY).await {
            let _ = parts.abort().await;
            return Err(store_error(Op::Put, key, e));
        }
        parts.put(bytes.slice_ref(part));
    }
    // `finish` completes the upload only when every part is stored, else aborts it.
    parts
        .finish()
        .await
        .map_err(|e| store_error(Op::Put, key, e))
}

/// Deletes `key`, ignoring failures: used for objects nothing points at any more, which
/// a later sweep removes when this cannot.
pub(crate) async fn delete_quietly(store: &dyn ObjectStore, key: &ObjectPath) {
    let _ = store.delete(key).await;
}
