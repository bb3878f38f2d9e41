//! `atomic-persist`: save files from the shell so that they are never half-written.
//!
//! Built with the `cli` feature: `cargo install atomic-persist --features cli`.
//!
//! # Subcommands
//!
//! ```text
//! atomic-persist write FILE [--durability full|data|none] [--mode OCTAL] [--no-clobber] [--named-temp]
//! atomic-persist sweep DIR
//! atomic-persist inspect FILE [--json]
//! atomic-persist verify FILE|DIR...
//! atomic-persist history FILE [--json]
//! atomic-persist rollback FILE GENERATION
//! atomic-persist seal FILE
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
//! - `inspect` prints one `key: value` per line: `path`, `format` (`json`, `toml`, `bin`
//!   or `unknown`), `size`, `points_to` (only for a symlink), `envelope` (`1`, `none`, or
//!   `corrupt: REASON`), then for an intact envelope `generation`, `written_at` (RFC 3339
//!   UTC), `run_id`, `schema_version`, `checksum` (`crc32:` and 8 hex digits). With
//!   `--json`: one object `{"path", "format", "size", "points_to", "envelope": null |
//!   {"version", "generation", "written_at", "run_id", "schema_version", "checksum"},
//!   "corrupt": null | REASON}`. A corrupt file exits 1 after printing.
//! - `verify` checks each FILE, and each enveloped file directly in each DIR (hidden
//!   files, symlinks, plain files and unknown extensions are skipped there), printing
//!   one line per file: `PATH: ok (generation G)`, `PATH: plain (no envelope)` (named
//!   files only) or `PATH: corrupt: REASON`. Its own exit status: **0** nothing corrupt,
//!   **1** a file is corrupt, **2** a path could not be checked (missing, unreadable,
//!   unknown format; one line on standard error) and none is corrupt, or a usage error.
//! - `history` lists a history's versions (FILE is its `latest` pointer) oldest first:
//!   a header `GENERATION  WRITTEN_AT  RUN_ID  SIZE`, then one line per version in those
//!   columns (separated by two or more spaces), `latest` after the current one. With
//!   `--json`: `{"path", "latest", "manifest": "current"|"missing"|"stale", "versions":
//!   [{"generation", "file", "written_at", "run_id", "schema_version", "size",
//!   "checksum"}]}`.
//! - `rollback` writes version GENERATION's contents again as a new generation and
//!   points `latest` at it (history is append-only; nothing is removed), printing
//!   `FILE: generation G rolled back as generation N (VERSION_FILE)`.
//! - `seal` accepts a hand edit of an enveloped JSON or TOML file: when the checksum does
//!   not match but the envelope is whole and the value parses, it writes the file again
//!   with the edited text byte for byte, a new checksum and the next generation, printing
//!   `FILE: sealed as generation N (was G)` (or `FILE: intact (generation G), nothing to
//!   seal`). A plain file, a broken envelope, a value that does not parse and a binary
//!   file exit 1.
//!
//! # Exit status
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the operation failed; one line `atomic-persist: <reason>` on standard error, naming the path (`verify`: a file is corrupt) |
//! | 2 | bad command line (clap's usage error, with usage on standard error); `verify`: a path could not be checked |
//! | 128 + N | `write` was ended by signal N before its commit began: `FILE` untouched, no temporary file left |

use std::fmt;
use std::io::{self, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cleanup;
mod history;
mod inspect;
mod json;
mod rollback;
mod seal;
mod sweep;
mod verify;
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
        2 on a usage error, 128+N when `write` is ended by signal N. `verify`: 0 intact, \
        1 corrupt, 2 a path could not be checked."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Write(write::Args),
    Sweep(sweep::Args),
    Inspect(inspect::Args),
    Verify(verify::Args),
    History(history::Args),
    Rollback(rollback::Args),
    Seal(seal::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    survive_file_size_limit();
    let result = match cli.command {
        Command::Write(args) => write::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Verify(args) => return verify::run(args),
        Command::History(args) => history::run(args),
        Command::Rollback(args) => rollback::run(args),
        Command::Seal(args) => seal::run(args),
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

/// Under `ulimit -f`, a write past the limit raises SIGXFSZ, whose default action kills
/// the process without a word. With a handler installed the write fails with `EFBIG`
/// instead, and the save reports it as an error naming the file.
fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        // The flag is never read: only the handler's presence matters.
        let flag = Arc::new(AtomicBool::new(false));
        let _ = signal_hook::flag::register(signal_hook::consts::SIGXFSZ, flag);
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
        match e {
            // The library's text advises a builder call; a shell user has none.
            atomic_persist::Error::UnknownFormat { path, reason } => Failure(format!(
                "cannot tell the format of {}: {reason}",
                path.display()
            )),
            e => Failure(e.to_string()),
        }
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
