//! Helpers shared by the integration tests: self-identifying file versions, child
//! processes that re-run one test of the current binary, temp-file listings, and a
//! tmpfs mount that is unmounted even when a test fails.
#![allow(dead_code)] // each test binary uses a different subset

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod stores;
pub mod strace;
pub mod traced;

/// Set in a child process to the role it plays; absent in the test runner itself.
pub const ROLE: &str = "ATOMIC_PERSIST_TEST_ROLE";
/// Set to `1` to turn every "skipped" (not root, no tmpfs, no strace) into a failure.
pub const NO_SKIP: &str = "ATOMIC_PERSIST_NO_SKIP";

/// The role this process plays when it was started by [`child`].
pub fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

/// A command that re-runs exactly the test `test` of this binary, with `role` set, so
/// the test's body can act as the child.
pub fn child(test: &str, role: &str) -> Command {
    child_of(&std::env::current_exe().expect("current_exe"), test, role)
}

/// [`child`], running as uid and gid 65534 (nobody). The test binary is copied into
/// `dir` first (which must be open to all, see [`open_dir_to_all`]): the build
/// directory may be out of nobody's reach.
pub fn child_as_nobody(dir: &Path, test: &str, role: &str) -> Command {
    child_as(dir, test, role, 65534)
}

/// [`child`], running as user and group `uid` (no account is needed for that id). The
/// test binary is copied into `dir` once (which must be open to all).
pub fn child_as(dir: &Path, test: &str, role: &str, uid: u32) -> Command {
    use std::os::unix::process::CommandExt;
    let exe = dir.join("test-binary");
    if !exe.exists() {
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let mut cmd = child_of(&exe, test, role);
    cmd.uid(uid).gid(uid);
    cmd
}

/// Spawns `cmd`, again while the binary is "busy": a copy of the test binary made by
/// [`child_as`] can still be open for writing in a child another test thread forked
/// meanwhile (until that child's exec closes it, or its exit, for a child that forks
/// without exec), and exec then fails with `ETXTBSY`.
pub fn spawn(cmd: &mut Command) -> std::process::Child {
    for _ in 0..500 {
        match cmd.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            spawned => return spawned.expect("spawn child"),
        }
    }
    panic!("the test binary stayed busy for 10 s");
}

/// Runs `cmd` to its end, or kills it once `limit` has passed: `None` then, so that a
/// hang is a failure the caller reports rather than a stuck test run.
pub fn output_within(mut cmd: Command, limit: std::time::Duration) -> Option<Output> {
    use std::io::Read;
    use std::process::Stdio;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut cmd);
    // Drained on threads: a child that fills a pipe must not look hung.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    status.map(|status| Output {
        status,
        stdout,
        stderr,
    })
}

fn child_of(exe: &Path, test: &str, role: &str) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1", "-q"])
        .env(ROLE, role)
        .env_remove("RUST_TEST_THREADS");
    cmd
}

/// The name libtest gives the test `name` of the module `module` (its
/// `module_path!()`), for [`child`]'s `--exact`: the module path without the test
/// binary's own crate name.
pub fn test_name(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{name}"),
        None => name.to_owned(),
    }
}

