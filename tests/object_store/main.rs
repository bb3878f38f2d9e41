//! `ObjectPersisted<T>` over object stores: one behavioural suite, run over
//! `object_store::memory::InMemory` (always) and over a real S3 API server on loopback
//! (moto's `moto_server -H 127.0.0.1 -p PORT`, served one request at a time, see
//! `MOTO_SERIAL` in `common/stores.rs`; feature `s3`), which each S3 test starts on a
//! free port and stops itself. Without moto installed the S3 tests print
//! `SKIPPED <test>: ...` (and fail when `ATOMIC_PERSIST_NO_SKIP=1`).
#![cfg(all(feature = "object-store", feature = "json"))]

#[path = "../common/mod.rs"]
mod common;

mod large;
#[cfg(feature = "s3")]
mod s3_faults;
mod suite;

use std::sync::Arc;

use atomic_persist::Error;
use atomic_persist::object::ObjectPersisted;
use object_store::ObjectStore;
use object_store::memory::InMemory;

use common::stores::{Checkpoint, MakeStore};
// The suite's functions, each run over every store by `behaviour_suite!`.
use large::{
    a_lost_race_with_a_large_value_leaves_no_body, a_missing_or_damaged_body_is_corrupt,
    a_put_applied_but_reported_as_failed_is_a_commit,
    cancelled_multipart_writer_leaves_no_partial_object, large_values_commit_through_a_pointer,
    readers_never_see_a_partial_object_during_a_multipart_commit,
    sweep_bodies_removes_only_old_orphans,
};
use suite::{
    a_commit_reads_back_as_the_same_envelope_a_file_holds,
    a_stale_handle_gets_a_conflict_and_force_commit_overwrites,
    cancelled_writer_leaves_no_partial_object, decode_hook_migrates_an_older_schema,
    readers_never_see_partial_objects, refused_values_newer_schemas_and_damage_are_typed_errors,
    sixteen_racing_writers_have_one_winner_per_round, update_retry_loses_nothing,
};

async fn open(make: &MakeStore, key: &str) -> ObjectPersisted<Checkpoint> {
    ObjectPersisted::<Checkpoint>::builder(make(), key)
        .envelope(true)
        .open_or_default()
        .await
        .unwrap()
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
