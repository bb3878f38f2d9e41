//! `ObjectPersisted<T>` over object stores: one behavioural suite, run over
//! `object_store::memory::InMemory` (always) and over a real S3 API server on loopback
//! (moto's `moto_server -H 127.0.0.1 -p PORT`, served one request at a time, see
//! `MOTO_SERIAL` in `common/stores.rs`; feature `s3`), which each S3 test starts on a
//! free port and stops itself. Without moto installed the S3 tests print
//! `SKIPPED <test>: ...` (and fail when `ATOMIC_PERSIST_NO_SKIP=1`).
#![cfg(all(feature = "object-store", feature = "json"))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use atomic_persist::object::ObjectPersisted;
use atomic_persist::{CorruptKind, Error};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

use common::stores::{AppliedThenFailed, Checkpoint, Failure, MakeStore};

async fn open(make: &MakeStore, key: &str) -> ObjectPersisted<Checkpoint> {
    ObjectPersisted::<Checkpoint>::builder(make(), key)
        .envelope(true)
        .open_or_default()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------
// The behavioural suite

async fn a_commit_reads_back_as_the_same_envelope_a_file_holds(make: MakeStore) {
    let key = "jobs/round-trip.json";
    let mut p = open(&make, key).await;
    assert!(p.meta().is_none() && p.version().is_none());
    p.update(|c| c.step = 7).await.unwrap();
    assert_eq!(p.meta().unwrap().generation, 1);
    p.update(|c| c.blob = "x".repeat(1000)).await.unwrap();

    let again = ObjectPersisted::<Checkpoint>::builder(make(), key)
        .envelope(true)
        .open()
        .await
        .unwrap();
    assert_eq!(*again, *p);
    assert_eq!(again.meta(), p.meta());
    assert_eq!(again.meta().unwrap().generation, 2);

    // The object is the same envelope a local file holds: it opens as a file.
    let bytes = make()
        .get(&key.into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy.json");
    std::fs::write(&file, &bytes).unwrap();
    let local = atomic_persist::Persisted::<Checkpoint>::builder(&file)
        .envelope(true)
        .open()
        .unwrap();
    assert_eq!(*local, *p);

    // Plain objects, and TOML, round-trip too.
    let mut plain = ObjectPersisted::<Checkpoint>::open_or_default(make(), "plain.toml")
        .await
        .unwrap();
    plain.update(|c| c.writer = 3).await.unwrap();
    let back = ObjectPersisted::<Checkpoint>::open(make(), "plain.toml")
        .await
        .unwrap();
    assert_eq!(back.writer, 3);
    assert!(back.meta().is_none());

    // Missing object: NotFound naming the key.
    match ObjectPersisted::<Checkpoint>::open(make(), "no/such.json").await {
        Err(Error::NotFound { path }) => assert_eq!(path.to_str(), Some("no/such.json")),
        other => panic!("{other:?}"),
    }
}

async fn a_stale_handle_gets_a_conflict_and_force_commit_overwrites(make: MakeStore) {
    let key = "conflict.json";
    let (mut a, mut b) = (open(&make, key).await, open(&make, key).await);
    a.set(Checkpoint {
        step: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    match b
        .set(Checkpoint {
            step: 2,
            ..Default::default()
        })
        .await
    {
        Err(Error::Conflict {
            path,
            expected: 0,
            found: 1,
        }) => assert_eq!(path.to_str(), Some(key)),
        other => panic!("{other:?}"),
    }
    b.reload().await.unwrap();
    assert_eq!(b.step, 1);
    b.update(|c| c.step = 2).await.unwrap();
    match a.update(|c| c.step = 3).await {
        Err(Error::Conflict {
            expected: 1,
            found: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // Unchanged bytes of a stale handle are a conflict too, not a silent "saved".
    a.reload().await.unwrap();
    let etag = a.version().cloned();
    a.commit().await.unwrap(); // unchanged and current: no PUT
    assert_eq!(a.version().cloned(), etag);
    // force_commit overwrites and never goes back in generations.
    b.update(|c| c.step = 4).await.unwrap(); // generation 3
    let mut stale = open(&make, "other.json").await; // generation 0 handle
    drop(stale.store().clone());
    a.get_mut().step = 5;
    a.force_commit().await.unwrap();
    assert_eq!(a.meta().unwrap().generation, 4);
    stale.set(Checkpoint::default()).await.unwrap();
}

/// 16 writers that all saw the same version commit at once, round after round: exactly
/// one wins each round, the 15 others get `Conflict`.
async fn sixteen_racing_writers_have_one_winner_per_round(make: MakeStore) {
    const WRITERS: u32 = 16;
    const ROUNDS: u64 = 6;
    let key = "race.json";
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS as usize));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (make, barrier) = (make.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut p = open(&make, key).await;
            let mut wins = Vec::new();
            for round in 0..ROUNDS {
                // Everybody sees the version of the previous round first.
                barrier.wait().await;
                if round > 0 {
                    p.reload().await.unwrap();
                    assert_eq!(
                        p.step,
                        round,
                        "round {round} starts from round {}",
                        round - 1
                    );
                }
                barrier.wait().await;
                p.get_mut().step = round + 1;
                p.get_mut().writer = w;
                match p.commit().await {
                    Ok(()) => wins.push(round),
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => panic!("writer {w} round {round}: {e}"),
                }
            }
            wins
        }));
    }
    let mut per_round = vec![0; ROUNDS as usize];
    for t in tasks {
        for round in t.await.unwrap() {
            per_round[round as usize] += 1;
        }
    }
    assert_eq!(per_round, vec![1; ROUNDS as usize], "winners per round");
    let last = open(&make, key).await;
    assert_eq!(last.step, ROUNDS);
    assert_eq!(last.meta().unwrap().generation, ROUNDS);
}

/// `update_retry` from 16 writers: no update is lost.
async fn update_retry_loses_nothing(make: MakeStore) {
    const WRITERS: u64 = 16;
    const EACH: u64 = 4;
    let key = "counter.json";
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut p = ObjectPersisted::<Checkpoint>::builder(make(), key)
                .envelope(true)
                .max_attempts(1000)
                .open_or_default()
                .await
                .unwrap();
            for _ in 0..EACH {
                p.update_retry(|c| c.step += 1).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let p = open(&make, key).await;
    assert_eq!(p.step, WRITERS * EACH);

    // A bounded loop gives up with the conflict.
    let mut a = ObjectPersisted::<Checkpoint>::builder(make(), key)
        .envelope(true)
        .max_attempts(1)
        .open()
        .await
        .unwrap();
    let mut b = open(&make, key).await;
    b.update(|c| c.step += 1).await.unwrap();
    assert!(matches!(
        a.update_retry(|c| c.step += 1).await,
        Err(Error::Conflict { .. })
    ));
    // A deleted object is NotFound, not recreated.
    make().delete(&key.into()).await.unwrap();
    assert!(matches!(
        b.update_retry(|c| c.step += 1).await,
        Err(Error::NotFound { .. })
    ));
}

/// Readers polling the key while a writer replaces a large object over and over only
/// ever see complete, checksummed versions.
async fn readers_never_see_partial_objects(make: MakeStore) {
    let key = "big.json";
    let size = 6 * 1024 * 1024;
    let mut w = open(&make, key).await;
    w.set(Checkpoint {
        step: 0,
        writer: 0,
        blob: "a".repeat(size),
    })
    .await
    .unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (make, done) = (make.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let p = ObjectPersisted::<Checkpoint>::builder(make(), key)
                    .envelope(true)
                    .open()
                    .await
                    .expect("a complete object");
                let expected = if p.step % 2 == 0 { 'a' } else { 'b' };
                assert_eq!(p.blob.len(), size);
                assert!(p.blob.chars().all(|c| c == expected));
                reads += 1;
            }
            reads
        }));
    }
    for step in 1..=8u64 {
        let fill = if step % 2 == 0 { "a" } else { "b" };
        w.set(Checkpoint {
            step,
            writer: 0,
            blob: fill.repeat(size),
        })
        .await
        .unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    assert!(reads > 0);
}

