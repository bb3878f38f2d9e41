#![cfg(all(feature = "json", feature = "toml", feature = "binary"))]
//! Recovering opens (`PersistedBuilder::open_or_recover`, `Persist::load_or_recover`): a
//! damaged file is moved aside, byte for byte, and the handle starts from the default;
//! what is not damage is an error and nothing moves.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use atomic_persist::recovery::{Restored, is_damage};
use atomic_persist::{AnyFormat, Error, Json, Persisted, Recovery, Toml};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct Settings {
    volume: u32,
    name: String,
    tags: Vec<String>,
}

fn good() -> Settings {
    Settings {
        volume: 7,
        name: "main".into(),
        tags: vec!["a".into(), "b".into()],
    }
}

fn recover(
    path: &Path,
    format: AnyFormat,
    envelope: bool,
) -> atomic_persist::Result<(Persisted<Settings>, Option<Recovery>)> {
    Persisted::<Settings>::builder(path)
        .format(format)
        .envelope(envelope)
        .open_or_recover(Settings::default)
}

/// The names in `dir` other than the lock sidecar, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = common::names(dir)
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    out.sort();
    out
}

/// The file a commit of `good()` writes, in `format`.
fn written(dir: &Path, name: &str, format: AnyFormat, envelope: bool) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let mut p = Persisted::<Settings>::builder(&path)
        .format(format)
        .envelope(envelope)
        .open_or_else(good)
        .unwrap();
    p.commit().unwrap();
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

/// Asserts what a recovering open of the damaged `bytes` did: it opened the file
/// untouched (with the envelope, only as the good value), or it moved the file aside unchanged and started from the default, or it
/// returned an error that is not damage and left the file. Returns which.
fn outcome(
    path: &Path,
    format: AnyFormat,
    envelope: bool,
    bytes: &[u8],
    what: &str,
) -> &'static str {
    fs::write(path, bytes).unwrap();
    match recover(path, format, envelope) {
        Ok((p, None)) => {
            // A plain file has no checksum: a flip that still parses is a value (the
            // envelope is what tells damage from an edit).
            if envelope {
                assert_eq!(p.get(), &good(), "{what}: a wrong value opened as good");
            }
            assert_eq!(fs::read(path).unwrap(), bytes, "{what}: the file changed");
            "opened"
        }
        Ok((p, Some(r))) => {
            assert_eq!(p.get(), &Settings::default(), "{what}");
            assert_eq!(r.restored, Restored::Default, "{what}");
            assert!(is_damage(&r.cause), "{what}: {:?}", r.cause);
            assert_eq!(
                fs::read(&r.moved_to).unwrap(),
                bytes,
                "{what}: the damaged bytes"
            );
            assert!(
                !path.exists(),
                "{what}: the damaged file is still at its name"
            );
            fs::remove_file(&r.moved_to).unwrap();
            "recovered"
        }
        Err(e) => {
            assert!(!is_damage(&e), "{what}: damage returned as an error: {e:?}");
            assert_eq!(fs::read(path).unwrap(), bytes, "{what}: the file changed");
            "refused"
        }
    }
}

#[test]
fn every_truncation_and_bit_flip_opens_recovers_or_is_refused_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut counts = std::collections::BTreeMap::<(String, &str), usize>::new();
    for (ext, format) in common::formats() {
        for envelope in [true, false] {
            let name = format!("settings-{envelope}.{ext}");
            let (path, original) = written(dir.path(), &name, format, envelope);
            let label = format!("{format:?} envelope={envelope}");
            for len in 0..original.len() {
                let what = format!("{label} cut to {len}");
                let o = outcome(&path, format, envelope, &original[..len], &what);
                *counts.entry((label.clone(), o)).or_default() += 1;
            }
            for i in 0..original.len() {
                for bit in 0..8 {
                    let mut bytes = original.clone();
                    bytes[i] ^= 1 << bit;
                    let what = format!("{label} byte {i} bit {bit} flipped");
                    let o = outcome(&path, format, envelope, &bytes, &what);
                    *counts.entry((label.clone(), o)).or_default() += 1;
                }
            }
            // Every enveloped cut but a trailing newline is caught and recovered.
            let recovered = counts
                .get(&(label.clone(), "recovered"))
                .copied()
                .unwrap_or(0);
            assert!(recovered > original.len() / 2, "{label}: {counts:?}");
            // Every file moved aside was checked and removed: nothing else is left.
            let left = names(dir.path());
            assert!(left.is_empty() || left == [name.clone()], "{left:?}");
            let _ = fs::remove_file(&path);
        }
    }
    for ((label, o), n) in &counts {
        common::report(&format!("recovery [{label}]: {n} {o}"));
    }
}

