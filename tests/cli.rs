//! The `atomic-persist` binary, run as a user would: real files, real pipes, real signals.
//!
//! Needs the `cli` feature (`cargo test --features cli`). Unix only: the tests check
//! permission bits and send signals.
#![cfg(all(feature = "cli", unix))]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use rustix::process::{Pid, Signal, kill_process};

const BIN: &str = env!("CARGO_BIN_EXE_atomic-persist");

/// The contents of the destination before each test's write.
const OLD: &[u8] = b"old contents\n";

/// More than any pipe buffers by default (64 KiB): once it is all written, the child has
/// read most of it, so it is past its setup and inside the copy loop.
const PAST_THE_PIPE: usize = 1024 * 1024;

fn cmd() -> Command {
    Command::new(BIN)
}

/// The names in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The names in `dir` shaped like the crate's temporary files.
fn temps(dir: &Path) -> Vec<String> {
    entries(dir)
        .into_iter()
        .filter(|n| n.starts_with('.') && n.ends_with(".tmp"))
        .collect()
}

/// Bytes that are not text and not a repeated pattern, so any mix-up shows.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Starts `atomic-persist write FILE ARGS..` with a piped stdin, already fed with
/// [`PAST_THE_PIPE`] bytes and still open.
fn start_write(dir: &Path, file: &Path, args: &[&str]) -> (Child, ChildStdin) {
    let mut child = std::process::Command::new(BIN)
        .current_dir(dir)
        .arg("write")
        .arg(file)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&payload(PAST_THE_PIPE)).unwrap();
    (child, stdin)
}

/// Whether `dir` takes anonymous temporary files (Linux `O_TMPFILE`).
fn has_o_tmpfile(dir: &Path) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{Mode, OFlags, open};
        open(
            dir,
            OFlags::WRONLY | OFlags::TMPFILE,
            Mode::from_bits_truncate(0o600),
        )
        .is_ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = dir;
        false
    }
}

// ---- write: the happy paths ----

#[test]
fn write_creates_a_file_with_the_bytes_of_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    let data = payload(300 * 1024 + 17); // several reads and buffer flushes
    cmd()
        .arg("write")
        .arg(&path)
        .write_stdin(data.clone())
        .assert()
        .success()
        .stdout("")
        .stderr("");
    assert_eq!(fs::read(&path).unwrap(), data);
    assert_eq!(entries(dir.path()), ["out.bin"]);
}

#[test]
fn write_replaces_an_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, OLD).unwrap();
    cmd()
        .arg("write")
        .arg(&path)
        .write_stdin(&b"{\"new\": true}"[..])
        .assert()
        .success();
    assert_eq!(fs::read(&path).unwrap(), b"{\"new\": true}");
    assert_eq!(entries(dir.path()), ["state.json"]);
}

#[test]
fn write_of_empty_stdin_makes_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    fs::write(&path, OLD).unwrap();
    cmd()
        .arg("write")
        .arg(&path)
        .write_stdin("")
        .assert()
        .success();
    assert_eq!(fs::read(&path).unwrap(), b"");
}

#[test]
fn write_to_a_relative_path_in_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    cmd()
        .current_dir(dir.path())
        .args(["write", "plain.txt"])
        .write_stdin("relative\n")
        .assert()
        .success();
    assert_eq!(
        fs::read(dir.path().join("plain.txt")).unwrap(),
        b"relative\n"
    );
}

#[test]
fn every_durability_value_writes_the_file() {
    for durability in ["full", "data", "none"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, OLD).unwrap();
        let data = format!("saved with --durability {durability}\n");
        cmd()
            .arg("write")
            .arg(&path)
            .args(["--durability", durability])
            .write_stdin(data.clone())
            .assert()
            .success()
            .stderr("");
        assert_eq!(fs::read_to_string(&path).unwrap(), data, "{durability}");
        assert_eq!(entries(dir.path()), ["f"], "{durability}");
    }
}

#[test]
fn mode_gives_the_file_exactly_that_mode() {
    for (arg, mode) in [("0600", 0o600), ("640", 0o640), ("0o604", 0o604)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        cmd()
            .arg("write")
            .arg(&path)
            .args(["--mode", arg])
            .write_stdin("hunter2")
            .assert()
            .success();
        assert_eq!(mode_of(&path), mode, "--mode {arg}");
        assert_eq!(fs::read(&path).unwrap(), b"hunter2");
    }
}

