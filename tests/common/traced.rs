//! One thread of a child process traced alone: the child prints `tid N` and waits; the
//! test attaches `strace -p N` (with `-e inject=...` to fail its calls) and lets it go.
//! Only that thread is traced and faulted, never the test harness's others (whose own
//! calls of the same name `when=N` would otherwise count and fail too).

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// In the child, on the thread to trace: prints `tid N` and waits for `go` on stdin.
///
/// The wait is a `readv`, not a `read`: the call in progress when strace attaches
/// counts for `inject=NAME:when=N` but does not always show in the log, so it must not
/// share a name with a call being counted.
pub fn wait_for_tracer() {
    let tid = rustix::thread::gettid().as_raw_nonzero();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "tid {tid}").unwrap();
    stdout.flush().unwrap();
    let mut buf = [0u8; 16];
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let n = loop {
        // SAFETY: one iovec over `buf`, which outlives the call.
        let n = unsafe { libc::readv(0, &iov, 1) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            break n;
        }
    };
    assert!(n > 0 && buf[..n as usize].starts_with(b"go"), "{n}");
}

/// What a traced child did: its exit code, its stdout after the `tid` line, its stderr
/// and strace's.
pub struct Traced {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `child` (which calls [`wait_for_tracer`] on one thread), traces that thread
/// into `log` with the strace arguments `extra`, and returns what it did; `Err` when
/// it reported no thread or strace could not attach.
pub fn trace_thread(mut child: Command, extra: &[String], log: &Path) -> Result<Traced, String> {
    let mut child = child
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    // libtest prints its "running 1 test" first.
    let mut line = String::new();
    while out.read_line(&mut line).unwrap() > 0 && !line.starts_with("tid ") {
        line.clear();
    }
    let Some(tid) = line.trim().strip_prefix("tid ").map(str::to_owned) else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("child did not report its thread: {line:?}"));
    };
    let mut strace = Command::new("strace")
        .arg("-o")
        .arg(log)
        .args(["-p", &tid])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // strace says "Process N attached" once the thread is stopped under it.
    let mut err = BufReader::new(strace.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("attached") {
        if err.read_line(&mut said).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            let _ = strace.wait();
            return Err(format!("strace could not attach: {said}"));
        }
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut stdout = String::new();
    out.read_to_string(&mut stdout).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    err.read_to_string(&mut said).unwrap();
    strace.wait().unwrap();
    Ok(Traced {
        code: status.code(),
        stdout,
        stderr: format!("{stderr}{said}"),
    })
}

/// [`trace_thread`] of a child that must succeed: its stdout; panics, with what it
/// saw, otherwise.
pub fn run_traced(child: Command, extra: &[String], log: &Path) -> String {
    let t = trace_thread(child, extra, log).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        t.code == Some(0),
        "child failed ({:?}):\n{}\n{}",
        t.code,
        t.stdout,
        t.stderr
    );
    t.stdout
}

/// The calls worth failing between the markers `begin` and `end` (opens of those paths)
/// in a log of one thread: each syscall with its number among that thread's calls of
/// the same name, what `-e inject=NAME:when=N` counts. Memory and scheduling calls are
/// no filesystem fault; a failed `close` is ignored by design; `getrandom` (std's hash
/// keys, drawn once per thread) fails with EIO on no kernel, and where a sandbox denies
/// it std falls back; the id calls (`geteuid`, ...) cannot fail.
pub fn faults_between(log: &str, begin: &str, end: &str) -> Vec<(String, usize)> {
    const SKIPPED: [&str; 14] = [
        "close",
        "mmap",
        "munmap",
        "brk",
        "futex",
        "madvise",
        "mremap",
        "getrandom",
        "geteuid",
        "getuid",
        "getegid",
        "getgid",
        "getpid",
        "gettid",
    ];
    let calls = super::strace::parse(log);
    let start = (calls.iter())
        .position(|c| c.quoted() == Some(begin))
        .expect("the begin marker");
    (calls[start + 1..].iter())
        .take_while(|c| c.quoted() != Some(end))
        .filter(|c| !SKIPPED.contains(&c.name.as_str()))
        .map(|c| (c.name.clone(), c.nth))
        .collect()
}

/// The errnos every call of a sweep fails with in turn: an I/O error, a full disk, a
/// quota, and a refused permission.
pub const ERRNOS: [&str; 4] = ["EIO", "ENOSPC", "EDQUOT", "EACCES"];

/// The strace arguments that fail the `n`th call `name` with `errno`.
pub fn inject(name: &str, n: usize, errno: &str) -> Vec<String> {
    vec![
        "-e".to_owned(),
        format!("inject={name}:error={errno}:when={n}"),
    ]
}

/// A fault sweep over the save that the child role `{how}:{dir}` of `test` makes
/// between the opens of `markers`: a recording run lists its calls, then each is failed
/// alone with each of [`ERRNOS`] in a fresh directory (made ready by `prepare`), and `check` says what
/// is wrong with that directory given the child's `outcome ...` line. Returns how many
/// faults were tried and every problem found, each naming its fault.
pub fn sweep(
    test: &str,
    how: &str,
    markers: (&str, &str),
    prepare: impl Fn(&Path),
    check: impl Fn(&Path, &str) -> Vec<String>,
) -> (usize, Vec<String>) {
    let root = tempfile::tempdir().unwrap();
    let run = |n: usize, extra: &[String]| {
        let dir = root.path().join(format!("run{n}"));
        std::fs::create_dir(&dir).unwrap();
        prepare(&dir);
        let log = root.path().join(format!("run{n}.log"));
        let role = format!("{how}:{}", dir.display());
        let stdout = run_traced(super::child(test, &role), extra, &log);
        let outcome = (stdout.lines())
            .find_map(|l| l.strip_prefix("outcome "))
            .expect("the child's outcome")
            .to_owned();
        (dir, outcome, std::fs::read_to_string(&log).unwrap())
    };
    let (_, outcome, log) = run(0, &[]);
    assert_eq!(outcome, "ok", "the recording run saves");
    let faults = faults_between(&log, markers.0, markers.1);
    let mut problems = Vec::new();
    let mut run_id = 0;
    for (name, n) in &faults {
        for errno in ERRNOS {
            run_id += 1;
            let (dir, outcome, _) = run(run_id, &inject(name, *n, errno));
            let found = check(&dir, &outcome);
            problems.extend(
                found
                    .into_iter()
                    .map(|p| format!("{name} #{n} {errno}: {p}")),
            );
        }
    }
    (faults.len() * ERRNOS.len(), problems)
}
