//! Syscall fault sweep: every syscall one save makes fails once, and the save must
//! fail cleanly.
//!
//! For each kind of save, a child process does exactly one save on a thread of its own.
//! That thread first prints its thread id and waits; the test attaches `strace -p TID`
//! (that thread only, so the test harness's other threads are never traced or faulted),
//! then lets it go. The thread opens `/nonexistent/...-begin`, saves, and opens
//! `/nonexistent/...-end`: everything between the two markers is the save.
//!
//! 1. A recording run lists the save's syscalls, each with its invocation number in
//!    that thread (what `strace -e inject=NAME:when=N` counts).
//! 2. Every such syscall is then failed, alone, with each errno that makes sense for it
//!    (`strace -e inject=NAME:error=ERRNO:when=N`), in a fresh directory, and each time:
//!    - the strace log shows exactly that call injected, inside the save;
//!    - the child did not panic or die: it printed the outcome and exited 0 (`Ok`),
//!      3 (a typed `Error`, variant and `Op` printed) or 4 (the `io::Error` of
//!      `Write::write_all` on an `AtomicFile`, which is then dropped);
//!    - `Ok` only where the fault has a documented fallback or is ignored by design
//!      (close, a retried lock, `O_TMPFILE`/`renameat2` unsupported);
//!    - on an error the destination is byte for byte the old file (or still absent) —
//!      except `Op::SyncDir`: the rename is done, only its durability is unconfirmed, so
//!      the destination is the new file;
//!    - no temporary file is left, nothing else appears in the directory, and `sweep`
//!      afterwards finds nothing;
//!    - after a failed `fsync`/`fdatasync` no `rename`/`link` follows.
//! 3. Where a failed save removed its temp, the same fault again with that `unlinkat`
//!    failing too: the first error is still the one returned, the destination is as
//!    before, exactly one temp is left, and `sweep` removes it.
//!
//! A deliberately sloppy writer (ignores its fsync's result, leaves its temp behind on
//! error) goes through the same checks and must be caught: the sweep can fail.
//!
//! Memory-management and scheduling syscalls (`mmap`, `futex`, ...) are not faulted: an
//! allocation failure aborts any Rust program, it is not a filesystem fault.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use atomic_persist::{Error, WriteOptions};

const TEST: &str = "every_injected_syscall_error_gives_a_typed_error_and_keeps_the_old_file";
const SLOPPY_TEST: &str = "the_fault_sweep_catches_a_writer_that_ignores_errors";
const ROLE: &str = "fault-sweep-save";

const BEGIN: &str = "/nonexistent/atomic-persist-fault-sweep-begin";
const END: &str = "/nonexistent/atomic-persist-fault-sweep-end";

/// Runs in parallel: most of a run is process start-up and ptrace attach.
const WORKERS: usize = 2;

/// Exit codes of the child.
const EXIT_OK: i32 = 0;
const EXIT_TYPED_ERROR: i32 = 3;
const EXIT_WRITE_IO_ERROR: i32 = 4;

const DEST: &str = "dest.bin";

/// The old file: small, a pattern of its own.
fn old_bytes() -> Vec<u8> {
    (0..5_000u32).map(|i| b'o' ^ (i % 7) as u8).collect()
}

/// The new file: large enough that a streamed save flushes several times.
fn new_bytes() -> Vec<u8> {
    (0..150_000u32)
        .map(|i| (common::mix(u64::from(i)) & 0xff) as u8)
        .collect()
}

/// The value of the enveloped kind: revision 2 is large enough to stream in pieces.
#[cfg(feature = "json")]
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Doc {
    rev: u32,
    text: String,
}

#[cfg(feature = "json")]
fn doc(rev: u32) -> Doc {
    let len = if rev == 1 { 5_000 } else { 150_000 };
    Doc {
        rev,
        text: (0..len)
            .map(|i| char::from(b'a' + (common::mix(i) % 26) as u8))
            .collect(),
    }
}

#[cfg(feature = "json")]
fn doc_builder(dest: &Path) -> atomic_persist::PersistedBuilder<Doc> {
    atomic_persist::Persisted::<Doc>::builder(dest)
        .format(atomic_persist::Json)
        .envelope(true)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `WriteOptions::write`, no destination yet.
    New,
    /// `WriteOptions::write` over an existing file of mode 0640 and, when the test runs
    /// as root, owned by 65534: the save copies both (`fchown`, `fchmod`).
    Replace,
    /// `no_clobber(true)`, no destination yet (`renameat2(RENAME_NOREPLACE)`).
    NoClobber,
    /// `anonymous_temp(true)` over an existing file (`O_TMPFILE`, `linkat`, `renameat`).
    Anonymous,
    /// `anonymous_temp(true)` + `no_clobber(true)`: linked straight into place.
    AnonymousNoClobber,
    /// `AtomicFile` over an existing file, written in 40 KB pieces, then committed.
    Stream,
    /// `Persisted<Doc>` with the envelope (JSON), opened from an enveloped file, then
    /// `set` to a new value: the commit streams head, payload and tail into an
    /// `AtomicFile`.
    #[cfg(feature = "json")]
    Enveloped,
    /// Not the crate: `File::create` of a temp, `write_all`, fsync with its result
    /// ignored, rename, no cleanup on error. The sweep must flag it.
    Sloppy,
}

