//! The envelope: metadata and a checksum around a value, in the value's own format.
//!
//! With the envelope on ([`PersistedBuilder::envelope`](crate::PersistedBuilder::envelope)),
//! a file carries a [`Meta`] beside the value: which process run wrote it, when, how
//! many commits the file has seen, the value's schema version, and a checksum that every
//! load verifies. A torn write by another tool, a flipped bit on disk or a hand edit is
//! then [`Error::Corrupt`], never a value. Without the envelope the file is the plain
//! value, which is what configuration files that people edit should be; a configuration
//! that needs the envelope (for schema migrations) and hand edits turns on
//! [`accept_hand_edits`](crate::PersistedBuilder::accept_hand_edits).
//!
//! An enveloped file is still a valid document of its format: `jq .data state.json`
//! reads a JSON checkpoint, `yq .data state.yaml` a YAML one, and any TOML or RON parser
//! reads a TOML or RON one.
//!
//! # On-disk format, version 1
//!
//! The **payload** is the value serialized by its format. The **checksum** is CRC-32
//! (IEEE, as `crc32fast`, zlib and PNG compute it) over the payload's exact bytes, as
//! they are in the file, followed by the 56 **canonical meta bytes**:
//!
//! ```text
//! "atomic-persist/1"  (16 ASCII bytes)
//! run_id              16 bytes, the UUID's big-endian bytes
//! written_at          i64 LE seconds since 1970-01-01T00:00:00Z,
//!                     i32 LE nanoseconds (negative before 1970)
//! generation          u64 LE
//! schema_version      u32 LE
//! ```
//!
//! so the metadata is covered too. The payload comes *before* the metadata in every
//! layout: the checksum is known only once the payload is written, and a value is
//! streamed to disk without holding its bytes.
//!
//! **JSON** (`Json` compact, `JsonPretty` indented by two spaces, payload lines included):
//!
//! ```text
//! {"atomic_persist":1,"data":PAYLOAD,"meta":{"run_id":"0193…","written_at":"2026-11-25T19:41:02.123456789Z","generation":3,"schema_version":0,"checksum":"crc32:1a2b3c4d"}}
//! ```
//!
//! The first key is `atomic_persist`, the envelope version; `run_id` is the hyphenated
//! UUID, `written_at` RFC 3339 in UTC with up to nine fractional digits, `checksum` the
//! CRC as eight lowercase hex digits. The payload is the text of the `data` value.
//!
//! **TOML**:
//!
//! ```text
//! atomic_persist = 1
//!                                      ┐
//! [data]                               │ payload: everything after the first line up to
//! name = "x"                           │ the last line that is exactly `[meta]`; it is
//!                                      ┘ the value serialized under the key `data`
//! [meta]
//! run_id = "0193…"
//! written_at = 2026-11-25T19:41:02.123456789Z     (a TOML offset date-time)
//! generation = 3
//! schema_version = 0
//! checksum = "crc32:1a2b3c4d"
//! ```
//!
//! **YAML** (the same plan as TOML, block style):
//!
//! ```text
//! atomic_persist: 1
//! data:                                ┐ payload: everything after the first line up to
//!   name: x                            │ the last line that is exactly `meta:`; it is the
//!                                      ┘ value serialized under the key `data`
//! meta:
//!   run_id: "0193…"
//!   written_at: "2026-11-25T19:41:02.123456789Z"
//!   generation: 3
//!   schema_version: 0
//!   checksum: "crc32:1a2b3c4d"
//! ```
//!
//! The payload ends with a newline. Everything in it is nested under `data`, so no line
//! of it is `meta:` at the start of a line, and the last such line is the meta's.
//!
//! **RON** (compact, as JSON, with a RON struct for the object):
//!
//! ```text
//! (atomic_persist:1,data:PAYLOAD,meta:(run_id:"0193…",written_at:"2026-11-25T19:41:02.123456789Z",generation:3,schema_version:0,checksum:"crc32:1a2b3c4d"))
//! ```
//!
//! The payload is the text of the `data` value. A RON envelope laid out differently (by
//! hand, with comments) reads too: it is parsed whole.
//!
//! **Binary**, and every [`CustomFormat`](crate::CustomFormat) (the framed layout; all
//! integers little-endian):
//!
//! ```text
//! offset   size  field
//! 0        8     magic "APERSIST"
//! 8        4     envelope version (1)
//! 12       N     payload (postcard)
//! 12+N     8     N, the payload length
//!          16    run_id
//!          8+4   written_at: seconds, nanoseconds (as in the canonical bytes)
//!          8     generation
//!          4     schema_version
//!          4     checksum
//!          8     magic "APERSIST"
//! ```
//!
//! # Reading rules
//!
//! - Opened with the envelope on, a file that starts like an envelope (its first JSON
//!   key, TOML or YAML line or RON field is `atomic_persist`, or it starts with the
//!   binary magic, or is a truncated start of one) must be a complete, intact envelope: anything else is
//!   [`Error::Corrupt`]. So is a file that does not start like one but whose top level
//!   has two of the three keys `atomic_persist`, `data`, `meta` and nothing else (or, in
//!   binary, ends with the magic): one damaged byte must not turn a checkpoint into a
//!   plain value.
//! - An empty file is [`Error::Corrupt`] (a 0-byte file is what a non-atomic writer
//!   leaves after a crash), except that, with the envelope off, a value that really is
//!   empty in its format (an empty TOML table, a unit value in binary) loads.
//! - Any other file is a plain value: it loads with [`Persisted::meta`](crate::Persisted::meta)
//!   `None`, and gains the envelope on its next commit.
//! - Opened with the envelope off, an enveloped file is an error that says so, rather
//!   than a value read from the wrong place.
//! - A payload that is intact (the checksum matches) but does not fit the type is
//!   [`Error::Deserialize`], with line and column in the file for the text formats.
//! - A newer envelope version is [`Error::Corrupt`] with a reason that names it.
//! - A text envelope (all but binary) whose checksum does not match but whose structure and meta
//!   parse is a hand edit when the reader asked to accept one
//!   ([`accept_hand_edits`](crate::PersistedBuilder::accept_hand_edits)): it loads, its
//!   meta is the one from before the edit, and the next commit re-stamps it. [`seal`]
//!   re-stamps such a file in place. Otherwise it is [`CorruptKind::Checksum`]; a
//!   binary envelope always is.

// With some formats' features off, parts of the per-format matches compile away.
#![cfg_attr(
    not(all(
        feature = "json",
        feature = "toml",
        feature = "binary",
        feature = "yaml",
        feature = "ron"
    )),
    allow(
        unused_variables,
        unused_mut,
        unreachable_code,
        unreachable_patterns,
        dead_code
    )
)]

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{CorruptKind, Error, Op, Result};
use crate::format::{AnyFormat, Format, FormatError};

mod fingerprint;
mod seal;
mod stream;

pub(crate) use fingerprint::{Fingerprint, Hashing};

pub use seal::{Sealed, seal};

/// The version of the on-disk envelope this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// What an enveloped file says about itself.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::Persisted;
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("job.json");
/// let mut p = Persisted::<u64>::builder(&path).envelope(true).open_or_default()?;
/// p.set(7)?;
/// let meta = p.meta().unwrap();
/// assert_eq!(meta.generation, 1);
/// assert_eq!(meta.run_id, atomic_persist::run_id());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Meta {
    /// The run (process) that wrote the file: [`run_id()`] unless the builder set one.
    pub run_id: Uuid,
    /// When the file was written, just before it was renamed into place (RFC 3339 UTC
    /// on disk, and as it displays); never earlier than the previous commit of the same
    /// handle.
    pub written_at: Timestamp,
    /// How many commits with the envelope this file has seen: 1 for the first.
    pub generation: u64,
    /// The schema version of the value, as the writer declared it.
    pub schema_version: u32,
    /// CRC-32 of the payload bytes and the canonical meta bytes (see the format spec).
    pub checksum: u32,
}

