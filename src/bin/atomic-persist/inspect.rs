//! `atomic-persist inspect FILE [--json]`: what a file is, and what its envelope says.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use atomic_persist::{AnyFormat, Error, Format as _, Meta};

use crate::Failure;

/// Show a file's format, size and envelope meta.
///
/// Text output, one `key: value` per line, in this order: `path`, `format`, `size`,
/// `points_to` (only for a symlink, such as a history's `latest` pointer), `envelope`
/// (`1`, `none` or `corrupt: REASON`), then for an intact envelope `generation`,
/// `written_at`, `run_id`, `schema_version`, `checksum`.
#[derive(Debug, clap::Args)]
#[command(long_about = "Show a file's format, size and envelope meta.\n\n\
    Text output is one `key: value` per line: path, format (json, toml, yaml, ron, binary or unknown), \
    size (bytes), points_to (only for a symlink, such as a history's latest pointer), \
    envelope (`1`, `none` for a plain file, or `corrupt: REASON`), then for an intact \
    envelope: generation, written_at (RFC 3339 UTC), run_id, schema_version, checksum \
    (crc32:8 hex digits).\n\n\
    A snapshot's pointer (a link to a generation directory) shows path, points_to, \
    snapshot (its current generation) and files (how many); --json: {\"path\", \
    \"points_to\", \"snapshot\": {\"generation\", \"files\": [{\"name\", \"size\"}]}}.\n\n\
    --json prints one object: {\"path\", \"format\" (null when unknown), \"size\", \
    \"points_to\" (null unless a symlink; a name that is not UTF-8 also comes as \
    \"path_bytes\" / \"points_to_bytes\", an array of its bytes), \"envelope\" (null for a plain file, else \
    {\"version\", \"generation\", \"written_at\", \"run_id\", \"schema_version\", \
    \"checksum\"}), \"corrupt\" (null, or the reason)}.\n\n\
    Exit status: 0 when the file is plain or intact, 1 when it is corrupt or cannot be \
    read (one line on stderr naming the path), 2 on a usage error.")]
pub struct Args {
    /// The file to inspect (a symlink is followed).
    file: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `atomic-persist inspect`.
pub fn run(args: Args) -> Result<(), Failure> {
    let path = &args.file;
    let metadata = std::fs::metadata(path).map_err(|e| io_failure(path, e))?;
    if metadata.is_dir() && path.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
        return snapshot(path, args.json);
    }
    if metadata.is_dir() {
        return Err(Failure(format!("{} is a directory", path.display())));
    }
    let format = AnyFormat::from_path(path).ok();
    let points_to = std::fs::read_link(path).ok();
    let (meta, corrupt) = match format {
        Some(_) => match atomic_persist::envelope::verify(path) {
            Ok(meta) => (meta, None),
            Err(Error::Corrupt { reason, .. }) => (None, Some(reason)),
            Err(e) => return Err(e.into()),
        },
        None => (None, None),
    };
    let format_name = format.map(|f| f.name());
    let out = if args.json {
        let envelope = meta.as_ref().map(meta_json);
        let mut value = serde_json::json!({
            "format": format_name,
            "size": metadata.len(),
            "envelope": envelope,
            "corrupt": corrupt,
        });
        crate::json::put_name(&mut value, "path", Some(path.as_os_str()));
        crate::json::put_name(
            &mut value,
            "points_to",
            points_to.as_deref().map(|p| p.as_os_str()),
        );
        format!("{value}\n")
    } else {
        let mut s = format!(
            "path: {}\nformat: {}\nsize: {}\n",
            path.display(),
            format_name.unwrap_or("unknown"),
            metadata.len()
        );
        if let Some(p) = &points_to {
            s += &format!("points_to: {}\n", p.display());
        }
        match (&meta, &corrupt) {
            (Some(m), _) => s += &meta_text(m),
            (None, Some(reason)) => s += &format!("envelope: corrupt: {reason}\n"),
            (None, None) => s += "envelope: none\n",
        }
        s
    };
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(Failure::stdout)?;
    match corrupt {
        Some(reason) => Err(Failure(format!("{} is corrupt: {reason}", path.display()))),
        None => Ok(()),
    }
}

/// `inspect` of a snapshot's pointer: its current generation and files.
fn snapshot(path: &Path, json: bool) -> Result<(), Failure> {
    let view = atomic_persist::Snapshot::builder(path)
        .open_or_create()?
        .current()?;
    let files = crate::history::generation_files(view.path())?;
    let points_to = std::fs::read_link(path).map_err(|e| io_failure(path, e))?;
    let out = if json {
        let files: Vec<_> = (files.iter())
            .map(|(n, size)| serde_json::json!({"name": n, "size": size}))
            .collect();
        let mut value = serde_json::json!({
            "snapshot": {"generation": view.generation(), "files": files},
        });
        crate::json::put_name(&mut value, "path", Some(path.as_os_str()));
        crate::json::put_name(&mut value, "points_to", Some(points_to.as_os_str()));
        format!("{value}\n")
    } else {
        format!(
            "path: {}\npoints_to: {}\nsnapshot: generation {}\nfiles: {}\n",
            path.display(),
            points_to.display(),
            view.generation(),
            files.len()
        )
    };
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(Failure::stdout)
}

/// The envelope lines of the text output.
fn meta_text(m: &Meta) -> String {
    format!(
        "envelope: {}\ngeneration: {}\nwritten_at: {}\nrun_id: {}\nschema_version: {}\n\
         checksum: crc32:{:08x}\n",
        atomic_persist::envelope::ENVELOPE_VERSION,
        m.generation,
        m.written_at,
        m.run_id,
        m.schema_version,
        m.checksum
    )
}

/// The envelope object of the JSON output.
fn meta_json(m: &Meta) -> serde_json::Value {
    serde_json::json!({
        "version": atomic_persist::envelope::ENVELOPE_VERSION,
        "generation": m.generation,
        "written_at": m.written_at.to_string(),
        "run_id": m.run_id.to_string(),
        "schema_version": m.schema_version,
        "checksum": format!("crc32:{:08x}", m.checksum),
    })
}

/// An I/O error on `path`, worded like the library's errors.
pub fn io_failure(path: &Path, e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::NotFound {
        Failure(format!("{} does not exist", path.display()))
    } else {
        Failure(format!("cannot read {}: {e}", path.display()))
    }
}
