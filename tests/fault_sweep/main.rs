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
//!
//! Modules: `cases` (the saves), `child` (the traced process), `log` (reading its
//! trace), `errnos` (what each call is failed with), `run` (a child under strace and
//! what it left), `check` (the verdict on one run), `sweep` (one kind, every fault).

#[path = "../common/mod.rs"]
mod common;

mod cases;
mod check;
mod child;
mod errnos;
mod log;
mod run;
mod sweep;

use cases::{Kind, kinds};
use child::child_main;
use common::strace::parse as parse_log;
use log::{rename_after_failed_sync, save_window};
use sweep::sweep_kind;

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