/// When a version was written, to the nanosecond as the envelope stores it, whatever the
/// platform's clock resolution; it displays as RFC 3339 in UTC
/// (`2026-11-25T19:41:02.5Z`). The checksum covers these exact nanoseconds, so they are
/// kept as read: a file written on Linux verifies on Windows, whose [`SystemTime`] has
/// 100 ns steps.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use atomic_persist::Timestamp;
///
/// let t = Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_millis(1_500));
/// assert_eq!(t.to_string(), "1970-01-01T00:00:01.5Z");
/// assert!(t < Timestamp::now());
/// let back: SystemTime = t.into();
/// assert_eq!(back.duration_since(SystemTime::UNIX_EPOCH)?, Duration::from_millis(1_500));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(jiff::Timestamp);

impl Timestamp {
    /// The current time.
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    /// The time as a [`SystemTime`], to compute with (`elapsed`, `duration_since`):
    /// rounded down to the platform's resolution (100 ns on Windows); a time the
    /// platform cannot hold (before 1601 on Windows) is the nearest one it can.
    pub fn to_system_time(self) -> SystemTime {
        let (secs, nanos) = (self.0.as_second(), self.0.subsec_nanosecond());
        let since = |s: u64, n: u32| Duration::new(s, n);
        let t = match secs >= 0 {
            true => SystemTime::UNIX_EPOCH.checked_add(since(secs as u64, nanos.max(0) as u32)),
            // Negative seconds carry negative nanoseconds: -1.5 s is (-1, -500_000_000).
            false => {
                SystemTime::UNIX_EPOCH.checked_sub(since(secs.unsigned_abs(), nanos.unsigned_abs()))
            }
        };
        t.unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// An RFC 3339 time, as the text formats store it; `None` when it is not one.
    pub(crate) fn parse(text: &str) -> Option<Timestamp> {
        text.parse::<jiff::Timestamp>().ok().map(Timestamp)
    }

    /// The time as seconds and nanoseconds since 1970 (as the canonical bytes hold it).
    fn parts(self) -> (i64, i32) {
        (self.0.as_second(), self.0.subsec_nanosecond())
    }
}

/// A time past what the envelope can say (years beyond ±9999) is the nearest it can.
impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        Timestamp(jiff::Timestamp::try_from(t).unwrap_or_else(|_| {
            match t < SystemTime::UNIX_EPOCH {
                true => jiff::Timestamp::MIN,
                false => jiff::Timestamp::MAX,
            }
        }))
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> SystemTime {
        t.to_system_time()
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "generation {}, written {} by run {}, schema version {}",
            self.generation, self.written_at, self.run_id, self.schema_version
        )
    }
}

/// This process's run id: a UUIDv7 drawn once per process, so ids sort by start time.
/// Every enveloped commit records it unless the builder sets another
/// ([`PersistedBuilder::run_id`](crate::PersistedBuilder::run_id)); log it to tie a file
/// to the run that wrote it.
///
/// ```
/// assert_eq!(atomic_persist::run_id(), atomic_persist::run_id());
/// assert_eq!(atomic_persist::run_id().get_version_num(), 7);
/// ```
pub fn run_id() -> Uuid {
    static RUN_ID: OnceLock<Uuid> = OnceLock::new();
    *RUN_ID.get_or_init(crate::random::uuid_v7)
}

/// Checks the envelope of the file at `path` (format from its extension) without
/// knowing the value's type: `Ok(Some(meta))` when it is enveloped and intact,
/// `Ok(None)` when it is a plain file that is a document of its format (a plain binary
/// file cannot be checked without its type), [`Error::Corrupt`] when it is damaged: a
/// broken envelope, or a plain text file that does not parse
/// ([`CorruptKind::Unparsable`]).
///
/// The file is read in one pass with bounded memory (a few 64 KiB chunks, whatever its
/// size) when it is in a JSON, TOML, YAML or binary layout the crate writes, or a plain
/// JSON or binary file: the
/// meta is read from the file's end and the checksum computed as the payload streams
/// past. Any other file (a hand-reformatted JSON envelope, a plain TOML or YAML file,
/// any RON file) is read whole. The answer is the same either way.
///
/// # Errors
///
/// [`Error::Corrupt`] for a damaged file (a broken envelope, or a
/// plain text file that does not parse);
/// [`Error::UnknownFormat`] for an extension that names no
/// format; [`Error::NotFound`],
/// [`Error::Refused`] and [`Error::Io`] as for any
/// read.
///
/// ```
/// # #[cfg(feature = "json")] {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("job.json");
/// # let mut p = atomic_persist::Persisted::<u64>::builder(&path).envelope(true).open_or_default()?;
/// # p.set(7)?;
/// let meta = atomic_persist::envelope::verify(&path)?.expect("enveloped");
/// assert_eq!(meta.generation, 1);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(path: impl AsRef<Path>) -> Result<Option<Meta>> {
    let path = path.as_ref();
    verify_as(path, AnyFormat::from_path(path)?)
}

/// [`verify`] in the format `format` rather than the one the extension names: for a
/// [`CustomFormat`](crate::CustomFormat), which no extension names.
///
/// # Errors
///
/// As [`verify`], without [`Error::UnknownFormat`].
pub fn verify_as(path: impl AsRef<Path>, format: impl Into<AnyFormat>) -> Result<Option<Meta>> {
    use std::io::{Read, Seek};
    let (path, format) = (path.as_ref(), format.into());
    let (file, entry) = crate::trust::open_regular(path, crate::trust::Read::DATA)?;
    match stream::verify(format, &file, entry.size()).map_err(|e| e.at(path))? {
        stream::Streamed::Checked(meta) => Ok(meta),
        stream::Streamed::Whole => {
            let mut bytes = Vec::new();
            let mut f = &file;
            f.rewind()
                .and_then(|()| f.read_to_end(&mut bytes))
                .map_err(|e| Error::io(Op::Read, path, e))?;
            let meta = split(format, &bytes, true).map_err(|e| e.at(path))?.meta;
            if meta.is_none() {
                plain_document(format, &bytes).map_err(|e| e.at(path))?;
            }
            Ok(meta)
        }
    }
}

