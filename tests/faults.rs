//! Faults: a save that fails returns a typed error naming the operation, leaves the old
//! file byte for byte, and leaves no temporary file behind.

mod common;

use std::io::Write;
use std::path::Path;

use atomic_persist::{Error, FileKind, Op, Refusal, WriteOptions, write_atomic};

const OLD: &[u8] = b"the old, complete contents\n";

/// Asserts `result` is `Error::Io` with `op` and the OS error `errno`.
#[track_caller]
fn assert_io(result: atomic_persist::Result<()>, op: Op, errno: i32) {
    match result {
        Err(Error::Io {
            op: got, source, ..
        }) if got == op && source.raw_os_error() == Some(errno) => {}
        other => panic!("expected Io {{ op: {op:?}, errno {errno} }}, got {other:?}"),
    }
}

/// The three ways of saving: one call, streamed, anonymous temp.
fn save(path: &Path, bytes: &[u8], how: &str) -> atomic_persist::Result<()> {
    match how {
        "write" => write_atomic(path, bytes),
        "anonymous" => WriteOptions::new().anonymous_temp(true).write(path, bytes),
        "stream" => {
            let mut f = WriteOptions::new().create(path)?;
            // A write error surfaces here or at commit, depending on the buffer.
            if let Err(e) = f.write_all(bytes) {
                drop(f);
                return Err(Error::Io {
                    op: Op::Write,
                    path: path.into(),
                    source: e,
                });
            }
            f.commit()
        }
        "stream-small" => {
            // Less than the stream's buffer: every write succeeds, and the error must
            // come typed from commit, which flushes.
            assert!(bytes.len() < 64 * 1024);
            let mut f = WriteOptions::new().create(path)?;
            for piece in bytes.chunks(1024) {
                f.write_all(piece).expect("buffered, not written yet");
            }
            f.commit()
        }
        _ => unreachable!(),
    }
}

const HOW: [&str; 3] = ["write", "stream", "anonymous"];

#[test]
fn efbig_from_rlimit_fsize_is_a_write_error_and_leaves_the_old_file() {
    if let Some(dir) = common::role() {
        // The child: SIGXFSZ would kill it, so ignore it and take EFBIG instead.
        // SAFETY: SIG_IGN is a valid disposition; no handler code runs.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        let limit = 64 * 1024;
        rustix::process::setrlimit(
            rustix::process::Resource::Fsize,
            rustix::process::Rlimit {
                current: Some(limit),
                maximum: None,
            },
        )
        .unwrap();
        let path = Path::new(&dir).join("state.bin");
        for how in HOW {
            let big = vec![b'x'; 4 * limit as usize];
            assert_io(save(&path, &big, how), Op::Write, libc::EFBIG);
            assert_eq!(std::fs::read(&path).unwrap(), OLD, "{how}");
            assert_eq!(
                common::temps(Path::new(&dir)),
                Vec::<std::path::PathBuf>::new()
            );
            // Under the limit, saves still work.
            save(&path, OLD, how).unwrap();
        }
        let small = 16 * 1024;
        rustix::process::setrlimit(
            rustix::process::Resource::Fsize,
            rustix::process::Rlimit {
                current: Some(small),
                maximum: None,
            },
        )
        .unwrap();
        let over = vec![b'x'; 2 * small as usize];
        assert_io(save(&path, &over, "stream-small"), Op::Write, libc::EFBIG);
        assert_eq!(std::fs::read(&path).unwrap(), OLD);
        assert_eq!(
            common::temps(Path::new(&dir)),
            Vec::<std::path::PathBuf>::new()
        );
        println!("efbig-ok");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.bin");
    write_atomic(&path, OLD).unwrap();
    common::run_child(
        common::child(
            "efbig_from_rlimit_fsize_is_a_write_error_and_leaves_the_old_file",
            dir.path().to_str().unwrap(),
        ),
        "efbig-ok",
    );
    assert_eq!(std::fs::read(&path).unwrap(), OLD);
    common::assert_only(dir.path(), &["state.bin"]);
}

#[test]
fn enospc_on_a_full_tmpfs_is_a_write_error_and_leaves_the_old_file() {
    let test = "enospc_on_a_full_tmpfs_is_a_write_error_and_leaves_the_old_file";
    let fs = match common::Tmpfs::mount("64k") {
        Ok(fs) => fs,
        Err(why) => return common::skip(test, &why),
    };
    let path = fs.path.join("state.bin");
    write_atomic(&path, OLD).unwrap();
    for how in HOW {
        let big = vec![b'x'; 1024 * 1024];
        assert_io(save(&path, &big, how), Op::Write, libc::ENOSPC);
        assert_eq!(std::fs::read(&path).unwrap(), OLD, "{how}");
        common::assert_only(&fs.path, &["state.bin"]);
    }
    // Only 20 KiB left: a streamed 32 KiB fits the buffer and fails at commit.
    std::fs::write(fs.path.join("filler"), vec![b'f'; 40 * 1024]).unwrap();
    let over = vec![b'x'; 32 * 1024];
    assert_io(save(&path, &over, "stream-small"), Op::Write, libc::ENOSPC);
    assert_eq!(std::fs::read(&path).unwrap(), OLD);
    common::assert_only(&fs.path, &["filler", "state.bin"]);
    std::fs::remove_file(fs.path.join("filler")).unwrap();
    // The failed temps gave their space back: a save that fits still works.
    let fits = vec![b'y'; 24 * 1024];
    write_atomic(&path, &fits).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), fits);
    common::assert_only(&fs.path, &["state.bin"]);
}

