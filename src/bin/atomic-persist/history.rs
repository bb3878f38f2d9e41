//! `atomic-persist history FILE [--json]`: the versions of a history.

use std::io::{self, Write as _};
use std::path::PathBuf;

use atomic_persist::Snapshot;
use atomic_persist::history::RawHistory;

use crate::Failure;

/// List the versions of a history, oldest first.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "List the versions of a history (see History in the library), \
    oldest first. FILE is the history's latest pointer, such as state.json beside \
    state.1.json, state.2.json, ...\n\n\
    Text output: a header line, then one line per version with four columns separated \
    by two or more spaces: GENERATION, WRITTEN_AT (RFC 3339 UTC), RUN_ID, SIZE (bytes), \
    and `latest` after the version the pointer names. A version file that is not an \
    intact version (damaged, not enveloped, not a regular file) is a line \
    `GENERATION  damaged: REASON` in its place.\n\n\
    --json prints one object: {\"path\", \"latest\" (generation), \"manifest\" (\"current\", \
    \"missing\" or \"stale\": the listing is rebuilt from the version files when the \
    manifest is not current), \"versions\": [{\"generation\", \"file\", \"written_at\", \
    \"run_id\", \"schema_version\", \"size\", \"checksum\"}], \"damaged\": [{\"generation\", \
    \"file\", \"reason\"}]}. A name that is not UTF-8 also comes as \"path_bytes\" or \
    \"file_bytes\", an array of its bytes.\n\n\
    FILE may also be a snapshot's pointer (see Snapshot in the library: ckpt beside \
    ckpt.1/, ckpt.2/, ...): then one line per generation kept, GENERATION, FILES (how \
    many) and SIZE (bytes in all), with `latest` after the current one; --json prints \
    {\"path\", \"kind\": \"snapshot\", \"latest\", \"generations\": [{\"generation\", \
    \"files\": [{\"name\", \"size\"}]}]}.\n\n\
    Exit status: 0 on success, 1 when FILE is not a history (missing, a plain file, a directory) or \
    cannot be read (one line on stderr naming the path), 2 on a usage error."
)]
pub struct Args {
    /// The history's latest pointer.
    file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `atomic-persist history`.
pub fn run(args: Args) -> Result<(), Failure> {
    let path = &args.file;
    // A link to a directory is a snapshot's pointer.
    if path.symlink_metadata().is_ok_and(|m| m.is_symlink()) && path.is_dir() {
        return snapshot(path, args.json);
    }
    if path.is_dir() {
        // Said before the library's "no extension" complaint, which would mislead here.
        return Err(Failure(format!(
            "{} is a directory: history takes a history's latest pointer, such as {}",
            path.display(),
            path.join("state.json").display()
        )));
    }
    let raw = RawHistory::new(path)?;
    let Some(latest) = raw.latest_generation()? else {
        return Err(if path.symlink_metadata().is_ok() {
            Failure(format!(
                "{} is not a history: it is a plain file, not a latest pointer",
                path.display()
            ))
        } else {
            Failure(format!("{} does not exist", path.display()))
        });
    };
    let versions = raw.versions()?;
    let manifest = raw.manifest_state()?;
    let damaged = raw.damaged()?;
    let out = if args.json {
        let versions: Vec<_> = versions
            .iter()
            .map(|v| {
                let mut o = serde_json::json!({
                    "generation": v.generation,
                    "written_at": v.written_at.to_string(),
                    "run_id": v.run_id.to_string(),
                    "schema_version": v.schema_version,
                    "size": v.size,
                    "checksum": format!("crc32:{:08x}", v.checksum),
                });
                crate::json::put_name(&mut o, "file", v.path.file_name());
                o
            })
            .collect();
        let damaged: Vec<_> = damaged
            .iter()
            .map(|(g, e)| {
                let mut o = serde_json::json!({
                    "generation": g,
                    "reason": e.to_string(),
                });
                crate::json::put_name(&mut o, "file", e.path().file_name());
                o
            })
            .collect();
        let mut value = serde_json::json!({
            "latest": latest,
            "manifest": manifest.as_str(),
            "versions": versions,
            "damaged": damaged,
        });
        crate::json::put_name(&mut value, "path", Some(path.as_os_str()));
        format!("{value}\n")
    } else {
        let mut s = format!(
            "{:>10}  {:<30}  {:<36}  {:>10}\n",
            "GENERATION", "WRITTEN_AT", "RUN_ID", "SIZE"
        );
        // Intact and damaged versions, in generation order.
        let mut rows: Vec<(u64, String)> = versions
            .iter()
            .map(|v| {
                let mark = if v.generation == latest {
                    "  latest"
                } else {
                    ""
                };
                let line = format!(
                    "{:>10}  {:<30}  {:<36}  {:>10}{mark}\n",
                    v.generation,
                    v.written_at.to_string(),
                    v.run_id.to_string(),
                    v.size
                );
                (v.generation, line)
            })
            .collect();
        rows.extend(
            damaged
                .iter()
                .map(|(g, e)| (*g, format!("{g:>10}  damaged: {e}\n"))),
        );
        rows.sort_by_key(|(g, _)| *g);
        for (_, line) in rows {
            s += &line;
        }
        s
    };
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(Failure::stdout)
}

/// One generation of a snapshot: its files' names and sizes.
pub(crate) fn generation_files(dir: &std::path::Path) -> Result<Vec<(String, u64)>, Failure> {
    let failure = |e: io::Error| crate::inspect::io_failure(dir, e);
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failure)? {
        let entry = entry.map_err(failure)?;
        let size = entry.metadata().map_err(failure)?.len();
        files.push((entry.file_name().to_string_lossy().into_owned(), size));
    }
    files.sort();
    Ok(files)
}

/// `history` of a snapshot's pointer: the generations kept, oldest first.
fn snapshot(path: &std::path::Path, json: bool) -> Result<(), Failure> {
    let snap = Snapshot::builder(path).open_or_create()?;
    let latest = snap.latest_generation()?.unwrap_or(0);
    let mut rows = Vec::new();
    for g in snap.generations()? {
        rows.push((g, generation_files(&snap.generation_path(g))?));
    }
    let out = if json {
        let generations: Vec<_> = rows
            .iter()
            .map(|(g, files)| {
                let files: Vec<_> = files
                    .iter()
                    .map(|(n, size)| serde_json::json!({"name": n, "size": size}))
                    .collect();
                serde_json::json!({"generation": g, "files": files})
            })
            .collect();
        let mut value = serde_json::json!({
            "kind": "snapshot",
            "latest": latest,
            "generations": generations,
        });
        crate::json::put_name(&mut value, "path", Some(path.as_os_str()));
        format!("{value}\n")
    } else {
        let mut s = format!("{:>10}  {:>6}  {:>12}\n", "GENERATION", "FILES", "SIZE");
        for (g, files) in &rows {
            let size: u64 = files.iter().map(|(_, n)| n).sum();
            let mark = if *g == latest { "  latest" } else { "" };
            s += &format!("{g:>10}  {:>6}  {size:>12}{mark}\n", files.len());
        }
        s
    };
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(Failure::stdout)
}