/// A plain file must at least be a document of its format (binary cannot be checked
/// without the value's type).
fn plain_document(format: AnyFormat, bytes: &[u8]) -> Result<()> {
    let parsed: std::result::Result<(), String> = match format {
        #[cfg(feature = "json")]
        AnyFormat::Json | AnyFormat::JsonPretty => {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        // Parsed into a table, not skipped: skipping does not check that an integer fits
        // in the 64 bits the TOML spec allows.
        #[cfg(feature = "toml")]
        AnyFormat::Toml => toml::from_slice::<toml::Table>(bytes)
            .map(drop)
            .map_err(|e| e.message().trim().to_string()),
        // Not checkable without the value's type.
        #[cfg(feature = "binary")]
        AnyFormat::Binary => Ok(()),
        AnyFormat::Custom(_) => Ok(()),
        #[cfg(feature = "yaml")]
        AnyFormat::Yaml => crate::format::yaml_parse::<serde::de::IgnoredAny>(bytes)
            .map(drop)
            .map_err(|e| e.without_snippet().to_string()),
        #[cfg(feature = "ron")]
        AnyFormat::Ron => ron::Options::default()
            .from_bytes::<serde::de::IgnoredAny>(bytes)
            .map(drop)
            .map_err(|e| e.to_string()),
    };
    parsed.map_err(|e| unparsable(format, &e))
}

/// The error for a plain file that is not a document of `format`.
fn unparsable(format: AnyFormat, why: &str) -> Error {
    corrupt(
        CorruptKind::Unparsable,
        format!(
            "not a {} document ({why}): cut short or damaged",
            format.name()
        ),
    )
}

/// The generation after `generation`; [`Error::GenerationOverflow`] past `u64::MAX`
/// (only a damaged or forged file can be there: a wrap to 0 would hide every version).
pub(crate) fn next_generation(generation: u64, path: &Path) -> Result<u64> {
    generation
        .checked_add(1)
        .ok_or_else(|| Error::GenerationOverflow {
            path: path.to_path_buf(),
        })
}

/// [`verify`] for every file in the directory `dir` (one level deep) that could be an
/// enveloped file: regular, not hidden (temporary and lock files start with a dot), and
/// with a known extension; symlinks (a history's `latest` pointer) and a history's
/// manifest are left out. A file named like a version of a history whose pointer is in `dir`
/// (`state.7.json` beside the link `state.json -> state.9.json`) must be enveloped: a
/// plain one is [`Error::Corrupt`] with [`CorruptKind::BadVersion`].
/// Returns each path, sorted, with its result; an error only when `dir` cannot be
/// listed.
///
/// # Errors
///
/// [`Error::Io`] with [`Op::ReadDir`] when `dir`
/// cannot be listed; each file's own result is in the list.
///
/// ```
/// # #[cfg(feature = "json")] {
/// # let dir = tempfile::tempdir()?;
/// # let mut p = atomic_persist::Persisted::<u64>::builder(dir.path().join("a.json"))
/// #     .envelope(true)
/// #     .open_or_default()?;
/// # p.set(7)?;
/// std::fs::write(dir.path().join("b.json"), b"{\"atomic_persist\": 1, \"torn")?;
/// let checked = atomic_persist::envelope::verify_dir(dir.path())?;
/// assert!(matches!(checked[0].1, Ok(Some(_))));
/// assert!(matches!(checked[1].1, Err(atomic_persist::Error::Corrupt { .. })));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify_dir(dir: impl AsRef<Path>) -> Result<Vec<(PathBuf, Result<Option<Meta>>)>> {
    let dir = dir.as_ref();
    // Listed through `sys`: std's directory iterator panics when `closedir` fails.
    let names = crate::sys::list_names(dir).map_err(|e| Error::io(Op::ReadDir, dir, e))?;
    let kind = |name: &std::ffi::OsStr| crate::trust::inspect(&dir.join(name)).ok().flatten();
    // The history pointers here: links whose target is a version of their own name.
    let pointers: Vec<&std::ffi::OsString> = names
        .iter()
        .filter(|name| kind(name).is_some_and(|k| k.is_symlink()))
        .filter(|name| {
            std::fs::read_link(dir.join(name))
                .is_ok_and(|target| crate::names::version_of(name, target.as_os_str()).is_some())
        })
        .collect();
    let mut checked: Vec<(PathBuf, Result<Option<Meta>>)> = names
        .iter()
        .filter(|name| !name.to_string_lossy().starts_with('.'))
        .filter(|name| AnyFormat::from_path(Path::new(name)).is_ok())
        .filter(|name| kind(name).is_some_and(|k| k.is_file()))
        // A history's manifest is its own cache, checked by its own checksum.
        .filter(|name| {
            !pointers
                .iter()
                .any(|p| crate::names::manifest_name(p) == **name)
        })
        .map(|name| {
            let path = dir.join(name);
            let is_version = pointers
                .iter()
                .any(|p| crate::names::version_of(p, name).is_some());
            let result = match verify(&path) {
                Ok(None) if is_version => Err(Error::corrupt(
                    &path,
                    CorruptKind::BadVersion,
                    "a history's version must have an envelope",
                )),
                result => result,
            };
            (path, result)
        })
        .collect();
    checked.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(checked)
}

// ---------------------------------------------------------------------------------------
// Reading

/// A file split into its payload and (when enveloped) its verified meta.
pub(crate) struct Split<'a> {
    /// The payload's bytes (the whole file when plain).
    pub payload: &'a [u8],
    /// Where the payload starts in the file.
    pub offset: usize,
    /// The verified meta, `None` for a plain file.
    pub meta: Option<Meta>,
    /// The checksum did not match and [`Edits::Accept`] let the file in: the meta is the
    /// one from before the hand edit.
    pub edited: bool,
    /// The payload's syntax is not checked yet: [`split_for_decode`] left that to the
    /// decode that follows, which [`decode`] answers as [`split`] would have.
    pub unparsed: bool,
}

/// Whether a text envelope whose checksum does not match may be read as a hand edit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Edits {
    /// A mismatch is [`CorruptKind::Checksum`]: the default.
    Refuse,
    /// A text envelope whose structure and meta parse is read despite a
    /// mismatch (binary is never hand-edited, so a mismatch there stays damage).
    Accept,
}

/// How the start of a file looks.
#[derive(PartialEq, Eq, Debug)]
enum Marker {
    /// It starts like an envelope.
    Envelope,
    /// It is a non-empty, truncated start of an envelope.
    Truncated,
    /// It does not.
    No,
}

/// An [`Error::Corrupt`] whose path the caller fills in (`Error::at`).
fn corrupt(kind: CorruptKind, reason: impl Into<String>) -> Error {
    Error::corrupt(PathBuf::new(), kind, reason)
}

/// Splits a file's bytes. `envelope` says whether the caller expects one.
pub(crate) fn split(format: AnyFormat, bytes: &[u8], envelope: bool) -> Result<Split<'_>> {
    split_with(format, bytes, envelope, Edits::Refuse)
}

/// [`split`], reading a hand-edited text envelope as `edits` says.
pub(crate) fn split_with(
    format: AnyFormat,
    bytes: &[u8],
    envelope: bool,
    edits: Edits,
) -> Result<Split<'_>> {
    if bytes.is_empty() && envelope {
        // An enveloped file is never empty, and an empty plain file must not pass for a
        // checkpoint.
        return Err(empty_file());
    }
    let marker = marker(format, bytes);
    if marker != Marker::No {
        if !envelope {
            return Err(Error::UnexpectedEnvelope {
                path: PathBuf::new(),
            });
        }
        if marker == Marker::Truncated {
            return Err(corrupt(
                CorruptKind::Truncated,
                "the file is a truncated envelope header",
            ));
        }
        return split_envelope(format, bytes, edits);
    }
    if envelope && looks_enveloped(format, bytes) {
        return Err(corrupt(
            CorruptKind::Damaged,
            "the file has the shape of an envelope but not its first key or magic: \
             a damaged envelope",
        ));
    }
    Ok(Split {
        payload: bytes,
        offset: 0,
        meta: None,
        edited: false,
        unparsed: false,
    })
}