#[test]
fn an_intact_file_opens_without_a_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let (path, bytes) = written(dir.path(), "s.json", Json.into(), true);
    let (p, r) = recover(&path, Json.into(), true).unwrap();
    assert!(r.is_none());
    assert_eq!((p.get(), fs::read(&path).unwrap()), (&good(), bytes));
}

#[test]
fn a_missing_file_starts_from_the_default_without_a_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let (p, r) = recover(&path, Json.into(), false).unwrap();
    assert!(r.is_none() && p.get() == &Settings::default());
    assert!(
        names(dir.path()).is_empty(),
        "nothing is written before a commit"
    );
}

#[test]
fn the_damaged_file_is_moved_aside_under_a_name_that_says_corrupt_and_when() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    fs::write(&path, "volume = 7\nname = \"main").unwrap();
    let (_, r) = recover(&path, Toml.into(), false).unwrap();
    let r = r.unwrap();
    let moved = r.moved_to.file_name().unwrap().to_str().unwrap().to_owned();
    let stamp = moved.strip_prefix("settings.toml.corrupt-").unwrap();
    assert_eq!(stamp.len(), "20261204T101500Z".len(), "{moved}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T',
        "{moved}"
    );
    assert!(
        matches!(r.cause, Error::Deserialize { .. }),
        "{:?}",
        r.cause
    );
    assert_eq!(r.moved_to.parent(), Some(dir.path()));
}

#[test]
fn a_second_recovery_never_overwrites_the_first_file_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let mut moved = Vec::new();
    for damage in ["{\"volume\": 1", "{\"volume\": 2", "{\"volume\": 3"] {
        fs::write(&path, damage).unwrap();
        let (_, r) = recover(&path, Json.into(), false).unwrap();
        moved.push(r.unwrap().moved_to);
    }
    let kept: Vec<String> = moved
        .iter()
        .map(|m| fs::read_to_string(m).unwrap())
        .collect();
    assert_eq!(kept, ["{\"volume\": 1", "{\"volume\": 2", "{\"volume\": 3"]);
    assert_eq!(names(dir.path()).len(), 3, "three files moved aside");
}

#[test]
fn a_commit_after_a_recovery_writes_the_new_value_and_keeps_the_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let (path, mut bytes) = written(dir.path(), "s.json", Json.into(), true);
    bytes.truncate(bytes.len() - 10);
    fs::write(&path, &bytes).unwrap();
    let (mut p, r) = recover(&path, Json.into(), true).unwrap();
    let r = r.unwrap();
    assert!(matches!(r.cause, Error::Corrupt { .. }), "{:?}", r.cause);
    p.update(|s| s.volume = 3).unwrap();
    let (again, none) = recover(&path, Json.into(), true).unwrap();
    assert!(none.is_none());
    assert_eq!(again.get().volume, 3);
    assert_eq!(fs::read(&r.moved_to).unwrap(), bytes);
}

#[test]
fn what_is_not_damage_is_an_error_and_nothing_moves() {
    let dir = tempfile::tempdir().unwrap();
    // A newer schema: the program is too old, the file is fine.
    let path = dir.path().join("newer.json");
    let mut p = Persisted::<Settings>::builder(&path)
        .envelope(true)
        .schema_version(2)
        .open_or_else(good)
        .unwrap();
    p.commit().unwrap();
    let bytes = fs::read(&path).unwrap();
    let newer = recover(&path, Json.into(), true);
    assert!(
        matches!(newer, Err(Error::SchemaVersion { .. })),
        "{newer:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), bytes);
    // A newer envelope.
    let text = String::from_utf8(bytes).unwrap();
    let newer_envelope = text.replacen("\"atomic_persist\":1", "\"atomic_persist\":2", 1);
    fs::write(&path, &newer_envelope).unwrap();
    let r = recover(&path, Json.into(), true);
    assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), newer_envelope);
    // A value the validate hook refuses.
    let (path, _) = written(dir.path(), "refused.json", Json.into(), false);
    let refused = Persisted::<Settings>::builder(&path)
        .validate(|s: &Settings| {
            if s.volume > 5 {
                Err("too loud".into())
            } else {
                Ok(())
            }
        })
        .open_or_recover(Settings::default);
    assert!(matches!(refused, Err(Error::Invalid { .. })), "{refused:?}");
    // An enveloped file opened without the envelope.
    let (path, _) = written(dir.path(), "enveloped.json", Json.into(), true);
    let plain = recover(&path, Json.into(), false);
    assert!(
        matches!(plain, Err(Error::UnexpectedEnvelope { .. })),
        "{plain:?}"
    );
    assert_eq!(
        names(dir.path()),
        ["enveloped.json", "newer.json", "refused.json"]
    );
}

