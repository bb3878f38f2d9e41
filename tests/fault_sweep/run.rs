//! Running a child under strace, and what a run leaves on disk.

use std::collections::BTreeMap;
use std::path::Path;

use crate::cases::Kind;
#[cfg(feature = "json")]
use crate::cases::{HISTORY_MANIFEST, doc_builder, hdoc, history_builder};
use crate::common;
use crate::common::strace::{Call, parse as parse_log};
use crate::{DEST, ROLE};

pub struct Run {
    /// The child's `outcome ...` line, without the word `outcome`.
    pub outcome: String,
    pub code: Option<i32>,
    pub calls: Vec<Call>,
    /// What the directory holds afterwards: name -> `old`, `new`, or `N other bytes`.
    pub files: BTreeMap<String, String>,
    /// What `atomic_persist::sweep` then removed, and what the directory held after.
    pub swept: Result<usize, String>,
    pub after_sweep: Vec<String>,
    pub stderr: String,
    /// The history kind: what a reader of the history finds afterwards.
    pub history: Option<HistoryView>,
}

/// A history after one faulted commit, as its readers and its next writer find it.
#[derive(Debug)]
pub struct HistoryView {
    /// `History::open`: the generation the pointer names, if its value is that version's.
    pub opened: Result<u64, String>,
    /// `versions()` of the opened history.
    pub versions: Result<Vec<u64>, String>,
    /// The version files in the directory (each name `dest.{g}.bin`).
    pub on_disk: Vec<u64>,
    /// `manifest_state()`.
    pub manifest: String,
    /// After the sweep, one more commit (`set` of the next version) by a fresh handle:
    /// its `versions()`, manifest state and the directory's names afterwards.
    pub next: Result<(u64, Vec<u64>, String, Vec<String>), String>,
}

/// The writer lock's sidecar `.{DEST}.lock`, which an enveloped commit creates empty and
/// which is never deleted by design (see the `lock` module): not debris, not a temp.
pub fn is_lock_sidecar(name: &std::ffi::OsStr) -> bool {
    name.to_str() == Some(&format!(".{DEST}.lock"))
}

/// Runs one save of `kind` in a fresh directory under `root`, with the injections
/// `inject` (`NAME:error=ERRNO:when=N` each), then sweeps the directory.
pub fn run(kind: Kind, root: &Path, id: usize, inject: &[String]) -> Result<Run, String> {
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
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
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
pub fn history_files(dir: &Path, before: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
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

pub fn history_manifest() -> &'static str {
    #[cfg(feature = "json")]
    return HISTORY_MANIFEST;
    #[cfg(not(feature = "json"))]
    unreachable!("no history kind without json")
}

/// Whether `path` is a complete version `g` of the history kind.
pub fn is_version(path: &Path, g: u64) -> bool {
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
pub fn version_of(name: &str) -> Option<u64> {
    name.strip_prefix("dest.")?
        .strip_suffix(".bin")?
        .parse()
        .ok()
}

/// What a reader of the history kind finds.
pub fn history_view(dir: &Path) -> HistoryView {
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
pub fn next_commit(dir: &Path) -> Result<(u64, Vec<u64>, String, Vec<String>), String> {
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