/// [`split_with`] for a caller that decodes the payload right after: a JSON or RON
/// envelope in the layout the crate writes is split by its fixed head and the meta at
/// its end, and the payload is parsed only once, by that decode. Anything else, or a
/// checksum that does not match, takes [`split_with`].
pub(crate) fn split_for_decode(
    format: AnyFormat,
    bytes: &[u8],
    envelope: bool,
    edits: Edits,
) -> Result<Split<'_>> {
    let written: Option<Unchecked<'_>> = match format {
        #[cfg(feature = "json")]
        AnyFormat::Json | AnyFormat::JsonPretty => split_json_written(bytes),
        #[cfg(feature = "ron")]
        AnyFormat::Ron => split_ron_written(bytes),
        _ => None,
    };
    if envelope
        && let Some((mut split, meta)) = written
        && let Ok(meta) = verified(split.payload, meta)
    {
        split.meta = Some(meta);
        split.unparsed = true;
        return Ok(split);
    }
    split_with(format, bytes, envelope, edits)
}

/// The error for a 0-byte file that is not a valid value.
pub(crate) fn empty_file() -> Error {
    corrupt(
        CorruptKind::Empty,
        "the file is empty (0 bytes): typically a write interrupted by a crash in a \
         program that does not save atomically",
    )
}

/// How a TOML or YAML envelope's payload holds the value: under the key `data` (a
/// `Data<&T>` when written).
#[cfg(any(feature = "toml", feature = "yaml"))]
#[derive(Serialize, serde::Deserialize)]
pub(crate) struct Data<T> {
    pub(crate) data: T,
}

/// Deserializes the payload of a split file; positions in errors point into the file.
pub(crate) fn decode<T: DeserializeOwned>(
    format: AnyFormat,
    file: &[u8],
    split: &Split<'_>,
) -> Result<T> {
    match format {
        #[cfg(feature = "json")]
        AnyFormat::Json | AnyFormat::JsonPretty => {
            serde_json::from_slice(split.payload).map_err(|e| {
                // A payload that is not one JSON value is a broken envelope, as `split`
                // would have said had it parsed it.
                if split.unparsed
                    && !e.is_data()
                    && let Err(broken) = split_with(format, file, true, Edits::Refuse)
                {
                    return broken;
                }
                let origin = crate::format::line_column(file, split.offset);
                crate::format::json_deserialize_error(e, origin).unplaced()
            })
        }
        #[cfg(feature = "toml")]
        AnyFormat::Toml if split.meta.is_some() => {
            crate::format::toml_from_slice::<Data<T>>(file, split.payload, split.offset)
                .map(|d| d.data)
                .map_err(FormatError::unplaced)
        }
        #[cfg(feature = "yaml")]
        AnyFormat::Yaml if split.meta.is_some() => {
            crate::format::yaml_from_slice::<Data<T>>(file, split.payload, split.offset)
                .map(|d| d.data)
                .map_err(FormatError::unplaced)
        }
        #[cfg(feature = "ron")]
        AnyFormat::Ron => {
            let origin = crate::format::line_column(file, split.offset);
            crate::format::ron_from_slice(split.payload, origin).map_err(|e| {
                // As for JSON: a payload the written-layout split did not parse may be
                // a broken envelope, which a full split names.
                if split.unparsed
                    && let Err(broken) = split_with(format, file, true, Edits::Refuse)
                {
                    return broken;
                }
                e.unplaced()
            })
        }
        #[allow(unreachable_patterns)]
        _ => format
            .deserialize(split.payload)
            .map_err(FormatError::unplaced),
    }
}

fn marker(format: AnyFormat, bytes: &[u8]) -> Marker {
    match format {
        #[cfg(feature = "json")]
        AnyFormat::Json | AnyFormat::JsonPretty => {
            let rest = skip_json_ws(bytes);
            match rest.split_first() {
                Some((b'{', rest)) if skip_json_ws(rest).starts_with(b"\"atomic_persist\"") => {
                    Marker::Envelope
                }
                _ => Marker::No,
            }
        }
        #[cfg(feature = "toml")]
        AnyFormat::Toml => prefix_marker(bytes, TOML_LINES.key.as_bytes(), TOML_LINES.prefix),
        #[cfg(feature = "binary")]
        AnyFormat::Binary => prefix_marker(bytes, &MAGIC, &MAGIC),
        AnyFormat::Custom(_) => prefix_marker(bytes, &MAGIC, &MAGIC),
        #[cfg(feature = "yaml")]
        AnyFormat::Yaml => prefix_marker(bytes, YAML_LINES.key.as_bytes(), YAML_LINES.prefix),
        #[cfg(feature = "ron")]
        AnyFormat::Ron => {
            // `(`, then the first field's name as a whole identifier.
            let rest = skip_ron_ws(bytes);
            let field = rest.strip_prefix(b"(").map(skip_ron_ws);
            match field.and_then(|f| f.strip_prefix(b"atomic_persist")) {
                Some(after)
                    if !after
                        .first()
                        .is_some_and(|&b| b == b'_' || b.is_ascii_alphanumeric()) =>
                {
                    Marker::Envelope
                }
                _ => Marker::No,
            }
        }
    }
}

/// `Envelope` when `bytes` starts with `start`, `Truncated` when it is a start of
/// `full`.
fn prefix_marker(bytes: &[u8], start: &[u8], full: &[u8]) -> Marker {
    if bytes.starts_with(start) {
        Marker::Envelope
    } else if !bytes.is_empty() && full.starts_with(bytes) {
        Marker::Truncated
    } else {
        Marker::No
    }
}

/// `bytes` after the white space JSON (and RON) skip.
#[cfg(any(feature = "json", feature = "ron"))]
fn skip_json_ws(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &bytes[n..]
}

/// `bytes` after the white space and comments RON skips before a value, as its parser
/// defines them: Unicode's pattern white space, `// …` to the line's end and `/* … */`,
/// nested. An unclosed block comment skips to the end.
#[cfg(feature = "ron")]
fn skip_ron_ws(mut bytes: &[u8]) -> &[u8] {
    loop {
        let space = ron_space_len(bytes);
        if space > 0 {
            bytes = &bytes[space..];
        } else if let Some(rest) = bytes.strip_prefix(b"//") {
            let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            bytes = &rest[end..];
        } else if bytes.starts_with(b"/*") {
            bytes = &bytes[block_comment_len(bytes)..];
        } else {
            return bytes;
        }
    }
}

/// The length of the white space character `bytes` starts with (0 for none): RON's
/// `is_whitespace_char`, Unicode's `Pattern_White_Space`.
#[cfg(feature = "ron")]
fn ron_space_len(bytes: &[u8]) -> usize {
    const WIDE: [&[u8]; 5] = [
        "\u{85}".as_bytes(),
        "\u{200E}".as_bytes(),
        "\u{200F}".as_bytes(),
        "\u{2028}".as_bytes(),
        "\u{2029}".as_bytes(),
    ];
    match bytes.first() {
        Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) => 1,
        _ => WIDE
            .iter()
            .find(|w| bytes.starts_with(w))
            .map_or(0, |w| w.len()),
    }
}

/// Whether `bytes` ends with a character [`ron_space_len`] counts as white space.
#[cfg(feature = "ron")]
fn ends_with_ron_space(bytes: &[u8]) -> bool {
    // The longest white space character is 3 bytes of UTF-8.
    (1..=3.min(bytes.len())).any(|n| ron_space_len(&bytes[bytes.len() - n..]) == n)
}

