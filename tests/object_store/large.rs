//! Large values: a multipart body behind a pointer.

use std::sync::Arc;
use std::time::Duration;

use atomic_persist::object::ObjectPersisted;
use atomic_persist::{CorruptKind, Error};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common;
use crate::common::stores::{Checkpoint, Failure, FaultyStore, MakeStore};

/// Values are about 12 MiB: three parts of 5 MiB (S3's smallest part) each.
pub const LARGE: usize = 12 * 1024 * 1024;

pub fn large(step: u64, writer: u32) -> Checkpoint {
    let fill = ["a", "b", "c"][step as usize % 3];
    Checkpoint {
        step,
        writer,
        blob: fill.repeat(LARGE),
    }
}

/// A large value read back must be whole: the right length, one fill, the fill of
/// its step.
pub fn assert_whole(c: &Checkpoint, when: &str) {
    assert_eq!(c.blob.len(), LARGE, "{when}");
    let fill = ["a", "b", "c"][c.step as usize % 3].as_bytes()[0];
    assert!(c.blob.bytes().all(|b| b == fill), "{when}: mixed contents");
}

pub async fn open_large_on(store: Arc<dyn ObjectStore>, key: &str) -> ObjectPersisted<Checkpoint> {
    ObjectPersisted::<Checkpoint>::builder(store, key)
        .envelope(true)
        .multipart_threshold(1024 * 1024)
        .part_size(5 * 1024 * 1024)
        .open_or_default()
        .await
        .unwrap()
}

pub async fn open_large(make: &MakeStore, key: &str) -> ObjectPersisted<Checkpoint> {
    open_large_on(make(), key).await
}

/// The keys of the bodies stored for `key`.
pub async fn bodies(store: &dyn ObjectStore, key: &str) -> Vec<String> {
    let prefix = object_store::path::Path::from(format!("{key}.bodies"));
    let listed = store.list_with_delimiter(Some(&prefix)).await.unwrap();
    listed
        .objects
        .iter()
        .map(|o| o.location.to_string())
        .collect()
}

pub async fn raw(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
    let key = object_store::path::Path::from(key);
    store
        .get(&key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// A value above the threshold is stored as a body named by a pointer at its key; the
/// body holds exactly the enveloped bytes a single PUT would have; each commit leaves
/// one body, and a small value goes back to a plain object.
pub async fn large_values_commit_through_a_pointer(make: MakeStore) {
    let key = "large/round-trip.json";
    let store = make();
    let mut p = open_large(&make, key).await;
    p.set(large(1, 0)).await.unwrap();
    let pointer = String::from_utf8(raw(&*store, key).await).unwrap();
    assert!(
        pointer.starts_with("atomic-persist pointer 1\n"),
        "{pointer}"
    );
    let listed = bodies(&*store, key).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(pointer.contains(&listed[0]), "{pointer} names {listed:?}");
    let body = raw(&*store, &listed[0]).await;
    assert!(
        body.starts_with(b"{\"atomic_persist\""),
        "the body is the enveloped value"
    );

    let again = open_large(&make, key).await;
    assert_whole(&again, "reopened");
    assert_eq!((again.step, again.meta().unwrap().generation), (1, 1));

    p.set(large(2, 0)).await.unwrap();
    let after = bodies(&*store, key).await;
    assert_eq!(after.len(), 1, "the replaced body is deleted: {after:?}");
    assert_ne!(after, listed);

    p.update(|c| c.blob = "small".into()).await.unwrap();
    assert!(raw(&*store, key).await.starts_with(b"{\"atomic_persist\""));
    assert!(bodies(&*store, key).await.is_empty());
    let small = open_large(&make, key).await;
    assert_eq!(
        (small.blob.as_str(), small.meta().unwrap().generation),
        ("small", 3)
    );
}

/// Readers polling the key while large values are committed part by part only ever
/// see complete values. Each part is held back until two reader GETs have been
/// answered while the upload is in flight (at most 10 s), so every commit is read
/// from the middle of its upload, on a quiet machine or a loaded one.
pub async fn readers_never_see_a_partial_object_during_a_multipart_commit(make: MakeStore) {
    let key = "large/readers.json";
    open_large(&make, key).await.set(large(0, 0)).await.unwrap();
    let slow = slow_parts::SlowParts::new(make(), Duration::from_millis(50)).hold_for_gets(2);
    let mut w = open_large_on(Arc::new(slow.clone()), key).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (done, slow) = (done.clone(), slow.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let p = open_large_on(Arc::new(slow.clone()), key).await;
                assert_whole(&p, "read during commits");
                reads += 1;
            }
            reads
        }));
    }
    for step in 1..=3 {
        w.set(large(step, 0)).await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    let during = slow.gets_during_uploads();
    assert!(
        slow.parts() >= 9,
        "three commits of three parts: {}",
        slow.parts()
    );
    assert!(
        during >= 6,
        "{during} GETs during 3 uploads ({reads} reads)"
    );
    common::report(&format!(
        "multipart commits: {reads} reads, all whole; {during} GETs answered during an upload"
    ));
}

