//! The child: one save on a thread of its own, between the markers, and its outcome.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use atomic_persist::Error;
use atomic_persist::WriteOptions;

#[cfg(feature = "json")]
use crate::cases::{Doc, doc, doc_builder, hdoc, history_builder};
use crate::cases::{Kind, new_bytes};
use crate::common;
use crate::{BEGIN, DEST, END, EXIT_OK, EXIT_TYPED_ERROR, EXIT_WRITE_IO_ERROR};

/// What a save needs that is made before tracing starts.
pub enum Ready {
    Bytes,
    #[cfg(feature = "json")]
    Persisted(Box<atomic_persist::Persisted<Doc>>),
    #[cfg(feature = "json")]
    History(Box<atomic_persist::history::History<Doc>>),
}

/// Before tracing: open the `Persisted` of the enveloped kind (that load is not the save).
pub fn ready(kind: Kind, dest: &Path) -> Ready {
    #[cfg(feature = "json")]
    if kind == Kind::Enveloped {
        return Ready::Persisted(Box::new(doc_builder(dest).open().unwrap()));
    }
    #[cfg(feature = "json")]
    if kind == Kind::History {
        return Ready::History(Box::new(history_builder(dest).open().unwrap()));
    }
    let _ = (kind, dest);
    Ready::Bytes
}

/// The save itself; returns the outcome line and the exit code.
pub fn save(kind: Kind, dest: &Path, ready: Ready) -> (String, i32) {
    match ready {
        #[cfg(feature = "json")]
        Ready::Persisted(mut p) => {
            return match p.set(doc(2)) {
                Ok(()) => ("ok".into(), EXIT_OK),
                Err(e) => (describe(&e), EXIT_TYPED_ERROR),
            };
        }
        #[cfg(feature = "json")]
        Ready::History(mut h) => {
            return match h.set(hdoc(3)) {
                Ok(()) => ("ok".into(), EXIT_OK),
                Err(e) => (describe(&e), EXIT_TYPED_ERROR),
            };
        }
        Ready::Bytes => {}
    }
    let new = new_bytes();
    let opts = WriteOptions::new()
        .no_clobber(matches!(kind, Kind::NoClobber | Kind::AnonymousNoClobber))
        .anonymous_temp(matches!(kind, Kind::Anonymous | Kind::AnonymousNoClobber));
    let result = match kind {
        Kind::New
        | Kind::Replace
        | Kind::NoClobber
        | Kind::Anonymous
        | Kind::AnonymousNoClobber => opts.write(dest, &new),
        Kind::Stream => match opts.create(dest) {
            Err(e) => Err(e),
            Ok(mut f) => {
                for chunk in new.chunks(40_000) {
                    if let Err(e) = f.write_all(chunk) {
                        drop(f); // what a caller does with a failed writer: discard it
                        return (
                            format!("write-io-error {}", errno_name(e.raw_os_error())),
                            EXIT_WRITE_IO_ERROR,
                        );
                    }
                }
                f.commit()
            }
        },
        #[cfg(feature = "json")]
        Kind::Enveloped => unreachable!("saved through its Persisted above"),
        #[cfg(feature = "json")]
        Kind::History => unreachable!("committed through its History above"),
        Kind::Sloppy => {
            return match sloppy_save(dest, &new) {
                Ok(()) => ("ok".into(), EXIT_OK),
                Err(e) => (
                    format!("err Sloppy {}", errno_name(e.raw_os_error())),
                    EXIT_TYPED_ERROR,
                ),
            };
        }
    };
    match result {
        Ok(()) => ("ok".into(), EXIT_OK),
        Err(e) => (describe(&e), EXIT_TYPED_ERROR),
    }
}

/// What the sweep must catch: ignores the fsync's result, no cleanup on error.
pub fn sloppy_save(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = dest.with_file_name(".dest.bin.sloppy.tmp");
    let mut f = File::create(&temp)?;
    f.write_all(bytes)?;
    let _ = f.sync_all();
    std::fs::rename(&temp, dest)
}

/// `err VARIANT [OP ERRNO]`.
pub fn describe(e: &Error) -> String {
    let debug = format!("{e:?}");
    let variant: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    match e {
        Error::Io { op, source, .. } => {
            format!("err {variant} {op:?} {}", errno_name(source.raw_os_error()))
        }
        _ => format!("err {variant}"),
    }
}

pub fn errno_name(code: Option<i32>) -> String {
    let Some(code) = code else {
        return "no-errno".into();
    };
    ERRNOS
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| n.to_string())
        .unwrap_or_else(|| format!("errno{code}"))
}

pub const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EIO", 5),
    ("EAGAIN", 11),
    ("EACCES", 13),
    ("EEXIST", 17),
    ("EXDEV", 18),
    ("EINVAL", 22),
    ("ENOSPC", 28),
    ("ENOLCK", 37),
    ("EOPNOTSUPP", 95),
    ("EDQUOT", 122),
];

/// The child: one save on a thread of its own, traced from the moment it reads "go".
pub fn child_main() {
    let var = |k| std::env::var(k).unwrap();
    let kind = Kind::from_name(&var("SWEEP_KIND"));
    let dest = PathBuf::from(var("SWEEP_DIR")).join(DEST);
    let saver = std::thread::Builder::new()
        .name("save".into())
        .spawn(move || {
            let ready = ready(kind, &dest);
            common::traced::wait_for_tracer();
            let _ = File::open(BEGIN);
            let outcome = save(kind, &dest, ready);
            let _ = File::open(END);
            outcome
        })
        .unwrap();
    let (line, code) = match saver.join() {
        Ok(outcome) => outcome,
        Err(panic) => std::panic::resume_unwind(panic), // libtest exits 101: a failure
    };
    println!("outcome {line}");
    std::io::stdout().flush().unwrap();
    std::process::exit(code);
}
