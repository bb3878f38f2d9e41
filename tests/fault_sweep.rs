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
//! The history commit (`History::set` of version 3 over versions 1 and 2 with
//! `keep(2)`: version file through the engine, pointer swap, retention, manifest) has an
//! invariant of its own, checked in [`check_history`] by where the fault lies relative
//! to the pointer swap in the recorded commit:
//! - before the pointer's rename, or in it: a typed error (or `Ok` for the same
//!   fallbacks as above, and for the lock file opened read-only), and every file as it
//!   was, byte for byte, the pointer naming version 2;
//! - in the directory sync after the rename: `Op::SyncDir`, with version 3 in place
//!   and the pointer naming it (retention and manifest skipped);
//! - after it (retention, manifest): `Ok`, by design: the commit has happened; version
//!   1 may still be there and the manifest may be the old one;
//! - always: `History::open` gives the version the pointer names (its value checked),
//!   `versions()` lists exactly the version files on disk, no version file lies past
//!   the pointer, nothing else is in the directory, `sweep` finds nothing, and one more
//!   commit by a fresh handle leaves exactly two versions and a current manifest.
//!
//! A deliberately sloppy writer (ignores its fsync's result, leaves its temp behind on
//! error) goes through the same checks and must be caught: the sweep can fail.
//!
//! Memory-management and scheduling syscalls (`mmap`, `futex`, ...) are not faulted: an
//! allocation failure aborts any Rust program, it is not a filesystem fault.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use atomic_persist::{Error, WriteOptions};
use common::strace::{Call, parse as parse_log};

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

/// The value of version `rev` of the history kind: small, one of its own per version.
#[cfg(feature = "json")]
fn hdoc(rev: u32) -> Doc {
    Doc {
        rev,
        text: doc(1).text,
    }
}

/// The history of the history kind: `dest.bin` is the pointer, versions `dest.{g}.bin`,
/// the newest two kept.
#[cfg(feature = "json")]
fn history_builder(dest: &Path) -> atomic_persist::history::HistoryBuilder<Doc> {
    atomic_persist::history::History::<Doc>::builder(dest)
        .format(atomic_persist::Json)
        .keep(2)
}

#[cfg(feature = "json")]
const HISTORY_MANIFEST: &str = "dest.manifest.json";

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
    /// `History<Doc>` with versions 1 and 2 and `keep(2)`: `set` commits version 3
    /// (version file through the engine, pointer swap, retention removes version 1,
    /// manifest rewritten), all under the writer lock.
    #[cfg(feature = "json")]
    History,
    /// Not the crate: `File::create` of a temp, `write_all`, fsync with its result
    /// ignored, rename, no cleanup on error. The sweep must flag it.
    Sloppy,
}

