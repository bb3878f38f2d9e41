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

use atomic_persist::Error;
use atomic_persist::object::ObjectPersisted;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use common::stores::{MakeStore, in_memory};

#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
struct Checkpoint {
    step: u64,
    writer: u32,
    blob: String,
}

async fn open(make: &MakeStore, key: &str) -> ObjectPersisted<Checkpoint> {
    ObjectPersisted::<Checkpoint>::builder(make(), key)
        .envelope(true)
        .open_or_default()
        .await
        .unwrap()
}

// ---------------------------------------------------------------------------------
// The behavioural suite

async fn round_trip(make: MakeStore) {
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

async fn conflict_and_force(make: MakeStore) {
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
async fn sixteen_writers_race(make: MakeStore) {
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

async fn validate_and_schema(make: MakeStore) {
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

// ---------------------------------------------------------------------------------
// In memory

macro_rules! in_memory_tests {
    ($($name:ident),* $(,)?) => {
        mod in_memory {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(in_memory()).await;
                }
            )*
        }
    };
}

in_memory_tests!(
    round_trip,
    conflict_and_force,
    sixteen_writers_race,
    update_retry_loses_nothing,
    readers_never_see_partial_objects,
    cancelled_writer_leaves_no_partial_object,
    validate_and_schema,
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
mod s3 {
    use super::*;
    use common::stores::moto::{BUCKET, client, free_port, http, maker, start};
    use std::process::Stdio;

    macro_rules! s3_tests {
        ($($name:ident),* $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(moto) = start(concat!("s3::", stringify!($name)), &[]) else {
                        return;
                    };
                    super::$name(maker(moto.port)).await;
                }
            )*
        };
    }

    s3_tests!(
        round_trip,
        conflict_and_force,
        sixteen_writers_race,
        update_retry_loses_nothing,
        readers_never_see_partial_objects,
        cancelled_writer_leaves_no_partial_object,
        validate_and_schema,
    );

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
            "s3::unreachable_endpoint_is_a_typed_error_naming_the_key",
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
        let Some(moto) = start("s3::missing_bucket_is_a_typed_error_naming_the_key", &[]) else {
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
            "s3::bad_credentials_are_a_typed_error_naming_the_key",
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
        const TEST: &str = "s3::killed_writer_leaves_no_partial_object";
        const KEY: &str = "killed.json";
        const SIZE: usize = 8 * 1024 * 1024;
        let fill = |step: u64| ["a", "b", "c"][step as usize % 3];
        if common::role().as_deref() == Some("writer") {
            let port: u16 = std::env::var("MOTO_PORT").unwrap().parse().unwrap();
            let mut p = open(&maker(port), KEY).await;
            loop {
                p.update_retry(|c| {
                    c.step += 1;
                    c.blob = fill(c.step).repeat(SIZE);
                })
                .await
                .unwrap();
                println!("committed {}", p.step);
            }
        }
        let Some(moto) = start(TEST, &[]) else {
            return;
        };
        let mut seen = Vec::new();
        for delay_ms in [0u64, 250, 700, 1300, 2000] {
            let mut child = common::child(TEST, "writer")
                .env("MOTO_PORT", moto.port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            // Kill it `delay_ms` after its first commit, in the middle of later ones.
            let mut lines =
                std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
            let first = tokio::task::spawn_blocking(move || {
                let first = lines.find(|l| l.as_ref().is_ok_and(|l| l.starts_with("committed")));
                std::thread::spawn(move || lines.for_each(drop)); // keep the pipe drained
                first
            });
            assert!(first.await.unwrap().is_some(), "the writer never committed");
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let r = ObjectPersisted::<Checkpoint>::builder(maker(moto.port)(), KEY)
                .envelope(true)
                .open()
                .await;
            match r {
                Ok(p) => {
                    assert_eq!(p.blob.len(), SIZE);
                    assert!(p.blob.bytes().all(|b| b == fill(p.step).as_bytes()[0]));
                    seen.push(p.step);
                }
                Err(e) => panic!("after a kill at {delay_ms} ms: {e}"),
            }
        }
        common::report(&format!(
            "killed writer (S3): steps seen after each kill: {seen:?}"
        ));
    }
}
