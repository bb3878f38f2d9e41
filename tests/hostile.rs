#![cfg(all(unix, feature = "json", feature = "toml", feature = "binary"))]
//! Another local user shares the directory. Run as root, each test plays a second and a
//! third account (uids with no passwd entry: `setuid` needs none) and a sticky,
//! world-writable directory like `/tmp`, and replays one attack: a planted symlink, a
//! pre-created file, a held or hostile lock sidecar, a FIFO or device where a regular
//! file is expected. Whatever the victim runs that could hang runs in a child with a
//! deadline, so a hang is a failure, not a stuck test run.
//!
//! The kernel's own `protected_symlinks`/`protected_regular` sysctls are not relied on:
//! the crate resolves links itself, and containers often turn both off.

mod common;
#[path = "bad_input/oracle.rs"]
mod oracle;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use atomic_persist::history::History;
use atomic_persist::lock::Lock;
use atomic_persist::{
    AnyFormat, Error, FileKind, Persisted, Refusal, WriteOptions, sweep, write_atomic,
};

/// The user whose files are attacked, when the victim is not root.
const VICTIM: u32 = 64101;
/// The other local user.
const OTHER: u32 = 64102;
/// How long a victim's step may take before it counts as hung.
const DEADLINE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The setting

/// A directory open to all, with a sticky world-writable `tmp` inside (owned by root, as
/// `/tmp` is).
struct Shared {
    top: tempfile::TempDir,
    tmp: PathBuf,
}

impl Shared {
    /// `None` (after a visible skip) when the test cannot change users.
    fn new(test: &str) -> Option<Shared> {
        if !common::is_root() {
            common::skip(test, "playing other users needs root");
            return None;
        }
        let top = tempfile::tempdir().unwrap();
        common::open_dir_to_all(top.path());
        let tmp = top.path().join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        chmod(&tmp, 0o1777);
        Some(Shared { top, tmp })
    }

    fn top(&self) -> &Path {
        self.top.path()
    }

    /// A private directory of `uid` (mode 0700) holding `secret` (mode 0600).
    fn home(&self, uid: u32) -> PathBuf {
        let home = self.top().join(format!("home-{uid}"));
        std::fs::create_dir(&home).unwrap();
        chmod(&home, 0o700);
        std::fs::write(home.join("secret"), b"private").unwrap();
        chmod(&home.join("secret"), 0o600);
        chown(&home, uid);
        chown(&home.join("secret"), uid);
        home
    }

    /// Runs this test's child role `role` as `uid` and returns its `outcome:` line;
    /// panics when it hangs past the deadline.
    fn run_as(&self, uid: u32, test: &str, role: &str) -> String {
        let cmd = common::child_as(self.top(), test, role, uid);
        outcome(cmd, test, role)
    }
}

fn outcome(cmd: Command, test: &str, role: &str) -> String {
    outcome_within(cmd, test, role, DEADLINE)
}