/// The save kinds of the crate.
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
    let v = [v, vec![Kind::Enveloped, Kind::History]].concat();
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
            #[cfg(feature = "json")]
            Kind::History => "history",
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
        if matches!(self, Kind::Enveloped | Kind::History) {
            return true;
        }
        false
    }

    fn is_history(self) -> bool {
        #[cfg(feature = "json")]
        if self == Kind::History {
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
        #[cfg(feature = "json")]
        if self == Kind::History {
            let mut h = history_builder(dest).open_or_else(|| hdoc(1)).unwrap();
            h.commit().unwrap();
            h.set(hdoc(2)).unwrap();
            // What the pointer resolves to.
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
    #[cfg(feature = "json")]
    History(Box<atomic_persist::history::History<Doc>>),
}

/// Before tracing: open the `Persisted` of the enveloped kind (that load is not the save).
fn ready(kind: Kind, dest: &Path) -> Ready {
    #[cfg(feature = "json")]
    if kind == Kind::Enveloped {
        return Ready::Persisted(Box::new(doc_builder(dest).open().unwrap()));
    }
    #[cfg(feature = "json")]
    if kind == Kind::History {
        return Ready::History(Box::new(history_builder(dest).open().unwrap()));
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
        #[cfg(feature = "json")]
        Ready::History(mut h) => {
            return match h.set(hdoc(3)) {
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
        #[cfg(feature = "json")]
        Kind::History => unreachable!("committed through its History above"),
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
            common::traced::wait_for_tracer();
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
        "newfstatat" | "fstatat64" | "statx" | "lstat" | "stat" | "readlink" | "readlinkat" => {
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
        "getdents64" => vec!["EIO"],
        // The history's temporary symlink (EEXIST: the name is taken; another name).
        "symlink" | "symlinkat" => vec!["EIO", "ENOSPC", "EDQUOT", "EACCES", "EPERM", "EEXIST"],
        // The replaced file's extended attributes (its ACL among them), read to carry
        // them over; EOPNOTSUPP: the filesystem has none.
        "llistxattr" | "lgetxattr" => vec!["EIO", "EACCES", "ENOMEM", "EOPNOTSUPP"],
        "fsetxattr" => vec!["EIO", "EPERM", "ENOSPC", "EOPNOTSUPP"],
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
        // No xattrs on this filesystem: nothing to carry over.
        ("llistxattr", "EOPNOTSUPP") => true,
        // A lock's explicit release when it is dropped, after the work it guarded: the
        // close that follows releases it too.
        ("flock", _) if c.args.contains("LOCK_UN") => true,
        // The temporary symlink's name is taken: the history tries another.
        ("symlink" | "symlinkat", "EEXIST") => true,
        // The writer lock's file may not be opened for writing: it is opened read-only
        // (a read-only handle can be locked too).
        ("open" | "openat", "EACCES" | "EPERM") if c.args.contains(".lock\"") => true,
        // After the rename, the handle notes the new file's identity (fstat, reopen
        // read-only) only to skip reading it at the next commit's generation check;
        // without it, that check reads the file: slower, never wrong.
        // (std's `File::metadata` is the only statx of a descriptor in a save; the
        // engine's own fstat of a new temp must fail the save, and is not listed here.)
        ("statx", _) if c.args.contains("AT_EMPTY_PATH") => true,
        // The read-only reopen of the renamed file that pins its identity.
        ("open" | "openat", _) if c.args.contains("O_RDONLY") && !c.args.contains(".lock") => {
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
    /// The history kind: what a reader of the history finds afterwards.
    history: Option<HistoryView>,
}

/// A history after one faulted commit, as its readers and its next writer find it.
#[derive(Debug)]
struct HistoryView {
    /// `History::open`: the generation the pointer names, if its value is that version's.
    opened: Result<u64, String>,
    /// `versions()` of the opened history.
    versions: Result<Vec<u64>, String>,
    /// The version files in the directory (each name `dest.{g}.bin`).
    on_disk: Vec<u64>,
    /// `manifest_state()`.
    manifest: String,
    /// After the sweep, one more commit (`set` of the next version) by a fresh handle:
    /// its `versions()`, manifest state and the directory's names afterwards.
    next: Result<(u64, Vec<u64>, String, Vec<String>), String>,
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
    let before = snapshot(&dir);
    let log = root.join(format!("run{id}.strace"));
    let child = {
        let mut c = common::child(kind.test(), ROLE);
        c.env("SWEEP_KIND", kind.name()).env("SWEEP_DIR", &dir);
        c
    };
    let injections: Vec<String> = (inject.iter())
        .flat_map(|spec| ["-e".to_owned(), format!("inject={spec}")])
        .collect();
    let traced = common::traced::trace_thread(child, &injections, &log)?;
    let (rest, stderr, code) = (traced.stdout, traced.stderr, traced.code);
    let outcome = rest
        .lines()
        .find_map(|l| l.strip_prefix("outcome "))
        .unwrap_or("")
        .to_owned();
    let mut files = BTreeMap::new();
    for name in common::names(&dir)
        .into_iter()
        .filter(|_| !kind.is_history())
    {
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
    let mut history = None;
    if kind.is_history() {
        files = history_files(&dir, &before);
        history = Some(history_view(&dir));
    }
    let swept = atomic_persist::sweep(&dir)
        .map(|s| s.count())
        .map_err(|e| e.to_string());
    let after_sweep = common::names(&dir)
        .into_iter()
        .filter(|n| !is_lock_sidecar(n))
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if let Some(h) = history.as_mut() {
        h.next = next_commit(&dir);
    }
    let calls = parse_log(&std::fs::read_to_string(&log).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(&log);
    Ok(Run {
        outcome,
        code,
        calls,
        files,
        swept,
        after_sweep,
        stderr,
        history,
    })
}

/// Every entry of `dir`: a symlink as `-> target`, anything else as its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    common::names(dir)
        .into_iter()
        .map(|name| {
            let path = dir.join(&name);
            let bytes = match std::fs::read_link(&path) {
                Ok(t) => format!("-> {}", t.display()).into_bytes(),
                Err(_) => std::fs::read(&path).unwrap_or_default(),
            };
            (name.to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

/// The history kind's directory: a symlink as `-> target`; a file as `old` (as before
/// the commit), `new` (version 3, complete, its value `hdoc(3)`), `changed` (the
/// manifest, rewritten) or `N other bytes`.
fn history_files(dir: &Path, before: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    snapshot(dir)
        .into_iter()
        .map(|(name, bytes)| {
            let what = if bytes.starts_with(b"-> ") {
                String::from_utf8_lossy(&bytes).into_owned()
            } else if before.get(&name) == Some(&bytes) {
                "old".to_owned()
            } else if name == "dest.3.bin" && is_version(&dir.join(&name), 3) {
                "new".to_owned()
            } else if cfg!(feature = "json") && name == history_manifest() {
                "changed".to_owned()
            } else {
                format!("{} other bytes", bytes.len())
            };
            (name, what)
        })
        .collect()
}

fn history_manifest() -> &'static str {
    #[cfg(feature = "json")]
    return HISTORY_MANIFEST;
    #[cfg(not(feature = "json"))]
    unreachable!("no history kind without json")
}

/// Whether `path` is a complete version `g` of the history kind.
fn is_version(path: &Path, g: u64) -> bool {
    #[cfg(feature = "json")]
    return doc_builder(path).open().is_ok_and(|p| {
        u64::from(p.get().rev) == g
            && *p.get() == hdoc(p.get().rev)
            && p.meta().is_some_and(|m| m.generation == g)
    });
    #[cfg(not(feature = "json"))]
    unreachable!("no history kind without json: {path:?} {g}")
}

/// The generation of a version file's name (`dest.{g}.bin`).
fn version_of(name: &str) -> Option<u64> {
    name.strip_prefix("dest.")?
        .strip_suffix(".bin")?
        .parse()
        .ok()
}

/// What a reader of the history kind finds.
fn history_view(dir: &Path) -> HistoryView {
    let on_disk: Vec<u64> = {
        let mut v: Vec<u64> = common::names(dir)
            .iter()
            .filter_map(|n| version_of(&n.to_string_lossy()))
            .collect();
        v.sort();
        v
    };
    #[cfg(feature = "json")]
    {
        let (opened, versions, manifest) = match history_builder(&dir.join(DEST)).open() {
            Err(e) => (Err(e.to_string()), Err("not opened".into()), String::new()),
            Ok(h) => {
                let g = h.generation();
                let opened = if *h.get() == hdoc(g as u32) {
                    Ok(g)
                } else {
                    Err(format!(
                        "generation {g} holds the value of version {}",
                        h.get().rev
                    ))
                };
                let versions = h
                    .versions()
                    .map(|v| v.iter().map(|i| i.generation).collect())
                    .map_err(|e| e.to_string());
                let manifest = h
                    .raw()
                    .manifest_state()
                    .map_or_else(|e| e.to_string(), |m| m.as_str().to_owned());
                (opened, versions, manifest)
            }
        };
        HistoryView {
            opened,
            versions,
            on_disk,
            manifest,
            next: Err("not run".into()),
        }
    }
    #[cfg(not(feature = "json"))]
    unreachable!("no history kind without json: {on_disk:?}")
}

/// One more commit of the history kind by a fresh handle.
fn next_commit(dir: &Path) -> Result<(u64, Vec<u64>, String, Vec<String>), String> {
    #[cfg(feature = "json")]
    {
        let mut h = history_builder(&dir.join(DEST))
            .open()
            .map_err(|e| e.to_string())?;
        let g = h.generation() + 1;
        h.set(hdoc(g as u32)).map_err(|e| e.to_string())?;
        let versions = h
            .versions()
            .map_err(|e| e.to_string())?
            .iter()
            .map(|v| v.generation)
            .collect();
        let manifest = h
            .raw()
            .manifest_state()
            .map_err(|e| e.to_string())?
            .as_str()
            .to_owned();
        let names = common::names(dir)
            .into_iter()
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        Ok((g, versions, manifest, names))
    }
    #[cfg(not(feature = "json"))]
    unreachable!("no history kind without json: {dir:?}")
}

/// One fault: the `nth` call named `name`, failed with `errno`.
#[derive(Clone, Debug)]
struct Fault {
    call: Call,
    errno: &'static str,
    /// Where the call lies in the recorded save (its index between the markers).
    pos: usize,
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

/// Where the pointer swap lies in the recorded history commit: the index of the
/// `renameat` of the temporary symlink onto the pointer, and of the directory `fsync`
/// that follows it.
#[derive(Clone, Copy, Debug)]
struct Swap {
    rename: usize,
    synced: usize,
}

impl Swap {
    fn find(window: &[Call]) -> Option<Swap> {
        let rename = window.iter().position(|c| {
            is_publish(c) && (c.args.ends_with("/dest.bin\"") || c.args.ends_with(", \"dest.bin\""))
        })?;
        let synced = rename + window[rename..].iter().position(is_sync)?;
        Some(Swap { rename, synced })
    }
}

/// The state a history commit may leave, by where its fault was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Nothing happened: every file as before, the pointer at version 2.
    Old,
    /// The commit happened in full: version 3 current, version 1 removed, the manifest
    /// rewritten and current.
    New,
    /// The pointer names version 3 (the commit happened), but what follows the swap
    /// may not have: version 1 may still be there, the manifest may be the old one.
    Swapped,
}

/// The history kind's invariant after one fault:
/// - no panic; a typed error, or `Ok` where the fault has a fallback (as for every
///   kind) or comes after the pointer swap's directory sync (retention and manifest
///   failures are not the commit's: it has happened);
/// - a fault before the pointer's rename (or in it) fails the commit and leaves every
///   file as it was, byte for byte, pointer included;
/// - a fault in the swap's directory sync is `Op::SyncDir`: version 3 is in place
///   (the pointer names it), only its durability is unconfirmed;
/// - in every case `History::open` works and its value is the version the pointer
///   names (2 or 3); `versions()` lists exactly the version files on disk; no version
///   file lies beyond the pointer; nothing else is in the directory; `sweep` finds
///   nothing; and the next commit by a fresh handle leaves exactly two versions and a
///   current manifest (a stale one is rebuilt, leftover versions removed).
fn check_history(fault: &Fault, swap: Swap, run: &Run) -> Vec<String> {
    let mut problems = Vec::new();
    let label = fault.label(Kind::from_name("history"));
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
    let ok = match (run.code, outcome.split(' ').next()) {
        (Some(EXIT_OK), Some("ok")) => true,
        (Some(EXIT_TYPED_ERROR), Some("err")) => false,
        _ => {
            bad(format!(
                "child exited {:?} with outcome {outcome:?} (a panic or a crash); stderr:\n{}",
                run.code, run.stderr
            ));
            return problems;
        }
    };
    let fallback = may_succeed(&fault.call, fault.errno);
    let expect = if fault.pos <= swap.rename {
        if ok && !fallback {
            bad("the commit returned Ok: the injected error was swallowed".into());
        }
        if ok { Expect::New } else { Expect::Old }
    } else if fault.pos <= swap.synced {
        if ok && !fallback {
            bad("the swap's directory sync failed, yet the commit returned Ok".into());
        }
        if !ok && !outcome.starts_with("err Io SyncDir") {
            bad(format!(
                "a fault in the swap's directory sync gave {outcome:?}, not Op::SyncDir"
            ));
        }
        if ok { Expect::New } else { Expect::Swapped }
    } else {
        if !ok {
            bad(format!(
                "a fault after the pointer swap failed the commit: {outcome:?}"
            ));
        }
        Expect::Swapped
    };
    let mut want: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    want.insert(".dest.bin.lock".into(), vec!["old"]);
    want.insert("dest.2.bin".into(), vec!["old"]);
    match expect {
        Expect::Old => {
            want.insert(DEST.into(), vec!["-> dest.2.bin"]);
            want.insert("dest.1.bin".into(), vec!["old"]);
            want.insert(history_manifest().into(), vec!["old"]);
        }
        Expect::New | Expect::Swapped => {
            want.insert(DEST.into(), vec!["-> dest.3.bin"]);
            want.insert("dest.3.bin".into(), vec!["new"]);
            if expect == Expect::New {
                want.insert(history_manifest().into(), vec!["changed"]);
            } else {
                want.insert("dest.1.bin".into(), vec!["old", "absent"]);
                want.insert(history_manifest().into(), vec!["old", "changed"]);
            }
        }
    }
    let names: std::collections::BTreeSet<&String> = run.files.keys().chain(want.keys()).collect();
    for name in names {
        let got = run.files.get(name).map_or("absent", String::as_str);
        let allowed = want.get(name).map_or(&["absent"][..], Vec::as_slice);
        if !allowed.contains(&got) {
            bad(format!(
                "outcome {outcome:?} ({expect:?}): {name} is {got}, expected one of {allowed:?}; directory {:?}",
                run.files
            ));
        }
    }
    if run.swept != Ok(0) {
        bad(format!("sweep afterwards: {:?}", run.swept));
    }
    bad_history_view(
        run,
        if expect == Expect::Old { 2 } else { 3 },
        expect == Expect::New,
    )
    .into_iter()
    .for_each(&mut bad);
    problems
}

/// What `History::open`, `versions()` and the next commit say, against the pointer's
/// expected generation `latest`.
fn bad_history_view(run: &Run, latest: u64, current_manifest: bool) -> Vec<String> {
    let mut out = Vec::new();
    let Some(h) = &run.history else {
        return vec!["no history view".into()];
    };
    if h.opened != Ok(latest) {
        out.push(format!(
            "History::open gave {:?}, expected generation {latest}",
            h.opened
        ));
    }
    let listed: Vec<u64> = h.on_disk.iter().copied().filter(|g| *g <= latest).collect();
    if h.versions.as_ref() != Ok(&listed) {
        out.push(format!(
            "versions() gave {:?}, the files on disk are {listed:?}",
            h.versions
        ));
    }
    if current_manifest && h.manifest != "current" {
        out.push(format!("the manifest is {}, not current", h.manifest));
    }
    if !["current", "stale", "missing"].contains(&h.manifest.as_str()) {
        out.push(format!("manifest_state() failed: {}", h.manifest));
    }
    let names = |g: u64| {
        let mut v = vec![
            ".dest.bin.lock".to_owned(),
            DEST.to_owned(),
            format!("dest.{}.bin", g - 1),
            format!("dest.{g}.bin"),
            history_manifest().to_owned(),
        ];
        v.sort();
        v
    };
    match &h.next {
        Ok((g, versions, manifest, after)) => {
            if *g != latest + 1
                || *versions != [latest, latest + 1]
                || manifest != "current"
                || *after != names(*g)
            {
                out.push(format!(
                    "the next commit made generation {g}, versions {versions:?}, manifest {manifest}, directory {after:?}"
                ));
            }
        }
        Err(e) => out.push(format!("the next commit failed: {e}")),
    }
    out
}

/// The history kind with the cleanup failing too: the first fault's error; the pointer
/// and every version as before; left over, either one temporary file or symlink (which
/// `sweep` removes) or the unfinished version 3 past the pointer (which `versions()`
/// ignores and the next commit replaces; not a temp, `sweep` leaves it).
fn check_double_history(d: &Double, run: &Run) -> Vec<String> {
    let mut problems = Vec::new();
    let label = format!(
        "{} + unlinkat#{} <- EIO",
        d.first.label(Kind::from_name("history")),
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
    if run.outcome != d.outcome || run.code != Some(EXIT_TYPED_ERROR) {
        bad(format!(
            "outcome {:?} (exit {:?}), expected {:?} as with the first fault alone; stderr:\n{}",
            run.outcome, run.code, d.outcome, run.stderr
        ));
    }
    let mut before: BTreeMap<String, String> = [".dest.bin.lock", "dest.1.bin", "dest.2.bin"]
        .iter()
        .map(|n| (n.to_string(), "old".to_owned()))
        .collect();
    before.insert(DEST.into(), "-> dest.2.bin".into());
    before.insert(history_manifest().into(), "old".into());
    let extra: Vec<(&String, &String)> = run
        .files
        .iter()
        .filter(|(n, w)| before.get(*n) != Some(*w))
        .collect();
    let kept = before.iter().all(|(n, w)| run.files.get(n) == Some(w));
    let temp_left = extra.len() == 1 && common::is_temp(std::ffi::OsStr::new(extra[0].0));
    let version_left = extra.len() == 1 && extra[0].0 == "dest.3.bin";
    // A temp left is removed by the sweep, or already by the `History::open` of the
    // view taken before it (an open removes its history's stale temps); gone either way.
    let swept_right = if temp_left {
        let gone = !run.after_sweep.iter().any(|n| n == extra[0].0);
        gone && matches!(run.swept, Ok(0 | 1))
    } else {
        run.swept == Ok(0)
    };
    if !kept || !(temp_left || version_left) || !swept_right {
        bad(format!(
            "directory holds {:?}, sweep removed {:?}: expected the old history and one temp or dest.3.bin",
            run.files, run.swept
        ));
    }
    bad_history_view(run, 2, false)
        .into_iter()
        .for_each(&mut bad);
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
    /// The history kind: `phase: outcome` -> count.
    phases: BTreeMap<String, usize>,
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
    let swap =
        if kind.is_history() {
            Some(Swap::find(&window).ok_or_else(|| {
                format!("{}: no pointer swap in the recorded commit", kind.name())
            })?)
        } else {
            None
        };
    let mut faults = Vec::new();
    for (pos, c) in window.iter().enumerate() {
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
                pos,
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
                match swap {
                    Some(swap) => {
                        let phase = if fault.pos < swap.rename {
                            "before the swap"
                        } else if fault.pos <= swap.synced {
                            "swap (rename, directory sync)"
                        } else {
                            "after the swap"
                        };
                        *sweep
                            .phases
                            .entry(format!("{phase}: {}", r.outcome))
                            .or_default() += 1;
                        sweep.problems.extend(check_history(fault, swap, r));
                    }
                    None => sweep.problems.extend(check(kind, fault, r)),
                }
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
            Ok(r) if kind.is_history() => {
                sweep.problems.extend(check_double_history(&doubles[i], &r))
            }
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
        for (phase, n) in &sweep.phases {
            common::report(&format!("  {n:4} x {phase}"));
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
