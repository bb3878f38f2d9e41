//! `ObjectSnapshot`: sets of objects that change all at once, over
//! `object_store::memory::InMemory` (always) and moto's S3 server on loopback (feature
//! `s3`; see `common/stores.rs`).
#![cfg(all(feature = "object-store", feature = "json"))]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomic_persist::object::ObjectSnapshot;
use atomic_persist::{CorruptKind, Error, Op};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use common::stores::{Failure, FaultyStore, MakeStore};

async fn commit(snap: &ObjectSnapshot, files: &[(&str, &[u8])]) -> u64 {
    let mut tx = snap.begin().await.unwrap();
    for (name, bytes) in files {
        tx.write(name, bytes.to_vec()).unwrap();
    }
    tx.commit().await.unwrap()
}

/// Objects under `prefix`, sorted.
async fn listed(make: &MakeStore, prefix: &str) -> Vec<String> {
    use futures_util::StreamExt;
    let prefix = ObjectPath::from(prefix);
    let mut out: Vec<String> = make()
        .list(Some(&prefix))
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    out.sort();
    out
}

async fn a_commit_makes_the_whole_new_set_current(make: MakeStore) {
    let snap = ObjectSnapshot::new(make(), "ckpt");
    assert!(matches!(snap.current().await, Err(Error::NotFound { .. })));
    assert_eq!(commit(&snap, &[("a", b"a1"), ("b", b"b1")]).await, 1);
    assert_eq!(commit(&snap, &[("a", b"a2")]).await, 2);
    let view = snap.current().await.unwrap();
    assert_eq!(
        (view.generation(), view.names().collect::<Vec<_>>()),
        (2, vec!["a"])
    );
    assert_eq!(view.read("a").await.unwrap(), b"a2");
    assert!(matches!(view.read("b").await, Err(Error::NotFound { .. })));
}

async fn a_view_reads_its_own_set_after_a_newer_commit(make: MakeStore) {
    let snap = ObjectSnapshot::new(make(), "ckpt");
    commit(&snap, &[("a", b"a1"), ("b", b"b1")]).await;
    let view = snap.current().await.unwrap();
    commit(&snap, &[("a", b"a2"), ("b", b"b2")]).await;
    assert_eq!(view.read("a").await.unwrap(), b"a1");
    assert_eq!(view.read("b").await.unwrap(), b"b1");
}