fn outcome_within(cmd: Command, test: &str, role: &str, limit: Duration) -> String {
    let Some(out) = common::output_within(cmd, limit) else {
        panic!("{test}: the step {role:?} hung for {limit:?}");
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("outcome: "));
    match line {
        Some(line) => line.to_string(),
        None => panic!(
            "{test}: the step {role:?} printed no outcome ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Runs this test's child role as root (the test runner's user), with the deadline.
fn run_as_root(test: &str, role: &str) -> String {
    outcome(common::child(test, role), test, role)
}

/// What a step returned, as a short tag the parent compares: the refusal's reason is
/// the typed [`Refusal`], printed by `Debug`.
fn tag<T>(result: &atomic_persist::Result<T>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(Error::Refused { reason, .. }) => format!("refused {reason:?}"),
        Err(e) => format!("err {e}"),
    }
}

/// The tag of a refusal for `reason`.
fn refused(reason: Refusal) -> String {
    format!("refused {reason:?}")
}

/// What `sweep` did, as a tag.
fn swept(dir: &Path) -> String {
    match sweep(dir) {
        Ok(s) => format!("removed {} skipped {}", s.count(), s.skipped.len()),
        Err(e) => format!("err {e}"),
    }
}

fn say(result: impl AsRef<str>) {
    println!("outcome: {}", result.as_ref());
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

/// A symlink at `link` to `target`, owned by `owner`.
fn plant_link(target: &Path, link: &Path, owner: u32) {
    std::os::unix::fs::symlink(target, link).unwrap();
    chown(link, owner);
}

/// A regular file at `path` with `bytes`, owned by `owner`, mode `mode`.
fn plant_file(path: &Path, bytes: &[u8], owner: u32, mode: u32) {
    std::fs::write(path, bytes).unwrap();
    chown(path, owner);
    chmod(path, mode);
}

/// A FIFO at `path`, owned by `owner`, mode 0666.
fn plant_fifo(path: &Path, owner: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0, "mkfifo");
    chmod(path, 0o666);
    chown(path, owner);
}

/// The role's argument: the path the parent passed.
fn arg(role: &str) -> (&str, &Path) {
    let (what, path) = role.split_once(' ').unwrap_or((role, ""));
    (what, Path::new(path))
}

/// Starts a child as `uid` that takes a shared `flock` on `path` (opened read-only, as
/// `flock -s` does) and holds it; returns the child and its first line (`held` or
/// `denied …`).
fn hold_lock_as(s: &Shared, uid: u32, test: &str, path: &Path) -> (Child, String) {
    let mut cmd = common::child_as(s.top(), test, &format!("hold {}", path.display()), uid);
    let mut child = common::spawn(cmd.stdout(Stdio::piped()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // libtest prints its own lines first; the role's line is `held` or `denied …`.
    let said = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|l| l == "held" || l.starts_with("denied"))
        .unwrap_or_default();
    // Keep reading, so the holder never dies of a closed pipe while it holds.
    std::thread::spawn(move || lines.for_each(drop));
    (child, said)
}

/// The `hold` role: open read-only, `flock(LOCK_SH)`, say so, sleep until killed.
fn hold(path: &Path) {
    use std::os::fd::AsRawFd;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return println!("denied {e}"),
    };
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0 {
        return println!("denied {}", std::io::Error::last_os_error());
    }
    println!("held");
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(120));
}

// ---------------------------------------------------------------------------------------
// 1. Symlinks

#[test]
fn a_symlink_another_user_planted_in_a_sticky_directory_is_not_followed() {
    let test = "a_symlink_another_user_planted_in_a_sticky_directory_is_not_followed";
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
    let test = "the_symlink_check_catches_a_naive_save";
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
    let test = "root_does_not_follow_a_planted_symlink_out_of_a_sticky_directory";
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
    let test = "a_symlink_of_the_caller_or_of_the_directory_owner_is_followed";
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

// ---------------------------------------------------------------------------------------
// 2. Ownership

#[test]
fn root_does_not_hand_a_secret_to_the_user_who_planted_the_file() {
    let test = "root_does_not_hand_a_secret_to_the_user_who_planted_the_file";
    if let Some(role) = common::role() {
        return say(format!(
            "{:?}",
            std::fs::read(arg(&role).1).map(|b| b.len())
        ));
    }
    let Some(s) = Shared::new(test) else { return };
    let path = s.tmp.join("secret.txt");
    plant_file(&path, b"planted", OTHER, 0o666);
    let saved = WriteOptions::new().mode(0o600).write(&path, b"root secret");
    assert!(
        matches!(
            saved,
            Err(Error::Refused {
                reason: Refusal::ForeignFile { owner: OTHER },
                ..
            })
        ),
        "{saved:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"planted", "left as it was");
    let read = s.run_as(OTHER, test, &format!("read {}", path.display()));
    assert!(
        !read.starts_with(&format!("Ok({})", b"root secret".len())),
        "the other user reads root's secret: {read}"
    );
}

#[test]
fn an_explicit_mode_gives_the_file_to_the_caller() {
    let test = "an_explicit_mode_gives_the_file_to_the_caller";
    if !common::is_root() {
        return common::skip(test, "chown needs root");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    plant_file(&path, b"old", OTHER, 0o644);
    WriteOptions::new()
        .mode(0o600)
        .write(&path, b"new key")
        .unwrap();
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o600));
}

#[test]
fn another_user_cannot_forge_a_history_version_that_root_commits() {
    let test = "another_user_cannot_forge_a_history_version_that_root_commits";
    if let Some(role) = common::role() {
        let (_, path) = arg(&role);
        let forged = std::fs::read(path.with_extension("forged")).unwrap();
        let written = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path.with_extension("1.json"))
            .and_then(|mut f| f.write_all(&forged));
        return say(format!("{written:?}"));
    }
    let Some(s) = Shared::new(test) else { return };
    // The forgery: a valid version 1 holding 666, from a history of the other user's.
    let scratch = s.top().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    History::<u32>::open_or_default(scratch.join("h.json"))
        .unwrap()
        .set(666)
        .unwrap();
    let forged = std::fs::read(scratch.join("h.1.json")).unwrap();
    plant_file(&s.tmp.join("h.forged"), &forged, OTHER, 0o644);
    // The other user pre-creates the name of root's first version.
    plant_file(&s.tmp.join("h.1.json"), b"", OTHER, 0o666);
    let committed =
        History::<u32>::open_or_default(s.tmp.join("h.json")).and_then(|mut h| h.set(1));
    assert!(
        matches!(
            committed,
            Err(Error::Refused {
                reason: Refusal::ForeignFile { owner: OTHER },
                ..
            })
        ),
        "{committed:?}"
    );
    s.run_as(OTHER, test, &format!("forge {}", s.tmp.join("h").display()));
    if committed.is_ok()
        && let Ok(h) = History::<u32>::open(s.tmp.join("h.json"))
    {
        assert_eq!(
            *h.get(),
            1,
            "root's history returned the other user's value"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 3, 4, 8. Lock sidecars

#[test]
fn another_user_cannot_hold_the_writer_lock() {
    let test = "another_user_cannot_hold_the_writer_lock";
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
    let test = "a_lock_sidecar_planted_in_a_sticky_directory_does_not_stall_a_commit";
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
    let test = "a_fifo_as_the_lock_sidecar_is_an_error_within_the_timeout";
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
    let test = "a_dangling_symlink_as_the_lock_sidecar_creates_nothing_at_its_target";
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

// ---------------------------------------------------------------------------------------
// 5, 9. FIFOs and devices where files are read

/// Two commits of root's history `h.json` in the sticky directory.
fn root_history(s: &Shared) -> PathBuf {
    let path = s.tmp.join("h.json");
    let mut h = History::<u32>::open_or_default(&path).unwrap();
    h.set(1).unwrap();
    h.set(2).unwrap();
    path
}

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

/// Kibibytes in `VmHWM: N kB`.
fn peak_kib(outcome: &str) -> u64 {
    let tail = outcome.rsplit("peak ").next().unwrap();
    tail.trim_end_matches(" kB").trim().parse().unwrap()
}

#[test]
fn a_fifo_named_like_a_version_does_not_hang_a_history() {
    let test = "a_fifo_named_like_a_version_does_not_hang_a_history";
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
    let test = "a_link_to_dev_zero_named_like_a_version_is_not_read";
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
    let test = "a_fifo_at_the_data_path_is_an_error_not_a_hang";
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
    let test = "a_fifo_socket_or_device_destination_is_not_replaced";
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

// ---------------------------------------------------------------------------------------
// 5-7. Sweep

#[test]
fn sweep_does_not_hang_on_a_planted_temp_symlink_and_fifo_lock() {
    let test = "sweep_does_not_hang_on_a_planted_temp_symlink_and_fifo_lock";
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
    let test = "sweep_removes_the_callers_debris_past_temps_it_may_not_remove";
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

// ---------------------------------------------------------------------------------------
// Without another user

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

// ---------------------------------------------------------------------------------------
// 8. ACLs and extended attributes

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
    let test = "a_replaced_file_keeps_its_acl_and_user_xattrs";
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
    let test = "the_acl_check_catches_a_save_that_drops_the_acl";
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

// ---------------------------------------------------------------------------------------
// 9. Bounded reads

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
    let test = "verify_reads_a_large_file_in_bounded_memory";
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

// ---------------------------------------------------------------------------------------
// 10. The CLI under a file size limit

#[cfg(feature = "cli")]
#[test]
fn the_cli_reports_efbig_with_the_path_under_a_file_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    std::fs::write(&path, b"old").unwrap();
    let exe = assert_cmd::cargo::cargo_bin("atomic-persist");
    // `ulimit -f 1`: 1024-byte blocks; the write of 64 KiB passes it.
    let script = format!(
        "ulimit -f 1; head -c 65536 /dev/zero | '{}' write '{}'",
        exe.display(),
        path.display()
    );
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "killed by a signal? {stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert!(common::temps(dir.path()).is_empty());
}

// ---------------------------------------------------------------------------------------
// Random plantings

/// What the other user plants under a name.
#[derive(Clone, Copy, Debug)]
enum Plant {
    Fifo,
    LinkToDevZero,
    /// A link to a forged version (valid envelope, value 666) the other user owns.
    LinkToForgery,
    Directory,
    /// A forged version (valid envelope, value 666, the generation its name says).
    Forgery,
    Empty,
}

const PLANTS: [Plant; 6] = [
    Plant::Fifo,
    Plant::LinkToDevZero,
    Plant::LinkToForgery,
    Plant::Directory,
    Plant::Forgery,
    Plant::Empty,
];

/// The names worth planting beside `h.json`: versions below, at and past the pointer,
/// the manifest, the lock, temp-shaped names.
fn plant_name(i: usize) -> (String, Option<u64>) {
    match i {
        0..=7 => (format!("h.{i}.json"), Some(i as u64)),
        8 => ("h.manifest.json".into(), None),
        9 => (".h.json.lock".into(), None),
        10 => (".h.json.aaaaaaaaaaaa.tmp".into(), None),
        _ => (".h.1.json.bbbbbbbbbbbb.tmp".into(), None),
    }
}

fn plant(dir: &Path, name: &str, generation: Option<u64>, what: Plant) {
    let path = dir.join(name);
    if path.symlink_metadata().is_ok() {
        return; // root's own file: the other user cannot replace it in a sticky dir
    }
    let forged = |g| oracle::wrapped(AnyFormat::Json, b"666", g);
    match what {
        Plant::Fifo => plant_fifo(&path, OTHER),
        Plant::LinkToDevZero => plant_link(Path::new("/dev/zero"), &path, OTHER),
        Plant::LinkToForgery => {
            let target = dir.join(format!("forgery-{name}"));
            plant_file(&target, &forged(generation.unwrap_or(1)), OTHER, 0o644);
            plant_link(&target, &path, OTHER);
        }
        Plant::Directory => {
            std::fs::create_dir(&path).unwrap();
            chown(&path, OTHER);
        }
        Plant::Forgery => plant_file(&path, &forged(generation.unwrap_or(1)), OTHER, 0o644),
        Plant::Empty => plant_file(&path, b"", OTHER, 0o666),
    }
}

/// One case: root commits `values` to `h.json` (keeping `keep`), the other user plants,
/// then root opens, lists, commits once more and sweeps. Nothing may hang (the parent's
/// deadline) or panic, and no value of the other user's may come back.
fn planted_case(
    commits: usize,
    keep: Option<usize>,
    plants: &[(usize, usize)],
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert;
    let top = tempfile::tempdir().unwrap();
    common::open_dir_to_all(top.path());
    let dir = top.path().join("tmp");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o1777);
    let path = dir.join("h.json");
    let builder = || {
        let b = History::<u32>::builder(&path);
        match keep {
            Some(n) => b.keep(n),
            None => b,
        }
    };
    let mut h = builder().open_or_default().unwrap();
    for v in 1..=commits as u32 {
        h.set(v).unwrap();
    }
    for &(name, what) in plants {
        let (name, g) = plant_name(name);
        plant(&dir, &name, g, PLANTS[what]);
    }
    let opened = builder().open().unwrap();
    prop_assert!(*opened.get() == commits as u32, "opened {}", opened.get());
    let versions = opened.versions().unwrap();
    for v in &versions {
        let value = opened.version(v.generation).unwrap();
        prop_assert!(value != 666, "version {} is the forgery", v.generation);
    }
    let mut next = opened;
    match next.set(100) {
        Ok(()) => {
            let again = builder().open().unwrap();
            prop_assert!(*again.get() == 100, "after the commit: {}", again.get());
        }
        Err(Error::Refused { .. }) => {} // a planted name in the way: refused, not used
        Err(e) => prop_assert!(false, "commit: {e}"),
    }
    sweep(&dir).unwrap();
    Ok(())
}

#[test]
fn planted_entries_never_hang_panic_or_pass_for_a_version() {
    let test = "planted_entries_never_hang_panic_or_pass_for_a_version";
    if common::role().is_some() {
        use proptest::prelude::*;
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(64);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let strategy = (
            1..5usize,
            proptest::option::of(1..3usize),
            proptest::collection::vec((0..12usize, 0..PLANTS.len()), 1..8),
        );
        let result = runner.run(&strategy, |(commits, keep, plants)| {
            planted_case(commits, keep, &plants)
        });
        return say(match result {
            Ok(()) => format!("ok {cases} cases"),
            Err(e) => format!("failed {e}"),
        });
    }
    if !common::is_root() {
        return common::skip(test, "planting files of another user needs root");
    }
    let cmd = common::child(test, "run");
    // A hang in any case is a failure; the whole run takes seconds.
    let got = outcome_within(cmd, test, "run", Duration::from_secs(300));
    common::report(&format!("planted histories: {got}"));
    assert!(got.starts_with("ok"), "{got}");
}
