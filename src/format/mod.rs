//! Formats: how a value becomes bytes and back.
//!
//! A [`Format`] turns a `serde` value into the bytes of a file and back. Six are built
//! in, each behind a Cargo feature:
//!
//! | format | extension | feature | notes |
//! |---|---|---|---|
//! | [`Json`] | `.json` | `json` (default) | compact, one line |
//! | [`JsonPretty`] | — | `json` (default) | indented, ends with a newline; choose it with [`PersistedBuilder::format`](crate::PersistedBuilder::format) |
//! | [`Toml`] | `.toml` | `toml` (default) | comments of a loaded config survive a save |
//! | `Yaml` | `.yaml`, `.yml` | `yaml` | block style, through serde-saphyr (pure Rust, no unsafe code, bounded against alias bombs) |
//! | `Ron` | `.ron` | `ron` | Rust Object Notation, compact (one line) |
//! | `Binary` | `.bin` | `binary` | postcard's stable wire format; small and fast, not self-describing |
//!
//! [`Persisted`](crate::Persisted) picks the format from the file's extension unless one
//! is given; [`AnyFormat::from_path`] does the same for your own code, and an unknown
//! extension is [`Error::UnknownFormat`], never a guess.
//!
//! # Errors carry positions
//!
//! A JSON, TOML, YAML or RON file that does not parse, or parses into the wrong shape,
//! gives [`Error::Deserialize`] with the 1-based line and column of the problem. Errors from the
//! methods of this trait have an empty path, since a format does not know the file;
//! [`Persisted`](crate::Persisted) fills it in.
//!
//! # The binary format is not self-describing
//!
//! postcard writes values without field names or type tags: the reader must know the
//! exact type. So serde features that need to look at the data to know its shape do not
//! work with `Binary`:
//!
//! - `#[serde(flatten)]` and maps of unknown length fail to serialize;
//! - `#[serde(untagged)]` enums, `#[serde(tag = "...")]` and `serde_json::Value`-like
//!   "any" types fail to deserialize;
//! - `#[serde(skip_serializing_if = "...")]` writes *nothing* for a skipped field, and the
//!   reader then reads the next field's bytes in its place: never combine it with
//!   `Binary`.
//!
//! The first two give an error that says so (it names "not self-describing"); the third
//! cannot be detected by the format and is why the envelope's checksum does not help
//! there: the bytes are intact, the type is wrong. Adding or reordering fields also
//! changes the wire format: bump the [`schema_version`](crate::PersistedBuilder::schema_version).
//!
//! # A format of your own
//!
//! [`Format`] is sealed: each built-in format has its own place for the
//! [envelope](crate::envelope) that keeps an enveloped file a valid document of its
//! format. A format of your own (MessagePack, CBOR, an in-house codec) is a
//! [`CustomFormat`]: a name and two generic serde functions. Every handle takes it
//! (`.format(&MyFormat)`), and the envelope, history, locks and object storage work
//! with it; its enveloped files use the framed layout the binary format uses. The trait's
//! docs say what a format must guarantee and show MessagePack in a few lines.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{BoxError, Error, Result};

mod custom;

pub use custom::{Custom, CustomFormat};

/// How a value becomes bytes and back (sealed; see the [module docs](self)).
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{Format, Json};
/// let mut bytes = Vec::new();
/// Json.serialize(&vec![1, 2, 3], &mut bytes)?;
/// assert_eq!(bytes, b"[1,2,3]");
/// let back: Vec<u32> = Json.deserialize(&bytes)?;
/// assert_eq!(back, [1, 2, 3]);
/// # }
/// # Ok::<(), atomic_persist::FormatError>(())
/// ```
pub trait Format: sealed::Sealed {
    /// The format's name in messages, such as `"json"`.
    fn name(&self) -> &'static str;

    /// Writes `value` as a complete document into `out`.
    ///
    /// # Errors
    ///
    /// A [`FormatError`] when the value has no representation in the format (a map with
    /// non-string keys in JSON, a bare value at the top of a TOML document) or `out`
    /// fails. No file is involved here, so it names none.
    fn serialize<T: Serialize + ?Sized, W: Write>(
        &self,
        value: &T,
        out: W,
    ) -> std::result::Result<(), FormatError>;