/// Runs a child to completion; panics with its output unless it exited 0 and printed
/// `marker` on a line of its own.
pub fn run_child(mut cmd: Command, marker: &str) -> Output {
    use std::process::Stdio;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = spawn(&mut cmd).wait_with_output().expect("wait for child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().any(|l| l == marker),
        "child failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes a line to the real stderr, past libtest's output capture, so that summaries
/// and skip reasons show up in an ordinary `cargo test` run.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Skips the rest of a test with a visible reason, or fails when skips are forbidden.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os(NO_SKIP).is_some_and(|v| v == "1") {
        panic!("{test} cannot run ({why}) and {NO_SKIP}=1 forbids skipping");
    }
    report(&format!("SKIPPED {test}: {why}"));
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

// ---------------------------------------------------------------------------------
// Self-identifying versions

const MAGIC: &[u8; 4] = b"APV1";
/// `APV1 {version:020} {len:010}\n`
pub const HEADER_LEN: usize = 4 + 1 + 20 + 1 + 10 + 1;
pub const MAX_LEN: usize = 256 * 1024;

/// A cheap, well-mixed hash of a number (splitmix64).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The length of `version`: tiny, small and large files in turn, up to 256 KiB.
pub fn version_len(version: u64) -> usize {
    let h = mix(version);
    let limit = match h % 4 {
        0 => 64,
        1 => 4096,
        _ => MAX_LEN - HEADER_LEN,
    };
    HEADER_LEN + (h >> 8) as usize % (limit + 1)
}

/// The fill pattern's period: prime, so that two versions never line up by accident.
const PERIOD: usize = 251;

/// One period of the fill pattern of `version`.
fn block(version: u64) -> [u8; PERIOD] {
    let mut b = [0u8; PERIOD];
    let mut x = mix(version ^ 0xA5A5);
    for (i, c) in b.iter_mut().enumerate() {
        if i % 8 == 0 {
            x = mix(x);
        }
        *c = (x >> ((i % 8) * 8)) as u8;
    }
    b
}

/// The full contents of `version`: a header naming the version and the length, then a
/// fill pattern that differs from version to version.
pub fn version_bytes(version: u64) -> Vec<u8> {
    let len = version_len(version);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(MAGIC);
    writeln!(out, " {version:020} {len:010}").unwrap();
    debug_assert_eq!(out.len(), HEADER_LEN);
    let block = block(version);
    while out.len() < len {
        let n = (len - out.len()).min(PERIOD);
        out.extend_from_slice(&block[..n]);
    }
    out
}

/// The version whose complete contents `bytes` are, or why they are not one.
pub fn parse_version(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "torn: {} bytes, shorter than a header",
            bytes.len()
        ));
    }
    let header = std::str::from_utf8(&bytes[..HEADER_LEN]).map_err(|_| "torn: bad header")?;
    let mut parts = header.trim_end().split(' ');
    let (magic, version, len) = (parts.next(), parts.next(), parts.next());
    if magic != Some("APV1") || !header.ends_with('\n') {
        return Err(format!("torn: bad header {header:?}"));
    }
    let version: u64 = version
        .and_then(|v| v.parse().ok())
        .ok_or("torn: version")?;
    let len: usize = len.and_then(|v| v.parse().ok()).ok_or("torn: length")?;
    if len != bytes.len() || len != version_len(version) {
        return Err(format!(
            "torn: version {version} says {len} bytes, file has {}",
            bytes.len()
        ));
    }
    let block = block(version);
    for (k, chunk) in bytes[HEADER_LEN..].chunks(PERIOD).enumerate() {
        if chunk != &block[..chunk.len()] {
            let at = HEADER_LEN + k * PERIOD;
            return Err(format!("torn: version {version} differs in bytes {at}.."));
        }
    }
    Ok(version)
}

/// A small xorshift generator: no dependency, seeded per test.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(mix(seed) | 1)
    }
    pub fn from_clock() -> Rng {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        Rng::new(t.as_nanos() as u64 ^ u64::from(std::process::id()))
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

// ---------------------------------------------------------------------------------
// Directory listings

/// Names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort();
    v
}

/// Whether `name` looks like one of the engine's temporary files (`.{name}.{rand}.tmp`).
pub fn is_temp(name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let b = name.as_bytes();
    b.starts_with(b".") && b.ends_with(b".tmp")
}

/// The temporary files in `dir`.
pub fn temps(dir: &Path) -> Vec<PathBuf> {
    names(dir)
        .into_iter()
        .filter(|n| is_temp(n))
        .map(|n| dir.join(n))
        .collect()
}

/// Asserts that `dir` holds exactly `expected` (no temporary file, nothing else).
pub fn assert_only(dir: &Path, expected: &[&str]) {
    let got: Vec<String> = names(dir)
        .into_iter()
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "unexpected entries in {}", dir.display());
}

/// Mode bits (`0o7777`) of `path`, not following a symlink.
pub fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// The process umask, read without changing it (Linux `/proc/self/status`).
pub fn current_umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