#[test]
fn mode_wins_over_the_mode_of_the_replaced_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, OLD).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    cmd()
        .arg("write")
        .arg(&path)
        .args(["--mode", "0600"])
        .write_stdin("new")
        .assert()
        .success();
    assert_eq!(mode_of(&path), 0o600);
}

#[test]
fn without_mode_a_replaced_file_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, OLD).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    cmd()
        .arg("write")
        .arg(&path)
        .write_stdin("new")
        .assert()
        .success();
    assert_eq!(mode_of(&path), 0o640);
    assert_eq!(fs::read(&path).unwrap(), b"new");
}

#[test]
fn no_clobber_creates_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new");
    cmd()
        .arg("write")
        .arg(&path)
        .arg("--no-clobber")
        .write_stdin("first")
        .assert()
        .success();
    assert_eq!(fs::read(&path).unwrap(), b"first");
}

// ---- write: failures ----

#[test]
fn no_clobber_on_an_existing_file_exits_1_and_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keep");
    fs::write(&path, OLD).unwrap();
    cmd()
        .arg("write")
        .arg(&path)
        .arg("--no-clobber")
        .write_stdin("replacement")
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "atomic-persist: {} already exists\n",
            path.display()
        ));
    assert_eq!(fs::read(&path).unwrap(), OLD);
    assert_eq!(entries(dir.path()), ["keep"]);
}

/// The check is made again at the rename: a file that appears while stdin is still
/// being read is not replaced either, with a named or an anonymous temporary file.
#[test]
fn no_clobber_refuses_a_file_created_while_stdin_was_read() {
    for extra in [&[][..], &["--named-temp"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race");
        let mut args = vec!["--no-clobber"];
        args.extend_from_slice(extra);
        let (child, stdin) = start_write(dir.path(), &path, &args);
        fs::write(&path, b"the other writer's").unwrap();
        drop(stdin); // EOF: the writer commits now
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{extra:?}");
        assert_eq!(
            String::from_utf8(out.stderr).unwrap(),
            format!("atomic-persist: {} already exists\n", path.display())
        );
        assert_eq!(fs::read(&path).unwrap(), b"the other writer's", "{extra:?}");
        assert_eq!(entries(dir.path()), ["race"], "{extra:?}");
    }
}

#[test]
fn garbage_modes_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    for bad in ["rw-r--r--", "abc", "0x1ff", "8", "0o8", "17777", "+644", ""] {
        cmd()
            .arg("write")
            .arg(&path)
            .args(["--mode", bad])
            .write_stdin("data")
            .assert()
            .code(2)
            .stdout("")
            .stderr(
                predicate::str::contains(format!("invalid value '{bad}' for '--mode <OCTAL>'"))
                    .and(predicate::str::contains("octal permission bits")),
            );
    }
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[test]
fn unknown_durability_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    cmd()
        .arg("write")
        .arg(&path)
        .args(["--durability", "fast"])
        .write_stdin("data")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("'fast'").and(predicate::str::contains("full")));
    assert!(!path.exists());
}

#[test]
fn a_missing_directory_exits_1_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("f");
    cmd()
        .arg("write")
        .arg(&path)
        .write_stdin("data")
        .assert()
        .code(1)
        .stdout("")
        .stderr(
            predicate::str::starts_with("atomic-persist: ")
                .and(predicate::str::contains(path.display().to_string()))
                .and(predicate::str::contains("No such file or directory"))
                .and(predicate::str::ends_with("\n"))
                .and(predicate::function(|s: &str| s.lines().count() == 1)),
        );
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}

#[test]
fn a_directory_as_file_exits_1_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub");
    fs::create_dir(&path).unwrap();
    cmd()
        .arg("write")
        .arg(&path)
        .write_stdin("data")
        .assert()
        .code(1)
        .stderr(
            predicate::str::starts_with("atomic-persist: ")
                .and(predicate::str::contains(path.display().to_string())),
        );
    assert!(path.is_dir());
    assert_eq!(entries(dir.path()), ["sub"]);
}

