//! One kind swept: the recording run, every fault in turn, the tallies.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;

use crate::cases::Kind;
use crate::check::{Double, Fault, Swap, check, check_double, check_double_history, check_history};
use crate::errnos::{errnos_for, exempt};
use crate::log::{is_publish, save_window};
use crate::run::run;
use crate::{EXIT_OK, WORKERS};

/// Runs `f` on each item on [`WORKERS`] threads; results in any order.
pub fn parallel<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(usize, &T) -> R + Sync,
) -> Vec<(usize, R)> {
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
pub struct Sweep {
    /// Syscalls in the save (recording run).
    pub calls: usize,
    /// Calls faulted, and runs (calls x errnos).
    pub faulted_calls: usize,
    pub runs: usize,
    /// Outcome (`err Io Rename EIO`, `ok`, ...) -> count.
    pub outcomes: BTreeMap<String, usize>,
    /// Not faulted: name -> (count, reason).
    pub exempt: BTreeMap<String, (usize, &'static str)>,
    /// Runs with the cleanup's `unlinkat` failing as well.
    pub double_runs: usize,
    /// The history kind: `phase: outcome` -> count.
    pub phases: BTreeMap<String, usize>,
    pub problems: Vec<String>,
}

/// Records one save of `kind`, then faults each of its syscalls with each errno.
/// `only` restricts the faulted syscalls (for the sloppy writer).
pub fn sweep_kind(kind: Kind, only: Option<&[&str]>) -> Result<Sweep, String> {
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