/// The save kinds of the crate (history commits do not exist yet).
fn kinds() -> Vec<Kind> {
    let v = vec![
        Kind::New,
        Kind::Replace,
        Kind::NoClobber,
        Kind::Anonymous,
        Kind::AnonymousNoClobber,
        Kind::Stream,
    ];
    // The enveloped kind needs a format feature.
    #[cfg(feature = "json")]
    let v = [v, vec![Kind::Enveloped]].concat();
    v
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Replace => "replace",
            Kind::NoClobber => "no-clobber",
            Kind::Anonymous => "anonymous",
            Kind::AnonymousNoClobber => "anonymous-no-clobber",
            Kind::Stream => "stream",
            #[cfg(feature = "json")]
            Kind::Enveloped => "enveloped",
            Kind::Sloppy => "sloppy",
        }
    }

    fn from_name(s: &str) -> Kind {
        kinds()
            .into_iter()
            .chain([Kind::Sloppy])
            .find(|k| k.name() == s)
            .unwrap()
    }

    /// Whether the destination exists before the save.
    fn existing(self) -> bool {
        matches!(
            self,
            Kind::Replace | Kind::Anonymous | Kind::Stream | Kind::Sloppy
        ) || self.enveloped()
    }

    fn enveloped(self) -> bool {
        #[cfg(feature = "json")]
        if self == Kind::Enveloped {
            return true;
        }
        false
    }

    /// Writes the old file (if the kind has one) and returns its bytes.
    fn prepare(self, dest: &Path) -> Option<Vec<u8>> {
        if !self.existing() {
            return None;
        }
        #[cfg(feature = "json")]
        if self == Kind::Enveloped {
            let mut p = doc_builder(dest).open_or_else(|| doc(1)).unwrap();
            p.commit().unwrap();
            return Some(std::fs::read(dest).unwrap());
        }
        std::fs::write(dest, old_bytes()).unwrap();
        if self == Kind::Replace {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o640)).unwrap();
            if common::is_root() {
                std::os::unix::fs::chown(dest, Some(65534), Some(65534)).unwrap();
            }
        }
        Some(old_bytes())
    }

    /// Whether `dest` holds what the save was to write.
    fn is_new(self, dest: &Path, bytes: &[u8]) -> bool {
        #[cfg(feature = "json")]
        if self == Kind::Enveloped {
            // The meta (time, run id) differs from run to run: load it, checksum and all.
            return doc_builder(dest)
                .open()
                .is_ok_and(|p| *p.get() == doc(2) && p.meta().is_some_and(|m| m.generation == 2));
        }
        let _ = dest;
        bytes == new_bytes()
    }

    fn test(self) -> &'static str {
        if self == Kind::Sloppy {
            SLOPPY_TEST
        } else {
            TEST
        }
    }
}

// ---------------------------------------------------------------------------------
// The child

/// What a save needs that is made before tracing starts.
enum Ready {
    Bytes,
    #[cfg(feature = "json")]
    Persisted(Box<atomic_persist::Persisted<Doc>>),
}

/// Before tracing: open the `Persisted` of the enveloped kind (that load is not the save).
fn ready(kind: Kind, dest: &Path) -> Ready {
    #[cfg(feature = "json")]
    if kind == Kind::Enveloped {
        return Ready::Persisted(Box::new(doc_builder(dest).open().unwrap()));
    }
    let _ = (kind, dest);
    Ready::Bytes
}