/// The length of the (nested) block comment `bytes` starts with, or all of `bytes` when
/// it is not closed.
#[cfg(feature = "ron")]
fn block_comment_len(bytes: &[u8]) -> usize {
    let (mut depth, mut i) = (0usize, 0);
    while i < bytes.len() {
        match &bytes[i..] {
            [b'/', b'*', ..] => (depth, i) = (depth + 1, i + 2),
            [b'*', b'/', ..] => (depth, i) = (depth - 1, i + 2),
            _ => i += 1,
        }
        if depth == 0 {
            return i;
        }
    }
    bytes.len()
}

/// A damaged envelope whose marker was hit: the top level has two of the three
/// envelope keys and nothing else (or, in binary, the file ends with the magic).
fn looks_enveloped(format: AnyFormat, bytes: &[u8]) -> bool {
    let keys: Option<TopKeys> = match format {
        #[cfg(feature = "json")]
        AnyFormat::Json | AnyFormat::JsonPretty => serde_json::from_slice(bytes).ok(),
        #[cfg(feature = "toml")]
        AnyFormat::Toml => toml::from_slice(bytes).ok(),
        #[cfg(feature = "binary")]
        AnyFormat::Binary => return bytes.ends_with(&MAGIC),
        AnyFormat::Custom(_) => return bytes.ends_with(&MAGIC),
        #[cfg(feature = "yaml")]
        AnyFormat::Yaml => crate::format::yaml_parse(bytes).ok(),
        #[cfg(feature = "ron")]
        AnyFormat::Ron => ron::Options::default().from_bytes(bytes).ok(),
    };
    keys.is_some_and(|k| k.has_envelope_shape())
}

/// The count of a document's top-level keys, and of those named like envelope keys;
/// values are skipped without being built.
#[derive(Default)]
#[cfg_attr(
    not(any(feature = "json", feature = "toml", feature = "yaml", feature = "ron")),
    allow(dead_code)
)]
struct TopKeys {
    total: usize,
    envelope_keys: usize,
    /// Which envelope keys appeared (one bit each), for documents that repeat keys.
    distinct: u8,
}

impl TopKeys {
    /// Two of the three envelope keys and at most one other, or only envelope keys (at
    /// least two of them): the top level of a damaged envelope, not a plain value.
    fn has_envelope_shape(&self) -> bool {
        // A repeated key is still the same key: `{"data":..,"meta":..,"data":..}` has the
        // top level of an envelope, however many times its keys appear.
        (self.total <= 3 && self.envelope_keys >= 2)
            || (self.total == self.envelope_keys && self.distinct.count_ones() >= 2)
    }
}

impl<'de> serde::Deserialize<'de> for TopKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TopKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<TopKeys, A::Error> {
                let mut keys = TopKeys::default();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    keys.total += 1;
                    let bit = match key.as_str() {
                        "atomic_persist" => 1,
                        "data" => 2,
                        "meta" => 4,
                        _ => 0,
                    };
                    if bit != 0 {
                        keys.envelope_keys += 1;
                        keys.distinct |= bit;
                    }
                }
                Ok(keys)
            }
        }
        // Any, not map: a RON struct `(a: 1)` is a map only to `deserialize_any`.
        d.deserialize_any(V)
    }
}

/// Meta as the text formats spell it.
#[cfg(any(feature = "json", feature = "toml", feature = "yaml", feature = "ron"))]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TextMeta {
    run_id: String,
    #[cfg_attr(feature = "toml", serde(deserialize_with = "string_or_datetime"))]
    written_at: String,
    generation: u64,
    schema_version: u32,
    checksum: String,
}

/// A TOML offset date-time (or, in JSON, a string), as its RFC 3339 text.
#[cfg(feature = "toml")]
fn string_or_datetime<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<String, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Datetime(toml::value::Datetime),
    }
    Ok(match Either::deserialize(d)? {
        Either::Text(s) => s,
        Either::Datetime(dt) => dt.to_string(),
    })
}
#[cfg(feature = "toml")]
use serde::Deserialize as _;

#[cfg(any(feature = "json", feature = "toml", feature = "yaml", feature = "ron"))]
impl TextMeta {
    fn parse(self) -> Result<Meta> {
        let run_id = Uuid::try_parse(&self.run_id).map_err(|e| {
            corrupt(
                CorruptKind::Damaged,
                format!("meta.run_id `{}`: {e}", self.run_id),
            )
        })?;
        let written_at = Timestamp::parse(&self.written_at).ok_or_else(|| {
            corrupt(
                CorruptKind::Damaged,
                format!(
                    "meta.written_at `{}` is not an RFC 3339 time",
                    self.written_at
                ),
            )
        })?;
        let checksum = self
            .checksum
            .strip_prefix("crc32:")
            .filter(|h| h.len() == 8)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or_else(|| {
                corrupt(
                    CorruptKind::Damaged,
                    format!(
                        "meta.checksum `{}` is not `crc32:` and 8 hex digits",
                        self.checksum
                    ),
                )
            })?;
        Ok(Meta {
            run_id,
            written_at,
            generation: self.generation,
            schema_version: self.schema_version,
            checksum,
        })
    }
}

fn check_version(found: u64) -> Result<()> {
    if found == u64::from(ENVELOPE_VERSION) {
        Ok(())
    } else {
        // A newer version is a newer program's file, not damage; 0 is no version at all.
        let kind = match found > u64::from(ENVELOPE_VERSION) {
            true => CorruptKind::NewerEnvelope { version: found },
            false => CorruptKind::Damaged,
        };
        Err(corrupt(
            kind,
            format!("envelope version {found}, this build reads version {ENVELOPE_VERSION}"),
        ))
    }
}

/// Checks the checksum of a payload and its meta.
fn verified(payload: &[u8], meta: Meta) -> Result<Meta> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(payload);
    check_checksum(crc, meta)
}

/// Checks the checksum of a payload hashed into `crc` against its meta.
fn check_checksum(crc: crc32fast::Hasher, meta: Meta) -> Result<Meta> {
    let actual = checksum(crc, &meta);
    if actual != meta.checksum {
        return Err(corrupt(
            CorruptKind::Checksum,
            format!(
                "checksum mismatch: the file says crc32:{:08x}, its contents hash to \
             crc32:{actual:08x} (damaged or edited by hand)",
                meta.checksum
            ),
        ));
    }
    Ok(meta)
}

/// Splits an envelope and checks its checksum, letting a mismatch in a text format pass
/// as a hand edit when `edits` accepts one.
fn split_envelope(format: AnyFormat, bytes: &[u8], edits: Edits) -> Result<Split<'_>> {
    let (mut split, meta): Unchecked<'_> = match format {
        #[cfg(feature = "json")]
        AnyFormat::Json | AnyFormat::JsonPretty => split_json(bytes)?,
        #[cfg(feature = "toml")]
        AnyFormat::Toml => split_lines(&TOML_LINES, bytes)?,
        #[cfg(feature = "binary")]
        AnyFormat::Binary => split_binary(bytes)?,
        AnyFormat::Custom(_) => split_binary(bytes)?,
        #[cfg(feature = "yaml")]
        AnyFormat::Yaml => split_lines(&YAML_LINES, bytes)?,
        #[cfg(feature = "ron")]
        AnyFormat::Ron => split_ron(bytes)?,
    };
    match verified(split.payload, meta.clone()) {
        Ok(meta) => split.meta = Some(meta),
        Err(Error::Corrupt {
            kind: CorruptKind::Checksum,
            ..
        }) if edits == Edits::Accept && format.is_text() => {
            split.meta = Some(meta);
            split.edited = true;
        }
        Err(e) => return Err(e),
    }
    Ok(split)
}

