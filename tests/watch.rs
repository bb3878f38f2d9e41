#![cfg(all(feature = "watch", feature = "json"))]
//! Watching a file for commits: each new value once, verified, removals said, damage an
//! error item and never a value; over the platform's events and over polling.
//!
//! Timeouts here bound a wait for something that must come (generous, never a
//! measurement) or a quiet period in which nothing may come.

use std::fs;
use std::path::Path;
use std::time::Duration;

use atomic_persist::watch::{Update, Watch, WatchOptions};
use atomic_persist::{Error, History, Persisted, Snapshot};

/// Long enough for any event on a loaded machine.
const ARRIVES: Duration = Duration::from_secs(10);
/// How long nothing may come.
const QUIET: Duration = Duration::from_millis(300);

fn next<T: std::fmt::Debug>(w: &mut Watch<T>) -> atomic_persist::Result<Update<T>> {
    w.next_timeout(ARRIVES).expect("an item within the timeout")
}

fn changed<T: std::fmt::Debug>(w: &mut Watch<T>) -> T {
    match next(w) {
        Ok(Update::Changed { value, .. }) => value,
        other => panic!("expected a value, got {other:?}"),
    }
}

fn assert_quiet<T: std::fmt::Debug>(w: &mut Watch<T>) {
    if let Some(item) = w.next_timeout(QUIET) {
        panic!("nothing was to come, got {item:?}");
    }
}

fn enveloped(path: &Path) -> Persisted<u32> {
    Persisted::<u32>::builder(path)
        .envelope(true)
        .open_or_default()
        .unwrap()
}

#[test]
fn another_handles_commit_arrives_once_with_its_value_and_meta() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let mine = enveloped(&path);
    let mut w = mine.watch().unwrap();
    let mut other = enveloped(&path);
    other.set(1).unwrap();
    match next(&mut w).unwrap() {
        Update::Changed { value, meta } => {
            assert_eq!(value, 1);
            assert_eq!(meta.unwrap().generation, 1);
        }
        other => panic!("{other:?}"),
    }
    other.set(2).unwrap();
    assert_eq!(changed(&mut w), 2);
    assert_quiet(&mut w);
}

#[test]
fn the_value_the_handle_has_is_not_yielded_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    enveloped(&path).set(5).unwrap();
    let mine = enveloped(&path);
    let mut w = mine.watch().unwrap();
    assert_quiet(&mut w);
}

#[test]
fn a_commit_between_the_load_and_the_watch_is_not_missed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let mine = enveloped(&path);
    enveloped(&path).set(3).unwrap(); // after `mine` loaded, before it watches
    let mut w = mine.watch().unwrap();
    assert_eq!(changed(&mut w), 3);
}

#[test]
fn touching_the_file_or_committing_the_same_value_yields_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let mut other = enveloped(&path);
    other.set(4).unwrap();
    let mut w = enveloped(&path).watch().unwrap();
    other.set(4).unwrap(); // unchanged: no commit at all
    let f = fs::File::options().append(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    drop(f);
    let _ = fs::read(&path).unwrap();
    assert_quiet(&mut w);
}

#[test]
fn a_plain_file_is_told_by_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.json");
    let mut other = Persisted::<Vec<u32>>::open_or_default(&path).unwrap();
    other.set(vec![1]).unwrap();
    let mut w = Persisted::<Vec<u32>>::open(&path).unwrap().watch().unwrap();
    // A hand edit by another program, written atomically.
    atomic_persist::write_atomic(&path, b"[1, 2]").unwrap();
    match next(&mut w).unwrap() {
        Update::Changed { value, meta } => assert_eq!((value, meta), (vec![1, 2], None)),
        other => panic!("{other:?}"),
    }
    // The same bytes again: the same version.
    atomic_persist::write_atomic(&path, b"[1, 2]").unwrap();
    assert_quiet(&mut w);
}

#[test]
fn a_damaged_file_is_an_error_item_once_and_the_next_commit_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let mut other = enveloped(&path);
    other.set(1).unwrap();
    let mut w = enveloped(&path).watch().unwrap();
    let good = fs::read(&path).unwrap();
    let mut bad = good.clone();
    let at = bad.iter().position(|&b| b == b'1').unwrap();
    bad[at] = b'9'; // a flipped digit: the checksum no longer holds
    atomic_persist::write_atomic(&path, &bad).unwrap();
    match next(&mut w) {
        Err(Error::Corrupt { path: at, .. }) => assert_eq!(at, path),
        other => panic!("expected the damage, got {other:?}"),
    }
    // Touched again, still the same damage: not reported twice.
    atomic_persist::write_atomic(&path, &bad).unwrap();
    assert_quiet(&mut w);
    atomic_persist::write_atomic(&path, &good).unwrap();
    let mut fresh = Persisted::<u32>::builder(&path)
        .envelope(true)
        .open()
        .unwrap();
    fresh.set(2).unwrap();
    // The good file back (generation 1, yielded before) is not yielded again; 2 is.
    assert_eq!(changed(&mut w), 2);
    assert_quiet(&mut w);
}