    /// Reads a value from a complete document.
    ///
    /// # Errors
    ///
    /// A [`FormatError`] when the bytes are not a document of the format or do not fit
    /// `T` (with line and column for JSON and TOML).
    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8])
    -> std::result::Result<T, FormatError>;
}

mod sealed {
    /// Seals [`Format`](super::Format): a format of your own is a
    /// [`CustomFormat`](super::CustomFormat).
    pub trait Sealed {}
}

/// Compact JSON (`.json`): one line, no trailing newline.
#[cfg(feature = "json")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Json;

/// Indented JSON: two spaces per level, ends with a newline. Not chosen by extension:
/// ask for it with [`PersistedBuilder::format`](crate::PersistedBuilder::format).
#[cfg(feature = "json")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct JsonPretty;

/// TOML (`.toml`). The value must serialize as a table (a struct or a map).
#[cfg(feature = "toml")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Toml;

/// YAML (`.yaml`, `.yml`) in block style, through serde-saphyr: pure Rust with no
/// unsafe code, and bounded against documents that expand without limit (alias bombs).
/// A file holds one document; a top-level value of any type is allowed.
#[cfg(feature = "yaml")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Yaml;

/// RON, Rust Object Notation (`.ron`), written compact on one line; any RON layout,
/// comments included, reads.
#[cfg(feature = "ron")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ron;

/// postcard's compact binary wire format (`.bin`); see the
/// [module docs](self#the-binary-format-is-not-self-describing) for its limits.
#[cfg(feature = "binary")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Binary;

/// One of the built-in formats, as a value: what [`Persisted`](crate::Persisted) stores,
/// and what [`AnyFormat::from_path`] picks from an extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AnyFormat {
    /// [`Json`].
    #[cfg(feature = "json")]
    Json,
    /// [`JsonPretty`].
    #[cfg(feature = "json")]
    JsonPretty,
    /// [`Toml`].
    #[cfg(feature = "toml")]
    Toml,
    /// [`Binary`].
    #[cfg(feature = "binary")]
    Binary,
    /// [`Yaml`].
    #[cfg(feature = "yaml")]
    Yaml,
    /// [`Ron`].
    #[cfg(feature = "ron")]
    Ron,
    /// A [`CustomFormat`] of your own ([`AnyFormat::custom`]).
    Custom(Custom),
}

impl AnyFormat {
    /// The format for a file name's extension: `.json` → [`Json`], `.toml` → [`Toml`],
    /// `.yaml` and `.yml` → `Yaml`, `.ron` → `Ron`, `.bin` → `Binary`
    /// (case-insensitive). Anything else, or an extension whose
    /// feature is off, is [`Error::UnknownFormat`].
    ///
    /// # Errors
    ///
    /// [`Error::UnknownFormat`] for an unknown extension,
    /// none, or one whose feature is off.
    ///
    /// ```
    /// use atomic_persist::{AnyFormat, Error};
    /// # #[cfg(feature = "json")]
    /// assert_eq!(AnyFormat::from_path("state.json")?, AnyFormat::Json);
    /// assert!(matches!(AnyFormat::from_path("state.ini"), Err(Error::UnknownFormat { .. })));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<AnyFormat> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let unknown = |reason: String| Error::UnknownFormat {
            path: path.to_path_buf(),
            reason,
        };
        match ext.as_deref() {
            #[cfg(feature = "json")]
            Some("json") => Ok(AnyFormat::Json),
            #[cfg(not(feature = "json"))]
            Some("json") => Err(unknown("the `json` feature is not enabled".into())),
            #[cfg(feature = "toml")]
            Some("toml") => Ok(AnyFormat::Toml),
            #[cfg(not(feature = "toml"))]
            Some("toml") => Err(unknown("the `toml` feature is not enabled".into())),
            #[cfg(feature = "binary")]
            Some("bin") => Ok(AnyFormat::Binary),
            #[cfg(not(feature = "binary"))]
            Some("bin") => Err(unknown("the `binary` feature is not enabled".into())),
            #[cfg(feature = "yaml")]
            Some("yaml" | "yml") => Ok(AnyFormat::Yaml),
            #[cfg(not(feature = "yaml"))]
            Some("yaml" | "yml") => Err(unknown("the `yaml` feature is not enabled".into())),
            #[cfg(feature = "ron")]
            Some("ron") => Ok(AnyFormat::Ron),
            #[cfg(not(feature = "ron"))]
            Some("ron") => Err(unknown("the `ron` feature is not enabled".into())),
            Some(other) => Err(unknown(format!(
                "no format for the extension `.{other}` (known: {KNOWN})"
            ))),
            None => Err(unknown(format!(
                "the file name has no extension to choose a format by (known: {KNOWN})"
            ))),
        }
    }
}