#[test]
fn a_read_only_filesystem_is_a_create_temp_error_and_leaves_the_old_file() {
    let test = "a_read_only_filesystem_is_a_create_temp_error_and_leaves_the_old_file";
    let fs = match common::Tmpfs::mount("1m") {
        Ok(fs) => fs,
        Err(why) => return common::skip(test, &why),
    };
    let path = fs.path.join("state.bin");
    write_atomic(&path, OLD).unwrap();
    fs.remount_read_only();
    for how in HOW {
        assert_io(save(&path, b"new", how), Op::CreateTemp, libc::EROFS);
        assert_eq!(std::fs::read(&path).unwrap(), OLD, "{how}");
    }
    assert_io(
        WriteOptions::new()
            .no_clobber(true)
            .write(fs.path.join("new.bin"), b"new"),
        Op::CreateTemp,
        libc::EROFS,
    );
    common::assert_only(&fs.path, &["state.bin"]);
}

#[test]
fn an_unwritable_directory_is_a_create_temp_error_for_an_unprivileged_writer() {
    let test = "an_unwritable_directory_is_a_create_temp_error_for_an_unprivileged_writer";
    if let Some(dir) = common::role() {
        // The child runs as nobody: the directory is root's, mode 0755.
        assert!(!common::is_root());
        let dir = Path::new(&dir);
        let path = dir.join("state.bin");
        for how in HOW {
            assert_io(save(&path, b"new", how), Op::CreateTemp, libc::EACCES);
        }
        assert_io(
            WriteOptions::new()
                .no_clobber(true)
                .write(dir.join("new.bin"), b"new"),
            Op::CreateTemp,
            libc::EACCES,
        );
        println!("eacces-ok");
        return;
    }
    if !common::is_root() {
        return common::skip(test, "dropping privileges to uid 65534 needs root");
    }
    let top = tempfile::tempdir().unwrap();
    common::open_dir_to_all(top.path());
    let dir = top.path().join("root-only");
    std::fs::create_dir(&dir).unwrap();
    common::open_dir_to_all(&dir);
    let path = dir.join("state.bin");
    write_atomic(&path, OLD).unwrap();
    // Without root, mode bits are enforced: the child can read the file but not
    // create anything beside it.
    let cmd = common::child_as_nobody(top.path(), test, dir.to_str().unwrap());
    common::run_child(cmd, "eacces-ok");
    assert_eq!(std::fs::read(&path).unwrap(), OLD);
    common::assert_only(&dir, &["state.bin"]);
}

