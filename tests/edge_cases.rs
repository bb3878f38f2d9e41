//! The rest of the engine's contract: odd names and places, dropping or aborting a save,
//! every durability level, and anonymous (`O_TMPFILE`) temporary files.

mod common;

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use atomic_persist::{AtomicFile, Durability, Error, WriteOptions, write_atomic};

const LEVELS: [Durability; 3] = [Durability::Full, Durability::Data, Durability::None];

#[test]
fn a_non_utf8_file_name_is_written_and_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(OsStr::from_bytes(b"caf\xe9.json"));
    for (i, anonymous) in [false, true, false].into_iter().enumerate() {
        let bytes = format!("version {i}");
        WriteOptions::new()
            .anonymous_temp(anonymous)
            .write(&path, &bytes)
            .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), bytes.as_bytes());
    }
    let mut f = WriteOptions::new()
        .anonymous_temp(false)
        .create(&path)
        .unwrap();
    let temp = f.temp_path().unwrap();
    assert!(
        temp.file_name()
            .unwrap()
            .as_bytes()
            .starts_with(b".caf\xe9.json.")
    );
    f.write_all(b"streamed").unwrap();
    f.commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"streamed");
    assert_eq!(
        common::names(dir.path()),
        vec![path.file_name().unwrap().to_owned()]
    );
}

#[test]
fn a_very_long_file_name_gets_a_temp_that_fits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n".repeat(255));
    write_atomic(&path, b"one").unwrap();
    let mut f = WriteOptions::new()
        .anonymous_temp(false)
        .create(&path)
        .unwrap();
    assert!(f.temp_path().unwrap().file_name().unwrap().len() <= 255);
    f.write_all(b"two").unwrap();
    f.commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    assert_eq!(common::names(dir.path()).len(), 1);
}

#[test]
fn a_bare_file_name_is_saved_in_the_current_directory() {
    let test = "a_bare_file_name_is_saved_in_the_current_directory";
    if common::role().is_some() {
        // The child runs with its own current directory; "file.json" has no parent.
        write_atomic("file.json", b"one").unwrap();
        write_atomic("file.json", b"two").unwrap();
        let mut f = WriteOptions::new()
            .anonymous_temp(false)
            .create("file.json")
            .unwrap();
        assert_eq!(f.path(), Path::new("file.json"));
        assert_eq!(f.temp_path().unwrap().parent(), Some(Path::new("")));
        f.write_all(b"three").unwrap();
        f.commit().unwrap();
        WriteOptions::new()
            .anonymous_temp(true)
            .write("file.json", b"four")
            .unwrap();
        WriteOptions::new()
            .no_clobber(true)
            .write("new.json", b"new")
            .unwrap();
        assert!(matches!(
            WriteOptions::new()
                .no_clobber(true)
                .write("new.json", b"again"),
            Err(Error::AlreadyExists { .. })
        ));
        // Debris of a killed writer of "file.json", swept through that path's parent,
        // which is the empty path.
        std::fs::write(".file.json.abcdefghijkl.tmp", b"debris").unwrap();
        let parent = Path::new("file.json").parent().unwrap();
        assert_eq!(parent, Path::new(""));
        assert_eq!(atomic_persist::sweep(parent).unwrap().count(), 1);
        assert_eq!(atomic_persist::sweep(".").unwrap().count(), 0);
        println!("cwd-ok");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::child(test, "cwd");
    cmd.current_dir(dir.path());
    common::run_child(cmd, "cwd-ok");
    assert_eq!(
        std::fs::read(dir.path().join("file.json")).unwrap(),
        b"four"
    );
    assert_eq!(std::fs::read(dir.path().join("new.json")).unwrap(), b"new");
    common::assert_only(dir.path(), &["file.json", "new.json"]);
}

#[test]
fn dropping_an_atomic_file_removes_its_temp_and_keeps_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, b"old").unwrap();
    let mut f = WriteOptions::new()
        .anonymous_temp(false)
        .create(&path)
        .unwrap();
    f.write_all(&vec![b'x'; 200_000]).unwrap();
    let temp = f.temp_path().unwrap();
    assert!(temp.exists());
    drop(f);
    assert!(!temp.exists());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    common::assert_only(dir.path(), &["state.json"]);
}