#[test]
fn missing_file_argument_is_a_usage_error() {
    cmd()
        .arg("write")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("<FILE>"));
}

// ---- write: signals ----

/// Holds `stdin` open until the returned sender is dropped, or for a minute at most: a
/// writer that ignores its signal then sees EOF and commits, so the test fails on the
/// changed file instead of hanging.
fn close_after_a_minute(stdin: ChildStdin) -> mpsc::Sender<()> {
    let (done, wait) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = wait.recv_timeout(Duration::from_secs(60));
        drop(stdin);
    });
    done
}

/// Sends `signal` to a writer whose stdin is not at EOF, and checks that it exits with
/// 128 + N, the destination is untouched and no temporary file is left.
fn signal_mid_stdin(signal: Signal, named_temp: bool, relative: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, OLD).unwrap();
    let file = if relative { Path::new("f") } else { &path };
    let args: &[&str] = if named_temp { &["--named-temp"] } else { &[] };
    let (mut child, stdin) = start_write(dir.path(), file, args);
    if named_temp {
        // There is a temporary file for the handler to remove.
        assert_eq!(temps(dir.path()).len(), 1, "{:?}", entries(dir.path()));
    }

    let stdin = close_after_a_minute(stdin);
    kill_process(Pid::from_child(&child), signal).unwrap();
    let status = child.wait().unwrap();
    drop(stdin); // only now: the writer never saw EOF

    let what = format!("{signal:?} named_temp={named_temp} relative={relative}");
    assert_eq!(
        status.code(),
        Some(128 + signal.as_raw()),
        "{what}: {status}"
    );
    assert_eq!(fs::read(&path).unwrap(), OLD, "{what}");
    assert_eq!(entries(dir.path()), ["f"], "{what}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(stderr, "", "{what}");
}

#[test]
fn sigint_mid_stdin_leaves_the_file_and_no_temp() {
    signal_mid_stdin(Signal::INT, true, false);
    signal_mid_stdin(Signal::INT, false, false);
}

#[test]
fn sigterm_mid_stdin_leaves_the_file_and_no_temp() {
    signal_mid_stdin(Signal::TERM, true, false);
    signal_mid_stdin(Signal::TERM, false, false);
}

#[test]
fn sighup_mid_stdin_leaves_the_file_and_no_temp() {
    signal_mid_stdin(Signal::HUP, true, false);
    signal_mid_stdin(Signal::HUP, false, false);
}

#[test]
fn sigpipe_mid_stdin_leaves_the_file_and_no_temp() {
    signal_mid_stdin(Signal::PIPE, true, false);
    signal_mid_stdin(Signal::PIPE, false, false);
}

#[test]
fn signal_mid_stdin_with_a_relative_path_removes_the_temp() {
    signal_mid_stdin(Signal::TERM, true, true);
}

#[test]
fn sigkill_with_a_named_temp_leaves_debris_that_sweep_removes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, OLD).unwrap();
    let (mut child, stdin) = start_write(dir.path(), &path, &["--named-temp"]);
    kill_process(Pid::from_child(&child), Signal::KILL).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.signal(), Some(Signal::KILL.as_raw()), "{status}");
    assert_eq!(fs::read(&path).unwrap(), OLD);
    assert_eq!(temps(dir.path()).len(), 1, "{:?}", entries(dir.path()));

    cmd()
        .arg("sweep")
        .arg(dir.path())
        .assert()
        .success()
        .stdout("removed 1 temporary file\n")
        .stderr("");
    assert_eq!(entries(dir.path()), ["f"]);
    assert_eq!(fs::read(&path).unwrap(), OLD);
}

/// By default the data goes into an anonymous `O_TMPFILE` where the filesystem has one,
/// so even SIGKILL leaves nothing to sweep.
#[test]
fn sigkill_with_the_default_anonymous_temp_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    if !has_o_tmpfile(dir.path()) {
        eprintln!("skipped: {} has no O_TMPFILE", dir.path().display());
        return;
    }
    let path = dir.path().join("f");
    fs::write(&path, OLD).unwrap();
    let (mut child, stdin) = start_write(dir.path(), &path, &[]);
    assert_eq!(entries(dir.path()), ["f"]); // mid-write, and nothing named
    kill_process(Pid::from_child(&child), Signal::KILL).unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    assert_eq!(status.signal(), Some(Signal::KILL.as_raw()), "{status}");
    assert_eq!(fs::read(&path).unwrap(), OLD);
    assert_eq!(entries(dir.path()), ["f"]);
}