async fn a_writer_another_writer_overtook_gets_a_conflict_and_leaves_nothing(make: MakeStore) {
    let snap = ObjectSnapshot::new(make(), "ckpt");
    let other = ObjectSnapshot::new(make(), "ckpt");
    let mut slow = snap.begin().await.unwrap();
    slow.write("a", b"slow".to_vec()).unwrap();
    commit(&other, &[("a", b"fast")]).await;
    match slow.commit().await {
        Err(Error::Conflict {
            expected: 0,
            found: 1,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        snap.current().await.unwrap().read("a").await.unwrap(),
        b"fast"
    );
    assert_eq!(
        listed(&make, "ckpt.gen").await.len(),
        1,
        "the loser's object is gone"
    );
}

async fn keep_n_deletes_the_objects_of_older_generations(make: MakeStore) {
    let snap = ObjectSnapshot::new(make(), "ckpt").keep(2);
    for _ in 0..4 {
        commit(&snap, &[("a", b"x"), ("b", b"y")]).await;
    }
    let left = listed(&make, "ckpt.gen").await;
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(
        left.iter()
            .all(|k| k.contains("/00000000000000000003-") || k.contains("/00000000000000000004-")),
        "{left:?}"
    );
}

async fn a_view_whose_generation_was_pruned_reads_corrupt_never_another_set(make: MakeStore) {
    let snap = ObjectSnapshot::new(make(), "ckpt").keep(1);
    commit(&snap, &[("a", b"a1")]).await;
    let view = snap.current().await.unwrap();
    commit(&snap, &[("a", b"a2")]).await;
    match view.read("a").await {
        Err(Error::Corrupt {
            kind: CorruptKind::MissingBody,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

async fn an_object_unlike_its_pointer_entry_is_corrupt(make: MakeStore) {
    let snap = ObjectSnapshot::new(make(), "ckpt");
    commit(&snap, &[("a", b"a1")]).await;
    let key = listed(&make, "ckpt.gen").await.remove(0);
    make()
        .put(&ObjectPath::from(key), PutPayload::from(b"b2".to_vec()))
        .await
        .unwrap();
    match snap.current().await.unwrap().read("a").await {
        Err(Error::Corrupt {
            kind: CorruptKind::MissingBody,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

async fn a_damaged_pointer_is_a_bad_pointer(make: MakeStore) {
    make()
        .put(
            &ObjectPath::from("ckpt"),
            PutPayload::from(b"not a pointer".to_vec()),
        )
        .await
        .unwrap();
    match ObjectSnapshot::new(make(), "ckpt").current().await {
        Err(Error::Corrupt {
            kind: CorruptKind::BadPointer,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

async fn put_and_get_go_through_the_format_of_the_extension(make: MakeStore) {
    let snap = ObjectSnapshot::new(make(), "ckpt");
    let mut tx = snap.begin().await.unwrap();
    tx.put("state.json", &vec![1u32, 2, 3]).unwrap();
    assert!(matches!(
        tx.put("state.xyz", &1),
        Err(Error::UnknownFormat { .. })
    ));
    tx.commit().await.unwrap();
    let view = snap.current().await.unwrap();
    assert_eq!(view.get::<Vec<u32>>("state.json").await.unwrap(), [1, 2, 3]);
    assert!(matches!(
        view.get::<String>("state.json").await,
        Err(Error::Deserialize { .. })
    ));
}

async fn a_name_that_is_not_one_plain_object_name_is_refused(make: MakeStore) {
    let snap = ObjectSnapshot::new(make(), "ckpt");
    let mut tx = snap.begin().await.unwrap();
    for name in ["a/b", "..", "", "line\nbreak"] {
        assert!(
            matches!(tx.write(name, b"x".to_vec()), Err(Error::Io { .. })),
            "{name:?}"
        );
    }
}

async fn a_cancelled_commit_leaves_the_pointer_at_a_whole_set(make: MakeStore) {
    let snap = std::sync::Arc::new(ObjectSnapshot::new(make(), "ckpt"));
    commit(&snap, &[("a", b"old"), ("b", b"old")]).await;
    for delay_us in [0, 50, 200, 1000, 5000] {
        let s = snap.clone();
        let task = tokio::spawn(async move {
            let mut tx = s.begin().await.unwrap();
            tx.write("a", b"new".to_vec()).unwrap();
            tx.write("b", b"new".to_vec()).unwrap();
            let _ = tx.commit().await;
        });
        tokio::time::sleep(std::time::Duration::from_micros(delay_us)).await;
        task.abort();
        let _ = task.await;
        let view = snap.current().await.unwrap();
        let (a, b) = (view.read("a").await.unwrap(), view.read("b").await.unwrap());
        assert_eq!(a, b, "a cancel at {delay_us} µs mixed two sets");
    }
}

/// A pointer PUT the store applied but answered with a refusal (how a client's retry
/// of a PUT whose answer was lost comes back) is a commit: the set stays and is current.
/// One answered with another error is an error; the set stays, current if it applied.
async fn a_pointer_put_applied_but_reported_as_failed_keeps_its_set(make: MakeStore) {
    let key = "applied/ckpt";
    let fail = Arc::new(Mutex::new(None));
    let store: Arc<dyn ObjectStore> = Arc::new(FaultyStore {
        inner: make(),
        key: ObjectPath::from(key),
        fail: fail.clone(),
        multipart_uploads: Default::default(),
        ignore_conditions: false,
        ignore_if_match: false,
    });
    let snap = ObjectSnapshot::new(store, key);
    let arm = |f| *fail.lock().unwrap() = Some(f);
    let read = async |snap: &ObjectSnapshot| {
        let view = snap.current().await.unwrap();
        (view.generation(), view.read("a.bin").await.unwrap())
    };
    arm(Failure::Precondition);
    assert_eq!(commit(&snap, &[("a.bin", b"one")]).await, 1); // If-None-Match: *
    assert_eq!(read(&snap).await, (1, b"one".to_vec()));
    arm(Failure::Precondition);
    assert_eq!(commit(&snap, &[("a.bin", b"two")]).await, 2); // If-Match
    assert_eq!(read(&snap).await, (2, b"two".to_vec()));

    arm(Failure::Other);
    let mut tx = snap.begin().await.unwrap();
    tx.write("a.bin", b"three".to_vec()).unwrap();
    let r = tx.commit().await;
    assert!(matches!(r, Err(Error::Io { op: Op::Put, .. })), "{r:?}");
    assert_eq!(read(&snap).await, (3, b"three".to_vec()), "the set stayed");
    assert_eq!(
        snap.sweep(Duration::ZERO).await.unwrap(),
        0,
        "it is current"
    );
}

/// `sweep` deletes, once old enough, the objects of sets no commit made current (a
/// killed writer's, for the pointer's generation or a newer one) and of a generation
/// retention should have removed; never the current set or a retained generation.
async fn sweep_deletes_only_the_objects_of_orphaned_sets(make: MakeStore) {
    let snap = ObjectSnapshot::new(make(), "swept/ckpt").keep(2);
    for g in 1..=3 {
        commit(&snap, &[("a.bin", format!("{g}").as_bytes())]).await;
    }
    let orphan = |g: u64, tag: &str| format!("swept/ckpt.gen/{g:020}-{tag}/a.bin");
    let orphans = [
        orphan(4, "killed-before-its-pointer-put"),
        orphan(3, "lost-the-race-and-was-killed"),
        orphan(1, "missed-by-retention"),
    ];
    // Among the retained generations an orphan cannot be told from the generation.
    let kept = orphan(2, "within-retention");
    let store = make();
    for key in orphans.iter().chain([&kept]) {
        let payload = PutPayload::from_static(b"orphan");
        store
            .put(&ObjectPath::from(key.as_str()), payload)
            .await
            .unwrap();
    }
    let before = listed(&make, "swept/ckpt.gen").await;

    let hour = Duration::from_secs(3600);
    assert_eq!(snap.sweep(hour).await.unwrap(), 0, "young objects stay");
    assert_eq!(snap.sweep(Duration::ZERO).await.unwrap(), orphans.len());
    let after = listed(&make, "swept/ckpt.gen").await;
    let mut gone: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
    gone.sort();
    let mut want: Vec<&String> = orphans.iter().collect();
    want.sort();
    assert_eq!(gone, want);
    assert!(after.contains(&kept));
    assert_eq!(
        after.len(),
        3,
        "generations 2 and 3, and the orphan among them: {after:?}"
    );
    let view = snap.current().await.unwrap();
    assert_eq!(view.read("a.bin").await.unwrap(), b"3");
}

/// An object above the multipart threshold is uploaded in parts, one below it in one
/// PUT; both read back whole.
async fn objects_above_the_multipart_threshold_go_in_parts(make: MakeStore) {
    let store = Arc::new(FaultyStore {
        inner: make(),
        key: ObjectPath::from("parts/ckpt"),
        fail: Arc::new(Mutex::new(None)),
        multipart_uploads: Default::default(),
        ignore_conditions: false,
        ignore_if_match: false,
    });
    let uploads = store.multipart_uploads.clone();
    let snap = ObjectSnapshot::new(store, "parts/ckpt")
        .multipart_threshold(4096)
        .part_size(5 * 1024 * 1024);
    let big: Vec<u8> = (0..6 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    commit(&snap, &[("big.bin", &big), ("small.bin", &[7; 4096])]).await;
    assert_eq!(uploads.load(std::sync::atomic::Ordering::SeqCst), 1);
    let view = snap.current().await.unwrap();
    assert_eq!(view.read("big.bin").await.unwrap(), big);
    assert_eq!(view.read("small.bin").await.unwrap(), [7; 4096]);
}

common::stores::behaviour_suite!(
    a_commit_makes_the_whole_new_set_current,
    a_view_reads_its_own_set_after_a_newer_commit,
    a_writer_another_writer_overtook_gets_a_conflict_and_leaves_nothing,
    keep_n_deletes_the_objects_of_older_generations,
    a_view_whose_generation_was_pruned_reads_corrupt_never_another_set,
    an_object_unlike_its_pointer_entry_is_corrupt,
    a_damaged_pointer_is_a_bad_pointer,
    put_and_get_go_through_the_format_of_the_extension,
    a_name_that_is_not_one_plain_object_name_is_refused,
    a_cancelled_commit_leaves_the_pointer_at_a_whole_set,
    a_pointer_put_applied_but_reported_as_failed_keeps_its_set,
    sweep_deletes_only_the_objects_of_orphaned_sets,
    objects_above_the_multipart_threshold_go_in_parts,
);
