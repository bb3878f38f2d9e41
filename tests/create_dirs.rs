#![cfg(all(unix, feature = "json", feature = "toml"))]
//! `create_dirs`: a save makes the destination's missing parent directories, as
//! `mkdir -p` would, before anything else it creates (the lock sidecar included), and with
//! `Durability::Full` syncs the parent of each directory it made. Off by default.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use atomic_persist::{Durability, Error, History, Op, Persisted, WriteOptions};

#[test]
fn a_missing_parent_is_an_error_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing/f.json");
    let written = atomic_persist::write_atomic(&path, b"{}");
    assert!(
        matches!(
            written,
            Err(Error::Io {
                op: Op::OpenDir,
                ..
            })
        ),
        "{written:?}"
    );
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn a_save_creates_every_missing_parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c/f.json");
    WriteOptions::new()
        .create_dirs(true)
        .write(&path, b"{}")
        .unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"{}");
}

#[test]
fn an_existing_parent_is_used_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.json");
    WriteOptions::new()
        .create_dirs(true)
        .write(&path, b"1")
        .unwrap();
    WriteOptions::new()
        .create_dirs(true)
        .write(&path, b"2")
        .unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"2");
}

#[test]
fn a_file_in_the_way_is_an_error_naming_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), b"not a directory").unwrap();
    let path = dir.path().join("a/b/f.json");
    let written = WriteOptions::new().create_dirs(true).write(&path, b"{}");
    match written {
        Err(Error::Io {
            op: Op::CreateDir,
            path: p,
            ..
        }) => assert_eq!(p, dir.path().join("a/b")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn concurrent_savers_creating_the_same_directories_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("x/y/z");
    std::thread::scope(|s| {
        for i in 0..8 {
            let path = base.join(format!("f{i}"));
            s.spawn(move || WriteOptions::new().create_dirs(true).write(path, b"ok"));
        }
    });
    assert_eq!(fs::read_dir(&base).unwrap().count(), 8);
}

#[test]
fn an_enveloped_locked_commit_creates_the_directory_before_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/state.json");
    let open = || Persisted::<u32>::builder(&path).envelope(true).lock(true);
    let mut p = open().create_dirs(true).open_or_default().unwrap();
    p.set(5).unwrap();
    assert_eq!(*open().open().unwrap(), 5);
}

#[test]
fn a_history_commit_creates_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/doc.json");
    let options = WriteOptions::new().create_dirs(true);
    let mut h = History::<u32>::builder(&path)
        .write_options(options)
        .open_or_default()
        .unwrap();
    h.set(3).unwrap();
    assert_eq!(h.versions().unwrap().len(), 1);
}

#[cfg(feature = "derive")]
#[test]
fn a_derived_type_with_create_dirs_saves_into_a_new_directory() {
    use atomic_persist::Persist;
    #[derive(serde::Serialize, serde::Deserialize, Default, Persist)]
    #[persist(path = "unused.toml", create_dirs = true)]
    struct Config {
        volume: u32,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app/config.toml");
    Config::load_or_default_from(&path)
        .unwrap()
        .save_to(&path)
        .unwrap();
    assert_eq!(Config::load_from(&path).unwrap().volume, 0);
}

/// From an strace log: each directory made (`mkdir`/`mkdirat` returning 0), and each
/// directory synced after it (an `fsync` of a descriptor opened with `O_DIRECTORY`).
fn made_and_synced(log: &str) -> (Vec<PathBuf>, BTreeSet<(usize, PathBuf)>) {
    let (mut made, mut synced) = (Vec::new(), BTreeSet::new());
    let mut fds: BTreeMap<String, PathBuf> = BTreeMap::new();
    for call in common::strace::parse(log) {
        let path = call.quoted().map(PathBuf::from);
        match call.name.as_str() {
            "mkdir" | "mkdirat" if call.ok() => made.extend(path),
            "open" | "openat" if call.args.contains("O_DIRECTORY") => {
                fds.extend(path.map(|p| (call.ret.clone(), p)))
            }
            "fsync" => synced.extend(fds.get(call.first_arg()).map(|p| (made.len(), p.clone()))),
            _ => {}
        }
    }
    (made, synced)
}

/// The directories made whose parent was not synced after them.
fn unsynced_parents(level: Durability) -> Vec<PathBuf> {
    let test = "full_durability_syncs_the_parent_of_each_new_directory";
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("strace.log");
    let role = format!("{level:?}:{}", dir.path().join("w").display());
    common::strace_child(
        test,
        &role,
        "mkdir,mkdirat,open,openat,fsync",
        &log,
        "made-ok",
    );
    let (made, synced) = made_and_synced(&fs::read_to_string(&log).unwrap());
    assert_eq!(made.len(), 3, "made {made:?}");
    made.iter()
        .enumerate()
        .filter(|(i, d)| {
            let parent = d.parent().unwrap().to_path_buf();
            !synced.iter().any(|(after, p)| after > i && *p == parent)
        })
        .map(|(_, d)| d.clone())
        .collect()
}

#[test]
fn full_durability_syncs_the_parent_of_each_new_directory() {
    if let Some(role) = common::role() {
        let (level, base) = role.split_once(':').unwrap();
        let level = match level {
            "Full" => Durability::Full,
            _ => Durability::Data,
        };
        let path = Path::new(base).join("a/b/f.json");
        WriteOptions::new()
            .durability(level)
            .create_dirs(true)
            .write(&path, b"{}")
            .unwrap();
        println!("made-ok");
        return;
    }
    let test = "full_durability_syncs_the_parent_of_each_new_directory";
    if !common::have_strace() {
        return common::skip(test, "strace is not installed");
    }
    assert_eq!(unsynced_parents(Durability::Full), Vec::<PathBuf>::new());
    // The control: `Data` does not sync them, and the check sees it.
    assert_eq!(unsynced_parents(Durability::Data).len(), 3);
}
