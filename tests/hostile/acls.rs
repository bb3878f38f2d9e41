//! 8. ACLs and extended attributes.

use super::*;

/// A POSIX access ACL in the kernel's xattr format (`posix_acl_xattr.h`): version 2, then
/// (tag, perm, id) entries sorted by tag. This one is `user::rw-`, `user:OTHER:---`,
/// `group::r--`, `mask::r--`, `other::r--`: mode 0644 with OTHER denied.
fn acl_denying_other() -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, UNDEFINED), // USER_OBJ rw
        (0x02, 0, OTHER),     // USER OTHER ---
        (0x04, 4, UNDEFINED), // GROUP_OBJ r
        (0x10, 4, UNDEFINED), // MASK r
        (0x20, 4, UNDEFINED), // OTHER r
    ];
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::getxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A file `0644` in a directory open to all, with the ACL denying OTHER and a `user.*`
/// attribute; `None` (after a visible skip) where the filesystem takes neither.
fn file_with_acl(test: &str, s: &Shared) -> Option<PathBuf> {
    let dir = s.top().join("acl");
    std::fs::create_dir(&dir).unwrap();
    common::open_dir_to_all(&dir);
    let path = dir.join("notes.txt");
    plant_file(&path, b"private notes", 0, 0o644);
    let flags = rustix::fs::XattrFlags::empty();
    let set = rustix::fs::setxattr(
        &path,
        "system.posix_acl_access",
        &acl_denying_other(),
        flags,
    )
    .and_then(|()| rustix::fs::setxattr(&path, "user.origin", b"hand-made", flags));
    if let Err(e) = set {
        common::skip(
            test,
            &format!("this filesystem takes no ACL or user xattr: {e}"),
        );
        return None;
    }
    Some(path)
}

/// The `read` role: how many bytes of the file this user could read.
fn read_len(path: &Path) -> String {
    format!("{:?}", std::fs::read(path).map(|b| b.len()))
}

#[test]
fn a_replaced_file_keeps_its_acl_and_user_xattrs() {
    let test = &common::test_name(
        module_path!(),
        "a_replaced_file_keeps_its_acl_and_user_xattrs",
    );
    if let Some(role) = common::role() {
        return say(read_len(arg(&role).1));
    }
    let Some(s) = Shared::new(test) else { return };
    let Some(path) = file_with_acl(test, &s) else {
        return;
    };
    let denied = s.run_as(OTHER, test, &format!("read {}", path.display()));
    assert!(denied.starts_with("Err"), "the ACL denies: {denied}");
    write_atomic(&path, b"new private notes").unwrap();
    assert_eq!(
        xattr(&path, "system.posix_acl_access"),
        Some(acl_denying_other())
    );
    assert_eq!(
        xattr(&path, "user.origin").as_deref(),
        Some(&b"hand-made"[..])
    );
    let after = s.run_as(OTHER, test, &format!("read {}", path.display()));
    assert!(
        after.starts_with("Err"),
        "the denied user reads it now: {after}"
    );
    assert_eq!(common::mode(&path), 0o644);
}

#[test]
fn the_acl_check_catches_a_save_that_drops_the_acl() {
    // The same check over a plain write-a-temp-and-rename save: the denied user must be
    // seen reading the new file.
    let test = &common::test_name(
        module_path!(),
        "the_acl_check_catches_a_save_that_drops_the_acl",
    );
    if let Some(role) = common::role() {
        return say(read_len(arg(&role).1));
    }
    let Some(s) = Shared::new(test) else { return };
    let Some(path) = file_with_acl(test, &s) else {
        return;
    };
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, b"new private notes").unwrap();
    chmod(&temp, 0o644);
    std::fs::rename(&temp, &path).unwrap();
    let after = s.run_as(OTHER, test, &format!("read {}", path.display()));
    assert_eq!(after, format!("Ok({})", b"new private notes".len()));
}