/// A split envelope whose meta is parsed but not yet checked.
type Unchecked<'a> = (Split<'a>, Meta);

/// The payload of an envelope at `offset` in the file, its meta still to come.
fn unchecked(payload: &[u8], offset: usize, meta: Meta) -> Unchecked<'_> {
    let split = Split {
        payload,
        offset,
        meta: None,
        edited: false,
        unparsed: false,
    };
    (split, meta)
}

#[cfg(feature = "json")]
fn split_json(bytes: &[u8]) -> Result<Unchecked<'_>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope<'a> {
        atomic_persist: u64,
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
        meta: TextMeta,
    }
    let envelope: Envelope<'_> = serde_json::from_slice(bytes).map_err(incomplete_json)?;
    check_version(envelope.atomic_persist)?;
    let payload = envelope.data.get().as_bytes();
    let offset = payload.as_ptr() as usize - bytes.as_ptr() as usize;
    Ok(unchecked(payload, offset, envelope.meta.parse()?))
}

/// A JSON envelope in one of the two layouts the writer makes (head, payload, then
/// `,"meta":{…}}` or `,\n  "meta": {…}\n}\n`), split without parsing the payload; `None`
/// for any other file. The payload must not start or end with white space, as a payload
/// `split_json` takes from a parse never does.
#[cfg(feature = "json")]
fn split_json_written(bytes: &[u8]) -> Option<Unchecked<'_>> {
    let (head, key, end): (&[u8], &[u8], &[u8]) = if bytes.starts_with(JSON_HEAD) {
        (JSON_HEAD, b",\"meta\":", b"}")
    } else if bytes.starts_with(JSON_PRETTY_HEAD) {
        (JSON_PRETTY_HEAD, b",\n  \"meta\": ", b"\n}\n")
    } else {
        return None;
    };
    // A written meta is a few hundred bytes: look for its key near the end only.
    let from = bytes.len().saturating_sub(1024).max(head.len());
    let key_at = from + bytes[from..].windows(key.len()).rposition(|w| w == key)?;
    let object = bytes[key_at + key.len()..].strip_suffix(end)?;
    let payload = &bytes[head.len()..key_at];
    let (first, last) = (*payload.first()?, *payload.last()?);
    if skip_json_ws(&[first]).is_empty() || skip_json_ws(&[last]).is_empty() {
        return None;
    }
    let meta = json_meta(object).ok()?;
    Some(unchecked(payload, head.len(), meta))
}

/// The meta object of a JSON envelope, parsed (its checksum not yet checked).
#[cfg(feature = "json")]
fn json_meta(object: &[u8]) -> Result<Meta> {
    let meta: TextMeta = serde_json::from_slice(object).map_err(incomplete_json)?;
    meta.parse()
}

/// A JSON envelope that does not parse: cut short when the text ends early, damaged
/// otherwise.
#[cfg(feature = "json")]
fn incomplete_json(e: serde_json::Error) -> Error {
    let kind = match e.is_eof() {
        true => CorruptKind::Truncated,
        false => CorruptKind::Damaged,
    };
    corrupt(
        kind,
        format!("not a complete envelope ({e}): truncated, damaged or edited"),
    )
}

/// The head of a compact JSON envelope, as the writer writes it.
#[cfg(feature = "json")]
const JSON_HEAD: &[u8] = b"{\"atomic_persist\":1,\"data\":";
/// The head of an indented JSON envelope.
#[cfg(feature = "json")]
const JSON_PRETTY_HEAD: &[u8] = b"{\n  \"atomic_persist\": 1,\n  \"data\": ";

/// A text layout whose first line is the envelope version and whose payload runs from
/// the second line up to the last line that opens the meta (TOML, YAML).
#[cfg(any(feature = "toml", feature = "yaml"))]
pub(super) struct Lines {
    /// The first line up to the version: `atomic_persist =`.
    pub(super) key: &'static str,
    /// The first line as the writer writes it.
    pub(super) prefix: &'static [u8],
    /// The line that opens the meta, with the newlines around it.
    pub(super) meta: &'static [u8],
    /// The meta (from its opening line to the end), parsed, its checksum not yet checked.
    pub(super) parse_meta: fn(&[u8]) -> Result<Meta>,
}

#[cfg(feature = "toml")]
pub(super) const TOML_LINES: Lines = Lines {
    key: "atomic_persist =",
    prefix: b"atomic_persist = 1\n",
    meta: b"\n[meta]\n",
    parse_meta: toml_meta,
};

#[cfg(feature = "yaml")]
pub(super) const YAML_LINES: Lines = Lines {
    key: "atomic_persist:",
    prefix: b"atomic_persist: 1\n",
    meta: b"\nmeta:\n",
    parse_meta: yaml_meta,
};

#[cfg(any(feature = "toml", feature = "yaml"))]
fn split_lines<'a>(layout: &Lines, bytes: &'a [u8]) -> Result<Unchecked<'a>> {
    let line_end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| i + 1);
    let (key, written) = (layout.key, String::from_utf8_lossy(layout.prefix));
    let first = std::str::from_utf8(&bytes[..line_end])
        .ok()
        .and_then(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| {
            corrupt(
                CorruptKind::Damaged,
                format!("the first line is not `{key} VERSION`"),
            )
        })?;
    check_version(first)?;
    if &bytes[..line_end] != layout.prefix {
        return Err(corrupt(
            CorruptKind::Damaged,
            format!("the first line is not `{}`", written.trim_end()),
        ));
    }
    let rest = &bytes[line_end..];
    let meta_line = String::from_utf8_lossy(layout.meta);
    let at = rest
        .windows(layout.meta.len())
        .rposition(|w| w == layout.meta)
        .ok_or_else(|| {
            corrupt(
                CorruptKind::Truncated,
                format!(
                    "no `{}` line: the file is truncated or damaged",
                    meta_line.trim()
                ),
            )
        })?;
    let payload = &rest[..=at];
    Ok(unchecked(
        payload,
        line_end,
        (layout.parse_meta)(&rest[at + 1..])?,
    ))
}

/// The meta of a TOML or YAML envelope, under the key `meta`.
#[cfg(any(feature = "toml", feature = "yaml"))]
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaTable {
    meta: TextMeta,
}

/// The `[meta]` table of a TOML envelope (from its `[meta]` line to the end), parsed
/// (its checksum not yet checked).
#[cfg(feature = "toml")]
fn toml_meta(meta_text: &[u8]) -> Result<Meta> {
    let table: MetaTable = toml::from_slice(meta_text).map_err(|e| {
        corrupt(
            CorruptKind::Damaged,
            format!("the [meta] table is damaged: {}", e.message().trim()),
        )
    })?;
    table.meta.parse()
}

/// The `meta:` mapping of a YAML envelope (from its `meta:` line to the end), parsed
/// (its checksum not yet checked).
#[cfg(feature = "yaml")]
fn yaml_meta(meta_text: &[u8]) -> Result<Meta> {
    let table: MetaTable = crate::format::yaml_parse(meta_text).map_err(|e| {
        corrupt(
            CorruptKind::Damaged,
            format!("the meta: mapping is damaged: {}", e.without_snippet()),
        )
    })?;
    table.meta.parse()
}

/// The head of a RON envelope, as the writer writes it.
#[cfg(feature = "ron")]
const RON_HEAD: &[u8] = b"(atomic_persist:1,data:";
/// What comes between a RON envelope's payload and its meta's fields.
#[cfg(feature = "ron")]
const RON_META: &[u8] = b",meta:(";

