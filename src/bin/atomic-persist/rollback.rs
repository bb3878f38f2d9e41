//! `atomic-persist rollback FILE GENERATION`: make an old version the newest.

use std::io::{self, Write as _};
use std::path::PathBuf;

use atomic_persist::history::RawHistory;

use crate::Failure;

/// Make version GENERATION's contents the newest version of a history.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Make version GENERATION's contents the newest version of a \
    history. History is append-only: the old contents are written again as a new \
    generation (under the writer lock, durably) and the latest pointer is swapped to \
    it; no version is removed.\n\n\
    Prints one line: `FILE: generation G rolled back as generation N (VERSION_FILE)`.\n\n\
    Exit status: 0 on success, 1 when there is no such version (the message says \
    whether it was pruned or not written yet, and which generations are kept), it is \
    corrupt, or the history cannot be written (one line on stderr naming the path), 2 on a usage error."
)]
pub struct Args {
    /// The history's latest pointer.
    file: PathBuf,
    /// The generation to restore.
    generation: u64,
}

/// Runs `atomic-persist rollback`.
pub fn run(args: Args) -> Result<(), Failure> {
    let raw = RawHistory::new(&args.file)?;
    if raw.latest_generation()?.is_none() {
        return Err(Failure(format!(
            "{} is not a history (no latest pointer)",
            args.file.display()
        )));
    }
    if let Some(why) = missing(&raw, args.generation)? {
        return Err(Failure(format!("{}: {why}", args.file.display())));
    }
    let info = raw.rollback(args.generation)?;
    writeln!(
        io::stdout(),
        "{}: generation {} rolled back as generation {} ({})",
        args.file.display(),
        args.generation,
        info.generation,
        info.path.display()
    )
    .map_err(Failure::stdout)
}

/// Why `generation` cannot be rolled back to when no file of it is listed (never
/// written, not yet written, or pruned); `None` when it is listed, intact or damaged,
/// so that the library reports a damaged one as corrupt.
fn missing(raw: &RawHistory, generation: u64) -> Result<Option<String>, Failure> {
    let versions = raw.versions()?;
    let listed = |g| versions.iter().any(|v| v.generation == g);
    if listed(generation) || raw.damaged()?.iter().any(|(g, _)| *g == generation) {
        return Ok(None);
    }
    let (Some(oldest), Some(newest)) = (versions.first(), versions.last()) else {
        return Ok(None);
    };
    let kept = format!(
        "the history keeps generations {} to {}",
        oldest.generation, newest.generation
    );
    Ok(Some(if generation == 0 {
        format!("there is no generation 0: generations start at 1 ({kept})")
    } else if generation > newest.generation {
        format!("generation {generation} has not been written yet ({kept})")
    } else {
        format!("generation {generation} was pruned ({kept})")
    }))
}