/// A writer cancelled in the middle of its commit (its future dropped) leaves the old
/// complete object or the new one, never part of one.
async fn cancelled_writer_leaves_no_partial_object(make: MakeStore) {
    let key = "cancelled.json";
    let size = 4 * 1024 * 1024;
    let mut w = open(&make, key).await;
    w.set(Checkpoint {
        step: 1,
        writer: 0,
        blob: "a".repeat(size),
    })
    .await
    .unwrap();
    for delay_ms in [0, 1, 5, 20, 50] {
        let make2 = make.clone();
        let task = tokio::spawn(async move {
            let mut w = open(&make2, key).await;
            let step = w.step + 1;
            w.set(Checkpoint {
                step,
                writer: 1,
                blob: "b".repeat(size),
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        task.abort();
        let _ = task.await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let p = open(&make, key).await;
        assert_eq!(p.blob.len(), size, "after a cancel at {delay_ms} ms");
        assert!(p.blob.chars().all(|c| c == p.blob.chars().next().unwrap()));
    }
}

async fn refused_values_newer_schemas_and_damage_are_typed_errors(make: MakeStore) {
    let key = "validated.json";
    let mut p = ObjectPersisted::<Checkpoint>::builder(make(), key)
        .envelope(true)
        .schema_version(2)
        .validate(|c| {
            if c.step < 100 {
                Ok(())
            } else {
                Err("step too large".into())
            }
        })
        .open_or_default()
        .await
        .unwrap();
    p.set(Checkpoint {
        step: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    match p
        .set(Checkpoint {
            step: 500,
            ..Default::default()
        })
        .await
    {
        Err(Error::Invalid { path, .. }) => assert_eq!(path.to_str(), Some(key)),
        other => panic!("{other:?}"),
    }
    // A reader that knows schema 0 only refuses the schema-2 object.
    match ObjectPersisted::<Checkpoint>::builder(make(), key)
        .envelope(true)
        .open()
        .await
    {
        Err(Error::SchemaVersion {
            found: 2,
            supported: 0,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // A damaged object is Corrupt, naming the key.
    let bytes = make()
        .get(&key.into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut bad = bytes.to_vec();
    let i = bad.iter().position(|&b| b == b'5').unwrap();
    bad[i] = b'6';
    make().put(&key.into(), bad.into()).await.unwrap();
    match ObjectPersisted::<Checkpoint>::builder(make(), key)
        .envelope(true)
        .schema_version(2)
        .open()
        .await
    {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path.to_str(), Some(key)),
        other => panic!("{other:?}"),
    }
}

/// A decode hook gets the object's schema version and migrates an older one on load.
async fn decode_hook_migrates_an_older_schema(make: MakeStore) {
    let key = "migrated.json";
    let mut v1 = ObjectPersisted::<Checkpoint>::builder(make(), key)
        .envelope(true)
        .schema_version(1)
        .open_or_default()
        .await
        .unwrap();
    v1.set(Checkpoint {
        step: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    // Schema 2 counts steps in tenths.
    let open_v2 = || {
        ObjectPersisted::<Checkpoint>::builder(make(), key)
            .envelope(true)
            .schema_version(2)
            .decode(|found, payload| {
                let mut c: Checkpoint = payload.deserialize()?;
                if found < 2 {
                    c.step *= 10;
                }
                Ok(c)
            })
            .open()
    };
    let mut v2 = open_v2().await.unwrap();
    assert_eq!(v2.step, 50);
    v2.force_commit().await.unwrap();
    assert_eq!(v2.meta().unwrap().schema_version, 2);
    assert_eq!(
        open_v2().await.unwrap().step,
        50,
        "a schema-2 object is not migrated again"
    );
}

// ---------------------------------------------------------------------------------
// Large values: a multipart body behind a pointer

/// Values are about 12 MiB: three parts of 5 MiB (S3's smallest part) each.
const LARGE: usize = 12 * 1024 * 1024;

fn large(step: u64, writer: u32) -> Checkpoint {
    let fill = ["a", "b", "c"][step as usize % 3];
    Checkpoint {
        step,
        writer,
        blob: fill.repeat(LARGE),
    }
}

/// A large value read back must be whole: the right length, one fill, the fill of
/// its step.
fn assert_whole(c: &Checkpoint, when: &str) {
    assert_eq!(c.blob.len(), LARGE, "{when}");
    let fill = ["a", "b", "c"][c.step as usize % 3].as_bytes()[0];
    assert!(c.blob.bytes().all(|b| b == fill), "{when}: mixed contents");
}

async fn open_large_on(store: Arc<dyn ObjectStore>, key: &str) -> ObjectPersisted<Checkpoint> {
    ObjectPersisted::<Checkpoint>::builder(store, key)
        .envelope(true)
        .multipart_threshold(1024 * 1024)
        .part_size(5 * 1024 * 1024)
        .open_or_default()
        .await
        .unwrap()
}

async fn open_large(make: &MakeStore, key: &str) -> ObjectPersisted<Checkpoint> {
    open_large_on(make(), key).await
}

/// The keys of the bodies stored for `key`.
async fn bodies(store: &dyn ObjectStore, key: &str) -> Vec<String> {
    let prefix = object_store::path::Path::from(format!("{key}.bodies"));
    let listed = store.list_with_delimiter(Some(&prefix)).await.unwrap();
    listed
        .objects
        .iter()
        .map(|o| o.location.to_string())
        .collect()
}

async fn raw(store: &dyn ObjectStore, key: &str) -> Vec<u8> {
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
async fn large_values_commit_through_a_pointer(make: MakeStore) {
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
async fn readers_never_see_a_partial_object_during_a_multipart_commit(make: MakeStore) {
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
async fn cancelled_multipart_writer_leaves_no_partial_object(make: MakeStore) {
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
async fn a_lost_race_with_a_large_value_leaves_no_body(make: MakeStore) {
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
async fn a_missing_or_damaged_body_is_corrupt(make: MakeStore) {
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
async fn sweep_bodies_removes_only_old_orphans(make: MakeStore) {
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
async fn a_put_applied_but_reported_as_failed_is_a_commit(make: MakeStore) {
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
        let store: Arc<dyn ObjectStore> = Arc::new(AppliedThenFailed {
            inner: make(),
            key: key.into(),
            fail: fail.clone(),
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
mod slow_parts {
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

// ---------------------------------------------------------------------------------
// In memory

common::stores::behaviour_suite!(
    a_commit_reads_back_as_the_same_envelope_a_file_holds,
    a_stale_handle_gets_a_conflict_and_force_commit_overwrites,
    sixteen_racing_writers_have_one_winner_per_round,
    update_retry_loses_nothing,
    readers_never_see_partial_objects,
    cancelled_writer_leaves_no_partial_object,
    refused_values_newer_schemas_and_damage_are_typed_errors,
    decode_hook_migrates_an_older_schema,
    large_values_commit_through_a_pointer,
    readers_never_see_a_partial_object_during_a_multipart_commit,
    cancelled_multipart_writer_leaves_no_partial_object,
    a_lost_race_with_a_large_value_leaves_no_body,
    a_missing_or_damaged_body_is_corrupt,
    sweep_bodies_removes_only_old_orphans,
    a_put_applied_but_reported_as_failed_is_a_commit,
);

#[tokio::test]
async fn open_or_default_is_not_fooled_by_a_failing_store() {
    // A store error other than "no such object" must not become a fresh default value.
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let r = ObjectPersisted::<Checkpoint>::builder(store, "x.unknown")
        .open_or_default()
        .await;
    assert!(matches!(r, Err(Error::UnknownFormat { .. })), "{r:?}");
}

// ---------------------------------------------------------------------------------
// A real S3 API server on loopback

#[cfg(feature = "s3")]
mod s3_faults {
    use super::*;
    use common::stores::moto::{BUCKET, client, free_port, http, maker, start};
    use std::process::Stdio;

    /// The stores' errors are typed and name the key.
    fn assert_io(
        r: Result<impl std::fmt::Debug, Error>,
        op: atomic_persist::Op,
        key: &str,
    ) -> Error {
        match r {
            Err(e @ Error::Io { .. }) => {
                let Error::Io { op: o, path, .. } = &e else {
                    unreachable!()
                };
                assert_eq!(*o, op, "{e}");
                assert_eq!(path.to_str(), Some(key), "{e}");
                assert!(e.to_string().contains(key), "{e}");
                e
            }
            other => panic!("expected Error::Io about {key}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_a_typed_error_naming_the_key() {
        let Some(moto) = start(
            "s3_faults::unreachable_endpoint_is_a_typed_error_naming_the_key",
            &[],
        ) else {
            return;
        };
        let key = "unreachable.json";
        let mut p = open(&maker(moto.port), key).await;
        drop(moto); // the server is gone: nothing listens on its port (loopback only)
        let e = assert_io(p.update(|c| c.step = 1).await, atomic_persist::Op::Put, key);
        eprintln!("unreachable endpoint, PUT: {e}");
        let store = client(free_port(), BUCKET, "test");
        let r = ObjectPersisted::<Checkpoint>::open_or_default(store, key).await;
        let e = assert_io(r, atomic_persist::Op::Get, key);
        eprintln!("unreachable endpoint, GET: {e}");
    }

    #[tokio::test]
    async fn missing_bucket_is_a_typed_error_naming_the_key() {
        let Some(moto) = start(
            "s3_faults::missing_bucket_is_a_typed_error_naming_the_key",
            &[],
        ) else {
            return;
        };
        let key = "state/missing-bucket.json";
        // GET: not NotFound, which open_or_default would take for "start fresh".
        let store = client(moto.port, "no-such-bucket", "test");
        let r = ObjectPersisted::<Checkpoint>::open_or_default(store, key).await;
        let e = assert_io(r, atomic_persist::Op::Get, key);
        let Error::Io { source, .. } = &e else {
            unreachable!()
        };
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound, "{e}");
        eprintln!("missing bucket, GET: {e}");
        // PUT: the bucket is deleted under an open handle.
        let mut p = open(&maker(moto.port), key).await;
        assert_eq!(http(moto.port, "DELETE", &format!("/{BUCKET}")), Some(204));
        let e = assert_io(p.update(|c| c.step = 1).await, atomic_persist::Op::Put, key);
        eprintln!("missing bucket, PUT: {e}");
    }

    #[tokio::test]
    async fn bad_credentials_are_a_typed_error_naming_the_key() {
        // With INITIAL_NO_AUTH_ACTION_COUNT=2 moto lets the bucket creation and the
        // first GET through unauthenticated, and checks the credentials of every later
        // request: "AKIAWRONG..." is no IAM access key it knows.
        let Some(moto) = start(
            "s3_faults::bad_credentials_are_a_typed_error_naming_the_key",
            &[("INITIAL_NO_AUTH_ACTION_COUNT", "2")],
        ) else {
            return;
        };
        let store = client(moto.port, BUCKET, "AKIAWRONGWRONGWRONG0");
        let key = "secret/state.json";
        let mut p = ObjectPersisted::<Checkpoint>::open_or_default(store.clone(), key)
            .await
            .unwrap();
        let e = assert_io(p.update(|c| c.step = 1).await, atomic_persist::Op::Put, key);
        eprintln!("bad credentials, PUT: {e}");
        let r = ObjectPersisted::<Checkpoint>::open_or_default(store, key).await;
        let e = assert_io(r, atomic_persist::Op::Get, key);
        let Error::Io { source, .. } = &e else {
            unreachable!()
        };
        assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        eprintln!("bad credentials, GET: {e}");
    }

    /// A writer process SIGKILLed in the middle of PUTs of 8 MiB objects leaves the old
    /// complete object or a new complete one, never part of one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_writer_leaves_no_partial_object() {
        killed_writer("s3_faults::killed_writer_leaves_no_partial_object", false).await;
    }

    /// The same with 12 MiB values committed as multipart bodies behind a pointer:
    /// each kill lands in an upload, between the upload and the pointer PUT, or in
    /// the pointer PUT; the value stays whole, and the bodies the kills left behind
    /// are orphans that `sweep_bodies` removes, leaving only the live one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_multipart_writer_leaves_no_partial_object() {
        killed_writer(
            "s3_faults::killed_multipart_writer_leaves_no_partial_object",
            true,
        )
        .await;
    }

    async fn killed_writer(test: &str, multipart: bool) {
        let key = if multipart {
            "killed-large.json"
        } else {
            "killed.json"
        };
        let size = if multipart { LARGE } else { 8 * 1024 * 1024 };
        let fill = |step: u64| ["a", "b", "c"][step as usize % 3];
        let open_on = async |port: u16| match multipart {
            true => open_large(&maker(port), key).await,
            false => open(&maker(port), key).await,
        };
        if common::role().as_deref() == Some("writer") {
            let port: u16 = std::env::var("MOTO_PORT").unwrap().parse().unwrap();
            let mut p = open_on(port).await;
            loop {
                p.update_retry(|c| {
                    c.step += 1;
                    c.blob = fill(c.step).repeat(size);
                })
                .await
                .unwrap();
                println!("ack {}", p.step);
            }
        }
        let Some(moto) = start(test, &[]) else {
            return;
        };
        let mut seen = Vec::new();
        for delay_ms in common::stores::kill_delays(&[0, 250, 700, 1300, 2000], 2500) {
            let mut child = common::child(test, "writer")
                .env("MOTO_PORT", moto.port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // Killed `delay_ms` after its first commit, in the middle of later ones.
            let delay = Duration::from_millis(delay_ms);
            let acknowledged = common::kill_after_first_ack(&mut child, delay, "the S3 writer");
            let p = open_on(moto.port).await;
            assert_eq!(p.blob.len(), size, "after a kill at {delay_ms} ms");
            let whole = p.blob.bytes().all(|b| b == fill(p.step).as_bytes()[0]);
            assert!(whole, "after a kill at {delay_ms} ms: mixed contents");
            // The last acknowledged commit, or the one after it (applied, not yet
            // acknowledged): nothing acknowledged is lost.
            assert!(
                (acknowledged..=acknowledged + 1).contains(&p.step),
                "after a kill at {delay_ms} ms: step {} with {acknowledged} acknowledged",
                p.step
            );
            seen.push(p.step);
        }
        let mut orphans = 0;
        if multipart {
            let p = open_on(moto.port).await;
            orphans = p.sweep_bodies(Duration::ZERO).await.unwrap();
            assert_eq!(bodies(&*maker(moto.port)(), key).await.len(), 1);
            assert_eq!(
                open_on(moto.port).await.step,
                p.step,
                "the sweep kept the live body"
            );
        }
        common::report(&format!(
            "killed writer (S3, multipart {multipart}): {} kills, 0 partial or mixed values, \
             0 acknowledged commits lost; steps seen after each kill: {seen:?}; orphan \
             bodies swept: {orphans}",
            seen.len()
        ));
    }
}