/// The save itself; returns the outcome line and the exit code.
fn save(kind: Kind, dest: &Path, ready: Ready) -> (String, i32) {
    match ready {
        #[cfg(feature = "json")]
        Ready::Persisted(mut p) => {
            return match p.set(doc(2)) {
                Ok(()) => ("ok".into(), EXIT_OK),
                Err(e) => (describe(&e), EXIT_TYPED_ERROR),
            };
        }
        Ready::Bytes => {}
    }
    let new = new_bytes();
    let opts = WriteOptions::new()
        .no_clobber(matches!(kind, Kind::NoClobber | Kind::AnonymousNoClobber))
        .anonymous_temp(matches!(kind, Kind::Anonymous | Kind::AnonymousNoClobber));
    let result = match kind {
        Kind::New
        | Kind::Replace
        | Kind::NoClobber
        | Kind::Anonymous
        | Kind::AnonymousNoClobber => opts.write(dest, &new),
        Kind::Stream => match opts.create(dest) {
            Err(e) => Err(e),
            Ok(mut f) => {
                for chunk in new.chunks(40_000) {
                    if let Err(e) = f.write_all(chunk) {
                        drop(f); // what a caller does with a failed writer: discard it
                        return (
                            format!("write-io-error {}", errno_name(e.raw_os_error())),
                            EXIT_WRITE_IO_ERROR,
                        );
                    }
                }
                f.commit()
            }
        },
        #[cfg(feature = "json")]
        Kind::Enveloped => unreachable!("saved through its Persisted above"),
        Kind::Sloppy => {
            return match sloppy_save(dest, &new) {
                Ok(()) => ("ok".into(), EXIT_OK),
                Err(e) => (
                    format!("err Sloppy {}", errno_name(e.raw_os_error())),
                    EXIT_TYPED_ERROR,
                ),
            };
        }
    };
    match result {
        Ok(()) => ("ok".into(), EXIT_OK),
        Err(e) => (describe(&e), EXIT_TYPED_ERROR),
    }
}

/// What the sweep must catch: ignores the fsync's result, no cleanup on error.
fn sloppy_save(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = dest.with_file_name(".dest.bin.sloppy.tmp");
    let mut f = File::create(&temp)?;
    f.write_all(bytes)?;
    let _ = f.sync_all();
    std::fs::rename(&temp, dest)
}

/// `err VARIANT [OP ERRNO]`.
fn describe(e: &Error) -> String {
    let debug = format!("{e:?}");
    let variant: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    match e {
        Error::Io { op, source, .. } => {
            format!("err {variant} {op:?} {}", errno_name(source.raw_os_error()))
        }
        _ => format!("err {variant}"),
    }
}

fn errno_name(code: Option<i32>) -> String {
    let Some(code) = code else {
        return "no-errno".into();
    };
    ERRNOS
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("errno{code}"))
}

const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EIO", 5),
    ("EAGAIN", 11),
    ("EACCES", 13),
    ("EEXIST", 17),
    ("EXDEV", 18),
    ("EINVAL", 22),
    ("ENOSPC", 28),
    ("ENOLCK", 37),
    ("EOPNOTSUPP", 95),
    ("EDQUOT", 122),
];

/// The child: one save on a thread of its own, traced from the moment it reads "go".
fn child_main() {
    let var = |k| std::env::var(k).unwrap();
    let kind = Kind::from_name(&var("SWEEP_KIND"));
    let dest = PathBuf::from(var("SWEEP_DIR")).join(DEST);
    let saver = std::thread::Builder::new()
        .name("save".into())
        .spawn(move || {
            let ready = ready(kind, &dest);
            let tid = rustix::thread::gettid().as_raw_nonzero();
            let mut stdout = std::io::stdout();
            writeln!(stdout, "tid {tid}").unwrap();
            stdout.flush().unwrap();
            let mut go = String::new();
            std::io::stdin().read_line(&mut go).unwrap();
            assert_eq!(go.trim(), "go");
            let _ = File::open(BEGIN);
            let outcome = save(kind, &dest, ready);
            let _ = File::open(END);
            outcome
        })
        .unwrap();
    let (line, code) = match saver.join() {
        Ok(outcome) => outcome,
        Err(panic) => std::panic::resume_unwind(panic), // libtest exits 101: a failure
    };
    println!("outcome {line}");
    std::io::stdout().flush().unwrap();
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------
// The strace log

/// One syscall line of an strace log.
#[derive(Clone, Debug)]
struct Call {
    name: String,
    args: String,
    /// The return value as printed (`0`, `-1`, `4`, ...).
    ret: String,
    /// The errno name of a failed call (`EIO`), empty otherwise.
    errno: String,
    injected: bool,
    /// This call's invocation number among calls of the same name (1-based).
    nth: usize,
}

/// Parses an `strace -o` log of one thread (no pid prefixes).
fn parse_log(log: &str) -> Vec<Call> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for line in log.lines() {
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || !line[name.len()..].starts_with('(') {
            continue; // signals, exit lines, "<... resumed>"
        }
        let Some((head, tail)) = line.rsplit_once(" = ") else {
            continue;
        };
        let args = head[name.len() + 1..].trim_end().trim_end_matches(')');
        let mut tail = tail.split(' ');
        let ret = tail.next().unwrap_or("").to_owned();
        let errno = if ret == "-1" {
            tail.next().unwrap_or("").to_owned()
        } else {
            String::new()
        };
        let nth = counts.entry(name.clone()).or_default();
        *nth += 1;
        out.push(Call {
            nth: *nth,
            name,
            args: args.to_owned(),
            ret,
            errno,
            injected: line.ends_with("(INJECTED)"),
        });
    }
    out
}