#[cfg(unix)]
#[test]
fn through_a_symlink_the_target_is_moved_aside_in_its_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::write(real.join("s.json"), "[").unwrap();
    let link = dir.path().join("s.json");
    std::os::unix::fs::symlink("real/s.json", &link).unwrap();
    let (mut p, r) = recover(&link, Json.into(), false).unwrap();
    let r = r.unwrap();
    assert_eq!(r.moved_to.parent(), Some(real.as_path()));
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    p.update(|s| s.volume = 1).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let back: Settings = serde_json::from_slice(&fs::read(real.join("s.json")).unwrap()).unwrap();
    assert_eq!(back.volume, 1);
}

#[cfg(unix)]
#[test]
fn without_following_symlinks_the_link_itself_is_moved_aside_and_its_target_stays() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    fs::create_dir(&real).unwrap();
    fs::write(real.join("s.json"), "[").unwrap();
    let link = dir.path().join("s.json");
    std::os::unix::fs::symlink("real/s.json", &link).unwrap();
    let options = atomic_persist::WriteOptions::new().follow_symlinks(false);
    let (mut p, r) = Persisted::<Settings>::builder(&link)
        .write_options(options)
        .open_or_recover(Settings::default)
        .unwrap();
    let moved = r.unwrap().moved_to;
    assert_eq!(moved.parent(), Some(dir.path()));
    assert!(
        fs::symlink_metadata(&moved)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read(real.join("s.json")).unwrap(),
        b"[",
        "the target untouched"
    );
    // The save replaces the name, as it would have replaced the link.
    p.update(|s| s.volume = 1).unwrap();
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_file());
    assert_eq!(fs::read(real.join("s.json")).unwrap(), b"[");
}

#[cfg(feature = "derive")]
#[test]
fn a_persist_type_loads_or_recovers() {
    use atomic_persist::Persist;
    #[derive(Persist, Serialize, Deserialize, Debug, Default, PartialEq)]
    #[persist(path = "app.json", envelope = true)]
    struct App {
        runs: u32,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.json");
    App { runs: 4 }.save_to(&path).unwrap();
    assert_eq!(App::load_or_recover_from(&path).unwrap().0, App { runs: 4 });
    fs::write(&path, b"").unwrap();
    let (app, r) = App::load_or_recover_from(&path).unwrap();
    assert_eq!(app, App::default());
    assert_eq!(fs::read(r.unwrap().moved_to).unwrap(), b"");
}

/// A history of `doc.json` with versions holding "v1", "v2", ... "v{n}".
fn history_of(dir: &Path, n: u32) -> PathBuf {
    let path = dir.join("doc.json");
    let mut h = atomic_persist::History::<String>::builder(&path)
        .open_or_default()
        .unwrap();
    for i in 1..=n {
        h.set(format!("v{i}")).unwrap();
    }
    path
}

fn recover_history(
    path: &Path,
) -> atomic_persist::Result<(atomic_persist::History<String>, Option<Recovery>)> {
    atomic_persist::History::<String>::builder(path).open_or_recover(String::new)
}

#[test]
fn a_damaged_current_version_falls_back_to_the_newest_intact_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = history_of(dir.path(), 3);
    let (v2, v3) = (dir.path().join("doc.2.json"), dir.path().join("doc.3.json"));
    let mut flipped = fs::read(&v2).unwrap();
    let at = flipped.len() / 2;
    flipped[at] ^= 1;
    fs::write(&v2, &flipped).unwrap();
    let cut = fs::read(&v3).unwrap()[..30].to_vec();
    fs::write(&v3, &cut).unwrap();

    let (mut h, r) = recover_history(&path).unwrap();
    let r = r.unwrap();
    assert_eq!(
        r.restored,
        Restored::Version {
            from: 1,
            generation: 4
        }
    );
    assert_eq!((h.get().as_str(), h.generation()), ("v1", 4));
    assert_eq!(r.cause.path(), v3);
    assert_eq!(
        fs::read(&r.moved_to).unwrap(),
        cut,
        "the damaged version kept"
    );
    assert!(!v3.exists());
    assert_eq!(
        fs::read(&v2).unwrap(),
        flipped,
        "an older damaged version is left as it is"
    );
    h.set("v5".into()).unwrap();
    let listed: Vec<u64> = h.versions().unwrap().iter().map(|v| v.generation).collect();
    // Version 2 stays listed (its damage is in the payload, which the listing does not
    // read), version 3 is gone from the listing with its name.
    assert_eq!(listed, [1, 2, 4, 5]);
    let (again, none) = recover_history(&path).unwrap();
    assert!(none.is_none());
    assert_eq!(again.get(), "v5");
}

