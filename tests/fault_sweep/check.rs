//! The checks of one faulted run: single saves, the history commit, double faults.

use std::collections::BTreeMap;

use crate::cases::Kind;
use crate::common;
use crate::common::strace::Call;
use crate::errnos::may_succeed;
use crate::log::{is_publish, is_sync, rename_after_failed_sync, save_window};
use crate::run::{Run, history_manifest};
use crate::{DEST, EXIT_OK, EXIT_TYPED_ERROR, EXIT_WRITE_IO_ERROR};

/// One fault: the `nth` call named `name`, failed with `errno`.
#[derive(Clone, Debug)]
pub struct Fault {
    pub call: Call,
    pub errno: &'static str,
    /// Where the call lies in the recorded save (its index between the markers).
    pub pos: usize,
}

impl Fault {
    pub fn spec(&self) -> String {
        format!(
            "{}:error={}:when={}",
            self.call.name, self.errno, self.call.nth
        )
    }
    pub fn label(&self, kind: Kind) -> String {
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

pub fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Everything wrong with one injected run.
pub fn check(kind: Kind, fault: &Fault, run: &Run) -> Vec<String> {
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
pub struct Swap {
    pub rename: usize,
    pub synced: usize,
}

impl Swap {
    pub fn find(window: &[Call]) -> Option<Swap> {
        let rename = window.iter().position(|c| {
            is_publish(c) && (c.args.ends_with("/dest.bin\"") || c.args.ends_with(", \"dest.bin\""))
        })?;
        let synced = rename + window[rename..].iter().position(is_sync)?;
        Some(Swap { rename, synced })
    }
}

/// The state a history commit may leave, by where its fault was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
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
pub fn check_history(fault: &Fault, swap: Swap, run: &Run) -> Vec<String> {
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
pub fn bad_history_view(run: &Run, latest: u64, current_manifest: bool) -> Vec<String> {
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
pub fn check_double_history(d: &Double, run: &Run) -> Vec<String> {
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
pub struct Double {
    pub first: Fault,
    pub cleanup: Call,
    /// The outcome of the first fault alone.
    pub outcome: String,
}

impl Double {
    pub fn specs(&self) -> Vec<String> {
        vec![
            self.first.spec(),
            format!("unlinkat:error=EIO:when={}", self.cleanup.nth),
        ]
    }
}

/// With the cleanup failing as well: the same error as with the first fault alone (not
/// the cleanup's), the destination as it was, one temporary file left, which `sweep`
/// then removes.
pub fn check_double(kind: Kind, d: &Double, run: &Run) -> Vec<String> {
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
