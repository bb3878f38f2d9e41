//! `atomic-persist sweep DIR`: remove the temporary files crashed writers left.

use std::io::{self, Write as _};
use std::path::PathBuf;

use crate::Failure;

/// Remove stale temporary files left in DIR by killed writers.
///
/// Prints one line, `removed N temporary files` (`removed 1 temporary file` for one),
/// and on standard error a line `skipped PATH: WHY` for each temporary-looking entry it
/// left (another user's file in a sticky directory, a FIFO named like a temporary file).
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Remove stale temporary files left in DIR by killed writers.\n\n\
        Only files named like this crate's temporary files (.NAME.XXXXXXXXXXXX.tmp) are \
        considered, and one that a live writer still holds is never removed. Nothing is \
        followed and nothing blocks: links other than a history's pointer swap, FIFOs and \
        devices are left alone. Prints one line on standard output: `removed N temporary \
        files` (`removed 1 temporary file` for one); each entry it left because it may \
        not remove it or could not look at it safely is a line `skipped: WHY` on standard \
        error, and the sweep goes on."
)]
pub struct Args {
    /// The directory to clean (not recursive).
    dir: PathBuf,
}

/// Runs `atomic-persist sweep`.
pub fn run(args: Args) -> Result<(), Failure> {
    if args.dir.exists() && !args.dir.is_dir() {
        // Clearer than the `ENOTDIR` opening it as a directory would give.
        let parent = match args.dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
            _ => ".".to_owned(),
        };
        return Err(Failure(format!(
            "{} is not a directory: sweep cleans the directory that holds the files \
             (atomic-persist sweep {parent})",
            args.dir.display()
        )));
    }
    let swept = atomic_persist::sweep(&args.dir)?;
    for skipped in &swept.skipped {
        let _ = writeln!(io::stderr(), "skipped: {skipped}");
    }
    writeln!(io::stdout(), "{}", summary(swept.count())).map_err(Failure::stdout)
}

/// The line `sweep` prints.
fn summary(removed: usize) -> String {
    let plural = if removed == 1 { "" } else { "s" };
    format!("removed {removed} temporary file{plural}")
}

#[cfg(test)]
mod tests {
    use super::summary;

    #[test]
    fn summary_counts_in_english() {
        assert_eq!(summary(0), "removed 0 temporary files");
        assert_eq!(summary(1), "removed 1 temporary file");
        assert_eq!(summary(3), "removed 3 temporary files");
    }
}
