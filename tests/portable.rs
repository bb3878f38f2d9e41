#![cfg(feature = "json")]
//! The portable layer's behaviour, on every platform: CI runs this file on Linux and,
//! cross-compiled for `x86_64-pc-windows-gnu`, under Wine (`.ci/run`). It uses nothing
//! Unix-only (not even `tests/common`), so each test means the same on both.

use std::fs;
use std::path::Path;
#[cfg(windows)]
use std::time::Duration;

use atomic_persist::{CorruptKind, Error, History, Lock, Persisted, WriteOptions};

/// The names in `dir`, sorted, lock sidecars left out.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    out.sort();
    out
}

#[test]
fn a_save_creates_then_replaces_the_file_and_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    atomic_persist::write_atomic(&path, b"one").unwrap();
    atomic_persist::write_atomic(&path, b"two").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    assert_eq!(names(dir.path()), ["state.bin"]);
}

#[test]
fn a_save_dropped_before_its_commit_leaves_the_old_file_and_no_temp() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    atomic_persist::write_atomic(&path, b"old").unwrap();
    let mut file = WriteOptions::new().create(&path).unwrap();
    file.write_all(b"half of the ne").unwrap();
    drop(file);
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert_eq!(names(dir.path()), ["state.bin"]);
}

#[test]
fn an_enveloped_value_loads_with_its_meta_and_a_stale_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let open = || {
        Persisted::<Vec<u32>>::builder(&path)
            .envelope(true)
            .open_or_default()
            .unwrap()
    };
    let (mut a, mut b) = (open(), open());
    a.set(vec![1]).unwrap();
    let e = b.set(vec![2]).unwrap_err();
    assert!(matches!(e, Error::Conflict { .. }), "{e:?}");
    let back = open();
    assert_eq!(
        (back.get().as_slice(), back.meta().unwrap().generation),
        (&[1][..], 1)
    );
}

#[test]
fn a_history_keeps_versions_behind_its_pointer_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.json");
    let mut h = History::<u32>::builder(&path)
        .keep(2)
        .open_or_default()
        .unwrap();
    for n in 1..=3 {
        h.set(n).unwrap();
    }
    let generations: Vec<u64> = h.versions().unwrap().iter().map(|v| v.generation).collect();
    assert_eq!(generations, [2, 3]);
    h.rollback(2).unwrap();
    let again = History::<u32>::builder(&path).open().unwrap();
    assert_eq!(*again.get(), 2);
}

#[test]
fn a_lock_keeps_a_second_writer_out_until_it_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("x.json");
    let held = Lock::exclusive(&data).unwrap();
    assert!(Lock::try_exclusive(&data).unwrap().is_none());
    drop(held);
    assert!(Lock::try_exclusive(&data).unwrap().is_some());
}

#[test]
fn every_truncation_of_an_enveloped_file_is_corrupt_never_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut p = Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set(vec![7, 8, 9]).unwrap();
    let good = fs::read(&path).unwrap();
    for len in 0..good.len() {
        fs::write(&path, &good[..len]).unwrap();
        let opened = Persisted::<Vec<u32>>::builder(&path).envelope(true).open();
        assert!(
            matches!(
                opened,
                Err(Error::Corrupt { .. } | Error::Deserialize { .. })
            ),
            "cut to {len}: {opened:?}"
        );
    }
    fs::write(&path, b"").unwrap();
    let e = Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .open()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Corrupt {
                kind: CorruptKind::Empty,
                ..
            }
        ),
        "{e:?}"
    );
}

/// Opens `path` as another program would that does not let it be replaced (no
/// `FILE_SHARE_DELETE`), and closes it after `for_how_long`.
#[cfg(windows)]
fn hold_open(path: &Path, for_how_long: Duration) -> std::thread::JoinHandle<()> {
    use std::os::windows::fs::OpenOptionsExt;
    const FILE_SHARE_READ: u32 = 1;
    const FILE_SHARE_WRITE: u32 = 2;
    let file = fs::File::options()
        .read(true)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
        .open(path)
        .unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(for_how_long);
        drop(file);
    })
}

#[cfg(windows)]
#[test]
fn a_destination_held_open_without_share_delete_fails_the_rename_without_a_retry() {
    // The control: what an antivirus or indexer holding the file does to a save.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    atomic_persist::write_atomic(&path, b"old").unwrap();
    let holder = hold_open(&path, Duration::from_millis(500));
    let e = WriteOptions::new()
        .rename_retry(Duration::ZERO)
        .write(&path, b"new")
        .unwrap_err();
    assert!(
        matches!(
            &e,
            Error::Io {
                op: atomic_persist::Op::Rename,
                ..
            }
        ),
        "{e:?}"
    );
    holder.join().unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"old");
    assert_eq!(names(dir.path()), ["state.bin"]);
}

#[cfg(windows)]
#[test]
fn a_destination_held_open_is_replaced_once_it_is_closed_within_the_retry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    atomic_persist::write_atomic(&path, b"old").unwrap();
    let holder = hold_open(&path, Duration::from_millis(300));
    WriteOptions::new()
        .rename_retry(Duration::from_secs(10))
        .write(&path, b"new")
        .unwrap();
    holder.join().unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new");
    assert_eq!(names(dir.path()), ["state.bin"]);
}

/// An enveloped JSON file of `[1]` written at `secs.nanos` by the spec: the CRC-32 of the
/// payload and the 56 canonical meta bytes.
fn enveloped_at(run_id: uuid::Uuid, secs: i64, nanos: i32, time: &str) -> Vec<u8> {
    let payload = b"[1]";
    let mut canonical = Vec::from(&b"atomic-persist/1"[..]);
    canonical.extend_from_slice(run_id.as_bytes());
    canonical.extend_from_slice(&secs.to_le_bytes());
    canonical.extend_from_slice(&nanos.to_le_bytes());
    canonical.extend_from_slice(&1u64.to_le_bytes()); // generation
    canonical.extend_from_slice(&0u32.to_le_bytes()); // schema version
    let mut crc = crc32fast::Hasher::new();
    crc.update(payload);
    crc.update(&canonical);
    format!(
        "{{\"atomic_persist\":1,\"data\":[1],\"meta\":{{\"run_id\":\"{run_id}\",\"written_at\":\"{time}\",\
         \"generation\":1,\"schema_version\":0,\"checksum\":\"crc32:{:08x}\"}}}}",
        crc.finalize()
    )
    .into_bytes()
}

#[test]
fn a_time_finer_than_the_platform_clock_verifies_and_keeps_its_nanoseconds() {
    // Linux writes nanoseconds; Windows' clock has 100 ns steps. The checksum covers the
    // nanoseconds as written, so a file from Linux must verify on Windows too (it did
    // not while the time went through a `SystemTime`: found by the Wine run).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-linux.json");
    let run_id = uuid::Uuid::from_u128(0x0190_f5e2_7a3b_7c4d_8e9f_0123_4567_89ab);
    let bytes = enveloped_at(
        run_id,
        1_764_099_662,
        123_456_789,
        "2025-11-25T19:41:02.123456789Z",
    );
    fs::write(&path, bytes).unwrap();
    let p = Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .open()
        .unwrap();
    let meta = p.meta().unwrap();
    assert_eq!(
        meta.written_at.to_string(),
        "2025-11-25T19:41:02.123456789Z"
    );
    assert_eq!(
        atomic_persist::envelope::verify(&path).unwrap().as_ref(),
        Some(meta)
    );
}
