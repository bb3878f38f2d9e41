//! 1. Symlinks.

use super::*;

#[test]
fn a_symlink_another_user_planted_in_a_sticky_directory_is_not_followed() {
    let test = &common::test_name(
        module_path!(),
        "a_symlink_another_user_planted_in_a_sticky_directory_is_not_followed",
    );
    if let Some(role) = common::role() {
        return say(tag(&write_atomic(arg(&role).1, b"victim data")));
    }
    let Some(s) = Shared::new(test) else { return };
    let home = s.home(VICTIM);
    let dest = s.tmp.join("dest");
    plant_link(&home.join("secret"), &dest, OTHER);
    let got = s.run_as(VICTIM, test, &format!("save {}", dest.display()));
    assert_eq!(std::fs::read(home.join("secret")).unwrap(), b"private");
    assert_eq!(got, refused(Refusal::ForeignSymlink { owner: OTHER }));
    assert!(
        dest.symlink_metadata().unwrap().is_symlink(),
        "the link stays"
    );
}

#[test]
fn the_symlink_check_catches_a_naive_save() {
    // The same setting and check as above, with `std::fs::write` as the save: the check
    // must see the victim's private file overwritten.
    let test = &common::test_name(module_path!(), "the_symlink_check_catches_a_naive_save");
    if let Some(role) = common::role() {
        return say(format!(
            "{:?}",
            std::fs::write(arg(&role).1, b"victim data")
        ));
    }
    let Some(s) = Shared::new(test) else { return };
    let home = s.home(VICTIM);
    let dest = s.tmp.join("dest");
    plant_link(&home.join("secret"), &dest, OTHER);
    // With the kernel's protected_symlinks on, even the naive save is stopped; the
    // crate's rule must not depend on it, but the control only shows something with it off.
    let sysctl = std::fs::read_to_string("/proc/sys/fs/protected_symlinks").unwrap_or_default();
    let got = s.run_as(VICTIM, test, &format!("save {}", dest.display()));
    if sysctl.trim() == "0" {
        assert_eq!(got, "Ok(())");
        assert_eq!(std::fs::read(home.join("secret")).unwrap(), b"victim data");
    } else {
        assert!(got.starts_with("Err"), "{got}");
    }
}

#[test]
fn root_does_not_follow_a_planted_symlink_out_of_a_sticky_directory() {
    let test = &common::test_name(
        module_path!(),
        "root_does_not_follow_a_planted_symlink_out_of_a_sticky_directory",
    );
    if let Some(role) = common::role() {
        return say(tag(&write_atomic(arg(&role).1, b"root data")));
    }
    let Some(s) = Shared::new(test) else { return };
    let root_only = s.top().join("root-only");
    std::fs::create_dir(&root_only).unwrap();
    chmod(&root_only, 0o700);
    std::fs::write(root_only.join("passwd"), b"root:x:0:0").unwrap();
    let dest = s.tmp.join("dest");
    plant_link(&root_only.join("passwd"), &dest, OTHER);
    let got = run_as_root(test, &format!("save {}", dest.display()));
    assert_eq!(
        std::fs::read(root_only.join("passwd")).unwrap(),
        b"root:x:0:0"
    );
    assert_eq!(got, refused(Refusal::ForeignSymlink { owner: OTHER }));
}

#[test]
fn a_symlink_of_the_caller_or_of_the_directory_owner_is_followed() {
    let test = &common::test_name(
        module_path!(),
        "a_symlink_of_the_caller_or_of_the_directory_owner_is_followed",
    );
    if let Some(role) = common::role() {
        return say(tag(&write_atomic(arg(&role).1, b"new")));
    }
    let Some(s) = Shared::new(test) else { return };
    // The victim's own link.
    let home = s.home(VICTIM);
    let mine = s.tmp.join("mine");
    plant_link(&home.join("secret"), &mine, VICTIM);
    assert_eq!(
        s.run_as(VICTIM, test, &format!("save {}", mine.display())),
        "ok"
    );
    assert_eq!(std::fs::read(home.join("secret")).unwrap(), b"new");
    // A link of the directory's owner (root owns the sticky directory), for another user.
    let target = home.join("shared-file");
    plant_file(&target, b"old", VICTIM, 0o644);
    let owners = s.tmp.join("owners");
    plant_link(&target, &owners, 0);
    assert_eq!(
        s.run_as(VICTIM, test, &format!("save {}", owners.display())),
        "ok"
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
}