/// A RON envelope of any layout, parsed whole (the payload as raw RON).
#[cfg(feature = "ron")]
fn split_ron(bytes: &[u8]) -> Result<Unchecked<'_>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope<'a> {
        atomic_persist: u64,
        #[serde(borrow)]
        data: &'a ron::value::RawValue,
        meta: TextMeta,
    }
    let envelope: Envelope<'_> = ron::Options::default()
        .from_bytes(bytes)
        .map_err(incomplete_ron)?;
    check_version(envelope.atomic_persist)?;
    let payload = envelope.data.get_ron().as_bytes();
    let offset = payload.as_ptr() as usize - bytes.as_ptr() as usize;
    Ok(unchecked(payload, offset, envelope.meta.parse()?))
}

/// A RON envelope in the layout the writer makes (head, payload, `,meta:(…))`), split
/// without parsing the payload; `None` for any other file.
#[cfg(feature = "ron")]
fn split_ron_written(bytes: &[u8]) -> Option<Unchecked<'_>> {
    let body = bytes.strip_prefix(RON_HEAD)?;
    // A written meta is a few hundred bytes: look for it near the end only.
    let from = body.len().saturating_sub(1024);
    let at = from
        + body[from..]
            .windows(RON_META.len())
            .rposition(|w| w == RON_META)?;
    let fields = body[at + 1..].strip_suffix(b")")?;
    let payload = &body[..at];
    // A payload from a parse (`RawValue`) never starts or ends with white space, nor
    // starts with `#`: extension attributes (`#![enable(..)]`) open a document, and a
    // payload parsed alone would take them.
    if payload.is_empty()
        || ron_space_len(payload) > 0
        || ends_with_ron_space(payload)
        || payload[0] == b'#'
    {
        return None;
    }
    // The writer writes no comments; where the payload might hold one (or a string
    // with `//` in it), only a whole parse tells what it comments out: a `//` in a
    // payload parsed alone would end at the payload's end, in the file at the line's.
    if payload.windows(2).any(|w| w == b"//" || w == b"/*") {
        return None;
    }
    let meta = ron_meta(&fields[b"meta:".len()..]).ok()?;
    Some(unchecked(payload, RON_HEAD.len(), meta))
}

/// The meta `(run_id: …, …)` of a RON envelope, parsed (its checksum not yet checked).
#[cfg(feature = "ron")]
fn ron_meta(fields: &[u8]) -> Result<Meta> {
    let meta: TextMeta = ron::Options::default()
        .from_bytes(fields)
        .map_err(incomplete_ron)?;
    meta.parse()
}

/// A RON envelope that does not parse: cut short when the text ends early, damaged
/// otherwise.
#[cfg(feature = "ron")]
fn incomplete_ron(e: ron::error::SpannedError) -> Error {
    let kind = match e.code {
        ron::Error::Eof => CorruptKind::Truncated,
        _ => CorruptKind::Damaged,
    };
    corrupt(
        kind,
        format!("not a complete envelope ({e}): truncated, damaged or edited"),
    )
}

const MAGIC: [u8; 8] = *b"APERSIST";
const BINARY_HEADER: usize = 12;
const BINARY_TRAILER: usize = 8 + 16 + 8 + 4 + 8 + 4 + 4 + 8;

fn split_binary(bytes: &[u8]) -> Result<Unchecked<'_>> {
    let len = bytes.len() as u64;
    let trailer = bytes.len().saturating_sub(BINARY_TRAILER);
    let meta = binary_meta(
        &bytes[..bytes.len().min(BINARY_HEADER)],
        &bytes[trailer..],
        len,
    )?;
    let payload = &bytes[BINARY_HEADER..trailer];
    Ok(unchecked(payload, BINARY_HEADER, meta))
}

/// The meta of a binary envelope of `len` bytes from its header (the first
/// [`BINARY_HEADER`] bytes) and trailer (the last [`BINARY_TRAILER`]), its checksum not
/// yet checked.
fn binary_meta(header: &[u8], trailer: &[u8], len: u64) -> Result<Meta> {
    if len < (BINARY_HEADER + BINARY_TRAILER) as u64 {
        return Err(corrupt(
            CorruptKind::Truncated,
            format!("{len} bytes is shorter than an envelope's header and trailer: truncated"),
        ));
    }
    let le = |bytes: &[u8], at: usize, n: usize| -> u64 {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&bytes[at..at + n]);
        u64::from_le_bytes(b)
    };
    check_version(le(header, 8, 4))?;
    if trailer[BINARY_TRAILER - 8..] != MAGIC {
        return Err(corrupt(
            CorruptKind::Truncated,
            "the trailer's magic is missing: truncated or damaged",
        ));
    }
    let held = len - (BINARY_HEADER + BINARY_TRAILER) as u64;
    let said = le(trailer, 0, 8);
    if said != held {
        return Err(corrupt(
            CorruptKind::Truncated,
            format!(
                "the trailer says the payload has {said} bytes, the file holds {held}: \
             truncated or damaged"
            ),
        ));
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&trailer[8..24]);
    let seconds = le(trailer, 24, 8) as i64;
    let nanos = le(trailer, 32, 4) as u32 as i32;
    let written_at = jiff::Timestamp::new(seconds, nanos)
        .map(Timestamp)
        .map_err(|_| corrupt(CorruptKind::Damaged, "meta.written_at is out of range"))?;
    Ok(Meta {
        run_id: Uuid::from_bytes(id),
        written_at,
        generation: le(trailer, 36, 8),
        schema_version: le(trailer, 44, 4) as u32,
        checksum: le(trailer, 48, 4) as u32,
    })
}

// ---------------------------------------------------------------------------------------
// Writing

/// The 56 canonical meta bytes of the spec.
fn canonical(meta: &Meta) -> [u8; 56] {
    let (secs, nanos) = meta.written_at.parts();
    let mut out = [0u8; 56];
    out[..16].copy_from_slice(b"atomic-persist/1");
    out[16..32].copy_from_slice(meta.run_id.as_bytes());
    out[32..40].copy_from_slice(&secs.to_le_bytes());
    out[40..44].copy_from_slice(&nanos.to_le_bytes());
    out[44..52].copy_from_slice(&meta.generation.to_le_bytes());
    out[52..56].copy_from_slice(&meta.schema_version.to_le_bytes());
    out
}

/// The checksum of a payload hashed so far and its meta.
pub(crate) fn checksum(mut payload_crc: crc32fast::Hasher, meta: &Meta) -> u32 {
    payload_crc.update(&canonical(meta));
    payload_crc.finalize()
}

/// Adds two spaces after every newline: nests `JsonPretty`'s output one level deeper.
/// JSON strings escape their newlines, so every raw newline is layout.
#[cfg(feature = "json")]
struct Indent<W>(W);