/// The extensions [`AnyFormat::from_path`] knows, for its messages.
const KNOWN: &str = ".json, .toml, .yaml, .yml, .ron, .bin";

impl AnyFormat {
    /// Whether people read and edit files of this format as text (the built-in text
    /// formats: a custom one is framed as binary is).
    pub(crate) fn is_text(self) -> bool {
        match self {
            #[cfg(feature = "binary")]
            AnyFormat::Binary => false,
            AnyFormat::Custom(_) => false,
            #[allow(unreachable_patterns)] // with no text format on
            _ => true,
        }
    }
}

impl sealed::Sealed for AnyFormat {}

impl Format for AnyFormat {
    fn name(&self) -> &'static str {
        match *self {
            #[cfg(feature = "json")]
            AnyFormat::Json => Json.name(),
            #[cfg(feature = "json")]
            AnyFormat::JsonPretty => JsonPretty.name(),
            #[cfg(feature = "toml")]
            AnyFormat::Toml => Toml.name(),
            #[cfg(feature = "binary")]
            AnyFormat::Binary => Binary.name(),
            #[cfg(feature = "yaml")]
            AnyFormat::Yaml => Yaml.name(),
            #[cfg(feature = "ron")]
            AnyFormat::Ron => Ron.name(),
            AnyFormat::Custom(c) => c.name(),
        }
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(&self, value: &T, out: W) -> FormatResult<()> {
        match *self {
            #[cfg(feature = "json")]
            AnyFormat::Json => Json.serialize(value, out),
            #[cfg(feature = "json")]
            AnyFormat::JsonPretty => JsonPretty.serialize(value, out),
            #[cfg(feature = "toml")]
            AnyFormat::Toml => Toml.serialize(value, out),
            #[cfg(feature = "binary")]
            AnyFormat::Binary => Binary.serialize(value, out),
            #[cfg(feature = "yaml")]
            AnyFormat::Yaml => Yaml.serialize(value, out),
            #[cfg(feature = "ron")]
            AnyFormat::Ron => Ron.serialize(value, out),
            AnyFormat::Custom(c) => c.serialize(value, out),
        }
    }

    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> FormatResult<T> {
        match *self {
            #[cfg(feature = "json")]
            AnyFormat::Json => Json.deserialize(bytes),
            #[cfg(feature = "json")]
            AnyFormat::JsonPretty => JsonPretty.deserialize(bytes),
            #[cfg(feature = "toml")]
            AnyFormat::Toml => Toml.deserialize(bytes),
            #[cfg(feature = "binary")]
            AnyFormat::Binary => Binary.deserialize(bytes),
            #[cfg(feature = "yaml")]
            AnyFormat::Yaml => Yaml.deserialize(bytes),
            #[cfg(feature = "ron")]
            AnyFormat::Ron => Ron.deserialize(bytes),
            AnyFormat::Custom(c) => c.deserialize(bytes),
        }
    }
}

/// Implements `From<F> for AnyFormat` and the seal for a unit format type.
macro_rules! unit_format {
    ($ty:ident, $feature:literal) => {
        #[cfg(feature = $feature)]
        impl sealed::Sealed for $ty {}
        #[cfg(feature = $feature)]
        impl From<$ty> for AnyFormat {
            fn from(_: $ty) -> AnyFormat {
                AnyFormat::$ty
            }
        }
    };
}
unit_format!(Json, "json");
unit_format!(JsonPretty, "json");
unit_format!(Toml, "toml");
unit_format!(Binary, "binary");
unit_format!(Yaml, "yaml");
unit_format!(Ron, "ron");

