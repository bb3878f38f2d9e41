//! 3, 4, 8. Lock sidecars.

use super::*;

#[test]
fn another_user_cannot_hold_the_writer_lock() {
    let test = &common::test_name(module_path!(), "another_user_cannot_hold_the_writer_lock");
    if let Some(role) = common::role() {
        let (what, path) = arg(&role);
        if what == "hold" {
            return hold(path);
        }
        let updated = Persisted::<u32>::builder(path)
            .envelope(true)
            .open()
            .and_then(|mut p| p.update_locked(|v| *v += 1));
        return say(tag(&updated));
    }
    let Some(s) = Shared::new(test) else { return };
    let app = s.top().join("app");
    std::fs::create_dir(&app).unwrap();
    common::open_dir_to_all(&app);
    let path = app.join("state.json");
    Persisted::<u32>::builder(&path)
        .envelope(true)
        .open_or_default()
        .unwrap()
        .set(1)
        .unwrap();
    let (mut holder, said) = hold_lock_as(&s, OTHER, test, &Lock::path_for(&path));
    let got = run_as_root(test, &format!("update {}", path.display()));
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(
        said.starts_with("denied"),
        "the other user took the lock: {said}"
    );
    assert_eq!(got, "ok");
}

#[test]
fn a_lock_sidecar_planted_in_a_sticky_directory_does_not_stall_a_commit() {
    let test = &common::test_name(
        module_path!(),
        "a_lock_sidecar_planted_in_a_sticky_directory_does_not_stall_a_commit",
    );
    if let Some(role) = common::role() {
        let (what, path) = arg(&role);
        if what == "hold" {
            return hold(path);
        }
        let committed = Persisted::<u32>::builder(path)
            .envelope(true)
            .open_or_default()
            .and_then(|mut p| p.set(1));
        return say(tag(&committed));
    }
    let Some(s) = Shared::new(test) else { return };
    let path = s.tmp.join("state.json");
    plant_file(&Lock::path_for(&path), b"", OTHER, 0o644);
    let (mut holder, said) = hold_lock_as(&s, OTHER, test, &Lock::path_for(&path));
    assert_eq!(said, "held");
    let got = run_as_root(test, &format!("commit {}", path.display()));
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(got, refused(Refusal::ForeignFile { owner: OTHER }));
}

#[test]
fn a_fifo_as_the_lock_sidecar_is_an_error_within_the_timeout() {
    let test = &common::test_name(
        module_path!(),
        "a_fifo_as_the_lock_sidecar_is_an_error_within_the_timeout",
    );
    if let Some(role) = common::role() {
        let lock = Lock::exclusive_timeout(arg(&role).1, Duration::from_secs(2));
        return say(tag(&lock));
    }
    let Some(s) = Shared::new(test) else { return };
    let path = s.tmp.join("x.json");
    plant_fifo(&Lock::path_for(&path), 0);
    let got = run_as_root(test, &format!("lock {}", path.display()));
    assert_eq!(
        got,
        refused(Refusal::NotRegular {
            kind: FileKind::Fifo
        })
    );
}

#[test]
fn a_dangling_symlink_as_the_lock_sidecar_creates_nothing_at_its_target() {
    let test = &common::test_name(
        module_path!(),
        "a_dangling_symlink_as_the_lock_sidecar_creates_nothing_at_its_target",
    );
    let Some(s) = Shared::new(test) else { return };
    let path = s.tmp.join("s.json");
    let target = s.top().join("created-by-the-victim");
    plant_link(&target, &Lock::path_for(&path), OTHER);
    let committed = Persisted::<u32>::builder(&path)
        .envelope(true)
        .open_or_default()
        .and_then(|mut p| p.set(1));
    assert!(
        target.symlink_metadata().is_err(),
        "the victim created the link's target"
    );
    assert!(
        matches!(
            committed,
            Err(Error::Refused {
                reason: Refusal::Symlink,
                ..
            })
        ),
        "{committed:?}"
    );
}
