//! 5, 9. FIFOs and devices where files are read.

use super::*;

/// The `history` role: commit 3, then list; prints the generations and the peak memory.
fn commit_and_list(path: &Path) {
    let listed = History::<u32>::open(path).and_then(|mut h| {
        h.set(3)?;
        h.versions()
    });
    let peak = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        .unwrap();
    match listed {
        Ok(v) => say(format!(
            "{:?} peak {peak}",
            v.iter().map(|v| v.generation).collect::<Vec<_>>()
        )),
        Err(e) => say(format!("err {e} peak {peak}")),
    }
}

#[test]
fn a_fifo_named_like_a_version_does_not_hang_a_history() {
    let test = &common::test_name(
        module_path!(),
        "a_fifo_named_like_a_version_does_not_hang_a_history",
    );
    if let Some(role) = common::role() {
        return commit_and_list(arg(&role).1);
    }
    let Some(s) = Shared::new(test) else { return };
    let path = root_history(&s);
    plant_fifo(&s.tmp.join("h.0.json"), OTHER);
    let got = run_as_root(test, &format!("history {}", path.display()));
    assert!(got.starts_with("[1, 2, 3]"), "{got}");
}

#[test]
fn a_link_to_dev_zero_named_like_a_version_is_not_read() {
    let test = &common::test_name(
        module_path!(),
        "a_link_to_dev_zero_named_like_a_version_is_not_read",
    );
    if let Some(role) = common::role() {
        return commit_and_list(arg(&role).1);
    }
    let Some(s) = Shared::new(test) else { return };
    let path = root_history(&s);
    plant_link(Path::new("/dev/zero"), &s.tmp.join("h.0.json"), OTHER);
    let got = run_as_root(test, &format!("history {}", path.display()));
    assert!(got.starts_with("[1, 2, 3]"), "{got}");
    assert!(peak_kib(&got) < 256 * 1024, "read the device: {got}");
}

#[test]
fn a_fifo_at_the_data_path_is_an_error_not_a_hang() {
    let test = &common::test_name(
        module_path!(),
        "a_fifo_at_the_data_path_is_an_error_not_a_hang",
    );
    if let Some(role) = common::role() {
        let (what, path) = arg(&role);
        return say(match what {
            "persisted" => tag(&Persisted::<u32>::builder(path)
                .envelope(true)
                .open_or_default()),
            _ => tag(&History::<u32>::open(path)),
        });
    }
    let Some(s) = Shared::new(test) else { return };
    let path = s.tmp.join("state.json");
    // A FIFO is refused for what it is; a regular file the other user planted, for its
    // owner.
    plant_fifo(&path, OTHER);
    for what in ["persisted", "history"] {
        let got = run_as_root(test, &format!("{what} {}", path.display()));
        assert_eq!(
            got,
            refused(Refusal::NotRegular {
                kind: FileKind::Fifo
            }),
            "{what}"
        );
    }
    std::fs::remove_file(&path).unwrap();
    plant_file(&path, b"7", OTHER, 0o644);
    for what in ["persisted", "history"] {
        let got = run_as_root(test, &format!("{what} {}", path.display()));
        assert_eq!(
            got,
            refused(Refusal::ForeignFile { owner: OTHER }),
            "{what}"
        );
    }
}

#[test]
fn a_fifo_socket_or_device_destination_is_not_replaced() {
    let test = &common::test_name(
        module_path!(),
        "a_fifo_socket_or_device_destination_is_not_replaced",
    );
    if !common::is_root() {
        return common::skip(test, "mknod needs root");
    }
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    plant_fifo(&fifo, 0);
    let null = dir.path().join("null");
    let c = std::ffi::CString::new(null.as_os_str().as_bytes()).unwrap();
    let dev = libc::makedev(1, 3);
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, dev) },
        0
    );
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    for (path, kind) in [
        (&fifo, FileKind::Fifo),
        (&null, FileKind::CharDevice),
        (&socket, FileKind::Socket),
    ] {
        let before = std::fs::symlink_metadata(path).unwrap().file_type();
        match write_atomic(path, b"data") {
            Err(Error::Refused {
                reason: Refusal::NotRegular { kind: k },
                ..
            }) => assert_eq!(k, kind),
            other => panic!("{}: {other:?}", path.display()),
        }
        assert_eq!(std::fs::symlink_metadata(path).unwrap().file_type(), before);
    }
}

#[test]
fn replace_non_regular_gives_a_fresh_mode_never_the_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    plant_fifo(&fifo, rustix::process::geteuid().as_raw());
    WriteOptions::new()
        .replace_non_regular(true)
        .write(&fifo, b"data")
        .unwrap();
    assert!(std::fs::symlink_metadata(&fifo).unwrap().is_file());
    assert_eq!(common::mode(&fifo), 0o666 & !common::current_umask());
}

#[test]
fn follow_symlinks_false_replaces_the_link_itself() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    WriteOptions::new()
        .follow_symlinks(false)
        .write(&link, b"new")
        .unwrap();
    assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
    assert_eq!(std::fs::read(&link).unwrap(), b"new");
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
}