#[cfg(feature = "json")]
impl<W: Write> Write for Indent<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while let Some(i) = buf.iter().position(|&b| b == b'\n') {
            self.0.write_all(&buf[..=i])?;
            self.0.write_all(b"  ")?;
            buf = &buf[i + 1..];
        }
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Writes the payload of `value`: the whole file when plain, the part the checksum
/// covers when enveloped. TOML has no streaming serializer, so it goes through a string.
pub(crate) fn write_payload<T: Serialize + ?Sized, W: Write>(
    format: AnyFormat,
    enveloped: bool,
    value: &T,
    mut out: W,
) -> Result<()> {
    match format {
        #[cfg(feature = "json")]
        AnyFormat::JsonPretty if enveloped => serde_json::to_writer_pretty(Indent(&mut out), value)
            .map_err(|e| crate::format::json_serialize_error(e).unplaced()),
        #[cfg(feature = "toml")]
        AnyFormat::Toml if enveloped => {
            let mut text = toml::to_string(&Data { data: value })
                .map_err(|e| crate::format::serialize_error("toml", e).unplaced())?;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            out.write_all(b"\n")
                .and_then(|()| out.write_all(text.as_bytes()))
                .map_err(|e| crate::format::io_serialize_error("toml", e).unplaced())
        }
        #[cfg(feature = "yaml")]
        AnyFormat::Yaml if enveloped => {
            crate::format::yaml_to_writer(&Data { data: value }, out).map_err(FormatError::unplaced)
        }
        _ => format.serialize(value, out).map_err(FormatError::unplaced),
    }
}

/// Writes what comes before the payload in an enveloped file.
pub(crate) fn write_head<W: Write>(format: AnyFormat, mut out: W) -> io::Result<()> {
    match format {
        #[cfg(feature = "json")]
        AnyFormat::Json => out.write_all(JSON_HEAD),
        #[cfg(feature = "json")]
        AnyFormat::JsonPretty => out.write_all(JSON_PRETTY_HEAD),
        #[cfg(feature = "toml")]
        AnyFormat::Toml => out.write_all(TOML_LINES.prefix),
        #[cfg(feature = "yaml")]
        AnyFormat::Yaml => out.write_all(YAML_LINES.prefix),
        #[cfg(feature = "ron")]
        AnyFormat::Ron => out.write_all(RON_HEAD),
        #[cfg(feature = "binary")]
        AnyFormat::Binary => write_frame_head(out),
        AnyFormat::Custom(_) => write_frame_head(out),
    }
}

/// Writes what comes after the payload in an enveloped file.
pub(crate) fn write_tail<W: Write>(
    format: AnyFormat,
    meta: &Meta,
    payload_len: u64,
    mut out: W,
) -> io::Result<()> {
    #[cfg(any(feature = "json", feature = "toml", feature = "yaml", feature = "ron"))]
    let time = meta.written_at.to_string();
    match format {
        #[cfg(feature = "json")]
        AnyFormat::Json => write!(
            out,
            ",\"meta\":{{\"run_id\":\"{}\",\"written_at\":\"{time}\",\"generation\":{},\
             \"schema_version\":{},\"checksum\":\"crc32:{:08x}\"}}}}",
            meta.run_id, meta.generation, meta.schema_version, meta.checksum
        ),
        #[cfg(feature = "json")]
        AnyFormat::JsonPretty => write!(
            out,
            ",\n  \"meta\": {{\n    \"run_id\": \"{}\",\n    \"written_at\": \"{time}\",\n    \
             \"generation\": {},\n    \"schema_version\": {},\n    \
             \"checksum\": \"crc32:{:08x}\"\n  }}\n}}\n",
            meta.run_id, meta.generation, meta.schema_version, meta.checksum
        ),
        #[cfg(feature = "toml")]
        AnyFormat::Toml => write!(
            out,
            "[meta]\nrun_id = \"{}\"\nwritten_at = {time}\ngeneration = {}\n\
             schema_version = {}\nchecksum = \"crc32:{:08x}\"\n",
            meta.run_id, meta.generation, meta.schema_version, meta.checksum
        ),
        #[cfg(feature = "yaml")]
        AnyFormat::Yaml => write!(
            out,
            "meta:\n  run_id: \"{}\"\n  written_at: \"{time}\"\n  generation: {}\n  \
             schema_version: {}\n  checksum: \"crc32:{:08x}\"\n",
            meta.run_id, meta.generation, meta.schema_version, meta.checksum
        ),
        #[cfg(feature = "ron")]
        AnyFormat::Ron => write!(
            out,
            ",meta:(run_id:\"{}\",written_at:\"{time}\",generation:{},schema_version:{},\
             checksum:\"crc32:{:08x}\"))",
            meta.run_id, meta.generation, meta.schema_version, meta.checksum
        ),
        #[cfg(feature = "binary")]
        AnyFormat::Binary => write_frame_tail(meta, payload_len, out),
        AnyFormat::Custom(_) => write_frame_tail(meta, payload_len, out),
    }
}

/// The head of the framed layout (binary, custom formats): magic and version.
fn write_frame_head<W: Write>(mut out: W) -> io::Result<()> {
    out.write_all(&MAGIC)?;
    out.write_all(&ENVELOPE_VERSION.to_le_bytes())
}

/// The trailer of the framed layout: the payload's length, the meta, the magic again.
fn write_frame_tail<W: Write>(meta: &Meta, payload_len: u64, mut out: W) -> io::Result<()> {
    let (secs, nanos) = meta.written_at.parts();
    out.write_all(&payload_len.to_le_bytes())?;
    out.write_all(meta.run_id.as_bytes())?;
    out.write_all(&secs.to_le_bytes())?;
    out.write_all(&nanos.to_le_bytes())?;
    out.write_all(&meta.generation.to_le_bytes())?;
    out.write_all(&meta.schema_version.to_le_bytes())?;
    out.write_all(&meta.checksum.to_le_bytes())?;
    out.write_all(&MAGIC)
}

#[cfg(all(test, feature = "json"))]
mod tests {
    use super::*;

    /// A compact JSON envelope around `payload`, with the checksum it should carry.
    fn written(payload: &[u8]) -> Vec<u8> {
        let mut meta = Meta {
            run_id: Uuid::from_u128(7),
            written_at: Timestamp::from(SystemTime::UNIX_EPOCH),
            generation: 1,
            schema_version: 0,
            checksum: 0,
        };
        let mut crc = crc32fast::Hasher::new();
        crc.update(payload);
        meta.checksum = checksum(crc, &meta);
        let mut file = JSON_HEAD.to_vec();
        file.extend_from_slice(payload);
        write_tail(AnyFormat::Json, &meta, payload.len() as u64, &mut file).unwrap();
        file
    }

    #[test]
    fn the_written_layout_splits_without_parsing_and_decodes() {
        let file = written(b"[1,2,3]");
        let split = split_for_decode(AnyFormat::Json, &file, true, Edits::Refuse).unwrap();
        assert!(split.unparsed, "taken by the written-layout path");
        let v: Vec<u8> = decode(AnyFormat::Json, &file, &split).unwrap();
        assert_eq!(v, [1, 2, 3]);
    }

    #[test]
    fn a_payload_that_is_not_json_is_corrupt_as_split_says() {
        // The checksum matches: only a parse of the payload can tell.
        let file = written(b"[1,2,");
        let slow = split(AnyFormat::Json, &file, true)
            .err()
            .expect("split refuses it");
        let fast = split_for_decode(AnyFormat::Json, &file, true, Edits::Refuse).unwrap();
        let decoded = decode::<Vec<u8>>(AnyFormat::Json, &file, &fast).unwrap_err();
        assert!(matches!(decoded, Error::Corrupt { .. }), "{decoded:?}");
        assert_eq!(decoded.to_string(), slow.to_string());
    }

    #[test]
    fn a_value_that_does_not_fit_is_a_deserialize_error() {
        let file = written(b"\"text\"");
        let split = split_for_decode(AnyFormat::Json, &file, true, Edits::Refuse).unwrap();
        let decoded = decode::<Vec<u8>>(AnyFormat::Json, &file, &split).unwrap_err();
        assert!(matches!(decoded, Error::Deserialize { .. }), "{decoded:?}");
    }
}