/// The calls between the begin and end markers; `None` when a marker is missing.
fn save_window(calls: &[Call]) -> Option<&[Call]> {
    let is = |c: &Call, m: &str| c.name.starts_with("open") && c.args.contains(m);
    let begin = calls.iter().position(|c| is(c, BEGIN))?;
    let end = calls.iter().position(|c| is(c, END))?;
    (begin < end).then(|| &calls[begin + 1..end])
}

fn is_sync(c: &Call) -> bool {
    matches!(c.name.as_str(), "fsync" | "fdatasync")
}

fn is_publish(c: &Call) -> bool {
    matches!(
        c.name.as_str(),
        "rename" | "renameat" | "renameat2" | "link" | "linkat"
    )
}

/// Violations of "a failed fsync is never followed by a rename (or link)".
fn rename_after_failed_sync(window: &[Call]) -> Vec<String> {
    let mut failed_sync: Option<&Call> = None;
    let mut out = Vec::new();
    for c in window {
        if is_sync(c) && c.ret == "-1" {
            failed_sync = Some(c);
        } else if let Some(s) = failed_sync
            && is_publish(c)
        {
            out.push(format!(
                "{}({}) = -1 {} is followed by {}({})",
                s.name, s.args, s.errno, c.name, c.args
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Which errnos, and which calls are not faulted

/// Syscalls that are not faulted, with the reason.
fn exempt(name: &str) -> Option<&'static str> {
    Some(match name {
        "mmap" | "munmap" | "mprotect" | "mremap" | "madvise" | "brk" => {
            "memory allocation: failure aborts any Rust program"
        }
        "futex" | "sched_yield" | "rt_sigprocmask" | "sigaltstack" | "rseq" => "scheduling",
        "getpid" | "gettid" | "getuid" | "geteuid" | "getgid" | "getegid" => "cannot fail",
        "clock_gettime" | "gettimeofday" => "clock",
        "fcntl" => {
            "std's debug-build check that an fd is still open before close (not in release builds)"
        }
        _ => return None,
    })
}

/// The errnos worth injecting into `c`; `None` for a syscall this table does not know
/// (the test fails on it: a new syscall in the save needs a decision).
fn errnos_for(c: &Call) -> Option<Vec<&'static str>> {
    let creates = c.args.contains("O_CREAT") || c.args.contains("O_TMPFILE");
    Some(match c.name.as_str() {
        "open" | "openat" | "openat2" => {
            let mut v = vec!["EIO", "EACCES", "EPERM"];
            if creates {
                v.extend(["ENOSPC", "EDQUOT"]);
            }
            if c.args.contains("O_TMPFILE") {
                v.push("EOPNOTSUPP"); // the filesystem has no O_TMPFILE: named temp
            }
            v
        }
        "newfstatat" | "fstatat64" | "statx" | "lstat" | "stat" | "readlinkat" => {
            vec!["EIO", "EACCES"]
        }
        "fstat" | "fstatfs" | "statfs" => vec!["EIO"],
        "flock" => vec!["ENOLCK", "EAGAIN"], // EAGAIN: a sweep holds it; start over
        "fchown" | "fchmod" | "fchownat" | "fchmodat" => vec!["EPERM", "EIO"],
        "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => {
            vec!["EIO", "ENOSPC", "EDQUOT"]
        }
        "fsync" | "fdatasync" => vec!["EIO", "ENOSPC", "EDQUOT", "EINVAL"],
        "rename" | "renameat" => vec!["EIO", "ENOSPC", "EDQUOT", "EXDEV", "EACCES", "EPERM"],
        "renameat2" => vec![
            "EIO", "ENOSPC", "EDQUOT", "EXDEV", "EACCES", "EPERM", "EINVAL",
        ],
        "link" | "linkat" => vec![
            "EIO", "ENOSPC", "EDQUOT", "EXDEV", "EACCES", "EPERM", "ENOENT",
        ],
        "unlink" | "unlinkat" => vec!["EIO", "EACCES", "EPERM"],
        "close" => vec!["EIO", "ENOSPC", "EDQUOT"],
        "getrandom" => vec!["EPERM"], // seccomp says EPERM; std falls back to /dev/urandom
        "read" => vec!["EIO"],
        _ => return None,
    })
}

/// Whether a save may still succeed after this fault, and why.
fn may_succeed(c: &Call, errno: &str) -> bool {
    match (c.name.as_str(), errno) {
        // Rust ignores close errors; by then the file was synced (or None asked not to).
        ("close", _) => true,
        // Another process holds the new temp's lock: the writer starts over.
        ("flock", "EAGAIN") => true,
        // No O_TMPFILE here: a named temp is used.
        ("openat", "EOPNOTSUPP") if c.args.contains("O_TMPFILE") => true,
        // renameat2 unsupported (ZFS, old kernels): link + unlink.
        ("renameat2", "EINVAL") => true,
        // linkat(AT_EMPTY_PATH) refused: linkat of /proc/self/fd/N.
        ("linkat", "ENOENT" | "EPERM") if c.args.contains("AT_EMPTY_PATH") => true,
        // The btrfs probe: not btrfs as far as anyone can tell.
        ("fstatfs" | "statfs", _) => true,
        // std's random keys fall back to /dev/urandom.
        ("getrandom", "EPERM") => true,
        // The lock file cannot be created or opened for writing (a read-only directory):
        // an existing one is opened read-only and locked all the same.
        ("openat", "EACCES" | "EPERM")
            if c.args.contains(".lock") && c.args.contains("O_CREAT") =>
        {
            true
        }
        // After the rename, the handle notes the new file's identity (fstat, reopen
        // read-only) only to skip reading it at the next commit's generation check;
        // without it, that check reads the file: slower, never wrong.
        // (std's `File::metadata` is the only statx of a descriptor in a save; the
        // engine's own fstat of a new temp must fail the save, and is not listed here.)
        ("statx", _) if c.args.contains("AT_EMPTY_PATH") => true,
        // The read-only reopen of the renamed file that pins its identity.
        ("openat", _) if c.args.contains("O_RDONLY") && !c.args.contains(".lock") => {
            c.args.contains(DEST) && !c.args.contains("O_DIRECTORY")
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------
// Running a child under strace

struct Run {
    /// The child's `outcome ...` line, without the word `outcome`.
    outcome: String,
    code: Option<i32>,
    calls: Vec<Call>,
    /// What the directory holds afterwards: name -> `old`, `new`, or `N other bytes`.
    files: BTreeMap<String, String>,
    /// What `atomic_persist::sweep` then removed, and what the directory held after.
    swept: Result<usize, String>,
    after_sweep: Vec<String>,
    stderr: String,
}

/// The writer lock's sidecar `.{DEST}.lock`, which an enveloped commit creates empty and
/// which is never deleted by design (see the `lock` module): not debris, not a temp.
fn is_lock_sidecar(name: &std::ffi::OsStr) -> bool {
    name.to_str() == Some(&format!(".{DEST}.lock"))
}

/// Runs one save of `kind` in a fresh directory under `root`, with the injections
/// `inject` (`NAME:error=ERRNO:when=N` each), then sweeps the directory.
fn run(kind: Kind, root: &Path, id: usize, inject: &[String]) -> Result<Run, String> {
    let dir = root.join(format!("run{id}"));
    std::fs::create_dir(&dir).unwrap();
    let old = kind.prepare(&dir.join(DEST));
    let log = root.join(format!("run{id}.strace"));
    let mut child = common::child(kind.test(), ROLE)
        .env("SWEEP_KIND", kind.name())
        .env("SWEEP_DIR", &dir)
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
    let mut strace = Command::new("strace");
    strace.args(["-o"]).arg(&log).args(["-p", &tid]);
    for spec in inject {
        strace.args(["-e", &format!("inject={spec}")]);
    }
    let mut strace = strace
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // strace says "Process N attached" once the thread is stopped under it.
    let mut err = BufReader::new(strace.stderr.take().unwrap());
    let mut strace_err = String::new();
    loop {
        let mut l = String::new();
        if err.read_line(&mut l).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            let _ = strace.wait();
            return Err(format!("strace could not attach: {strace_err}"));
        }
        strace_err.push_str(&l);
        if l.contains("attached") {
            break;
        }
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    err.read_to_string(&mut strace_err).unwrap();
    strace.wait().unwrap();
    let outcome = rest
        .lines()
        .find_map(|l| l.strip_prefix("outcome "))
        .unwrap_or("")
        .to_owned();
    let mut files = BTreeMap::new();
    for name in common::names(&dir) {
        if is_lock_sidecar(&name) {
            continue;
        }
        let path = dir.join(&name);
        let bytes = std::fs::read(&path).unwrap_or_default();
        let what = if old.as_ref() == Some(&bytes) {
            "old".to_owned()
        } else if kind.is_new(&path, &bytes) {
            "new".to_owned()
        } else {
            format!("{} other bytes", bytes.len())
        };
        files.insert(name.to_string_lossy().into_owned(), what);
    }
    let swept = atomic_persist::sweep(&dir).map_err(|e| e.to_string());
    let after_sweep = common::names(&dir)
        .into_iter()
        .filter(|n| !is_lock_sidecar(n))
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let calls = parse_log(&std::fs::read_to_string(&log).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&log);
    Ok(Run {
        outcome,
        code: status.code(),
        calls,
        files,
        swept,
        after_sweep,
        stderr: format!("{stderr}{strace_err}"),
    })
}

/// One fault: the `nth` call named `name`, failed with `errno`.
#[derive(Clone, Debug)]
struct Fault {
    call: Call,
    errno: &'static str,
}

impl Fault {
    fn spec(&self) -> String {
        format!(
            "{}:error={}:when={}",
            self.call.name, self.errno, self.call.nth
        )
    }
    fn label(&self, kind: Kind) -> String {
        format!(
            "{}: {}#{}({}) <- {}",
            kind.name(),
            self.call.name,
            self.call.nth,
            short(&self.call.args),
            self.errno
        )
    }
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Everything wrong with one injected run.
fn check(kind: Kind, fault: &Fault, run: &Run) -> Vec<String> {
    let mut problems = Vec::new();
    let label = fault.label(kind);
    let mut bad = |what: String| problems.push(format!("{label}: {what}"));
    let Some(window) = save_window(&run.calls) else {
        bad(format!(
            "markers missing from the trace; stderr:\n{}",
            run.stderr
        ));
        return problems;
    };
    let injected: Vec<&Call> = run.calls.iter().filter(|c| c.injected).collect();
    let landed = window
        .iter()
        .any(|c| c.injected && c.name == fault.call.name && c.nth == fault.call.nth);
    if injected.len() != 1 || !landed {
        bad(format!(
            "expected exactly this call injected inside the save, got {:?}",
            injected
                .iter()
                .map(|c| format!("{}#{}", c.name, c.nth))
                .collect::<Vec<_>>()
        ));
    }
    for v in rename_after_failed_sync(window) {
        bad(format!("rename after a failed sync: {v}"));
    }
    let outcome = run.outcome.as_str();
    match (run.code, outcome.split(' ').next()) {
        (Some(EXIT_OK), Some("ok")) => {
            if !may_succeed(&fault.call, fault.errno) {
                bad("the save returned Ok: the injected error was swallowed".into());
            }
        }
        (Some(EXIT_TYPED_ERROR), Some("err"))
        | (Some(EXIT_WRITE_IO_ERROR), Some("write-io-error")) => {}
        _ => bad(format!(
            "child exited {:?} with outcome {outcome:?} (a panic or a crash); stderr:\n{}",
            run.code, run.stderr
        )),
    }
    let after_rename = outcome.starts_with("err Io SyncDir");
    let want = if outcome == "ok" || after_rename {
        Some("new")
    } else if kind.existing() {
        Some("old")
    } else {
        None
    };
    let want_files: BTreeMap<String, String> = want
        .map(|w| (DEST.to_owned(), w.to_owned()))
        .into_iter()
        .collect();
    if run.files != want_files {
        bad(format!(
            "outcome {outcome:?}: directory holds {:?}, expected {want_files:?}",
            run.files
        ));
    }
    if run.swept != Ok(0) {
        bad(format!("sweep afterwards: {:?}", run.swept));
    }
    problems
}

/// A second fault on top of one that made the save fail: the cleanup's `unlinkat` of
/// the temporary file fails too.
#[derive(Clone, Debug)]
struct Double {
    first: Fault,
    cleanup: Call,
    /// The outcome of the first fault alone.
    outcome: String,
}

impl Double {
    fn specs(&self) -> Vec<String> {
        vec![
            self.first.spec(),
            format!("unlinkat:error=EIO:when={}", self.cleanup.nth),
        ]
    }
}

/// With the cleanup failing as well: the same error as with the first fault alone (not
/// the cleanup's), the destination as it was, one temporary file left, which `sweep`
/// then removes.
fn check_double(kind: Kind, d: &Double, run: &Run) -> Vec<String> {
    let mut problems = Vec::new();
    let label = format!(
        "{} + unlinkat#{} <- EIO",
        d.first.label(kind),
        d.cleanup.nth
    );
    let mut bad = |what: String| problems.push(format!("{label}: {what}"));
    let landed: Vec<String> = save_window(&run.calls)
        .unwrap_or(&[])
        .iter()
        .filter(|c| c.injected)
        .map(|c| format!("{}#{}", c.name, c.nth))
        .collect();
    let want_landed = vec![
        format!("{}#{}", d.first.call.name, d.first.call.nth),
        format!("unlinkat#{}", d.cleanup.nth),
    ];
    if landed != want_landed {
        bad(format!("injected {landed:?}, expected {want_landed:?}"));
    }
    if run.outcome != d.outcome || !matches!(run.code, Some(EXIT_TYPED_ERROR | EXIT_WRITE_IO_ERROR))
    {
        bad(format!(
            "outcome {:?} (exit {:?}), expected {:?} as with the first fault alone; stderr:\n{}",
            run.outcome, run.code, d.outcome, run.stderr
        ));
    }
    let want = kind.existing().then_some("old");
    let dest = run.files.get(DEST).map(String::as_str);
    let others: Vec<&String> = run.files.keys().filter(|n| *n != DEST).collect();
    let one_temp = others.len() == 1 && common::is_temp(std::ffi::OsStr::new(others[0]));
    if dest != want || !one_temp {
        bad(format!(
            "directory holds {:?}, expected {DEST} {want:?} and one temporary file",
            run.files
        ));
    }
    let after: Vec<String> = want.iter().map(|_| DEST.to_owned()).collect();
    if run.swept != Ok(1) || run.after_sweep != after {
        bad(format!(
            "sweep removed {:?}, left {:?}",
            run.swept, run.after_sweep
        ));
    }
    problems
}

/// Runs `f` on each item on [`WORKERS`] threads; results in any order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<(usize, R)> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(i, item);
                    results.lock().unwrap().push((i, r));
                }
            });
        }
    });
    results.into_inner().unwrap()
}

