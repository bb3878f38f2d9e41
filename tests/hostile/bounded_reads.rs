//! 9. Bounded reads.

use super::*;

#[test]
fn max_size_refuses_a_larger_file_before_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let mut p = Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set((0..10_000).collect()).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let opened = Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .max_size(1024)
        .open();
    match opened {
        Err(Error::TooLarge { size: s, limit, .. }) => assert_eq!((s, limit), (size, 1024)),
        other => panic!("{other:?}"),
    }
    let fits = Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .max_size(size)
        .open()
        .unwrap();
    assert_eq!(fits.len(), 10_000);
}

/// The peak resident memory of this process (`VmHWM`), in KiB.
fn own_peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line["VmHWM:".len()..]
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap()
}

#[test]
fn verify_reads_a_large_file_in_bounded_memory() {
    let test = &common::test_name(
        module_path!(),
        "verify_reads_a_large_file_in_bounded_memory",
    );
    if let Some(role) = common::role() {
        let verified = atomic_persist::envelope::verify(arg(&role).1).map(|m| m.is_some());
        return say(format!("{verified:?} peak {} kB", own_peak_kib()));
    }
    const PAYLOAD: usize = 96 << 20;
    let dir = tempfile::tempdir().unwrap();
    let blob = "a".repeat(PAYLOAD);
    let files = [
        ("big.json", AnyFormat::Json, format!("\"{blob}\"")),
        (
            "big.toml",
            AnyFormat::Toml,
            format!("[data]\nblob = \"{blob}\"\n"),
        ),
        ("big.bin", AnyFormat::Binary, blob.clone()),
    ];
    drop(blob);
    for (name, format, payload) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, oracle::wrapped(format, payload.as_bytes(), 3)).unwrap();
        drop(payload);
        let got = outcome(
            common::child(test, &format!("verify {}", path.display())),
            test,
            name,
        );
        assert!(got.starts_with("Ok(true)"), "{name}: {got}");
        // The payload is 96 MiB; a whole read would hold all of it.
        assert!(peak_kib(&got) < 32 * 1024, "{name}: {got}");
        // One byte changed deep in the payload is still found.
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(PAYLOAD as u64 / 2)).unwrap();
        f.write_all(b"b").unwrap();
        drop(f);
        let got = outcome(
            common::child(test, &format!("verify {}", path.display())),
            test,
            name,
        );
        assert!(got.starts_with("Err(Corrupt"), "{name}: {got}");
    }
}

#[test]
fn a_history_with_max_size_refuses_a_larger_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.json");
    History::<Vec<u32>>::open_or_default(&path)
        .unwrap()
        .set((0..10_000).collect())
        .unwrap();
    let opened = History::<Vec<u32>>::builder(&path).max_size(1024).open();
    assert!(
        matches!(opened, Err(Error::TooLarge { limit: 1024, .. })),
        "{opened:?}"
    );
}
