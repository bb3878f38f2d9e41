//! `atomic-persist write FILE`: standard input to `FILE`, atomically.
//!
//! The steps: install the signal handlers, create the temporary file (with the options'
//! mode, already final), copy standard input into it until end-of-file, then commit
//! (sync, rename over `FILE`, sync the directory, as `--durability` says). A read or write
//! error, or a signal before the commit, removes the temporary file and leaves `FILE` as
//! it was. See the `cleanup` module for how signals are made safe.

use std::io::{self, Read};
use std::path::PathBuf;

use atomic_persist::{AtomicFile, Durability, Error, Op, WriteOptions};

use crate::Failure;
use crate::cleanup::Cleanup;

/// Copy standard input to FILE atomically.
///
/// FILE changes only if standard input reaches end-of-file and every step succeeds;
/// otherwise it is left exactly as it was.
#[derive(Debug, clap::Args)]
#[command(long_about = "Copy standard input to FILE atomically.\n\n\
        FILE changes only if standard input reaches end-of-file and every step \
        succeeds (write, sync, rename, sync of the directory). On an error, or on \
        SIGINT, SIGTERM, SIGHUP or SIGPIPE before the commit, FILE is left exactly as \
        it was and no temporary file remains. A symlink FILE is written through to its \
        target. An existing FILE keeps its mode (and owner, where permitted) unless \
        --mode is given; a new one gets 0666 less the umask.")]
pub struct Args {
    /// The file to create or replace.
    file: PathBuf,

    /// What must reach stable storage before the command returns.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,

    /// Permission bits of the written file, in octal (`0644`, `644` or `0o644`); exact,
    /// not reduced by the umask.
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    mode: Option<u32>,

    /// Fail (exit 1) instead of replacing FILE if it exists, even if it appears while
    /// standard input is being read.
    #[arg(long)]
    no_clobber: bool,

    /// Always write into a named temporary file `.FILE.XXXXXXXXXXXX.tmp`. By default, on
    /// Linux filesystems that support it, the data goes into an anonymous O_TMPFILE that
    /// gets a name only at commit, so even SIGKILL leaves nothing behind.
    #[arg(long)]
    named_temp: bool,
}

/// The `--durability` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DurabilityArg {
    /// Sync the file, rename, sync the directory: the new FILE survives power loss.
    Full,
    /// Sync the file and rename: after power loss FILE is complete, old or new.
    Data,
    /// Write and rename: complete through crashes of programs, not power loss.
    None,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Durability {
        match d {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Data => Durability::Data,
            DurabilityArg::None => Durability::None,
        }
    }
}

/// Parses permission bits written in octal: `0644`, `644` or `0o644`, at most `7777`.
fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s
        .strip_prefix("0o")
        .or_else(|| s.strip_prefix("0O"))
        .unwrap_or(s);
    let well_formed = !digits.is_empty() && digits.bytes().all(|b| matches!(b, b'0'..=b'7'));
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if well_formed && mode <= 0o7777 => Ok(mode),
        _ => Err("expected octal permission bits from 0 to 7777, such as 0644".to_owned()),
    }
}

/// Runs `atomic-persist write`.
pub fn run(args: Args) -> Result<(), Failure> {
    let mut options = WriteOptions::new()
        .durability(args.durability.into())
        .no_clobber(args.no_clobber)
        .anonymous_temp(!args.named_temp);
    if let Some(mode) = args.mode {
        options = options.mode(mode);
    }

    let cleanup = Cleanup::install().map_err(|e| {
        Failure(format!(
            "cannot install signal handlers for {}: {e}",
            args.file.display()
        ))
    })?;
    let mut file = cleanup.create(|| options.create(&args.file))?;
    let copied = copy_stdin(&mut file);
    // From here on a signal no longer removes the temporary file: the commit (or the
    // drop that removes it after an error) runs to its end first.
    cleanup.finish(|| match copied {
        Ok(()) => file.commit().map_err(Failure::from),
        Err(e) => {
            drop(file);
            Err(e)
        }
    })
}

/// Copies all of standard input into `file`.
fn copy_stdin(file: &mut AtomicFile) -> Result<(), Failure> {
    let mut stdin = io::stdin().lock();
    // AtomicFile buffers 64 KiB itself: a read of this size goes straight through it.
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Failure(format!(
                    "cannot read standard input for {}: {e}",
                    file.path().display()
                )));
            }
        };
        if let Err(source) = io::Write::write_all(file, &buf[..n]) {
            return Err(Failure::from(Error::Io {
                op: Op::Write,
                path: file.path().to_path_buf(),
                source,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_mode;

    #[test]
    fn modes_in_every_octal_spelling() {
        for (s, mode) in [
            ("0644", 0o644),
            ("644", 0o644),
            ("0o644", 0o644),
            ("0O600", 0o600),
            ("0", 0),
            ("4755", 0o4755),
            ("7777", 0o7777),
            ("00600", 0o600),
        ] {
            assert_eq!(parse_mode(s), Ok(mode), "{s}");
        }
    }

    #[test]
    fn garbage_modes_are_refused() {
        for s in [
            "",
            "0o",
            "abc",
            "0x1ff",
            "rw-r--r--",
            "0644 ",
            "+644",
            "-644",
            "8",
            "0o8",
            "17777",
            "99999999999",
        ] {
            assert!(parse_mode(s).is_err(), "{s:?}");
        }
    }
}
