//! `atomic-persist seal FILE`: accept a hand edit of an enveloped file.

use std::io::{self, Write as _};
use std::path::PathBuf;

use atomic_persist::envelope::{Sealed, seal};

use crate::Failure;

/// Accept a hand edit of an enveloped JSON or TOML file.
#[derive(Debug, clap::Args)]
#[command(
    long_about = "Accept a hand edit of an enveloped JSON or TOML file. An edit \
    breaks the envelope's checksum, and the program that owns the file then refuses it \
    as corrupt. When the envelope around the value is still whole and the value parses, \
    `seal` writes the file again (atomically, under its writer lock) with the edited \
    text byte for byte, a new checksum and the next generation.\n\n\
    Prints one line: `FILE: sealed as generation N (was G)`, or `FILE: intact \
    (generation G), nothing to seal`.\n\n\
    Exit status: 0 on success, 1 when the file is plain, its envelope is broken, the \
    value does not parse, or it is a binary file (never hand-edited: a mismatch there is \
    damage); 2 on a usage error."
)]
pub struct Args {
    /// The enveloped file.
    file: PathBuf,
}

/// Runs `atomic-persist seal`.
pub fn run(args: Args) -> Result<(), Failure> {
    let line = match seal(&args.file)? {
        Sealed::Intact(meta) => format!(
            "{}: intact (generation {}), nothing to seal",
            args.file.display(),
            meta.generation
        ),
        Sealed::Resealed { was, now } => format!(
            "{}: sealed as generation {} (was {})",
            args.file.display(),
            now.generation,
            was.generation
        ),
        other => format!("{}: {other:?}", args.file.display()),
    };
    writeln!(io::stdout(), "{line}").map_err(Failure::stdout)
}