#[test]
fn aborting_an_atomic_file_removes_its_temp_and_keeps_the_destination() {
    for anonymous in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomic(&path, b"old").unwrap();
        let mut f = WriteOptions::new()
            .anonymous_temp(anonymous)
            .create(&path)
            .unwrap();
        f.write_all(b"never seen").unwrap();
        f.abort().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        common::assert_only(dir.path(), &["state.json"]);
    }
}

#[test]
fn dropping_a_save_of_a_new_file_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut f = AtomicFile::create(&path).unwrap();
    f.write_all(b"never seen").unwrap();
    drop(f);
    assert!(!path.exists());
    common::assert_only(dir.path(), &[]);
}

#[test]
fn every_durability_level_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    for (i, level) in LEVELS.into_iter().enumerate() {
        for anonymous in [false, true] {
            for no_clobber in [false, true] {
                let path = dir
                    .path()
                    .join(format!("{level:?}-{anonymous}-{no_clobber}"));
                let opts = WriteOptions::new()
                    .durability(level)
                    .anonymous_temp(anonymous)
                    .no_clobber(no_clobber);
                let bytes = common::version_bytes(i as u64 + 100);
                opts.write(&path, &bytes).unwrap();
                assert_eq!(std::fs::read(&path).unwrap(), bytes);
                if !no_clobber {
                    let mut f = opts.create(&path).unwrap();
                    let more = common::version_bytes(i as u64 + 200);
                    f.write_all(&more).unwrap();
                    f.commit().unwrap();
                    assert_eq!(std::fs::read(&path).unwrap(), more);
                }
            }
        }
    }
    assert!(common::temps(dir.path()).is_empty());
    assert_eq!(Durability::default(), Durability::Full);
}

#[test]
fn an_empty_file_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    write_atomic(&path, b"something").unwrap();
    write_atomic(&path, b"").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"");
    AtomicFile::create(&path).unwrap().commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"");
}

#[test]
fn an_anonymous_temp_has_no_name_until_commit_and_leaves_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    write_atomic(&path, b"old").unwrap();
    let opts = WriteOptions::new().anonymous_temp(true);
    let mut f = opts.create(&path).unwrap();
    f.write_all(b"new").unwrap();
    // ext4, xfs, btrfs and tmpfs all have O_TMPFILE: nothing named while writing.
    assert_eq!(f.temp_path(), None);
    common::assert_only(dir.path(), &["state.json"]);
    f.commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    common::assert_only(dir.path(), &["state.json"]);
}

#[test]
fn an_anonymous_temp_replaces_and_creates_without_clobbering() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let create = WriteOptions::new().anonymous_temp(true).no_clobber(true);
    create.write(&path, b"first").unwrap();
    assert!(matches!(
        create.write(&path, b"second"),
        Err(Error::AlreadyExists { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), b"first");
    WriteOptions::new()
        .anonymous_temp(true)
        .write(&path, b"replaced")
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"replaced");
    common::assert_only(dir.path(), &["state.json"]);
}

#[test]
fn anonymous_temps_work_on_tmpfs() {
    let test = "anonymous_temps_work_on_tmpfs";
    let fs = match common::Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => return common::skip(test, &why),
    };
    let path = fs.path.join("state.json");
    let opts = WriteOptions::new().anonymous_temp(true);
    opts.clone().no_clobber(true).write(&path, b"one").unwrap();
    let mut f = opts.create(&path).unwrap();
    assert_eq!(f.temp_path(), None);
    f.write_all(b"two").unwrap();
    f.commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    common::assert_only(&fs.path, &["state.json"]);
}

#[test]
fn errors_name_the_destination() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("state.json");
    let e = write_atomic(&path, b"x").unwrap_err();
    assert_eq!(e.path(), path);
    assert!(e.to_string().contains("state.json"), "{e}");
}
