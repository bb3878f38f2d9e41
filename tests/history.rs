//! `History<T>` and `RawHistory`: the on-disk layout, rollback, retention (also with
//! concurrent readers), the manifest as a cache, conflicts, and sweeping a pointer swap's
//! temporary symlink.
#![cfg(all(feature = "json", unix))]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use atomic_persist::history::{History, ManifestState, RawHistory};
use atomic_persist::{Error, Persisted};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
struct State {
    n: u64,
    note: String,
}

fn generations(raw: &RawHistory) -> Vec<u64> {
    raw.versions()
        .unwrap()
        .iter()
        .map(|v| v.generation)
        .collect()
}

fn link_target(path: &Path) -> String {
    std::fs::read_link(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn each_commit_writes_a_numbered_version_and_moves_the_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<State>::builder(&path).open_or_default().unwrap();
    assert_eq!(h.generation(), 0);
    assert!(!path.exists(), "nothing is written before the first commit");
    for i in 1..=3 {
        h.update(|s| s.n = i).unwrap();
        assert_eq!(h.generation(), i);
        assert_eq!(link_target(&path), format!("state.{i}.json"));
    }
    common::assert_only(
        dir.path(),
        &[
            ".state.json.lock",
            "state.1.json",
            "state.2.json",
            "state.3.json",
            "state.json",
            "state.manifest.json",
        ],
    );
    // The pointer is readable as the current version by anything that reads files.
    let p = Persisted::<State>::builder(&path)
        .envelope(true)
        .open()
        .unwrap();
    assert_eq!(p.n, 3);
    assert_eq!(p.meta().unwrap().generation, 3);
    // And the history opens where it left off.
    let again = History::<State>::open(&path).unwrap();
    assert_eq!(again.n, 3);
    assert_eq!(again.version(1).unwrap().n, 1);
    assert_eq!(generations(again.raw()), [1, 2, 3]);
}

#[test]
fn an_unchanged_value_adds_no_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<State>::builder(&path).open_or_default().unwrap();
    h.set(State {
        n: 1,
        note: "x".into(),
    })
    .unwrap();
    h.commit().unwrap();
    h.set(State {
        n: 1,
        note: "x".into(),
    })
    .unwrap();
    assert_eq!(h.generation(), 1);
    assert_eq!(generations(h.raw()), [1]);
}

#[test]
fn open_of_an_empty_history_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    match History::<State>::open(&path).unwrap_err() {
        Error::NotFound { path: p } => assert_eq!(p, path),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn rollback_appends_the_old_value_as_a_new_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<State>::builder(&path).open_or_default().unwrap();
    for i in 1..=3 {
        h.update(|s| s.n = i * 10).unwrap();
    }
    assert_eq!(h.rollback(1).unwrap(), 4);
    assert_eq!(h.n, 10);
    assert_eq!(h.generation(), 4);
    assert_eq!(generations(h.raw()), [1, 2, 3, 4]);
    assert_eq!(link_target(&path), "state.4.json");
    // A rollback can be rolled back, and the handle goes on committing.
    h.rollback(3).unwrap();
    assert_eq!(h.n, 30);
    h.update(|s| s.n += 1).unwrap();
    assert_eq!(History::<State>::open(&path).unwrap().n, 31);
    match h.rollback(99).unwrap_err() {
        Error::NotFound { path: p } => assert_eq!(p, dir.path().join("state.99.json")),
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[test]
fn raw_rollback_keeps_the_payload_bytes_of_pretty_json_and_toml() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pretty.json", "conf.toml"] {
        let path = dir.path().join(name);
        let mut b = History::<State>::builder(&path);
        if name.ends_with(".json") {
            b = b.format(atomic_persist::JsonPretty);
        }
        let mut h = b.open_or_default().unwrap();
        h.set(State {
            n: 1,
            note: "one".into(),
        })
        .unwrap();
        h.set(State {
            n: 2,
            note: "two".into(),
        })
        .unwrap();
        let raw = RawHistory::new(&path).unwrap();
        let v1 = raw.read(1).unwrap();
        raw.rollback(1).unwrap();
        let v3 = raw.read(3).unwrap();
        assert_eq!(
            v1.iter().filter(|&&b| b == b'\n').count(),
            v3.iter().filter(|&&b| b == b'\n').count(),
            "{name}: same layout"
        );
        h.reload().unwrap();
        assert_eq!(
            h.get(),
            &State {
                n: 1,
                note: "one".into()
            },
            "{name}"
        );
        assert_eq!(h.generation(), 3);
    }
}

#[test]
fn retention_keeps_the_newest_n_and_never_the_pointer_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<u64>::builder(&path)
        .keep(2)
        .open_or_default()
        .unwrap();
    for i in 1..=5 {
        h.set(i).unwrap();
        let gens = generations(h.raw());
        assert!(gens.contains(&i), "{gens:?}");
        assert!(gens.len() <= 2, "{gens:?}");
    }
    assert_eq!(generations(h.raw()), [4, 5]);
    assert!(!dir.path().join("state.3.json").exists());
    // keep(0) is keep(1): the current version stays.
    let mut one = History::<u64>::builder(&path).keep(0).open().unwrap();
    one.set(6).unwrap();
    assert_eq!(generations(one.raw()), [6]);
    assert_eq!(History::<u64>::open(&path).unwrap().into_inner(), 6);
}