/// Why a [`Format`] could not write or read a value. A format works on bytes, not
/// files, so this names no file; a handle reports it as [`Error::Serialize`] or
/// [`Error::Deserialize`] naming the file or key.
///
/// ```
/// # #[cfg(feature = "json")] {
/// use atomic_persist::{Format, Json};
/// let e = Json.deserialize::<Vec<u32>>(b"[1,\n x]").unwrap_err();
/// assert!(e.is_deserialize());
/// assert_eq!((e.format(), e.line(), e.column()), ("json", Some(2), Some(2)));
/// # }
/// ```
#[derive(Debug)]
pub struct FormatError {
    format: &'static str,
    /// `None` for a serialize error; else the 1-based line and column, where known.
    position: Option<(Option<usize>, Option<usize>)>,
    source: BoxError,
}

/// A format's result.
type FormatResult<T> = std::result::Result<T, FormatError>;

impl FormatError {
    /// The format's name, such as `"json"`.
    pub fn format(&self) -> &'static str {
        self.format
    }

    /// Whether reading failed (else writing did).
    pub fn is_deserialize(&self) -> bool {
        self.position.is_some()
    }

    /// The 1-based line of a read error, when the format reports one.
    pub fn line(&self) -> Option<usize> {
        self.position.and_then(|p| p.0)
    }

    /// The 1-based column of a read error, when the format reports one.
    pub fn column(&self) -> Option<usize> {
        self.position.and_then(|p| p.1)
    }

    /// The crate's error for the file at `path`.
    pub(crate) fn at(self, path: &Path) -> Error {
        let path = path.to_path_buf();
        match self.position {
            None => Error::Serialize {
                path,
                source: self.source,
            },
            Some((line, column)) => Error::Deserialize {
                path,
                format: self.format,
                line,
                column,
                source: self.source,
            },
        }
    }

    /// The crate's error before the file is known: its path is filled in, by
    /// [`Error::at`], before it reaches a caller.
    pub(crate) fn unplaced(self) -> Error {
        self.at(Path::new(""))
    }
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.position {
            None => write!(f, "cannot serialize as {}: {}", self.format, self.source),
            Some((line, column)) => {
                let at = crate::error::Position(line, column);
                write!(f, "cannot parse as {}{at}: {}", self.format, self.source)
            }
        }
    }
}

impl std::error::Error for FormatError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A serialize error of `format`.
pub(crate) fn serialize_error(format: &'static str, source: impl Into<BoxError>) -> FormatError {
    FormatError {
        format,
        position: None,
        source: source.into(),
    }
}

/// A deserialize error of `format`, at a 1-based (line, column) where known.
pub(crate) fn deserialize_error(
    format: &'static str,
    position: Option<(usize, usize)>,
    source: impl Into<BoxError>,
) -> FormatError {
    FormatError {
        format,
        position: Some((position.map(|p| p.0), position.map(|p| p.1))),
        source: source.into(),
    }
}

/// The 1-based line and column of byte `offset` in `bytes` (columns count characters).
#[cfg_attr(not(any(feature = "json", feature = "toml")), allow(dead_code))]
pub(crate) fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, column)
}

#[cfg(feature = "json")]
impl Format for Json {
    fn name(&self) -> &'static str {
        "json"
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(&self, value: &T, out: W) -> FormatResult<()> {
        serde_json::to_writer(out, value).map_err(json_serialize_error)
    }

    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> FormatResult<T> {
        serde_json::from_slice(bytes).map_err(|e| json_deserialize_error(e, (1, 1)))
    }
}

#[cfg(feature = "json")]
impl Format for JsonPretty {
    fn name(&self) -> &'static str {
        "json"
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(
        &self,
        value: &T,
        mut out: W,
    ) -> FormatResult<()> {
        serde_json::to_writer_pretty(&mut out, value).map_err(json_serialize_error)?;
        out.write_all(b"\n")
            .map_err(|e| io_serialize_error("json", e))
    }

    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> FormatResult<T> {
        Json.deserialize(bytes)
    }
}

/// A write error while serializing as `format`: the writer's I/O error, kept as the
/// source.
pub(crate) fn io_serialize_error(format: &'static str, e: std::io::Error) -> FormatError {
    serialize_error(format, e)
}