/// The streaming path end to end: a writer mid-stdin owns its temporary file (sweep
/// leaves it), and EOF commits exactly the bytes written.
#[test]
fn sweep_spares_a_live_writer_which_then_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, OLD).unwrap();
    let (child, mut stdin) = start_write(dir.path(), &path, &["--named-temp"]);
    let temp = temps(dir.path());
    assert_eq!(temp.len(), 1, "{:?}", entries(dir.path()));

    cmd()
        .arg("sweep")
        .arg(dir.path())
        .assert()
        .success()
        .stdout("removed 0 temporary files\n");
    assert_eq!(temps(dir.path()), temp);
    assert_eq!(fs::read(&path).unwrap(), OLD); // nothing visible before EOF

    stdin.write_all(b"tail").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut expected = payload(PAST_THE_PIPE);
    expected.extend_from_slice(b"tail");
    assert!(
        fs::read(&path).unwrap() == expected,
        "committed bytes differ"
    );
    assert_eq!(entries(dir.path()), ["f"]);
}

// ---- sweep ----

#[test]
fn sweep_of_an_empty_directory_prints_0() {
    let dir = tempfile::tempdir().unwrap();
    cmd()
        .arg("sweep")
        .arg(dir.path())
        .assert()
        .success()
        .stdout("removed 0 temporary files\n")
        .stderr("");
}

#[test]
fn sweep_counts_the_temps_it_removes_and_leaves_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let debris = [
        ".a.json.abcdefghijkl.tmp",
        ".a.json.mnopqrstuvwx.tmp",
        ".b.234567abcdef.tmp",
    ];
    let keep = [
        "a.json",
        ".a.json",
        "notes.tmp",
        ".b.tmp",
        ".b.ABCDEFGHIJKL.tmp",
    ];
    for name in debris.iter().chain(&keep) {
        fs::write(dir.path().join(name), name).unwrap();
    }
    cmd()
        .arg("sweep")
        .arg(dir.path())
        .assert()
        .success()
        .stdout("removed 3 temporary files\n");
    let mut left = keep.map(String::from).to_vec();
    left.sort();
    assert_eq!(entries(dir.path()), left);
}

#[test]
fn sweep_of_a_missing_directory_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone");
    cmd()
        .arg("sweep")
        .arg(&missing)
        .assert()
        .code(1)
        .stdout("")
        .stderr(
            predicate::str::starts_with("atomic-persist: ")
                .and(predicate::str::contains(missing.display().to_string()))
                .and(predicate::function(|s: &str| s.lines().count() == 1)),
        );
}

// ---- help ----

#[test]
fn help_names_the_subcommands() {
    cmd().arg("--help").assert().success().stdout(
        predicate::str::contains("write")
            .and(predicate::str::contains("sweep"))
            .and(predicate::str::contains("Exit status")),
    );
    cmd().args(["write", "--help"]).assert().success().stdout(
        predicate::str::contains("--durability")
            .and(predicate::str::contains("--mode <OCTAL>"))
            .and(predicate::str::contains("--no-clobber")),
    );
}

#[test]
fn no_subcommand_is_a_usage_error() {
    cmd().assert().code(2);
}

#[test]
fn sweep_of_a_file_names_the_directory_to_sweep_instead() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.json");
    std::fs::write(&file, b"{}").unwrap();
    Command::new(env!("CARGO_BIN_EXE_atomic-persist"))
        .arg("sweep")
        .arg(&file)
        .assert()
        .code(1)
        .stderr(format!(
            "atomic-persist: {} is not a directory: sweep cleans the directory that holds the files (atomic-persist sweep {})\n",
            file.display(),
            dir.path().display()
        ));
    assert_eq!(std::fs::read(&file).unwrap(), b"{}", "the file was touched");
}