#[test]
fn retention_with_concurrent_readers_never_removes_what_they_resolve() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<Vec<u64>>::builder(&path)
        .keep(1)
        .open_or_default()
        .unwrap();
    h.set(vec![0; 100]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (path, stop) = (path.clone(), stop.clone());
            thread::spawn(move || {
                let raw = RawHistory::new(&path).unwrap();
                let mut reads = 0u64;
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Both the raw and the typed readers follow the pointer.
                    let (g, _) = raw.read_latest().unwrap().expect("a version");
                    assert!(g >= last, "generation went back from {last} to {g}");
                    last = g;
                    let v = History::<Vec<u64>>::open(&path).unwrap();
                    assert!(v.iter().all(|&x| x == v[0]) && v.len() == 100);
                    assert!(v.generation() >= g);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 1..=300u64 {
        h.set(vec![i; 100]).unwrap();
        // The pointer's target exists after every commit.
        assert!(dir.path().join(link_target(&path)).exists());
    }
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    common::report(&format!(
        "history readers: {reads} reads over 300 commits with keep(1)"
    ));
    assert_eq!(generations(h.raw()), [301]);
}

/// A manifest entry damaged in place (same size, so the size check cannot see it) fails
/// the manifest's own checksum: the versions' meta comes from their envelopes instead.
#[test]
fn a_damaged_manifest_entry_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<u64>::builder(&path).open_or_default().unwrap();
    for i in 1..=3 {
        h.set(i).unwrap();
    }
    let raw = RawHistory::new(&path).unwrap();
    let good = raw.versions().unwrap();
    let manifest = std::fs::read_to_string(raw.manifest_path()).unwrap();
    let run_id = good[0].run_id.to_string();
    let other = run_id.replace(&run_id[..1], if &run_id[..1] == "0" { "1" } else { "0" });
    let damaged = manifest.replacen(&run_id, &other, 1);
    assert_ne!(damaged, manifest);
    std::fs::write(raw.manifest_path(), &damaged).unwrap();

    assert_eq!(raw.manifest_state().unwrap(), ManifestState::Stale);
    assert_eq!(raw.versions().unwrap(), good);
}

#[test]
fn a_missing_or_stale_manifest_is_rebuilt_from_the_version_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<u64>::builder(&path).open_or_default().unwrap();
    for i in 1..=3 {
        h.set(i).unwrap();
    }
    let raw = RawHistory::new(&path).unwrap();
    let good = raw.versions().unwrap();
    assert_eq!(raw.manifest_state().unwrap(), ManifestState::Current);

    std::fs::remove_file(raw.manifest_path()).unwrap();
    assert_eq!(raw.manifest_state().unwrap(), ManifestState::Missing);
    assert_eq!(raw.versions().unwrap(), good);

    std::fs::write(raw.manifest_path(), b"{\"atomic_persist_manifest\":1,\"lat").unwrap();
    assert_eq!(raw.manifest_state().unwrap(), ManifestState::Stale);
    assert_eq!(raw.versions().unwrap(), good);

    // A manifest from before the last commit (a crash between the pointer swap and the
    // manifest write) is stale too.
    let old = std::fs::read(raw.manifest_path()).ok();
    let before = {
        h.set(4).unwrap();
        std::fs::read(raw.manifest_path()).unwrap()
    };
    h.set(5).unwrap();
    std::fs::write(raw.manifest_path(), &before).unwrap();
    assert_eq!(raw.manifest_state().unwrap(), ManifestState::Stale);
    assert_eq!(generations(&raw), [1, 2, 3, 4, 5]);
    drop(old);
    // The next commit writes a current one.
    h.set(6).unwrap();
    assert_eq!(raw.manifest_state().unwrap(), ManifestState::Current);
    assert_eq!(generations(&raw), [1, 2, 3, 4, 5, 6]);
}

#[test]
fn a_version_file_beyond_the_pointer_is_debris_and_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<u64>::builder(&path).open_or_default().unwrap();
    h.set(1).unwrap();
    h.set(2).unwrap();
    // What a writer killed between writing version 3 and the pointer swap leaves.
    std::fs::copy(
        dir.path().join("state.2.json"),
        dir.path().join("state.3.json"),
    )
    .unwrap();
    let raw = RawHistory::new(&path).unwrap();
    assert_eq!(generations(&raw), [1, 2]);
    assert_eq!(History::<u64>::open(&path).unwrap().into_inner(), 2);
    h.set(30).unwrap();
    assert_eq!(h.generation(), 3);
    assert_eq!(History::<u64>::open(&path).unwrap().version(3).unwrap(), 30);
}