#[cfg(feature = "json")]
pub(crate) fn json_serialize_error(e: serde_json::Error) -> FormatError {
    match e.io_error_kind() {
        // The writer failed, not the value: keep the I/O error so the caller can tell.
        Some(kind) => serialize_error("json", std::io::Error::new(kind, e)),
        None => serialize_error("json", e),
    }
}

/// A JSON error at a position inside a document that starts at `origin` (line, column)
/// of the file.
#[cfg(feature = "json")]
pub(crate) fn json_deserialize_error(e: serde_json::Error, origin: (usize, usize)) -> FormatError {
    let position = (e.line() > 0).then(|| shift(origin, (e.line(), e.column())));
    deserialize_error("json", position, JsonMessage(e))
}

/// A 1-based (line, column) inside a document that starts at `origin` of the file, as
/// a position in the file: only the first line's columns move.
#[cfg_attr(not(any(feature = "json", feature = "ron")), allow(dead_code))]
pub(crate) fn shift(origin: (usize, usize), (line, column): (usize, usize)) -> (usize, usize) {
    match line {
        1 => (origin.0, origin.1 + column - 1),
        _ => (origin.0 + line - 1, column),
    }
}

/// serde_json's message without its own " at line L column C" suffix (the error has
/// the position as fields).
#[cfg(feature = "json")]
#[derive(Debug)]
struct JsonMessage(serde_json::Error);

#[cfg(feature = "json")]
impl std::fmt::Display for JsonMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = self.0.to_string();
        let suffix = format!(" at line {} column {}", self.0.line(), self.0.column());
        f.write_str(full.strip_suffix(&suffix).unwrap_or(&full))
    }
}