#[test]
fn a_removed_file_is_said_once_and_its_return_is_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    enveloped(&path).set(1).unwrap();
    let mut w = enveloped(&path).watch().unwrap();
    fs::remove_file(&path).unwrap();
    assert!(matches!(next(&mut w), Ok(Update::Removed)));
    assert_quiet(&mut w);
    enveloped(&path).set(8).unwrap();
    assert_eq!(changed(&mut w), 8);
}

#[test]
fn a_file_written_in_place_in_pieces_is_read_once_it_is_whole() {
    // An editor that truncates and writes in two steps, without a rename: what is read
    // is either the whole new file or an error item, never a torn value.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.json");
    fs::write(&path, b"[0]").unwrap();
    let mut w = Persisted::<Vec<u32>>::open(&path)
        .unwrap()
        .watch_with(WatchOptions::new().debounce(Duration::from_millis(100)))
        .unwrap();
    {
        use std::io::Write;
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(b"[1, 2,").unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        f.write_all(b" 3]").unwrap();
    }
    let value = loop {
        match next(&mut w) {
            Ok(Update::Changed { value, .. }) => break value,
            Err(Error::Deserialize { .. } | Error::Corrupt { .. }) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(value, vec![1, 2, 3]);
}

#[test]
fn polling_sees_the_same_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let mut w = enveloped(&path)
        .watch_with(WatchOptions::new().poll(Duration::from_millis(20)))
        .unwrap();
    let mut other = enveloped(&path);
    other.set(1).unwrap();
    assert_eq!(changed(&mut w), 1);
    other.set(2).unwrap();
    assert_eq!(changed(&mut w), 2);
    fs::remove_file(&path).unwrap();
    assert!(matches!(next(&mut w), Ok(Update::Removed)));
}

#[test]
fn a_history_watch_yields_each_new_version_and_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.json");
    let mut h = History::<u32>::builder(&path).open_or_default().unwrap();
    h.set(1).unwrap();
    let mut w = History::<u32>::builder(&path)
        .open()
        .unwrap()
        .watch()
        .unwrap();
    h.set(2).unwrap();
    assert_eq!(changed(&mut w), 2);
    h.rollback(1).unwrap();
    assert_eq!(changed(&mut w), 1);
    assert_quiet(&mut w);
}

#[test]
fn a_snapshot_watch_yields_a_view_of_each_new_set() {
    let dir = tempfile::tempdir().unwrap();
    let snap = Snapshot::builder(dir.path().join("set"))
        .open_or_create()
        .unwrap();
    let mut w = snap.watch().unwrap();
    let mut tx = snap.begin().unwrap();
    tx.write("a.txt", b"one").unwrap();
    tx.commit().unwrap();
    let view = changed(&mut w);
    assert_eq!(view.read("a.txt").unwrap(), b"one");
    assert_quiet(&mut w);
}

#[cfg(feature = "derive")]
#[test]
fn a_persist_type_watches_its_file() {
    use atomic_persist::Persist;
    #[derive(serde::Serialize, serde::Deserialize, Default, Debug, PartialEq, Persist)]
    #[persist(path = "settings.json")]
    struct Settings {
        volume: u32,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.json");
    let mut w = Settings::watch_from(&path).unwrap();
    Settings { volume: 3 }.save_to(&path).unwrap();
    assert_eq!(changed(&mut w), Settings { volume: 3 });
}

#[cfg(feature = "tokio")]
#[test]
fn a_watch_is_a_stream_under_tokio() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let mut w = enveloped(&path).watch().unwrap().into_stream();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let value = runtime.block_on(async {
        let commit = tokio::task::spawn_blocking(move || enveloped(&path).set(6).unwrap());
        let item = tokio::time::timeout(ARRIVES, w.next())
            .await
            .expect("in time");
        commit.await.unwrap();
        item
    });
    assert!(
        matches!(value, Some(Ok(Update::Changed { value: 6, .. }))),
        "{value:?}"
    );
}

#[test]
fn another_process_commit_arrives() {
    // The committer is this test binary run again as a child: its own process.
    if std::env::var_os("WATCH_CHILD_COMMIT").is_some() {
        let path = std::env::var_os("WATCH_CHILD_COMMIT").unwrap();
        enveloped(Path::new(&path)).set(42).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.json");
    let mut w = enveloped(&path).watch().unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "another_process_commit_arrives", "--nocapture"])
        .env("WATCH_CHILD_COMMIT", &path)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(changed(&mut w), 42);
}

#[cfg(unix)]
#[test]
fn a_file_linked_from_another_directory_is_watched_where_it_is_replaced() {
    // A save through the link replaces the target in its own directory: only that
    // directory sees the rename.
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("dotfiles");
    fs::create_dir(&real).unwrap();
    let target = real.join("n.json");
    enveloped(&target).set(1).unwrap();
    let link = dir.path().join("n.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut w = enveloped(&link).watch().unwrap();
    // Past the watch's first look, so that only an event can bring the commit.
    assert_quiet(&mut w);
    enveloped(&link).set(2).unwrap();
    assert_eq!(changed(&mut w), 2);
}
