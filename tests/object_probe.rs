//! The probe of a store's conditional writes (`src/object/probe.rs`): a store that
//! enforces `If-None-Match: *` and `If-Match` is committed to; one that ignores either is
//! refused, naming it, before anything is written; the probe can be turned off. Racing
//! creators of one key have exactly one winner, and the same race over a store that
//! ignores conditions (probe off) is seen losing updates. Over `InMemory`, moto's S3 and
//! MiniStack's (feature `s3`), each wrapped as the test needs.
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

/// `CREATORS` handles that all found `key` missing create it at once, for `KEYS` keys:
/// the number of commits that returned `Ok` per key (a `Conflict` is the other answer
/// allowed), after checking that the stored value is a winner's.
async fn race_creators(store: Arc<dyn ObjectStore>, prefix: &str, probe: bool) -> Vec<usize> {
    const KEYS: usize = 12;
    const CREATORS: u64 = 8;
    let mut winners = Vec::new();
    for k in 0..KEYS {
        let key = format!("{prefix}/k{k}.json");
        let barrier = Arc::new(tokio::sync::Barrier::new(CREATORS as usize));
        let mut tasks = Vec::new();
        for writer in 0..CREATORS {
            let (store, key, barrier) = (store.clone(), key.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let mut p = ObjectPersisted::<u64>::builder(store, key)
                    .envelope(true)
                    .probe_conditional_writes(probe)
                    .open_or_default()
                    .await
                    .unwrap();
                barrier.wait().await;
                match p.set(writer + 1).await {
                    Ok(()) => Some(writer + 1),
                    Err(Error::Conflict { .. }) => None,
                    Err(e) => panic!("creator {writer} of {k}: {e}"),
                }
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            won.extend(t.await.unwrap());
        }
        let stored = ObjectPersisted::<u64>::builder(store.clone(), key)
            .envelope(true)
            .open()
            .await
            .unwrap();
        assert!(
            won.contains(stored.get()),
            "stored {} not a winner's: {won:?}",
            stored.get()
        );
        winners.push(won.len());
    }
    winners
}

/// 8 handles create each of 12 missing keys at once: exactly one wins each.
async fn racing_creators_have_exactly_one_winner(make: MakeStore) {
    assert_eq!(race_creators(make(), "creators", true).await, vec![1; 12]);
}

/// The control: the same race over a store that ignores the conditions (probe off) has
/// more than one winner, each overwriting the one before — the lost updates the race
/// above must not show.
async fn racing_creators_over_a_store_that_ignores_conditions_have_many_winners(make: MakeStore) {
    let store = Arc::new(FaultyStore {
        ignore_conditions: true,
        ..FaultyStore::over(make())
    });
    let winners = race_creators(store, "unconditional", false).await;
    assert!(winners.iter().all(|&n| n > 1), "{winners:?}");
}

common::stores::behaviour_suite!(
    racing_creators_have_exactly_one_winner,
    racing_creators_over_a_store_that_ignores_conditions_have_many_winners,
    a_store_that_enforces_conditions_is_committed_to,
    a_store_that_ignores_conditions_is_refused_naming_it,
    a_store_that_ignores_only_if_match_is_refused,
    the_probe_can_be_turned_off,
);
