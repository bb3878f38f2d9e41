//! 5-7. Sweep.

use super::*;

#[test]
fn sweep_does_not_hang_on_a_planted_temp_symlink_and_fifo_lock() {
    let test = &common::test_name(
        module_path!(),
        "sweep_does_not_hang_on_a_planted_temp_symlink_and_fifo_lock",
    );
    if let Some(role) = common::role() {
        return say(swept(arg(&role).1));
    }
    let Some(s) = Shared::new(test) else { return };
    let _ = root_history(&s);
    plant_link(
        Path::new("h.1.json"),
        &s.tmp.join(".h.json.aaaaaaaaaaaa.tmp"),
        OTHER,
    );
    std::fs::remove_file(Lock::path_for(s.tmp.join("h.json"))).unwrap();
    plant_fifo(&Lock::path_for(s.tmp.join("h.json")), OTHER);
    let got = run_as_root(test, &format!("sweep {}", s.tmp.display()));
    // The pointer temp stays (its lock cannot be looked at safely) and is reported.
    assert_eq!(got, "removed 0 skipped 1");
    assert!(
        s.tmp
            .join(".h.json.aaaaaaaaaaaa.tmp")
            .symlink_metadata()
            .is_ok()
    );
}

#[test]
fn sweep_removes_the_callers_debris_past_temps_it_may_not_remove() {
    let test = &common::test_name(
        module_path!(),
        "sweep_removes_the_callers_debris_past_temps_it_may_not_remove",
    );
    if let Some(role) = common::role() {
        return say(swept(arg(&role).1));
    }
    let Some(s) = Shared::new(test) else { return };
    let (mut others, mut mine) = (Vec::new(), Vec::new());
    for i in 0..6 {
        let other = s.tmp.join(format!(".o{i}.aaaaaaaaaaa{}.tmp", i + 2));
        let own = s.tmp.join(format!(".v{i}.bbbbbbbbbbb{}.tmp", i + 2));
        plant_file(&other, b"x", OTHER, 0o644);
        plant_file(&own, b"x", VICTIM, 0o644);
        others.push(other);
        mine.push(own);
    }
    let got = s.run_as(VICTIM, test, &format!("sweep {}", s.tmp.display()));
    assert_eq!(got, "removed 6 skipped 6");
    for own in &mine {
        assert!(!own.exists(), "{} was left ({got})", own.display());
    }
    for other in &others {
        assert!(other.exists(), "{} was removed", other.display());
    }
}
