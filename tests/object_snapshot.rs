//! `ObjectSnapshot`: sets of objects that change all at once, over
//! `object_store::memory::InMemory` (always) and moto's S3 server on loopback (feature
//! `s3`; see `common/stores.rs`).
#![cfg(all(feature = "object-store", feature = "json"))]

mod common;

use atomic_persist::object::ObjectSnapshot;
use atomic_persist::{CorruptKind, Error};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};

use common::stores::MakeStore;

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
);
