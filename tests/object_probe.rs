//! The probe of a store's conditional writes (`src/object/probe.rs`): a store that
//! enforces `If-None-Match: *` and `If-Match` is committed to; one that ignores either is
//! refused, naming it, before anything is written; the probe can be turned off. Over
//! `InMemory` and moto's S3 (feature `s3`), each wrapped as the test needs.
#![cfg(all(feature = "object-store", feature = "json"))]

mod common;

use std::sync::Arc;

use atomic_persist::object::{ObjectHistory, ObjectPersisted, ObjectSnapshot};
use atomic_persist::{Error, Refusal};
use object_store::ObjectStore;

use common::stores::{FaultyStore, MakeStore};

/// Every key in the store, sorted.
async fn keys(store: &dyn ObjectStore) -> Vec<String> {
    use futures_util::StreamExt;
    let mut out: Vec<String> = store
        .list(None)
        .map(|m| m.unwrap().location.to_string())
        .collect()
        .await;
    out.sort();
    out
}

/// One commit through each object handle, at keys under `prefix`.
async fn commit_each(
    store: Arc<dyn ObjectStore>,
    prefix: &str,
    probe: bool,
) -> Vec<Result<(), Error>> {
    let mut out = Vec::new();
    let p = ObjectPersisted::<u32>::builder(store.clone(), format!("{prefix}/value.json"))
        .probe_conditional_writes(probe)
        .open_or_default()
        .await;
    out.push(match p {
        Ok(mut p) => p.set(1).await,
        Err(e) => Err(e),
    });
    let h = ObjectHistory::<u32>::builder(store.clone(), format!("{prefix}/history.json"))
        .probe_conditional_writes(probe)
        .open_or_default()
        .await;
    out.push(match h {
        Ok(mut h) => h.set(1).await.map(|_| ()),
        Err(e) => Err(e),
    });
    let snap = ObjectSnapshot::new(store, format!("{prefix}/set")).probe_conditional_writes(probe);
    let mut tx = snap.begin().await.unwrap();
    tx.write("a.bin", vec![1u8; 16]).unwrap();
    out.push(tx.commit().await.map(|_| ()));
    out
}

/// A store that enforces conditions is committed to, and the probe leaves nothing.
async fn a_store_that_enforces_conditions_is_committed_to(make: MakeStore) {
    let results = commit_each(make(), "enforced", true).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let left = keys(&*make()).await;
    assert!(!left.iter().any(|k| k.contains(".probe-")), "{left:?}");
}

/// A store that ignores both conditions is refused at the first check, naming it, and
/// nothing of the commits is written.
async fn a_store_that_ignores_conditions_is_refused_naming_it(make: MakeStore) {
    let store = Arc::new(FaultyStore {
        ignore_conditions: true,
        ..FaultyStore::over(make())
    });
    for result in commit_each(store, "ignored", true).await {
        match result {
            Err(Error::Refused {
                reason: Refusal::ConditionsIgnored { condition },
                path,
            }) => {
                assert_eq!(condition, "If-None-Match: *");
                assert!(path.to_string_lossy().contains("FaultyStore"), "{path:?}");
            }
            other => panic!("expected the probe's refusal: {other:?}"),
        }
    }
    assert_eq!(
        keys(&*make()).await,
        Vec::<String>::new(),
        "nothing written"
    );
}

/// A store that enforces `If-None-Match: *` but not `If-Match` is caught by the probe's
/// second check.
async fn a_store_that_ignores_only_if_match_is_refused(make: MakeStore) {
    let store = Arc::new(FaultyStore {
        ignore_if_match: true,
        ..FaultyStore::over(make())
    });
    for result in commit_each(store, "if-match", true).await {
        assert!(
            matches!(
                result,
                Err(Error::Refused {
                    reason: Refusal::ConditionsIgnored {
                        condition: "If-Match"
                    },
                    ..
                })
            ),
            "{result:?}"
        );
    }
}

/// With the probe off, the commits go through on a store that ignores conditions (and
/// ordering writers is then up to the caller).
async fn the_probe_can_be_turned_off(make: MakeStore) {
    let store = Arc::new(FaultyStore {
        ignore_conditions: true,
        ..FaultyStore::over(make())
    });
    let results = commit_each(store, "unprobed", false).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}

common::stores::behaviour_suite!(
    a_store_that_enforces_conditions_is_committed_to,
    a_store_that_ignores_conditions_is_refused_naming_it,
    a_store_that_ignores_only_if_match_is_refused,
    the_probe_can_be_turned_off,
);
