//! `atomic-persist`: save files from the shell so that they are never half-written.
//!
//! Built with the `cli` feature: `cargo install atomic-persist --features cli`.
//!
//! # Subcommands
//!
//! ```text
//! atomic-persist write FILE [--durability full|data|none] [--mode OCTAL] [--no-clobber] [--named-temp]
//! atomic-persist sweep DIR
//! ```
//!
//! - `write` copies standard input to `FILE` atomically. `FILE` changes only when standard
//!   input reached end-of-file and every step of the save succeeded; otherwise it keeps its
//!   old contents byte for byte, or stays absent. Prints nothing on success. SIGINT,
//!   SIGTERM, SIGHUP and SIGPIPE before the commit leave `FILE` untouched and no
//!   temporary file (exit status 128 + N); a signal during the commit waits for it to end.
//!   Only SIGKILL can leave a temporary file, and only with `--named-temp` or where the
//!   filesystem has no anonymous temporary files (Linux `O_TMPFILE`): `sweep` removes it.
//! - `sweep` removes the temporary files (`.{name}.{random}.tmp`) that writers killed
//!   outright left in `DIR`, never one a live writer still owns, and prints exactly one
//!   line on standard output: `removed N temporary files` (`removed 1 temporary file`
//!   for one).
//!
//! # Exit status
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the operation failed; one line `atomic-persist: <reason>` on standard error, naming the path |
//! | 2 | bad command line (clap's usage error, with usage on standard error) |
//! | 128 + N | `write` was ended by signal N before its commit began: `FILE` untouched, no temporary file left |

use std::fmt;
use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cleanup;
mod sweep;
mod write;

/// Save files so that they are never half-written.
#[derive(Debug, Parser)]
#[command(
    name = "atomic-persist",
    version,
    about = "Save files so that they are never half-written",
    long_about = "Save files so that they are never half-written.\n\n\
        Every save goes through a temporary file in the destination's directory \
        (created with O_EXCL and the final mode), is flushed to disk, and is renamed \
        over the destination: readers see the old file or the new one, never a mix.",
    after_help = "Exit status: 0 on success, 1 on failure (one line on stderr), \
        2 on a usage error, 128+N when `write` is ended by signal N."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Write(write::Args),
    Sweep(sweep::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Write(args) => write::run(args),
        Command::Sweep(args) => sweep::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Nothing more can be done if stderr itself is gone.
            let _ = writeln!(io::stderr(), "atomic-persist: {failure}");
            ExitCode::FAILURE
        }
    }
}

/// Why a subcommand failed: shown as one line on standard error, then exit status 1.
#[derive(Debug)]
struct Failure(String);

impl Failure {
    /// Standard output could not be written (for example a closed pipe).
    fn stdout(e: io::Error) -> Failure {
        Failure(format!("cannot write standard output: {e}"))
    }
}

impl From<atomic_persist::Error> for Failure {
    fn from(e: atomic_persist::Error) -> Failure {
        Failure(e.to_string())
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