#[test]
fn a_directory_destination_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("inside"), OLD).unwrap();
    for how in HOW {
        match save(&sub, b"new", how) {
            Err(Error::Refused {
                reason:
                    Refusal::NotRegular {
                        kind: FileKind::Directory,
                    },
                path,
            }) => assert_eq!(path, sub),
            other => panic!("{how}: expected Refused {{ NotRegular(Directory) }}, got {other:?}"),
        }
    }
    // A symlink to a directory is the same error.
    std::os::unix::fs::symlink(&sub, dir.path().join("link")).unwrap();
    assert!(matches!(
        write_atomic(dir.path().join("link"), b"new"),
        Err(Error::Refused {
            reason: Refusal::NotRegular {
                kind: FileKind::Directory
            },
            ..
        })
    ));
    assert!(sub.is_dir());
    common::assert_only(&sub, &["inside"]);
    common::assert_only(dir.path(), &["link", "sub"]);
}

#[test]
fn a_missing_directory_is_an_open_dir_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing").join("state.bin");
    assert_io(write_atomic(&path, b"new"), Op::OpenDir, libc::ENOENT);
    common::assert_only(dir.path(), &[]);
}

#[test]
fn a_path_without_a_file_name_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    for p in [dir.path().join(".."), "/".into()] {
        match write_atomic(&p, b"new") {
            Err(Error::Io { .. }) => {}
            other => panic!("{}: expected Error::Io, got {other:?}", p.display()),
        }
    }
}

#[test]
fn a_symlink_loop_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("b", dir.path().join("a")).unwrap();
    std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
    assert!(matches!(
        write_atomic(dir.path().join("a"), b"new"),
        Err(Error::Io {
            op: Op::Inspect,
            ..
        })
    ));
    common::assert_only(dir.path(), &["a", "b"]);
}

/// A file bind-mounted over the destination, unmounted when dropped.
struct BindMount(std::path::PathBuf);

impl BindMount {
    /// `mount --bind from onto`; `None` where mounting is not allowed here.
    fn new(from: &Path, onto: &Path) -> Option<BindMount> {
        let ok = std::process::Command::new("mount")
            .arg("--bind")
            .args([from, onto])
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| BindMount(onto.to_path_buf()))
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_destination_with_a_file_bind_mounted_over_it_is_a_mount_point_refusal() {
    const TEST: &str = "a_destination_with_a_file_bind_mounted_over_it_is_a_mount_point_refusal";
    if !common::is_root() {
        return common::skip(TEST, "mount --bind needs root");
    }
    // As `docker run -v ./app.toml:/etc/app.toml` does: a file mounted over a file.
    let dir = tempfile::tempdir().unwrap();
    let (host, dest) = (dir.path().join("host.toml"), dir.path().join("app.toml"));
    std::fs::write(&host, OLD).unwrap();
    std::fs::write(&dest, b"under the mount\n").unwrap();
    let Some(_mount) = BindMount::new(&host, &dest) else {
        return common::skip(TEST, "mount --bind is not permitted here");
    };
    for options in [
        WriteOptions::new(),
        WriteOptions::new().anonymous_temp(false),
    ] {
        let e = options.write(&dest, b"new").unwrap_err();
        assert!(
            matches!(&e, Error::Refused { reason: Refusal::MountPoint, path } if *path == dest),
            "{e:?}"
        );
        assert!(e.to_string().contains("mount the directory"), "{e}");
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            OLD,
            "the mounted file is untouched"
        );
        assert!(
            common::temps(dir.path()).is_empty(),
            "no temporary file left"
        );
    }
}
