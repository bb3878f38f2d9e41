//! `ObjectHistory<T>` over object stores: one behavioural suite, run over
//! `object_store::memory::InMemory` (always) and over moto's S3 server on loopback
//! (feature `s3`; started and stopped by each test, see `common/stores.rs`). Without
//! moto the S3 tests print `SKIPPED <test>: ...` (and fail when
//! `ATOMIC_PERSIST_NO_SKIP=1`).
#![cfg(all(feature = "object-store", feature = "json"))]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomic_persist::Error;
use atomic_persist::object::{ObjectHistory, ObjectPersisted};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use common::stores::{Checkpoint, Failure, FaultyStore, MakeStore};

fn step(n: u64) -> Checkpoint {
    Checkpoint {
        step: n,
        ..Default::default()
    }
}

async fn open(make: &MakeStore, key: &str) -> ObjectHistory<Checkpoint> {
    ObjectHistory::<Checkpoint>::builder(make(), key)
        .open_or_default()
        .await
        .unwrap()
}

/// The names of the objects under `{key}.versions/`, sorted.
async fn listed(make: &MakeStore, key: &str) -> Vec<String> {
    let prefix = ObjectPath::from(format!("{key}.versions"));
    let mut names: Vec<String> = make()
        .list_with_delimiter(Some(&prefix))
        .await
        .unwrap()
        .objects
        .into_iter()
        .map(|o| o.location.filename().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The names of the versions the pointer lists, oldest first.
async fn named(h: &ObjectHistory<Checkpoint>) -> Vec<String> {
    h.versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.path.filename().unwrap().to_owned())
        .collect()
}

async fn generations(h: &ObjectHistory<Checkpoint>) -> Vec<u64> {
    h.versions()
        .await
        .unwrap()
        .iter()
        .map(|v| v.generation)
        .collect()
}

async fn get(make: &MakeStore, key: &str) -> Vec<u8> {
    make()
        .get(&key.into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, Error>, key: &str) -> String {
    match r {
        Err(Error::Corrupt { path, reason, .. }) => {
            assert_eq!(path.to_str(), Some(key), "{reason}");
            reason
        }
        other => panic!("expected Corrupt naming {key}: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// The behavioural suite

/// Commits round-trip; the versions are listed oldest first with their keys, sizes and
/// generations; each opens as a local enveloped file; an unchanged value makes no
/// version; a missing history is NotFound.
async fn commits_read_back_and_list_as_versions_oldest_first(make: MakeStore) {
    let key = "jobs/state.json";
    let mut h = open(&make, key).await;
    assert_eq!(h.generation(), 0);
    assert!(h.meta().is_none());
    assert!(h.versions().await.unwrap().is_empty());
    for n in 1..=3 {
        h.set(step(n * 10)).await.unwrap();
        assert_eq!(h.generation(), n);
        assert_eq!(h.meta().unwrap().generation, n);
    }
    h.commit().await.unwrap(); // unchanged: no new version
    assert_eq!(h.generation(), 3);

    let versions = h.versions().await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.generation).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(named(&h).await, listed(&make, key).await);
    for v in &versions {
        let name = v.path.as_ref();
        assert!(name.starts_with("jobs/state.json.versions/"), "{name}");
        assert!(
            name.ends_with(".json") && name.contains(&format!("{:020}-", v.generation)),
            "{name}"
        );
        let bytes = get(&make, name).await;
        assert_eq!(bytes.len() as u64, v.size);
        // The version object is exactly an enveloped local file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.json");
        std::fs::write(&file, &bytes).unwrap();
        let local = atomic_persist::Persisted::<Checkpoint>::builder(&file)
            .envelope(true)
            .open()
            .unwrap();
        assert_eq!(local.step, v.generation * 10);
        assert_eq!(local.meta().unwrap().checksum, v.checksum);
        assert_eq!(local.meta().unwrap().run_id, v.run_id);
    }
    assert_eq!(h.version(2).await.unwrap().step, 20);

    let again = ObjectHistory::<Checkpoint>::open(make(), key)
        .await
        .unwrap();
    assert_eq!(*again, *h);
    assert_eq!(again.meta(), h.meta());
    assert_eq!(again.generation(), 3);

    // The pointer is text naming the current version.
    let pointer = String::from_utf8(get(&make, key).await).unwrap();
    assert!(
        pointer.starts_with("atomic-persist-history 1\ncurrent 3\n"),
        "{pointer}"
    );

    match ObjectHistory::<Checkpoint>::open(make(), "no/such.json").await {
        Err(Error::NotFound { path }) => assert_eq!(path.to_str(), Some("no/such.json")),
        other => panic!("{other:?}"),
    }
    match h.version(9).await {
        Err(Error::NotFound { path }) => {
            assert!(
                path.to_str()
                    .unwrap()
                    .starts_with("jobs/state.json.versions/")
            )
        }
        other => panic!("{other:?}"),
    }
}

/// `keep(3)`: after 7 commits the pointer lists the newest 3 (5, 6, 7), and only their
/// objects are left in the store.
async fn keep_n_leaves_only_the_newest_n_versions(make: MakeStore) {
    let key = "kept.json";
    let mut h = ObjectHistory::<Checkpoint>::builder(make(), key)
        .keep(3)
        .open_or_default()
        .await
        .unwrap();
    for n in 1..=7 {
        h.set(step(n)).await.unwrap();
    }
    assert_eq!(generations(&h).await, [5, 6, 7]);
    assert_eq!(listed(&make, key).await, named(&h).await);
    assert_eq!(listed(&make, key).await.len(), 3);
    assert!(matches!(h.version(4).await, Err(Error::NotFound { .. })));
    assert_eq!(h.version(5).await.unwrap().step, 5);
    // A reopened handle with a different keep applies it on its next commit.
    let mut one = ObjectHistory::<Checkpoint>::builder(make(), key)
        .keep(1)
        .open()
        .await
        .unwrap();
    one.set(step(8)).await.unwrap();
    assert_eq!(generations(&one).await, [8]);
    assert_eq!(listed(&make, key).await.len(), 1);
}

/// `rollback(g)` is a new generation with version g's payload; it is conditional like a
/// commit.
async fn rollback_is_a_new_generation_with_the_old_payload(make: MakeStore) {
    let key = "rollback.json";
    let mut h = open(&make, key).await;
    for n in 1..=3 {
        h.set(step(n)).await.unwrap();
    }
    h.get_mut().step = 99; // unsaved, dropped by the rollback
    assert_eq!(h.rollback(1).await.unwrap(), 4);
    assert_eq!(h.step, 1);
    assert_eq!(h.generation(), 4);
    assert_eq!(generations(&h).await, [1, 2, 3, 4]);
    assert_eq!(h.version(4).await.unwrap(), h.version(1).await.unwrap());
    let reopened = open(&make, key).await;
    assert_eq!(reopened.step, 1);
    // The payload is carried byte for byte; the envelope is new.
    let v = h.versions().await.unwrap();
    assert_ne!(v[0].checksum, v[3].checksum);

    // A handle that did not see generation 4 cannot roll back over it.
    let mut stale = ObjectHistory::<Checkpoint>::builder(make(), key)
        .open()
        .await
        .unwrap();
    h.set(step(5)).await.unwrap();
    match stale.rollback(2).await {
        Err(Error::Conflict {
            expected: 4,
            found: 5,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(stale.step, 1, "a failed rollback leaves the value");
    assert_eq!(
        listed(&make, key).await.len(),
        5,
        "the loser's version is deleted"
    );
    // Rollback to a generation that is not there.
    assert!(matches!(h.rollback(42).await, Err(Error::NotFound { .. })));
    assert_eq!(h.generation(), 5);
}

/// Two handles: the one that did not see the other's commit gets `Conflict` and its
/// version object is deleted again; an unchanged value of a stale handle is a conflict.
async fn a_stale_handle_gets_a_conflict_and_its_version_is_deleted(make: MakeStore) {
    let key = "conflict.json";
    let (mut a, mut b) = (open(&make, key).await, open(&make, key).await);
    a.set(step(1)).await.unwrap();
    match b.set(step(2)).await {
        Err(Error::Conflict {
            path,
            expected: 0,
            found: 1,
        }) => assert_eq!(path.to_str(), Some(key)),
        other => panic!("{other:?}"),
    }
    assert_eq!(listed(&make, key).await, named(&a).await);
    b.reload().await.unwrap();
    assert_eq!((b.step, b.generation()), (1, 1));
    b.set(step(2)).await.unwrap();
    // a's value equals its version 1, but the pointer moved on.
    assert!(matches!(
        a.commit().await,
        Err(Error::Conflict {
            expected: 1,
            found: 2,
            ..
        })
    ));
    assert_eq!(generations(&a).await, [1, 2]);
}

/// 16 writers that all saw the same pointer commit at once, round after round: exactly
/// one wins each round, the others get `Conflict`, and the pointer lists exactly the
/// winners' versions, generations 1..=ROUNDS, each with its winner's value.
async fn sixteen_racing_writers_have_one_winner_per_round(make: MakeStore) {
    const WRITERS: u32 = 16;
    const ROUNDS: u64 = 5;
    let key = "race.json";
    let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS as usize));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (make, barrier) = (make.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            let mut h = open(&make, key).await;
            let mut wins = Vec::new();
            for round in 0..ROUNDS {
                barrier.wait().await;
                if round > 0 {
                    h.reload().await.unwrap();
                    assert_eq!(
                        h.generation(),
                        round,
                        "round {round} starts after round {}",
                        round - 1
                    );
                }
                barrier.wait().await;
                h.get_mut().step = round + 1;
                h.get_mut().writer = w;
                match h.commit().await {
                    Ok(()) => wins.push(round),
                    Err(Error::Conflict { expected, .. }) => assert_eq!(expected, round),
                    Err(e) => panic!("writer {w} round {round}: {e}"),
                }
            }
            (w, wins)
        }));
    }
    let mut winner = BTreeMap::new();
    for t in tasks {
        let (w, wins) = t.await.unwrap();
        for round in wins {
            assert!(
                winner.insert(round, w).is_none(),
                "two winners in round {round}"
            );
        }
    }
    assert_eq!(
        winner.len() as u64,
        ROUNDS,
        "a round without a winner: {winner:?}"
    );
    let last = open(&make, key).await;
    assert_eq!(last.generation(), ROUNDS);
    assert_eq!(generations(&last).await, (1..=ROUNDS).collect::<Vec<_>>());
    for (round, w) in winner {
        let v = last.version(round + 1).await.unwrap();
        assert_eq!((v.step, v.writer), (round + 1, w));
    }
    // Every loser deleted its version object.
    assert_eq!(listed(&make, key).await, named(&last).await);
}

/// `update_retry` from 8 writers: no increment is lost, and every one is a version.
async fn update_retry_loses_nothing(make: MakeStore) {
    const WRITERS: u64 = 8;
    const EACH: u64 = 5;
    let key = "counter.json";
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = ObjectHistory::<Checkpoint>::builder(make(), key)
                .max_attempts(1000)
                .open_or_default()
                .await
                .unwrap();
            for _ in 0..EACH {
                h.update_retry(|c| c.step += 1).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let h = open(&make, key).await;
    assert_eq!(h.step, WRITERS * EACH);
    assert_eq!(
        generations(&h).await,
        (1..=WRITERS * EACH).collect::<Vec<_>>()
    );
    for g in [1, WRITERS * EACH / 2, WRITERS * EACH] {
        assert_eq!(h.version(g).await.unwrap().step, g);
    }

    // A bounded loop gives up with the conflict.
    let mut a = ObjectHistory::<Checkpoint>::builder(make(), key)
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
}

/// With `keep(1)` every commit deletes the previous version, under the readers' feet:
/// readers opening the history over and over always get a complete value.
async fn readers_racing_writers_with_keep_1_see_only_complete_versions(make: MakeStore) {
    let key = "keep1.json";
    let size = 256 * 1024;
    let fill = |n: u64| ["a", "b"][n as usize % 2];
    let mut w = ObjectHistory::<Checkpoint>::builder(make(), key)
        .keep(1)
        .open_or_default()
        .await
        .unwrap();
    w.set(Checkpoint {
        step: 0,
        writer: 0,
        blob: fill(0).repeat(size),
    })
    .await
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let (make, done) = (make.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            let mut last = 0;
            while !done.load(Ordering::Relaxed) {
                let h = ObjectHistory::<Checkpoint>::open(make(), key)
                    .await
                    .expect("a complete value");
                assert_eq!(h.blob.len(), size);
                assert!(h.blob.bytes().all(|b| b == fill(h.step).as_bytes()[0]));
                assert_eq!(h.generation(), h.step + 1);
                assert!(h.step >= last, "went back from {last} to {}", h.step);
                last = h.step;
                reads += 1;
            }
            reads
        }));
    }
    for n in 1..=30u64 {
        w.set(Checkpoint {
            step: n,
            writer: 0,
            blob: fill(n).repeat(size),
        })
        .await
        .unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    assert!(reads > 0);
    assert_eq!(generations(&w).await, [31]);
    assert_eq!(listed(&make, key).await.len(), 1);
}

/// A 12 MiB version, above a 1 MiB multipart threshold, goes up in 5 MiB parts and
/// round-trips.
async fn a_large_version_goes_up_in_parts_and_reads_back(make: MakeStore) {
    let key = "large.json";
    let size = 12 * 1024 * 1024;
    let build = || {
        ObjectHistory::<Checkpoint>::builder(make(), key)
            .multipart_threshold(1024 * 1024)
            .part_size(5 * 1024 * 1024)
    };
    let mut h = build().open_or_default().await.unwrap();
    let blob: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    h.set(Checkpoint {
        step: 1,
        writer: 7,
        blob: blob.clone(),
    })
    .await
    .unwrap();
    h.update(|c| c.step = 2).await.unwrap();
    let back = build().open().await.unwrap();
    assert_eq!(back.step, 2);
    assert!(back.blob == blob, "the 12 MiB value differs");
    let v = back.versions().await.unwrap();
    assert!(v.iter().all(|v| v.size > size as u64));
    assert_eq!(back.version(1).await.unwrap().blob.len(), size);
    let meta = make().head(&v[1].path).await.unwrap();
    assert_eq!(meta.size, v[1].size);
}

/// A writer whose commit is cancelled (its task aborted) at several points leaves the
/// pointer at a complete version; the orphans it may leave are swept.
async fn cancelled_writer_leaves_pointer_complete(make: MakeStore) {
    let key = "cancelled.json";
    let size = 2 * 1024 * 1024;
    let fill = |n: u64| ["a", "b", "c"][n as usize % 3];
    let mut w = open(&make, key).await;
    w.set(Checkpoint {
        step: 0,
        writer: 0,
        blob: fill(0).repeat(size),
    })
    .await
    .unwrap();
    let mut last = 1;
    for delay_ms in [0, 1, 3, 10, 30, 100] {
        let make2 = make.clone();
        let task = tokio::spawn(async move {
            let mut w = ObjectHistory::<Checkpoint>::builder(make2(), key)
                .multipart_threshold(1024 * 1024)
                .part_size(5 * 1024 * 1024)
                .open()
                .await
                .unwrap();
            let n = w.step + 1;
            w.set(Checkpoint {
                step: n,
                writer: 1,
                blob: fill(n).repeat(size),
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        task.abort();
        let _ = task.await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let h = ObjectHistory::<Checkpoint>::open(make(), key)
            .await
            .unwrap_or_else(|e| panic!("after a cancel at {delay_ms} ms: {e}"));
        assert_eq!(h.blob.len(), size, "after a cancel at {delay_ms} ms");
        assert!(h.blob.bytes().all(|b| b == fill(h.step).as_bytes()[0]));
        assert_eq!(h.generation(), h.step + 1);
        assert!(h.generation() >= last);
        last = h.generation();
    }
    // Whatever was left behind, the sweep leaves exactly the named versions.
    let h = open(&make, key).await;
    h.sweep(Duration::ZERO).await.unwrap();
    assert_eq!(listed(&make, key).await, named(&h).await);
    assert_eq!(named(&h).await.len() as u64, last);
}

/// `sweep` deletes unnamed versions older than `min_age`, and nothing else: not the
/// named versions, not young orphans, not objects that are not versions.
async fn sweep_removes_old_orphans_only(make: MakeStore) {
    let key = "swept.json";
    let mut h = open(&make, key).await;
    h.set(step(1)).await.unwrap();
    h.set(step(2)).await.unwrap();
    let orphan = |g: u64| {
        format!(
            "{key}.versions/{g:020}-{}.json",
            atomic_persist::uuid::Uuid::now_v7()
        )
    };
    let store = make();
    let old = orphan(3);
    store
        .put(&old.as_str().into(), PutPayload::from_static(b"{}"))
        .await
        .unwrap();
    let other = format!("{key}.versions/notes.txt");
    store
        .put(&other.as_str().into(), PutPayload::from_static(b"mine"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let young = orphan(3);
    store
        .put(&young.as_str().into(), PutPayload::from_static(b"{}"))
        .await
        .unwrap();
    // Make the named versions old too: only "unnamed" may be deleted.
    assert_eq!(h.sweep(Duration::from_secs(2)).await.unwrap(), 1);
    let mut left = named(&h).await;
    left.push(young.rsplit('/').next().unwrap().to_owned());
    left.push("notes.txt".into());
    left.sort();
    assert_eq!(listed(&make, key).await, left);
    assert_eq!(h.sweep(Duration::ZERO).await.unwrap(), 1);
    let mut left = named(&h).await;
    left.push("notes.txt".into());
    left.sort();
    assert_eq!(listed(&make, key).await, left);
    assert_eq!(open(&make, key).await.step, 2);
    assert_eq!(h.version(1).await.unwrap().step, 1);
}

/// A pointer that does not parse is Corrupt naming the pointer key, for `open` and for
/// `open_or_default` alike (never a fresh default); so is a plain object at the key.
async fn malformed_pointer_is_corrupt(make: MakeStore) {
    let key = "pointer.json";
    let mut h = open(&make, key).await;
    h.set(step(1)).await.unwrap();
    h.set(step(2)).await.unwrap();
    let good = String::from_utf8(get(&make, key).await).unwrap();
    let bad = [
        b"garbage".to_vec(),
        Vec::new(),
        good.replace("current 2", "current 7").into_bytes(),
        good.lines()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
        good.replace(" crc32:", " crc32:zz").into_bytes(),
    ];
    for bytes in bad {
        make().put(&key.into(), bytes.into()).await.unwrap();
        assert_corrupt(ObjectHistory::<Checkpoint>::open(make(), key).await, key);
        assert_corrupt(
            ObjectHistory::<Checkpoint>::open_or_default(make(), key).await,
            key,
        );
        assert_corrupt(h.versions().await, key);
        assert_corrupt(h.sweep(Duration::ZERO).await, key);
    }
    assert_eq!(
        listed(&make, key).await.len(),
        2,
        "a corrupt pointer stops the sweep"
    );
    // An ObjectPersisted object is not a history.
    let mut p = ObjectPersisted::<Checkpoint>::builder(make(), "plain.json")
        .envelope(true)
        .open_or_default()
        .await
        .unwrap();
    p.set(step(1)).await.unwrap();
    let reason = assert_corrupt(
        ObjectHistory::<Checkpoint>::open_or_default(make(), "plain.json").await,
        "plain.json",
    );
    assert!(reason.contains("not a history pointer"), "{reason}");
}

/// A current version missing from the store is Corrupt naming the pointer key (never
/// NotFound, which open_or_default would take for "start fresh"); a damaged version is
/// Corrupt naming the version's key.
async fn missing_or_damaged_version_is_corrupt(make: MakeStore) {
    let key = "missing.json";
    let mut h = open(&make, key).await;
    h.set(step(1)).await.unwrap();
    h.set(step(2)).await.unwrap();
    let v = h.versions().await.unwrap();
    // Damaged, same size: the checksum catches it.
    let mut bytes = get(&make, v[1].path.as_ref()).await;
    let i = bytes.iter().position(|&b| b == b'2').unwrap();
    bytes[i] = b'3';
    make().put(&v[1].path, bytes.into()).await.unwrap();
    assert_corrupt(
        ObjectHistory::<Checkpoint>::open(make(), key).await,
        v[1].path.as_ref(),
    );
    // Replaced by another valid version: the pointer's checksum catches it.
    let first = get(&make, v[0].path.as_ref()).await;
    make().put(&v[1].path, first.into()).await.unwrap();
    assert_corrupt(
        ObjectHistory::<Checkpoint>::open(make(), key).await,
        v[1].path.as_ref(),
    );
    // Gone.
    make().delete(&v[1].path).await.unwrap();
    let reason = assert_corrupt(ObjectHistory::<Checkpoint>::open(make(), key).await, key);
    assert!(reason.contains("does not exist"), "{reason}");
    assert_corrupt(
        ObjectHistory::<Checkpoint>::open_or_default(make(), key).await,
        key,
    );
    assert_corrupt(h.version(2).await, key);
    assert_corrupt(h.reload().await, key);
    // The older version is still readable.
    assert_eq!(h.version(1).await.unwrap().step, 1);
}

/// The validate hook runs on commit and load; a newer schema is refused.
async fn refused_values_and_newer_schemas_are_typed_errors(make: MakeStore) {
    let key = "validated.json";
    let build = |schema| {
        ObjectHistory::<Checkpoint>::builder(make(), key)
            .schema_version(schema)
            .validate(|c| match c.step < 100 {
                true => Ok(()),
                false => Err("step too large".into()),
            })
    };
    let mut h = build(2).open_or_default().await.unwrap();
    h.set(step(5)).await.unwrap();
    match h.set(step(500)).await {
        Err(Error::Invalid { path, .. }) => assert_eq!(path.to_str(), Some(key)),
        other => panic!("{other:?}"),
    }
    assert_eq!(generations(&h).await, [1]);
    match build(1).open().await {
        Err(Error::SchemaVersion {
            found: 2,
            supported: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(build(2).open().await.unwrap().step, 5);
}

/// A decode hook gets each version's schema version: the current one and older
/// versions read by `version` are migrated alike.
async fn decode_hook_migrates_an_older_schema(make: MakeStore) {
    let key = "migrated.json";
    let mut v1 = ObjectHistory::<Checkpoint>::builder(make(), key)
        .schema_version(1)
        .open_or_default()
        .await
        .unwrap();
    v1.set(step(5)).await.unwrap();
    // Schema 2 counts steps in tenths.
    let mut v2 = ObjectHistory::<Checkpoint>::builder(make(), key)
        .schema_version(2)
        .decode(|found, payload| {
            let mut c: Checkpoint = payload.deserialize()?;
            if found < 2 {
                c.step *= 10;
            }
            Ok(c)
        })
        .open()
        .await
        .unwrap();
    assert_eq!(v2.step, 50);
    v2.set(step(60)).await.unwrap();
    assert_eq!(v2.version(1).await.unwrap().step, 50);
    assert_eq!(
        v2.version(2).await.unwrap().step,
        60,
        "schema 2 is not migrated"
    );
}

/// A pointer PUT that the store applied but reported as failed: refused as a retry
/// would be (`412`), the commit has happened and returns `Ok`, its version kept; any
/// other error is returned, the version is kept too (the pointer names it), and the
/// handle's next commit is a conflict until it reloads.
async fn a_pointer_put_applied_but_reported_as_failed_is_a_commit(make: MakeStore) {
    let key = "applied.json";
    let fail = Arc::new(Mutex::new(None));
    let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore {
        inner: make(),
        key: key.into(),
        fail: fail.clone(),
        multipart_uploads: Default::default(),
        ignore_conditions: false,
        ignore_if_match: false,
    });
    let mut h = ObjectHistory::<Checkpoint>::builder(store, key)
        .keep(2)
        .open_or_default()
        .await
        .unwrap();
    *fail.lock().unwrap() = Some(Failure::Precondition);
    h.set(step(1)).await.unwrap(); // PutMode::Create, "already exists"
    *fail.lock().unwrap() = Some(Failure::Precondition);
    h.set(step(2)).await.unwrap(); // PutMode::Update, "precondition failed"
    assert_eq!(h.generation(), 2);
    assert_eq!(
        open(&make, key).await.step,
        2,
        "the version object was kept"
    );
    h.set(step(3)).await.unwrap(); // the handle goes on from its own pointer
    assert_eq!(generations(&h).await, [2, 3]);
    assert_eq!(listed(&make, key).await, named(&h).await);

    *fail.lock().unwrap() = Some(Failure::Other);
    match h.set(step(4)).await {
        Err(Error::Io { op, path, .. }) => {
            assert_eq!(op, atomic_persist::Op::Put);
            assert_eq!(path.to_str(), Some(key));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        open(&make, key).await.step,
        4,
        "the version object was kept"
    );
    assert!(matches!(
        h.set(step(5)).await,
        Err(Error::Conflict {
            expected: 3,
            found: 4,
            ..
        })
    ));
    h.reload().await.unwrap();
    h.set(step(5)).await.unwrap();
    assert_eq!(generations(&h).await, [4, 5]);
    // Version 2, dropped by the commit whose answer was lost, is an orphan.
    assert_eq!(h.sweep(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(listed(&make, key).await, named(&h).await);
}

// ---------------------------------------------------------------------------------
// In memory

common::stores::behaviour_suite!(
    commits_read_back_and_list_as_versions_oldest_first,
    keep_n_leaves_only_the_newest_n_versions,
    rollback_is_a_new_generation_with_the_old_payload,
    a_stale_handle_gets_a_conflict_and_its_version_is_deleted,
    sixteen_racing_writers_have_one_winner_per_round,
    update_retry_loses_nothing,
    readers_racing_writers_with_keep_1_see_only_complete_versions,
    a_large_version_goes_up_in_parts_and_reads_back,
    cancelled_writer_leaves_pointer_complete,
    sweep_removes_old_orphans_only,
    malformed_pointer_is_corrupt,
    missing_or_damaged_version_is_corrupt,
    refused_values_and_newer_schemas_are_typed_errors,
    decode_hook_migrates_an_older_schema,
    a_pointer_put_applied_but_reported_as_failed_is_a_commit,
);

// ---------------------------------------------------------------------------------
// moto's S3 server on loopback

#[cfg(feature = "s3")]
mod s3_kills {
    use super::*;
    use crate::common::stores::moto::{maker, start};
    use std::process::Stdio;

    /// A writer process committing 2 MiB versions with `keep(3)`, SIGKILLed at 5 points
    /// (more with `ATOMIC_PERSIST_OBJECT_KILLS=N`): in its upload, between upload and
    /// pointer PUT, in the PUT, in retention's deletes. Afterwards the pointer opens to
    /// a whole value, the last acknowledged generation or the one after it; every
    /// version it lists reads back; and `sweep` leaves exactly the listed versions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_writer_leaves_pointer_complete() {
        const TEST: &str = "s3_kills::killed_writer_leaves_pointer_complete";
        const KEY: &str = "killed-history.json";
        const SIZE: usize = 2 * 1024 * 1024;
        let fill = |step: u64| ["a", "b", "c"][step as usize % 3];
        let open_on = async |port: u16| {
            ObjectHistory::<Checkpoint>::builder(maker(port)(), KEY)
                .keep(3)
                .open_or_default()
                .await
                .unwrap()
        };
        if common::role().as_deref() == Some("writer") {
            let port: u16 = std::env::var("MOTO_PORT").unwrap().parse().unwrap();
            let mut h = open_on(port).await;
            loop {
                h.update_retry(|c| {
                    c.step += 1;
                    c.blob = fill(c.step).repeat(SIZE);
                })
                .await
                .unwrap();
                println!("ack {}", h.generation());
            }
        }
        let Some(moto) = start(TEST, &[]) else {
            return;
        };
        let mut seen = Vec::new();
        for delay_ms in common::stores::kill_delays(&[0, 100, 300, 600, 1000], 1200) {
            let mut child = common::child(TEST, "writer")
                .env("MOTO_PORT", moto.port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let delay = Duration::from_millis(delay_ms);
            let acknowledged = common::kill_after_first_ack(&mut child, delay, "the writer");

            let h = open_on(moto.port).await;
            let g = h.generation();
            assert!(
                (acknowledged..=acknowledged + 1).contains(&g),
                "after a kill at {delay_ms} ms: generation {g}, {acknowledged} acknowledged"
            );
            assert_eq!(
                (h.step, h.blob.len()),
                (g, SIZE),
                "after a kill at {delay_ms} ms"
            );
            assert!(
                h.blob.bytes().all(|b| b == fill(g).as_bytes()[0]),
                "mixed contents"
            );
            for v in h.versions().await.unwrap() {
                let old = h.version(v.generation).await.unwrap();
                assert_eq!(
                    old.step, v.generation,
                    "version {} reads back",
                    v.generation
                );
            }
            seen.push(g);
        }
        let h = open_on(moto.port).await;
        let orphans = h.sweep(Duration::ZERO).await.unwrap();
        assert_eq!(listed(&maker(moto.port), KEY).await, named(&h).await);
        common::report(&format!(
            "killed ObjectHistory writer (S3): {} kills, 0 partial values, 0 acknowledged \
             commits lost; generations after each kill: {seen:?}; orphans swept: {orphans}",
            seen.len()
        ));
    }
}
