//! Reading the strace log of one run: the save window, its syncs and publishes.

use crate::common::strace::Call;
use crate::{BEGIN, END};

/// The calls between the begin and end markers; `None` when a marker is missing.
pub fn save_window(calls: &[Call]) -> Option<&[Call]> {
    let is = |c: &Call, m: &str| c.name.starts_with("open") && c.args.contains(m);
    let begin = calls.iter().position(|c| is(c, BEGIN))?;
    let end = calls.iter().position(|c| is(c, END))?;
    (begin < end).then(|| &calls[begin + 1..end])
}

pub fn is_sync(c: &Call) -> bool {
    matches!(c.name.as_str(), "fsync" | "fdatasync")
}

pub fn is_publish(c: &Call) -> bool {
    matches!(
        c.name.as_str(),
        "rename" | "renameat" | "renameat2" | "link" | "linkat"
    )
}

/// Violations of "a failed fsync is never followed by a rename (or link)".
pub fn rename_after_failed_sync(window: &[Call]) -> Vec<String> {
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
