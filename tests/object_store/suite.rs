//! The behavioural suite: each test a function of the store it runs over.

use std::sync::Arc;
use std::time::Duration;

use atomic_persist::Error;
use atomic_persist::object::ObjectPersisted;
use object_store::ObjectStoreExt;

use crate::common::stores::{Checkpoint, MakeStore};
use crate::open;

pub async fn a_commit_reads_back_as_the_same_envelope_a_file_holds(make: MakeStore) {
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

pub async fn a_stale_handle_gets_a_conflict_and_force_commit_overwrites(make: MakeStore) {
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
pub async fn sixteen_racing_writers_have_one_winner_per_round(make: MakeStore) {
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
pub async fn update_retry_loses_nothing(make: MakeStore) {
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
pub async fn readers_never_see_partial_objects(make: MakeStore) {
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
pub async fn cancelled_writer_leaves_no_partial_object(make: MakeStore) {
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

pub async fn refused_values_newer_schemas_and_damage_are_typed_errors(make: MakeStore) {
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
pub async fn decode_hook_migrates_an_older_schema(make: MakeStore) {
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