/// The sweep of one kind.
#[derive(Default)]
struct Sweep {
    /// Syscalls in the save (recording run).
    calls: usize,
    /// Calls faulted, and runs (calls x errnos).
    faulted_calls: usize,
    runs: usize,
    /// Outcome (`err Io Rename EIO`, `ok`, ...) -> count.
    outcomes: BTreeMap<String, usize>,
    /// Not faulted: name -> (count, reason).
    exempt: BTreeMap<String, (usize, &'static str)>,
    /// Runs with the cleanup's `unlinkat` failing as well.
    double_runs: usize,
    problems: Vec<String>,
}

/// Records one save of `kind`, then faults each of its syscalls with each errno.
/// `only` restricts the faulted syscalls (for the sloppy writer).
fn sweep_kind(kind: Kind, only: Option<&[&str]>) -> Result<Sweep, String> {
    let root = tempfile::tempdir().unwrap();
    let record = run(kind, root.path(), 0, &[])?;
    let window = save_window(&record.calls)
        .ok_or_else(|| {
            format!(
                "{}: no save between the markers:\n{}",
                kind.name(),
                record.stderr
            )
        })?
        .to_vec();
    if record.code != Some(EXIT_OK) {
        return Err(format!(
            "{}: the unfaulted save failed: {} / {}",
            kind.name(),
            record.outcome,
            record.stderr
        ));
    }
    let mut sweep = Sweep {
        calls: window.len(),
        ..Sweep::default()
    };
    let mut faults = Vec::new();
    for c in &window {
        if only.is_some_and(|o| !o.contains(&c.name.as_str())) {
            continue;
        }
        if let Some(why) = exempt(&c.name) {
            sweep.exempt.entry(c.name.clone()).or_insert((0, why)).0 += 1;
            continue;
        }
        let Some(errnos) = errnos_for(c) else {
            sweep.problems.push(format!(
                "{}: {}({}) is not in the errno table: decide what to inject",
                kind.name(),
                c.name,
                c.args
            ));
            continue;
        };
        sweep.faulted_calls += 1;
        for errno in errnos {
            faults.push(Fault {
                call: c.clone(),
                errno,
            });
        }
    }
    sweep.runs = faults.len();
    let results = parallel(&faults, |i, fault| {
        run(kind, root.path(), i + 1, &[fault.spec()])
    });
    let mut doubles = Vec::new();
    let mut doubled = std::collections::BTreeSet::new();
    for (i, r) in &results {
        let fault = &faults[*i];
        match r {
            Err(e) => sweep.problems.push(format!("{}: {e}", fault.label(kind))),
            Ok(r) => {
                *sweep.outcomes.entry(r.outcome.clone()).or_default() += 1;
                sweep.problems.extend(check(kind, fault, r));
                // Where the failed save removed its temp, fail that removal too (once per
                // faulted call).
                let window = save_window(&r.calls).unwrap_or(&[]);
                let after = window.iter().skip_while(|c| !c.injected).skip(1);
                let cleanup = after.clone().find(|c| c.name == "unlinkat" && c.ret == "0");
                if let Some(cleanup) = cleanup
                    && r.outcome != "ok"
                    && !after.clone().any(|c| is_publish(c) && c.ret == "0")
                    && doubled.insert((fault.call.name.clone(), fault.call.nth))
                {
                    doubles.push(Double {
                        first: fault.clone(),
                        cleanup: cleanup.clone(),
                        outcome: r.outcome.clone(),
                    });
                }
            }
        }
    }
    sweep.double_runs = doubles.len();
    let base = faults.len() + 1;
    for (i, r) in parallel(&doubles, |i, d| {
        run(kind, root.path(), base + i, &d.specs())
    }) {
        match r {
            Err(e) => sweep
                .problems
                .push(format!("{}: {e}", doubles[i].first.label(kind))),
            Ok(r) => sweep.problems.extend(check_double(kind, &doubles[i], &r)),
        }
    }
    Ok(sweep)
}

fn can_trace(test: &str) -> bool {
    if !common::have_strace() {
        common::skip(test, "strace is not installed (or may not trace here)");
        return false;
    }
    true
}

#[test]
fn every_injected_syscall_error_gives_a_typed_error_and_keeps_the_old_file() {
    if common::role().as_deref() == Some(ROLE) {
        return child_main();
    }
    if !can_trace(TEST) {
        return;
    }
    let mut problems = Vec::new();
    let mut total_runs = 0;
    for kind in kinds() {
        let sweep = match sweep_kind(kind, None) {
            Ok(s) => s,
            Err(e) if e.contains("strace could not attach") => {
                return common::skip(TEST, &e);
            }
            Err(e) => panic!("{e}"),
        };
        total_runs += sweep.runs + sweep.double_runs;
        common::report(&format!(
            "fault sweep [{}]: syscalls_in_save={} faulted_calls={} runs={} double_fault_runs={} problems={}",
            kind.name(),
            sweep.calls,
            sweep.faulted_calls,
            sweep.runs,
            sweep.double_runs,
            sweep.problems.len()
        ));
        for (outcome, n) in &sweep.outcomes {
            common::report(&format!("  {n:4} x {outcome}"));
        }
        for (name, (n, why)) in &sweep.exempt {
            common::report(&format!("  not faulted: {n} x {name} ({why})"));
        }
        problems.extend(sweep.problems);
    }
    common::report(&format!(
        "fault sweep: {total_runs} injected runs, {} problems",
        problems.len()
    ));
    assert!(
        problems.is_empty(),
        "{} problems, first ones:\n{}",
        problems.len(),
        problems[..problems.len().min(30)].join("\n")
    );
}

#[test]
fn the_fault_sweep_catches_a_writer_that_ignores_errors() {
    if common::role().as_deref() == Some(ROLE) {
        return child_main();
    }
    if !can_trace(SLOPPY_TEST) {
        return;
    }
    let sweep = match sweep_kind(Kind::Sloppy, Some(&["write", "fsync"])) {
        Ok(s) => s,
        Err(e) if e.contains("strace could not attach") => return common::skip(SLOPPY_TEST, &e),
        Err(e) => panic!("{e}"),
    };
    common::report(&format!(
        "fault sweep [sloppy writer]: runs={} problems={}",
        sweep.runs,
        sweep.problems.len()
    ));
    let found = |what: &str| sweep.problems.iter().any(|p| p.contains(what));
    assert!(found("rename after a failed sync"), "{:#?}", sweep.problems);
    assert!(
        found("injected error was swallowed"),
        "{:#?}",
        sweep.problems
    );
    assert!(
        found(".dest.bin.sloppy.tmp"),
        "a left temp went unnoticed: {:#?}",
        sweep.problems
    );
}

#[test]
fn the_rename_after_failed_sync_check_reads_a_trace() {
    let log = "openat(AT_FDCWD, \"/nonexistent/atomic-persist-fault-sweep-begin\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n\
        fdatasync(4) = -1 EIO (Input/output error) (INJECTED)\n\
        renameat(3, \".x.tmp\", 3, \"x\") = 0\n\
        openat(AT_FDCWD, \"/nonexistent/atomic-persist-fault-sweep-end\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n";
    let calls = parse_log(log);
    let window = save_window(&calls).unwrap();
    assert_eq!(window.len(), 2);
    assert!(window[0].injected && window[0].errno == "EIO");
    assert_eq!(rename_after_failed_sync(window).len(), 1);
    assert!(rename_after_failed_sync(&window[1..]).is_empty());
}