#[test]
fn a_history_with_no_intact_version_starts_from_the_default_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = history_of(dir.path(), 1);
    fs::write(dir.path().join("doc.1.json"), b"").unwrap();
    let (mut h, r) = recover_history(&path).unwrap();
    let r = r.unwrap();
    assert_eq!(r.restored, Restored::Default);
    assert_eq!(h.get(), "");
    assert_eq!(fs::read(&r.moved_to).unwrap(), b"");
    h.set("fresh".into()).unwrap();
    assert_eq!(h.generation(), 2);
    let (again, none) = recover_history(&path).unwrap();
    assert!(none.is_none() && again.get() == "fresh");
}

#[cfg(unix)]
#[test]
fn a_damaged_history_pointer_is_an_error_and_nothing_moves() {
    let dir = tempfile::tempdir().unwrap();
    let path = history_of(dir.path(), 2);
    fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("elsewhere.json", &path).unwrap();
    let before = names(dir.path());
    let r = recover_history(&path);
    assert!(
        matches!(
            r,
            Err(Error::Corrupt {
                kind: atomic_persist::CorruptKind::BadPointer,
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(names(dir.path()), before);
}

#[test]
fn an_intact_history_opens_without_a_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = history_of(dir.path(), 2);
    let (h, r) = recover_history(&path).unwrap();
    assert!(r.is_none());
    assert_eq!((h.get().as_str(), h.generation()), ("v2", 2));
}

/// An enveloped `u32` file written by schema version `schema`.
fn schema_file(dir: &Path, value: u32, schema: u32) -> (PathBuf, Vec<u8>) {
    let path = dir.join("n.json");
    let mut p = Persisted::<u32>::builder(&path)
        .envelope(true)
        .schema_version(schema)
        .open_or_default()
        .unwrap();
    p.set(value).unwrap();
    let bytes = fs::read(&path).unwrap();
    (path, bytes)
}

fn open_schema(path: &Path, schema: u32, backup: bool) -> Persisted<u32> {
    Persisted::<u32>::builder(path)
        .envelope(true)
        .schema_version(schema)
        .backup_before_migrate(backup)
        .open()
        .unwrap()
}

#[test]
fn a_file_of_an_older_schema_is_kept_before_the_migrated_value_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, old) = schema_file(dir.path(), 7, 1);
    let mut p = open_schema(&path, 2, true);
    let backup = dir.path().join("n.json.schema-1.bak");
    assert_eq!(
        fs::read(&backup).unwrap(),
        old,
        "kept at open, before any commit"
    );
    p.set(8).unwrap();
    assert_ne!(fs::read(&path).unwrap(), old);
    assert_eq!(
        fs::read(&backup).unwrap(),
        old,
        "the commit did not take it"
    );
    // Now of the current schema: opening again keeps nothing more.
    drop(open_schema(&path, 2, true));
    assert_eq!(names(dir.path()), ["n.json", "n.json.schema-1.bak"]);
}

#[test]
fn no_backup_without_the_option_or_without_a_migration() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = schema_file(dir.path(), 7, 1);
    open_schema(&path, 2, false).set(8).unwrap();
    let (path, _) = schema_file(&dir.path().join("."), 7, 2);
    drop(open_schema(&path, 2, true));
    assert_eq!(names(dir.path()), ["n.json"]);
}

#[test]
fn an_existing_backup_is_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("n.json.schema-1.bak");
    fs::write(&backup, b"the first backup").unwrap();
    let (path, _) = schema_file(dir.path(), 7, 1);
    open_schema(&path, 2, true).set(8).unwrap();
    assert_eq!(fs::read(&backup).unwrap(), b"the first backup");
}
