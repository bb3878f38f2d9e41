//! Without another user.

use super::*;

/// An enveloped JSON file holding `7` at `generation`, its checksum valid.
fn at_generation(path: &Path, generation: u64) {
    std::fs::write(path, oracle::wrapped(AnyFormat::Json, b"7", generation)).unwrap();
}

#[test]
fn a_commit_after_generation_u64_max_is_an_error_not_a_wrap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    at_generation(&path, u64::MAX);
    let before = std::fs::read(&path).unwrap();
    let mut p = Persisted::<u32>::builder(&path)
        .envelope(true)
        .open()
        .unwrap();
    let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.set(8)));
    assert!(
        matches!(committed, Ok(Err(Error::GenerationOverflow { .. }))),
        "{committed:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_history_at_generation_u64_max_lists_it_and_refuses_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.json");
    let last = format!("h.{}.json", u64::MAX);
    at_generation(&dir.path().join(&last), u64::MAX);
    std::os::unix::fs::symlink(&last, &path).unwrap();
    let mut h = History::<u32>::open(&path).unwrap();
    let committed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.set(8)));
    assert!(
        matches!(committed, Ok(Err(Error::GenerationOverflow { .. }))),
        "{committed:?}"
    );
    let listed: Vec<u64> = h.versions().unwrap().iter().map(|v| v.generation).collect();
    assert_eq!(listed, [u64::MAX]);
}

#[test]
fn a_history_with_a_non_utf8_name_opens_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(OsStr::from_bytes(b"caf\xe9.json"));
    let mut h = History::<u32>::open_or_default(&path).unwrap();
    h.set(1).unwrap();
    h.set(2).unwrap();
    let again = History::<u32>::open(&path).unwrap();
    assert_eq!((*again.get(), again.generation()), (2, 2));
    assert_eq!(again.versions().unwrap().len(), 2);
}

#[test]
fn dropping_a_lock_releases_it_though_a_forked_child_keeps_the_descriptor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.json");
    let lock = Lock::exclusive(&path).unwrap();
    // The child only sleeps and exits: nothing in it may take a lock of this process.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            libc::sleep(1);
            libc::_exit(0);
        }
    }
    assert!(pid > 0);
    drop(lock);
    let free = Lock::try_exclusive(&path).unwrap().is_some();
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    assert!(free, "the lock outlived its drop in the forked child");
}

#[test]
fn setuid_bits_are_not_on_the_temp_file_while_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tool");
    for mode in [0o4755, 0o2755, 0o1755, 0o6711] {
        let mut f = WriteOptions::new()
            .mode(mode)
            .anonymous_temp(false)
            .create(&path)
            .unwrap();
        f.write_all(b"#!/bin/sh\n").unwrap();
        f.flush().unwrap();
        let temp = f.temp_path().expect("a named temp");
        let during = std::fs::metadata(&temp).unwrap().mode() & 0o7777;
        assert_eq!(during & 0o7000, 0, "{mode:o}: the temp had {during:o}");
        f.commit().unwrap();
        assert_eq!(common::mode(&path), mode);
    }
}

#[test]
fn a_250_byte_name_works_with_the_envelope_and_in_a_history() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}.json", "n".repeat(245));
    let path = dir.path().join(&name);
    let mut p = Persisted::<u32>::builder(&path)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set(1).unwrap();
    p.update_locked(|v| *v += 1).unwrap();
    let hist = dir.path().join(format!("{}.json", "h".repeat(240)));
    let mut h = History::<u32>::open_or_default(&hist).unwrap();
    h.set(1).unwrap();
    h.set(2).unwrap();
    assert_eq!(*History::<u32>::open(&hist).unwrap().get(), 2);
}