#[test]
fn a_second_writer_gets_a_conflict_not_a_lost_update() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut a = History::<u64>::builder(&path).open_or_default().unwrap();
    a.set(1).unwrap();
    let mut b = History::<u64>::open(&path).unwrap();
    a.set(2).unwrap();
    match b.set(3).unwrap_err() {
        Error::Conflict {
            expected, found, ..
        } => assert_eq!((expected, found), (1, 2)),
        other => panic!("expected Conflict, got {other:?}"),
    }
    b.reload().unwrap();
    assert_eq!(*b, 2);
    b.set(3).unwrap();
    assert_eq!(b.generation(), 3);
}

#[test]
fn a_newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<u64>::builder(&path)
        .schema_version(2)
        .open_or_default()
        .unwrap();
    h.set(1).unwrap();
    match History::<u64>::builder(&path)
        .schema_version(1)
        .open()
        .unwrap_err()
    {
        Error::SchemaVersion {
            found, supported, ..
        } => assert_eq!((found, supported), (2, 1)),
        other => panic!("expected SchemaVersion, got {other:?}"),
    }
}

#[test]
fn a_plain_file_is_adopted_and_becomes_the_pointer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut p = Persisted::<u64>::builder(&path)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set(7).unwrap();
    p.set(8).unwrap();
    let mut h = History::<u64>::open(&path).unwrap();
    assert_eq!((*h, h.generation()), (8, 2));
    h.set(9).unwrap();
    assert_eq!(h.generation(), 3);
    assert_eq!(link_target(&path), "state.3.json");
    // Without an envelope too.
    let plain = dir.path().join("plain.json");
    std::fs::write(&plain, b"41").unwrap();
    let mut h = History::<u64>::open(&plain).unwrap();
    assert_eq!((*h, h.generation()), (41, 0));
    h.set(42).unwrap();
    assert_eq!(link_target(&plain), "plain.1.json");
}

#[test]
fn a_damaged_version_is_corrupt_and_names_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<String>::builder(&path).open_or_default().unwrap();
    h.set("hello".into()).unwrap();
    let v1 = dir.path().join("state.1.json");
    let bytes = std::fs::read(&v1).unwrap();
    std::fs::write(
        &v1,
        String::from_utf8(bytes).unwrap().replace("hello", "jello"),
    )
    .unwrap();
    match History::<String>::open(&path).unwrap_err() {
        Error::Corrupt {
            path: p, reason, ..
        } => {
            assert_eq!(p, v1);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The manifest is a cache keyed by size, so it still lists it; rebuilt from the
    // files, the listing leaves it out rather than failing.
    let raw = RawHistory::new(&path).unwrap();
    assert_eq!(raw.versions().unwrap().len(), 1);
    std::fs::remove_file(raw.manifest_path()).unwrap();
    assert!(raw.versions().unwrap().is_empty());
}

#[test]
fn sweep_removes_a_stale_pointer_temp_symlink_but_not_a_live_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<u64>::builder(&path).open_or_default().unwrap();
    h.set(1).unwrap();
    // What a writer killed between creating the temp symlink and renaming it leaves.
    let temp = dir.path().join(".state.json.abcdefghijkl.tmp");
    std::os::unix::fs::symlink("state.1.json", &temp).unwrap();
    {
        let _writer = atomic_persist::lock::Lock::exclusive(&path).unwrap();
        assert_eq!(
            atomic_persist::sweep(dir.path()).unwrap().count(),
            0,
            "writer lock held"
        );
        assert!(temp.symlink_metadata().is_ok());
    }
    assert_eq!(atomic_persist::sweep(dir.path()).unwrap().count(), 1);
    assert!(temp.symlink_metadata().is_err());
    assert_eq!(
        link_target(&path),
        "state.1.json",
        "the pointer itself stays"
    );
}

#[test]
fn version_files_of_other_names_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<u64>::builder(&path).open_or_default().unwrap();
    h.set(1).unwrap();
    for other in [
        "state.01.json",
        "state.x.json",
        "state.2.toml",
        "other.2.json",
    ] {
        std::fs::write(dir.path().join(other), b"{}").unwrap();
    }
    assert_eq!(generations(h.raw()), [1]);
}

#[test]
fn validate_refuses_a_commit_and_a_loaded_version_that_fail_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limit.json");
    let small = |n: &u32| {
        if *n < 10 {
            Ok(())
        } else {
            Err(format!("{n} is too large"))
        }
    };
    let mut h = History::<u32>::builder(&path)
        .validate(small)
        .open_or_default()
        .unwrap();
    h.set(5).unwrap();
    match h.set(50) {
        Err(Error::Invalid { reason, .. }) => assert_eq!(reason, "50 is too large"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.versions().unwrap().len(),
        1,
        "the refused value was not written"
    );
    // A version written without the rule is refused when read with it.
    History::<u32>::open(&path).unwrap().set(70).unwrap();
    let reopened = History::<u32>::builder(&path).validate(small).open();
    assert!(
        matches!(reopened, Err(Error::Invalid { .. })),
        "{reopened:?}"
    );
}
