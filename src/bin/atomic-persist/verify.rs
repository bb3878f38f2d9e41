//! `atomic-persist verify PATH...`: check envelopes and checksums.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use atomic_persist::Error;

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
    file in it with a known extension (.json, .toml, .bin) that has an envelope; plain \
    files, other files, hidden files (temporary and lock files) and symlinks (a \
    history's latest pointer) are skipped there. A file named on the command line is \
    always checked.\n\n\
    Output, one line per file checked, on standard output:\n  \
    PATH: ok (generation G)\n  \
    PATH: plain (no envelope)\n  \
    PATH: corrupt: REASON\n\
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
    for (path, result) in checked {
        if let Err(reason) = report(&path, result, false, out, outcome) {
            outcome.error = true;
            let _ = writeln!(io::stderr(), "atomic-persist: {reason}");
        }
    }
    Ok(())
}

/// Checks one file named on the command line.
fn verify_file(path: &Path, out: &mut impl io::Write, outcome: &mut Outcome) -> Result<(), String> {
    report(
        path,
        atomic_persist::envelope::verify(path),
        true,
        out,
        outcome,
    )
}

/// Prints the line for one checked file; `named` files are reported even when plain.
fn report(
    path: &Path,
    result: atomic_persist::Result<Option<atomic_persist::envelope::Meta>>,
    named: bool,
    out: &mut impl io::Write,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let line = match result {
        Ok(Some(meta)) => format!("{}: ok (generation {})", path.display(), meta.generation),
        Ok(None) if named => format!("{}: plain (no envelope)", path.display()),
        Ok(None) => return Ok(()),
        Err(Error::Corrupt { reason, .. }) => {
            outcome.corrupt = true;
            format!("{}: corrupt: {reason}", path.display())
        }
        Err(e) => return Err(e.to_string()),
    };
    writeln!(out, "{line}").map_err(|e| format!("cannot write standard output: {e}"))
}
