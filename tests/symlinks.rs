//! Symlinks: a symlink destination is written through to its final target, the link
//! stays a link, and the temporary file is made beside the target, never beside the link.

mod common;

use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::Path;

use atomic_persist::{WriteOptions, write_atomic};

fn assert_link(link: &Path, to: &Path) {
    let m = std::fs::symlink_metadata(link).unwrap();
    assert!(
        m.file_type().is_symlink(),
        "{} is no longer a link",
        link.display()
    );
    assert_eq!(std::fs::read_link(link).unwrap(), to);
}

#[test]
fn a_relative_link_is_written_through_and_stays_a_link() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("target.json"), b"old").unwrap();
    let link = dir.path().join("link.json");
    symlink("target.json", &link).unwrap();
    write_atomic(&link, b"new").unwrap();
    assert_link(&link, Path::new("target.json"));
    assert_eq!(
        std::fs::read(dir.path().join("target.json")).unwrap(),
        b"new"
    );
    common::assert_only(dir.path(), &["link.json", "target.json"]);
}

#[test]
fn an_absolute_link_is_written_through_and_stays_a_link() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let target = b.path().join("target.json");
    std::fs::write(&target, b"old").unwrap();
    let link = a.path().join("link.json");
    symlink(&target, &link).unwrap();
    write_atomic(&link, b"new").unwrap();
    assert_link(&link, &target);
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    common::assert_only(a.path(), &["link.json"]);
    common::assert_only(b.path(), &["target.json"]);
}

#[test]
fn a_link_relative_to_its_own_directory_is_resolved_there() {
    // `sub/link -> ../data/target`: relative to `sub`, not to the current directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/target"), b"old").unwrap();
    symlink("../data/target", dir.path().join("sub/link")).unwrap();
    write_atomic(dir.path().join("sub/link"), b"new").unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("data/target")).unwrap(),
        b"new"
    );
    assert_link(&dir.path().join("sub/link"), Path::new("../data/target"));
    common::assert_only(&dir.path().join("sub"), &["link"]);
    common::assert_only(&dir.path().join("data"), &["target"]);
}

#[test]
fn a_chain_of_links_is_followed_to_the_end() {
    // a/l1 -> ../b/l2 -> /abs/c/l3 -> target (in c)
    let root = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        root.path().join("a"),
        root.path().join("b"),
        root.path().join("c"),
    );
    for d in [&a, &b, &c] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(c.join("target"), b"old").unwrap();
    symlink("target", c.join("l3")).unwrap();
    symlink(c.join("l3"), b.join("l2")).unwrap();
    symlink("../b/l2", a.join("l1")).unwrap();
    for how in ["write", "stream", "anonymous"] {
        let l1 = a.join("l1");
        match how {
            "write" => write_atomic(&l1, how).unwrap(),
            "anonymous" => WriteOptions::new()
                .anonymous_temp(true)
                .write(&l1, how)
                .unwrap(),
            _ => {
                let mut f = WriteOptions::new().create(&l1).unwrap();
                assert_eq!(f.path(), c.join("target"));
                f.write_all(how.as_bytes()).unwrap();
                f.commit().unwrap();
            }
        }
        assert_eq!(std::fs::read(c.join("target")).unwrap(), how.as_bytes());
        assert_link(&a.join("l1"), Path::new("../b/l2"));
        assert_link(&b.join("l2"), &c.join("l3"));
        assert_link(&c.join("l3"), Path::new("target"));
        common::assert_only(&a, &["l1"]);
        common::assert_only(&b, &["l2"]);
        common::assert_only(&c, &["l3", "target"]);
    }
}

#[test]
fn the_temp_file_is_made_beside_the_target_not_the_link() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let target = b.path().join("target.json");
    std::fs::write(&target, b"old").unwrap();
    let link = a.path().join("link.json");
    symlink(&target, &link).unwrap();

    let mut f = WriteOptions::new()
        .anonymous_temp(false)
        .create(&link)
        .unwrap();
    f.write_all(b"new").unwrap();
    let temp = f.temp_path().expect("a named temp");
    assert_eq!(temp.parent(), Some(b.path()));
    // While the save is open: nothing new beside the link, one temp beside the target.
    common::assert_only(a.path(), &["link.json"]);
    assert_eq!(common::temps(b.path()), vec![temp]);
    f.commit().unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    common::assert_only(a.path(), &["link.json"]);
    common::assert_only(b.path(), &["target.json"]);
}

#[test]
fn a_read_only_link_directory_does_not_stop_a_write_through() {
    // The link's own directory is read-only; the target's is not. A temp beside the
    // link would fail with EROFS.
    let test = "a_read_only_link_directory_does_not_stop_a_write_through";
    let fs = match common::Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => return common::skip(test, &why),
    };
    let b = tempfile::tempdir().unwrap();
    let target = b.path().join("target.json");
    std::fs::write(&target, b"old").unwrap();
    let link = fs.path.join("link.json");
    symlink(&target, &link).unwrap();
    fs.remount_read_only();
    write_atomic(&link, b"new").unwrap();
    WriteOptions::new()
        .anonymous_temp(true)
        .write(&link, b"newer")
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"newer");
    assert_link(&link, &target);
    common::assert_only(b.path(), &["target.json"]);
}

#[test]
fn a_dangling_link_creates_its_target() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let target = b.path().join("new.json");
    let link = a.path().join("link.json");
    symlink(&target, &link).unwrap();
    write_atomic(&link, b"created").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"created");
    assert_link(&link, &target);
    common::assert_only(a.path(), &["link.json"]);
    common::assert_only(b.path(), &["new.json"]);

    // The same through a relative dangling link, with no_clobber: the target is new.
    let rel = a.path().join("rel.json");
    symlink("made.json", &rel).unwrap();
    WriteOptions::new()
        .no_clobber(true)
        .write(&rel, b"made")
        .unwrap();
    assert_eq!(std::fs::read(a.path().join("made.json")).unwrap(), b"made");
    assert_link(&rel, Path::new("made.json"));
}

#[test]
fn the_target_keeps_its_mode_not_the_links() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    symlink("target", dir.path().join("link")).unwrap();
    write_atomic(dir.path().join("link"), b"new").unwrap();
    assert_eq!(common::mode(&target), 0o600);
}
