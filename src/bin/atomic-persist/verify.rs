//! `atomic-persist verify PATH...`: check envelopes and checksums.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use atomic_persist::{AnyFormat, CorruptKind, Error};

/// Check that files are intact: envelope complete and checksum right.
///
/// One line per file on standard output: `PATH: ok (generation G)`, `PATH: plain (no
/// envelope)` or `PATH: corrupt: REASON`. Exit status 0 when nothing is corrupt, 1 when a
/// file is corrupt, 2 when a path cannot be checked (missing, unreadable, unknown format)
/// and nothing is corrupt.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Check that files are intact: envelope complete and checksum \
    right.\n\n\
    Each PATH is a file or a directory. A directory is checked one level deep: every \
    file in it with a known extension (.json, .toml, .yaml, .yml, .ron, .bin); hidden files (temporary and \
    lock files), other files and symlinks (a history's latest pointer) are skipped. A \
    file with a known extension that does not parse as its format (JSON, TOML, YAML, RON) is \
    corrupt, and so is a history's version file without an envelope. A file named on \
    the command line is always checked.\n\n\
    Output, one line per file checked, on standard output:\n  \
    PATH: ok (generation G)\n  \
    PATH: plain (no envelope)\n  \
    PATH: corrupt: REASON\n\
    and for a directory, the plain files among them as `PATH: plain (no envelope)`, \
    then a last line `DIR: checked N files: K ok, P plain, C corrupt`.\n\
    Paths that cannot be checked give one line on standard error: \
    `atomic-persist: REASON` naming the path.\n\n\
    Exit status: 0 when nothing is corrupt, 1 when any file is corrupt, 2 when a path \
    could not be checked (missing, unreadable, unknown format) and none is corrupt, \
    or on a usage error."
)]
pub struct Args {
    /// Files or directories to check.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// How one path fared.
#[derive(Default)]
struct Outcome {
    corrupt: bool,
    error: bool,
}

/// Runs `atomic-persist verify`; it chooses its own exit status.
pub fn run(args: Args) -> ExitCode {
    let mut outcome = Outcome::default();
    let mut out = io::stdout().lock();
    for path in &args.paths {
        let result = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => verify_dir(path, &mut out, &mut outcome),
            Ok(_) => verify_file(path, &mut out, &mut outcome),
            Err(e) => Err(crate::inspect::io_failure(path, e).0),
        };
        if let Err(reason) = result {
            outcome.error = true;
            let _ = writeln!(io::stderr(), "atomic-persist: {reason}");
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(2);
    }
    if outcome.corrupt {
        ExitCode::from(1)
    } else if outcome.error {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn verify_dir(dir: &Path, out: &mut impl io::Write, outcome: &mut Outcome) -> Result<(), String> {
    let checked = atomic_persist::envelope::verify_dir(dir).map_err(|e| e.to_string())?;
    let (mut ok, mut plain, mut corrupt) = (0, 0, 0);
    for (path, result) in &checked {
        match result {
            Ok(Some(_)) => ok += 1,
            Ok(None) => plain += 1,
            Err(Error::Corrupt { .. }) => corrupt += 1,
            Err(_) => {}
        }
        if let Err(reason) = report(path, result, out, outcome) {
            outcome.error = true;
            let _ = writeln!(io::stderr(), "atomic-persist: {reason}");
        }
    }
    let n = checked.len();
    let files = if n == 1 { "file" } else { "files" };
    writeln!(
        out,
        "{}: checked {n} {files}: {ok} ok, {plain} plain, {corrupt} corrupt",
        dir.display()
    )
    .map_err(|e| format!("cannot write standard output: {e}"))
}

/// Checks one file named on the command line.
fn verify_file(path: &Path, out: &mut impl io::Write, outcome: &mut Outcome) -> Result<(), String> {
    report(path, &atomic_persist::envelope::verify(path), out, outcome)
}

/// Where a checksum mismatch may be a hand edit (a text format), how to accept it.
fn seal_hint(path: &Path, kind: &CorruptKind) -> String {
    let text = AnyFormat::from_path(path).is_ok_and(|f| f != AnyFormat::Binary);
    match (kind, text) {
        (CorruptKind::Checksum, true) => format!(
            "; if the edit was meant, `atomic-persist seal {}` accepts it",
            path.display()
        ),
        _ => String::new(),
    }
}

/// Prints the line for one checked file.
fn report(
    path: &Path,
    result: &atomic_persist::Result<Option<atomic_persist::envelope::Meta>>,
    out: &mut impl io::Write,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let line = match result {
        Ok(Some(meta)) => format!("{}: ok (generation {})", path.display(), meta.generation),
        Ok(None) => format!("{}: plain (no envelope)", path.display()),
        Err(Error::Corrupt { reason, kind, .. }) => {
            outcome.corrupt = true;
            format!(
                "{}: corrupt: {reason}{}",
                path.display(),
                seal_hint(path, kind)
            )
        }
        Err(e) => return Err(e.to_string()),
    };
    writeln!(out, "{line}").map_err(|e| format!("cannot write standard output: {e}"))
}
