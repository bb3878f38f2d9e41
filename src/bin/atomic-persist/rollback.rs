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
    Exit status: 0 on success, 1 when there is no such version, it is corrupt, or the \
    history cannot be written (one line on stderr naming the path), 2 on a usage error."
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