#[cfg(feature = "json")]
impl std::error::Error for JsonMessage {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[cfg(feature = "toml")]
impl Format for Toml {
    fn name(&self) -> &'static str {
        "toml"
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(
        &self,
        value: &T,
        mut out: W,
    ) -> FormatResult<()> {
        let text = toml::to_string(value).map_err(|e| serialize_error("toml", e))?;
        out.write_all(text.as_bytes())
            .map_err(|e| io_serialize_error("toml", e))
    }

    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> FormatResult<T> {
        toml_from_slice(bytes, bytes, 0)
    }
}

/// Parses `part`, which starts at byte `offset` of the whole file `file`, so positions
/// point into the file.
#[cfg(feature = "toml")]
pub(crate) fn toml_from_slice<T: DeserializeOwned>(
    file: &[u8],
    part: &[u8],
    offset: usize,
) -> FormatResult<T> {
    toml::from_slice(part).map_err(|e| {
        let position = e.span().map(|span| line_column(file, offset + span.start));
        deserialize_error("toml", position, e.message().trim_end().to_string())
    })
}

#[cfg(feature = "yaml")]
impl Format for Yaml {
    fn name(&self) -> &'static str {
        "yaml"
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(&self, value: &T, out: W) -> FormatResult<()> {
        yaml_to_writer(value, out)
    }

    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> FormatResult<T> {
        yaml_from_slice(bytes, bytes, 0)
    }
}

/// Writes `value` as a YAML document ending with a newline.
#[cfg(feature = "yaml")]
pub(crate) fn yaml_to_writer<T: Serialize + ?Sized, W: Write>(
    value: &T,
    out: W,
) -> FormatResult<()> {
    let mut out = LastByte {
        inner: out,
        last: None,
    };
    serde_saphyr::to_io_writer(&mut out, &value).map_err(|e| match e {
        serde_saphyr::SerializeError::IO { error } => io_serialize_error("yaml", error),
        other => serialize_error("yaml", other),
    })?;
    // The envelope's meta starts on a line of its own.
    if out.last.is_some_and(|b| b != b'\n') {
        out.write_all(b"\n")
            .map_err(|e| io_serialize_error("yaml", e))?;
    }
    Ok(())
}

/// A writer that remembers the last byte written.
#[cfg(feature = "yaml")]
struct LastByte<W> {
    inner: W,
    last: Option<u8>,
}

#[cfg(feature = "yaml")]
impl<W: Write> Write for LastByte<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        if n > 0 {
            self.last = Some(buf[n - 1]);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Parses one YAML document, non-finite floats as floats, with serde-saphyr's limits
/// scaled to its size: the
/// defaults (250,000 nodes, 64 levels) fit a hand-written config but not a saved state
/// of a few megabytes, which must load as it saved. Scaled to the input, they still
/// bound what aliases can expand to (a linear multiple of the file: what they are for).
#[cfg(feature = "yaml")]
pub(crate) fn yaml_parse<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<T, serde_saphyr::Error> {
    let len = bytes.len();
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = budget.max_events.max(len.saturating_mul(2));
    budget.max_nodes = budget.max_nodes.max(len);
    budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(len);
    budget.max_depth = 128; // serde_json's limit
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // `.nan` and `.inf` are floats in YAML, and what a saved NaN serializes to: a value
    // read through `deserialize_any` (an "any" type, an untagged enum, the document
    // check of `verify`) takes them as the floats they are rather than an error.
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    serde_saphyr::from_slice_with_options(bytes, options)
}

/// Parses the YAML document `part`, which starts at byte `offset` of the whole file
/// `file` at the start of a line, so positions point into the file.
#[cfg(feature = "yaml")]
pub(crate) fn yaml_from_slice<T: DeserializeOwned>(
    file: &[u8],
    part: &[u8],
    offset: usize,
) -> FormatResult<T> {
    yaml_parse(part).map_err(|e| {
        let origin = line_column(file, offset).0;
        let position = e
            .location()
            .filter(|l| l.line() > 0)
            .map(|l| (origin + l.line() as usize - 1, l.column() as usize));
        deserialize_error("yaml", position, e.without_snippet().to_string())
    })
}

#[cfg(feature = "ron")]
impl Format for Ron {
    fn name(&self) -> &'static str {
        "ron"
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(&self, value: &T, out: W) -> FormatResult<()> {
        ron::Options::default()
            .to_io_writer(out, value)
            .map_err(|e| match e {
                ron::Error::Io(io) => serialize_error("ron", std::io::Error::other(io)),
                other => serialize_error("ron", other),
            })
    }

    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> FormatResult<T> {
        ron_from_slice(bytes, (1, 1))
    }
}

/// Parses the RON value `part`, which starts at `origin` (line, column) of its file.
#[cfg(feature = "ron")]
pub(crate) fn ron_from_slice<T: DeserializeOwned>(
    part: &[u8],
    origin: (usize, usize),
) -> FormatResult<T> {
    ron::Options::default().from_bytes(part).map_err(|e| {
        let at = e.span.start;
        let position = (at.line > 0).then(|| shift(origin, (at.line, at.col)));
        deserialize_error("ron", position, e.code.to_string())
    })
}

#[cfg(feature = "binary")]
impl Format for Binary {
    fn name(&self) -> &'static str {
        "binary"
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(&self, value: &T, out: W) -> FormatResult<()> {
        let mut out = ErrorKeeping {
            inner: out,
            error: None,
        };
        match postcard::to_io(value, &mut out) {
            Ok(_) => Ok(()),
            Err(e) => Err(match out.error.take() {
                Some(io) => io_serialize_error("binary", io),
                None => serialize_error("binary", postcard_message(e)),
            }),
        }
    }

