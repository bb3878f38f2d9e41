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

#[path = "../common/mod.rs"]
mod common;
#[path = "../bad_input/oracle.rs"]
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

/// Two commits of root's history `h.json` in the sticky directory.
fn root_history(s: &Shared) -> PathBuf {
    let path = s.tmp.join("h.json");
    let mut h = History::<u32>::open_or_default(&path).unwrap();
    h.set(1).unwrap();
    h.set(2).unwrap();
    path
}

/// Kibibytes in `VmHWM: N kB`.
fn peak_kib(outcome: &str) -> u64 {
    let tail = outcome.rsplit("peak ").next().unwrap();
    tail.trim_end_matches(" kB").trim().parse().unwrap()
}

mod acls;
mod bounded_reads;
mod cli_limits;
mod lock_sidecars;
mod ownership;
mod plantings;
mod single_user;
mod special_files;
mod sweep;
mod symlinks;