/// A large commit cancelled at any point (its future dropped: parts in flight, the
/// upload unfinished, the pointer not yet written) leaves a complete value.
pub async fn cancelled_multipart_writer_leaves_no_partial_object(make: MakeStore) {
    let key = "large/cancelled.json";
    let mut w = open_large(&make, key).await;
    w.set(large(1, 0)).await.unwrap();
    let slow = slow_parts::SlowParts::new(make(), Duration::from_millis(40));
    for delay_ms in [0, 5, 20, 60, 120, 250] {
        let store: Arc<dyn ObjectStore> = Arc::new(slow.clone());
        let task = tokio::spawn(async move {
            let mut w = open_large_on(store, key).await;
            let step = w.step + 1;
            w.set(large(step, 1)).await
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        task.abort();
        let _ = task.await;
        let p = open_large(&make, key).await;
        assert_whole(&p, &format!("after a cancel at {delay_ms} ms"));
    }
}

/// Two writers with large values: the loser's pointer PUT is refused, so its body is
/// deleted again; the retry loop then replaces the winner's value and its body.
pub async fn a_lost_race_with_a_large_value_leaves_no_body(make: MakeStore) {
    let key = "large/race.json";
    let store = make();
    let (mut a, mut b) = (open_large(&make, key).await, open_large(&make, key).await);
    a.set(large(1, 1)).await.unwrap();
    let r = b.set(large(1, 2)).await;
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    let after_loss = bodies(&*store, key).await;
    assert_eq!(
        after_loss.len(),
        1,
        "only the winner's body: {after_loss:?}"
    );
    b.update_retry(|c| {
        c.step += 1;
        c.blob = ["a", "b", "c"][c.step as usize % 3].repeat(LARGE);
    })
    .await
    .unwrap();
    let now = bodies(&*store, key).await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(
        now, after_loss,
        "the winner's body was replaced and deleted"
    );
    let p = open_large(&make, key).await;
    assert_whole(&p, "after the retry");
    assert_eq!((p.step, p.meta().unwrap().generation), (2, 2));
}

/// A pointer whose body is missing or is not the body it was written for is
/// `Corrupt` — never `NotFound`, which `open_or_default` would take for "start fresh".
pub async fn a_missing_or_damaged_body_is_corrupt(make: MakeStore) {
    let key = "large/damaged.json";
    let store = make();
    open_large(&make, key).await.set(large(1, 0)).await.unwrap();
    let body = object_store::path::Path::from(bodies(&*store, key).await.remove(0));

    let mut damaged = raw(&*store, body.as_ref()).await;
    damaged[LARGE / 2] ^= 1;
    store.put(&body, damaged.into()).await.unwrap();
    let r = ObjectPersisted::<Checkpoint>::open(make(), key).await;
    assert!(
        matches!(&r, Err(Error::Corrupt { path, kind: CorruptKind::MissingBody, .. }) if path.to_str() == Some(key)),
        "{r:?}"
    );

    store.delete(&body).await.unwrap();
    let r = ObjectPersisted::<Checkpoint>::open_or_default(make(), key).await;
    assert!(
        matches!(&r, Err(Error::Corrupt { reason, .. }) if reason.contains("does not exist")),
        "{r:?}"
    );
}

/// `sweep_bodies` deletes the bodies the pointer does not name once they are old
/// enough, and never the live one.
pub async fn sweep_bodies_removes_only_old_orphans(make: MakeStore) {
    let key = "large/sweep.json";
    let store = make();
    let mut p = open_large(&make, key).await;
    p.set(large(1, 0)).await.unwrap();
    let live = bodies(&*store, key).await;
    for orphan in ["0-left-by-a-crash", "1-left-by-a-timeout"] {
        let orphan = object_store::path::Path::from(format!("{key}.bodies/{orphan}"));
        store.put(&orphan, b"orphan".to_vec().into()).await.unwrap();
    }
    assert_eq!(bodies(&*store, key).await.len(), 3);
    assert_eq!(p.sweep_bodies(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(bodies(&*store, key).await.len(), 3, "young orphans stay");
    assert_eq!(p.sweep_bodies(Duration::ZERO).await.unwrap(), 2);
    assert_eq!(bodies(&*store, key).await, live);
    assert_whole(&*open_large(&make, key).await, "after the sweep");
}

/// A PUT the store applied but answered with an error. Refused, as the client's
/// automatic retry of a PUT whose answer was lost is (the first attempt changed the
/// ETag it is conditional on): the object holds exactly what was sent, so the commit
/// happened and returns `Ok` — a large value's new body is kept, not deleted under its
/// pointer. Any other error is returned; the object (and body) stay, and the handle's
/// next commit is a conflict until it reloads.
pub async fn a_put_applied_but_reported_as_failed_is_a_commit(make: MakeStore) {
    for big in [false, true] {
        let key = if big {
            "applied-large.json"
        } else {
            "applied.json"
        };
        let value = |step: u64| match big {
            true => large(step, 0),
            false => Checkpoint {
                step,
                ..Default::default()
            },
        };
        let fail = Arc::new(std::sync::Mutex::new(None));
        let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore {
            inner: make(),
            key: key.into(),
            fail: fail.clone(),
            multipart_uploads: Default::default(),
            ignore_conditions: false,
            ignore_if_match: false,
        });
        let mut p = open_large_on(store, key).await;
        let arm = |f| *fail.lock().unwrap() = Some(f);
        arm(Failure::Precondition);
        p.set(value(1)).await.unwrap(); // PutMode::Create
        arm(Failure::Precondition);
        p.set(value(2)).await.unwrap(); // PutMode::Update
        p.set(value(3)).await.unwrap(); // the handle knows the version it wrote
        let now = open_large(&make, key).await;
        assert_eq!((now.step, now.meta().unwrap().generation), (3, 3));
        if big {
            assert_whole(&now, "after refused answers");
            assert_eq!(bodies(&*make(), key).await.len(), 1);
        }

        arm(Failure::Other);
        let r = p.set(value(4)).await;
        assert!(
            matches!(&r, Err(Error::Io { op: atomic_persist::Op::Put, path, .. }) if path.to_str() == Some(key)),
            "{r:?}"
        );
        assert_eq!(open_large(&make, key).await.step, 4, "applied, body kept");
        let r = p.set(value(5)).await;
        assert!(
            matches!(
                r,
                Err(Error::Conflict {
                    expected: 3,
                    found: 4,
                    ..
                })
            ),
            "{r:?}"
        );
        p.reload().await.unwrap();
        p.set(value(5)).await.unwrap();
        if big {
            // Body 3 was named by the pointer that the unanswered PUT replaced.
            assert_eq!(p.sweep_bodies(Duration::ZERO).await.unwrap(), 1);
            assert_eq!(bodies(&*make(), key).await.len(), 1);
            assert_whole(&*open_large(&make, key).await, "after the sweep");
        }
    }
}

/// A store that holds back every part of a multipart upload, and says whether an
/// upload is in flight.
pub mod slow_parts {
    use std::fmt;
    use std::ops::Range;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use async_trait::async_trait;
    use futures_util::stream::BoxStream;
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
    };

    #[derive(Debug, Clone)]
    pub struct SlowParts {
        inner: Arc<dyn ObjectStore>,
        delay: Duration,
        uploading: Arc<AtomicUsize>,
        parts: Arc<AtomicUsize>,
        gets_during_uploads: Arc<AtomicUsize>,
        hold_for_gets: usize,
    }

    impl SlowParts {
        pub fn new(inner: Arc<dyn ObjectStore>, delay: Duration) -> Self {
            SlowParts {
                inner,
                delay,
                uploading: Default::default(),
                parts: Default::default(),
                gets_during_uploads: Default::default(),
                hold_for_gets: 0,
            }
        }

        /// Holds every part back (after the delay) until `n` GETs have been answered
        /// since its upload began, while it was in flight, or 10 s have passed.
        pub fn hold_for_gets(mut self, n: usize) -> Self {
            self.hold_for_gets = n;
            self
        }

        /// Whether a multipart upload has started and not yet ended.
        pub fn uploading(&self) -> bool {
            self.uploading.load(Ordering::SeqCst) > 0
        }

        /// How many GETs were answered while an upload was in flight from before the
        /// request to after the answer.
        pub fn gets_during_uploads(&self) -> usize {
            self.gets_during_uploads.load(Ordering::SeqCst)
        }

        /// How many parts have been stored.
        pub fn parts(&self) -> usize {
            self.parts.load(Ordering::SeqCst)
        }
    }

    impl fmt::Display for SlowParts {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "SlowParts({})", self.inner)
        }
    }

    #[derive(Debug)]
    struct SlowUpload {
        inner: Box<dyn MultipartUpload>,
        store: SlowParts,
        ended: bool,
        /// Parts wait until this many GETs have been answered during uploads.
        gets_target: usize,
    }

    impl SlowUpload {
        fn end(&mut self) {
            if !std::mem::replace(&mut self.ended, true) {
                self.store.uploading.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    impl Drop for SlowUpload {
        fn drop(&mut self) {
            self.end();
        }
    }

    #[async_trait]
    impl MultipartUpload for SlowUpload {
        fn put_part(&mut self, data: PutPayload) -> UploadPart {
            let (delay, parts) = (self.store.delay, self.store.parts.clone());
            let (gets, target) = (self.store.gets_during_uploads.clone(), self.gets_target);
            let part = self.inner.put_part(data);
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                let start = std::time::Instant::now();
                while gets.load(Ordering::SeqCst) < target && start.elapsed().as_secs() < 10 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                part.await?;
                parts.fetch_add(1, Ordering::SeqCst);
                Ok(())
            })
        }

        async fn complete(&mut self) -> Result<PutResult> {
            let r = self.inner.complete().await;
            self.end();
            r
        }

        async fn abort(&mut self) -> Result<()> {
            let r = self.inner.abort().await;
            self.end();
            r
        }
    }

    #[async_trait]
    impl ObjectStore for SlowParts {
        async fn put_opts(&self, to: &Path, data: PutPayload, o: PutOptions) -> Result<PutResult> {
            self.inner.put_opts(to, data, o).await
        }

        async fn put_multipart_opts(
            &self,
            to: &Path,
            o: PutMultipartOptions,
        ) -> Result<Box<dyn MultipartUpload>> {
            let inner = self.inner.put_multipart_opts(to, o).await?;
            self.uploading.fetch_add(1, Ordering::SeqCst);
            let store = self.clone();
            let gets_target = self.gets_during_uploads() + self.hold_for_gets;
            Ok(Box::new(SlowUpload {
                inner,
                store,
                ended: false,
                gets_target,
            }))
        }

        async fn get_opts(&self, from: &Path, o: GetOptions) -> Result<GetResult> {
            let before = self.uploading();
            let got = self.inner.get_opts(from, o).await;
            if before && self.uploading() {
                self.gets_during_uploads.fetch_add(1, Ordering::SeqCst);
            }
            got
        }

        async fn get_ranges(&self, from: &Path, r: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
            self.inner.get_ranges(from, r).await
        }

        fn delete_stream(
            &self,
            keys: BoxStream<'static, Result<Path>>,
        ) -> BoxStream<'static, Result<Path>> {
            self.inner.delete_stream(keys)
        }

        fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
            self.inner.copy_opts(from, to, o).await
        }
    }
}