/// A directory that a child running as another user can enter (tempdirs are 0700).
pub fn open_dir_to_all(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------------
// tmpfs

/// A tmpfs mounted for one test, unmounted on drop (also when the test panics).
pub struct Tmpfs {
    pub path: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (such as `"64k"`) under a fresh temporary directory;
    /// `Err` says why it could not.
    pub fn mount(size: &str) -> Result<Tmpfs, String> {
        if !is_root() {
            return Err("mounting a tmpfs needs root".into());
        }
        let parent = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = parent.path().join("mnt");
        std::fs::create_dir(&path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path,
            _parent: parent,
        })
    }

    /// Remounts it read-only.
    pub fn remount_read_only(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount,ro: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy: detach it so the temporary directory can still go.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Files under `dir`, recursively, ending in `.rs` (the source checks' input).
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Whether `strace` is installed and may trace here (containers may forbid ptrace).
/// Whether `path` is on btrfs, where a save syncs an anonymous temp's data once more
/// after linking it (the engine's `sync_again_after_link`): flush counts differ there.
pub fn is_btrfs(path: &Path) -> bool {
    const BTRFS_SUPER_MAGIC: u64 = 0x9123_683E;
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as u64 == BTRFS_SUPER_MAGIC)
}

pub fn have_strace() -> bool {
    Command::new("strace")
        .args(["-qq", "-o", "/dev/null", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs the child [`child`]`(test, role)` under `strace -f -qq -e trace=TRACE`, logging
/// to `log`, and waits for it to print `marker` ([`run_child`]).
pub fn strace_child(test: &str, role: &str, trace: &str, log: &Path, marker: &str) -> Output {
    strace_child_with(test, role, trace, &[], log, marker)
}

/// [`strace_child`] with more strace arguments (`-e inject=...`).
pub fn strace_child_with(
    test: &str,
    role: &str,
    trace: &str,
    extra: &[String],
    log: &Path,
    marker: &str,
) -> Output {
    let child = child(test, role);
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-e", &format!("trace={trace}")])
        .args(extra)
        .arg("-o")
        .arg(log)
        .arg(child.get_program())
        .args(child.get_args())
        .envs(child.get_envs().filter_map(|(k, v)| Some((k, v?))));
    run_child(cmd, marker)
}

/// A child of `test` run under [`strace_child`] in a fresh work directory (the child's
/// role is that directory's path): the directory and the log.
pub struct WorkTrace {
    /// Holds the work directory and the log until dropped.
    pub dir: tempfile::TempDir,
    pub work: PathBuf,
    pub log: String,
}

/// Runs [`strace_child`] for `test` in a fresh work directory, tracing `trace`, until
/// the child prints `marker`; `None`, said as a skip, where strace is not installed.
pub fn trace_in_workdir(test: &str, trace: &str, marker: &str) -> Option<WorkTrace> {
    if !have_strace() {
        skip(test, "strace is not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let (log, work) = (dir.path().join("strace.log"), dir.path().join("work"));
    std::fs::create_dir(&work).unwrap();
    strace_child(test, work.to_str().unwrap(), trace, &log, marker);
    let log = std::fs::read_to_string(&log).unwrap();
    Some(WorkTrace { dir, work, log })
}

/// The file's metadata (following links).
pub fn meta(path: &Path) -> std::fs::Metadata {
    std::fs::metadata(path).unwrap()
}

/// The crash harnesses' kill: waits for the child's first `ack N` line on stdout, sleeps
/// `delay`, SIGKILLs it, and returns the last generation it acknowledged (every `ack`
/// it printed before dying). `what` names the child in the panic if it exits first.
pub fn kill_after_first_ack(
    child: &mut std::process::Child,
    delay: std::time::Duration,
    what: &str,
) -> u64 {
    use std::io::{BufRead, BufReader, Read};
    let mut out = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let parse = |l: &str| {
        l.trim_end()
            .strip_prefix("ack ")
            .map(|v| v.parse::<u64>().unwrap())
    };
    let mut acked = None;
    let mut line = String::new();
    while acked.is_none() {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("{what} exited before its first acknowledged save: {status}");
        }
        acked = parse(&line);
    }
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    rest.lines().rev().find_map(parse).or(acked).unwrap()
}

/// A SIGKILL soak: `kills` times, the child role `{how}:{dir}` of `test` (a writer that
/// prints `ack N` after each acknowledged save) runs in a fresh directory and is killed
/// at a random moment up to `max_delay` after its first acknowledgement; then `check`
/// says what is wrong with that directory given the last acknowledged `N`. Returns every
/// problem, each naming its kill.
pub fn kill_soak(
    test: &str,
    how: &str,
    kills: usize,
    max_delay: std::time::Duration,
    check: impl Fn(&Path, u64) -> Vec<String>,
) -> Vec<String> {
    let mut rng = Rng::from_clock();
    let mut wrong = Vec::new();
    for kill in 0..kills {
        let dir = tempfile::tempdir().unwrap();
        let role = format!("{how}:{}", dir.path().display());
        let mut cmd = child(test, &role);
        let mut child = spawn(cmd.stdout(std::process::Stdio::piped()));
        let delay = std::time::Duration::from_millis(rng.below(max_delay.as_millis() as u64));
        let acked = kill_after_first_ack(&mut child, delay, how);
        wrong.extend(
            check(dir.path(), acked)
                .into_iter()
                .map(|p| format!("kill {kill}: {p}")),
        );
    }
    wrong
}

/// Every format this build has, with the extension its files get: JSON twice (compact
/// and indented), then TOML, YAML, RON and binary as their features allow.
pub fn formats() -> Vec<(&'static str, atomic_persist::AnyFormat)> {
    #[allow(unused_mut)]
    let mut all: Vec<(&'static str, atomic_persist::AnyFormat)> = Vec::new();
    #[cfg(feature = "json")]
    all.extend([
        ("json", atomic_persist::Json.into()),
        ("json", atomic_persist::JsonPretty.into()),
    ]);
    #[cfg(feature = "toml")]
    all.push(("toml", atomic_persist::Toml.into()));
    #[cfg(feature = "yaml")]
    all.push(("yaml", atomic_persist::Yaml.into()));
    #[cfg(feature = "ron")]
    all.push(("ron", atomic_persist::Ron.into()));
    #[cfg(feature = "binary")]
    all.push(("bin", atomic_persist::Binary.into()));
    all
}