    fn deserialize<T: DeserializeOwned>(&self, bytes: &[u8]) -> FormatResult<T> {
        match postcard::take_from_bytes::<T>(bytes) {
            Ok((value, [])) => Ok(value),
            Ok((_, rest)) => Err(deserialize_error(
                "binary",
                None,
                format!(
                    "{} bytes left over after the value: the file holds another type",
                    rest.len()
                ),
            )),
            Err(e) => Err(deserialize_error("binary", None, postcard_message(e))),
        }
    }
}

/// postcard's message, with the reason spelled out where it is the format's nature.
#[cfg(feature = "binary")]
fn postcard_message(e: postcard::Error) -> String {
    match e {
        postcard::Error::WontImplement | postcard::Error::SerializeSeqLengthUnknown => format!(
            "{e}: the binary format (postcard) is not self-describing, so this type's \
             serde attributes (#[serde(flatten)], #[serde(untagged)], internally tagged \
             enums, or 'any' values) cannot be used with it; use JSON or TOML"
        ),
        other => other.to_string(),
    }
}

/// A writer that remembers the I/O error postcard would otherwise flatten into its own.
#[cfg(feature = "binary")]
struct ErrorKeeping<W> {
    inner: W,
    error: Option<std::io::Error>,
}

#[cfg(feature = "binary")]
impl<W: Write> Write for ErrorKeeping<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).inspect_err(|e| {
            self.error = Some(std::io::Error::new(e.kind(), e.to_string()));
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf).inspect_err(|e| {
            self.error = Some(std::io::Error::new(e.kind(), e.to_string()));
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The layout of a file written by bincode, for [`read_bincode`].
#[cfg(feature = "bincode")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BincodeLayout {
    /// bincode 1.x's `bincode::serialize` (fixed-size little-endian integers); also
    /// bincode 2's `config::legacy()`.
    #[default]
    Legacy,
    /// bincode 2's `config::standard()` (variable-length integers).
    Standard,
}

/// Reads a value from a file written by a bincode program (feature `bincode`), to
/// migrate it to a maintained format. bincode is unmaintained (RUSTSEC-2025-0141), so
/// this crate only reads it: save the value again with [`Binary`] or another format.
///
/// # Errors
///
/// [`Error::NotFound`] when there is no file;
/// [`Error::Deserialize`] when the bytes are not a `T` in that
/// layout; [`Error::Refused`], [`Error::Io`] as
/// for any read.
///
/// ```
/// use atomic_persist::format::{read_bincode, BincodeLayout};
/// # let dir = tempfile::tempdir()?;
/// # let old = dir.path().join("state.bincode");
/// # std::fs::write(&old, bincode::serde::encode_to_vec(&(7u32, "x"), bincode::config::legacy())?)?;
/// let value: (u32, String) = read_bincode(&old, BincodeLayout::Legacy)?;
/// assert_eq!(value, (7, "x".to_string()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "bincode")]
pub fn read_bincode<T: DeserializeOwned>(
    path: impl AsRef<Path>,
    layout: BincodeLayout,
) -> Result<T> {
    let path = path.as_ref();
    let bytes = crate::trust::read(path, crate::trust::Read::DATA)?;
    // bincode trusts length prefixes; with the wrong layout (or a damaged file) one can
    // ask for terabytes. A limit of 64 times the file's size (for files up to 16 MiB)
    // bounds that while leaving room for in-memory sizes above on-disk ones.
    macro_rules! decode_limited {
        ($config:expr) => {{
            let need = (bytes.len() as u64).saturating_mul(64);
            let config = $config;
            if need <= 1 << 20 {
                bincode::serde::decode_from_slice::<T, _>(
                    &bytes,
                    config.with_limit::<{ 1 << 20 }>(),
                )
            } else if need <= 1 << 26 {
                bincode::serde::decode_from_slice::<T, _>(
                    &bytes,
                    config.with_limit::<{ 1 << 26 }>(),
                )
            } else if need <= 1 << 30 {
                bincode::serde::decode_from_slice::<T, _>(
                    &bytes,
                    config.with_limit::<{ 1 << 30 }>(),
                )
            } else {
                bincode::serde::decode_from_slice::<T, _>(
                    &bytes,
                    config.with_limit::<{ usize::MAX }>(),
                )
            }
        }};
    }
    let decoded = match layout {
        BincodeLayout::Legacy => decode_limited!(bincode::config::legacy()),
        BincodeLayout::Standard => decode_limited!(bincode::config::standard()),
    };
    let error = |source: String| deserialize_error("bincode", None, source).at(path);
    match decoded {
        Ok((value, n)) if n == bytes.len() => Ok(value),
        Ok((_, n)) => Err(error(format!(
            "{} bytes left over after the value: another type or layout",
            bytes.len() - n
        ))),
        Err(e) => Err(error(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_extension_is_a_clear_error() {
        let e = AnyFormat::from_path("/tmp/settings.ini").unwrap_err();
        assert!(matches!(e, Error::UnknownFormat { .. }));
        let msg = e.to_string();
        assert!(msg.contains(".ini") && msg.contains(".yaml"), "{msg}");
        let e = AnyFormat::from_path("/tmp/settings").unwrap_err();
        assert!(e.to_string().contains("no extension"), "{e}");
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column(b"ab\ncd", 0), (1, 1));
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
    }

    #[cfg(feature = "json")]
    #[test]
    fn json_errors_have_positions() {
        let e = Json.deserialize::<Vec<u32>>(b"[1,\n 2,\n x]").unwrap_err();
        assert!(e.is_deserialize());
        assert_eq!(
            (e.format(), e.line(), e.column()),
            ("json", Some(3), Some(2))
        );
        assert!(
            e.to_string()
                .starts_with("cannot parse as json at line 3 column 2: "),
            "{e}"
        );
        // Placed at a file, it is the crate's error naming it.
        match e.at(Path::new("a.json")) {
            Error::Deserialize {
                path,
                line: Some(3),
                ..
            } => assert_eq!(path, Path::new("a.json")),
            other => panic!("{other:?}"),
        }
    }

    #[cfg(feature = "toml")]
    #[test]
    fn toml_errors_have_positions() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct C {
            a: u32,
        }
        let e = Toml.deserialize::<C>(b"# c\na = \"x\"\n").unwrap_err();
        assert_eq!((e.line(), e.column()), (Some(2), Some(5)));
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn yaml_errors_have_positions() {
        let e = Yaml
            .deserialize::<Vec<u32>>(b"- 1\n- 2\n- x\n")
            .unwrap_err();
        assert_eq!(
            (e.format(), e.line(), e.column()),
            ("yaml", Some(3), Some(3))
        );
    }

    #[cfg(feature = "ron")]
    #[test]
    fn ron_errors_have_positions() {
        let e = Ron.deserialize::<Vec<u32>>(b"[1,\n x]").unwrap_err();
        assert_eq!(
            (e.format(), e.line(), e.column()),
            ("ron", Some(2), Some(2))
        );
    }

    #[cfg(feature = "yaml")]
    #[test]
    fn yaml_and_yml_pick_yaml_and_ron_picks_ron() {
        assert_eq!(AnyFormat::from_path("a.yaml").unwrap(), AnyFormat::Yaml);
        assert_eq!(AnyFormat::from_path("a.YML").unwrap(), AnyFormat::Yaml);
        #[cfg(feature = "ron")]
        assert_eq!(AnyFormat::from_path("a.ron").unwrap(), AnyFormat::Ron);
    }

    #[cfg(all(feature = "bincode", feature = "binary"))]
    #[test]
    fn bincode_files_read_and_migrate_to_binary() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Default)]
        struct Old {
            id: u64,
            name: String,
            scores: Vec<i32>,
        }
        let value = Old {
            id: 1 << 40,
            name: "old".into(),
            scores: vec![-1, 2, 3],
        };
        let dir = tempfile::tempdir().unwrap();
        for (layout, config) in [
            (BincodeLayout::Legacy, true),
            (BincodeLayout::Standard, false),
        ] {
            let path = dir.path().join("old.bincode");
            let bytes = if config {
                bincode::serde::encode_to_vec(&value, bincode::config::legacy()).unwrap()
            } else {
                bincode::serde::encode_to_vec(&value, bincode::config::standard()).unwrap()
            };
            std::fs::write(&path, &bytes).unwrap();
            let back: Old = read_bincode(&path, layout).unwrap();
            assert_eq!(back, value);
            // The wrong layout is an error, not a value.
            let other = match layout {
                BincodeLayout::Legacy => BincodeLayout::Standard,
                BincodeLayout::Standard => BincodeLayout::Legacy,
            };
            let e = read_bincode::<Old>(&path, other).unwrap_err();
            assert!(matches!(e, Error::Deserialize { .. }), "{e:?}");
            assert_eq!(e.path(), path);

            let new = dir.path().join("new.bin");
            let mut p = crate::Persisted::open_or_else(&new, || back).unwrap();
            p.commit().unwrap();
            assert_eq!(
                crate::Persisted::<Old>::open(&new).unwrap().into_inner(),
                value
            );
            std::fs::remove_file(&new).unwrap();
        }
    }

    #[cfg(feature = "json")]
    #[test]
    fn extension_picks_the_format_case_insensitively() {
        assert_eq!(AnyFormat::from_path("a.JSON").unwrap(), AnyFormat::Json);
    }
}
