//! Verifying a file in one pass with bounded memory: what [`verify`](super::verify) (and
//! so the command line's `inspect` and `verify`) does, whatever the file's size.
//!
//! The payload comes first and the meta last in every layout, so the meta sits in the
//! file's last bytes: the head and a tail of at most [`TAIL`] bytes are read, the meta is
//! parsed by the same functions [`split`](super::split) uses, and the payload is hashed
//! (for JSON also checked to be one JSON value) as it streams past, in [`CHUNK`]-sized
//! reads. Only the layouts the crate writes are taken this way, and plain JSON and
//! binary files; anything else (a JSON envelope reformatted by hand, a plain TOML file,
//! a meta table padded past the tail) is [`Streamed::Whole`]: the caller reads it whole
//! and splits it, so both ways give the same answer for every file.

use std::fs::File;
#[cfg(feature = "json")]
use std::io::BufReader;
use std::io::{self, Read, Seek, SeekFrom};

use super::{Marker, check_checksum, marker};
use super::{Meta, corrupt};
use crate::error::{CorruptKind, Result};
use crate::format::AnyFormat;

/// How much of the file's end is read to find the meta: a written meta is a few hundred
/// bytes.
const TAIL: u64 = 4096;
/// How much of the file's start is read to recognise the layout.
const HEAD: u64 = 64;
/// The read size while the payload is hashed.
const CHUNK: usize = 64 * 1024;

/// What [`verify`] found.
pub(super) enum Streamed {
    /// Checked: the verified meta, `None` for a plain file.
    Checked(Option<Meta>),
    /// Not a layout this module takes: read the file whole and split it.
    Whole,
}

/// Verifies the open `file` of `size` bytes as [`split`](super::split) with the
/// envelope expected would, without holding more than a few chunks of it.
pub(super) fn verify(format: AnyFormat, file: &File, size: u64) -> Result<Streamed> {
    if size == 0 {
        return Ok(Streamed::Whole); // the empty-file rule, in one place
    }
    let head = read_range(file, 0, size.min(HEAD))?;
    let tail_start = size.saturating_sub(TAIL);
    let tail = read_range(file, tail_start, size - tail_start)?;
    match format {
        #[cfg(feature = "json")]
        AnyFormat::Json | AnyFormat::JsonPretty => json(file, size, &head, &tail),
        #[cfg(feature = "toml")]
        AnyFormat::Toml => lines(&super::TOML_LINES, format, (file, size), &head, &tail),
        #[cfg(feature = "yaml")]
        AnyFormat::Yaml => lines(&super::YAML_LINES, format, (file, size), &head, &tail),
        // A RON envelope is parsed whole: its meta is read by the same parse.
        #[cfg(feature = "ron")]
        AnyFormat::Ron => Ok(Streamed::Whole),
        #[cfg(feature = "binary")]
        AnyFormat::Binary => framed(format, file, size, (&head, &tail)),
        AnyFormat::Custom(_) => framed(format, file, size, (&head, &tail)),
    }
}

/// The framed layout (binary, custom formats).
fn framed(
    format: AnyFormat,
    file: &File,
    size: u64,
    (head, tail): (&[u8], &[u8]),
) -> Result<Streamed> {
    use super::{BINARY_HEADER, BINARY_TRAILER, MAGIC};
    match marker(format, head) {
        // Shorter than the magic and a start of it: the head is the whole file.
        Marker::Truncated => Ok(Streamed::Whole),
        // The rule of `looks_enveloped`: a plain file must not end with the magic.
        Marker::No if tail.ends_with(&MAGIC) => Ok(Streamed::Whole),
        Marker::No => Ok(Streamed::Checked(None)),
        Marker::Envelope => {
            let trailer = &tail[tail.len().saturating_sub(BINARY_TRAILER)..];
            let header = &head[..head.len().min(BINARY_HEADER)];
            let meta = super::binary_meta(header, trailer, size)?;
            let payload = (BINARY_HEADER as u64, size - BINARY_TRAILER as u64);
            let crc = hash_range(file, payload, no_check)?;
            check_checksum(crc, meta).map(|m| Streamed::Checked(Some(m)))
        }
    }
}

/// A TOML or YAML envelope in the layout the writer makes: the version line, then the
/// payload, then the line that opens the meta.
#[cfg(any(feature = "toml", feature = "yaml"))]
fn lines(
    layout: &super::Lines,
    format: AnyFormat,
    (file, size): (&File, u64),
    head: &[u8],
    tail: &[u8],
) -> Result<Streamed> {
    if marker(format, head) != Marker::Envelope || !head.starts_with(layout.prefix) {
        return Ok(Streamed::Whole); // a plain file must be parsed; odd first lines too
    }
    let tail_start = size - tail.len() as u64;
    let Some(at) = tail
        .windows(layout.meta.len())
        .rposition(|w| w == layout.meta)
    else {
        return Ok(Streamed::Whole);
    };
    // The meta line must come after the first line, as `split` looks for it.
    let at_in_file = tail_start + at as u64;
    if at_in_file < layout.prefix.len() as u64 {
        return Ok(Streamed::Whole);
    }
    let meta = (layout.parse_meta)(&tail[at + 1..])?;
    // The payload runs from the second line up to and including the newline before the
    // meta line.
    let payload = (layout.prefix.len() as u64, at_in_file + 1);
    let crc = hash_range(file, payload, no_check)?;
    check_checksum(crc, meta).map(|m| Streamed::Checked(Some(m)))
}

/// No syntax to check as the payload goes by (binary, TOML: the checksum says it all).
fn no_check(_: &mut Hashed<'_>) -> std::result::Result<(), std::convert::Infallible> {
    Ok(())
}

#[cfg(feature = "json")]
fn json(file: &File, size: u64, head: &[u8], tail: &[u8]) -> Result<Streamed> {
    use super::{JSON_HEAD, JSON_PRETTY_HEAD};
    // `marker` looks past white space, a `{` and white space again for the first key:
    // the head must hold all of that for its answer to be the whole file's.
    let rest = super::skip_json_ws(head);
    let key = rest.strip_prefix(b"{").map(super::skip_json_ws);
    if (head.len() as u64) < size && key.is_none_or(|k| k.len() < "\"atomic_persist\"".len()) {
        return Ok(Streamed::Whole);
    }
    if marker(AnyFormat::Json, head) == Marker::No {
        return plain_json(file);
    }
    // The two layouts the writer makes: head, payload, then `,"meta":{…}}` (compact) or
    // `,\n  "meta": {…}\n}\n` (indented).
    let (head_len, meta_key, end): (&[u8], &[u8], &[u8]) = if head.starts_with(JSON_HEAD) {
        (JSON_HEAD, b",\"meta\":", b"}")
    } else if head.starts_with(JSON_PRETTY_HEAD) {
        (JSON_PRETTY_HEAD, b",\n  \"meta\": ", b"\n}\n")
    } else {
        return Ok(Streamed::Whole);
    };
    let Some(key_at) = tail.windows(meta_key.len()).rposition(|w| w == meta_key) else {
        return Ok(Streamed::Whole);
    };
    let Some(object) = tail[key_at + meta_key.len()..].strip_suffix(end) else {
        return Ok(Streamed::Whole);
    };
    let payload = (head_len.len() as u64, size - (tail.len() - key_at) as u64);
    if payload.0 >= payload.1 {
        return Ok(Streamed::Whole);
    }
    // `split` hashes the value without the white space around it: a payload that starts
    // or ends with any is left to it.
    let first = read_range(file, payload.0, 1)?;
    let last = read_range(file, payload.1 - 1, 1)?;
    if is_json_ws(first[0]) || is_json_ws(last[0]) {
        return Ok(Streamed::Whole);
    }
    let meta = super::json_meta(object)?;
    let crc = hash_range(file, payload, |bytes| {
        // One JSON value and nothing else, checked as the bytes go by; and UTF-8 (the
        // grammar keeps everything outside strings ASCII; `split` holds the value as a
        // `&str`, while skipping a string here does not look at its bytes).
        bytes.utf8 = Some(Utf8::default());
        let mut de =
            serde_json::Deserializer::from_reader(BufReader::with_capacity(CHUNK, &mut *bytes));
        serde::de::IgnoredAny::deserialize(&mut de)
            .and_then(|_| de.end())
            .map_err(|e| e.to_string())?;
        io::copy(bytes, &mut io::sink()).map_err(|e| e.to_string())?;
        match bytes.utf8.take().is_some_and(|u| u.finish()) {
            true => Ok(()),
            false => Err("invalid UTF-8".to_string()),
        }
    })?;
    check_checksum(crc, meta).map(|m| Streamed::Checked(Some(m)))
}

#[cfg(feature = "json")]
use serde::Deserialize as _;

#[cfg(feature = "json")]
fn is_json_ws(b: u8) -> bool {
    super::skip_json_ws(&[b]).is_empty()
}

/// A file that does not start like an envelope: plain, unless its top level has the
/// shape of one (the rule of `looks_enveloped`), read as it streams.
#[cfg(feature = "json")]
fn plain_json(file: &File) -> Result<Streamed> {
    let reader = || -> Result<BufReader<&File>> {
        let mut reader = BufReader::with_capacity(CHUNK, file);
        reader.seek(SeekFrom::Start(0)).map_err(read_failed)?;
        Ok(reader)
    };
    // Not a JSON document at all (cut short, say): corrupt, found in the same pass.
    if let Err(e) = serde_json::from_reader::<_, serde::de::IgnoredAny>(reader()?) {
        return Err(super::unparsable(AnyFormat::Json, &e.to_string()));
    }
    let keys: Option<super::TopKeys> = serde_json::from_reader(reader()?).ok();
    if keys.is_some_and(|k| k.has_envelope_shape()) {
        return Ok(Streamed::Whole); // `split` words the error
    }
    Ok(Streamed::Checked(None))
}

/// CRC-32 of the bytes in `range` of `file`, which `check` also reads through (to check
/// their syntax); its error is the file's corruption.
fn hash_range<E: std::fmt::Display>(
    file: &File,
    range: (u64, u64),
    check: impl FnOnce(&mut Hashed<'_>) -> std::result::Result<(), E>,
) -> Result<crc32fast::Hasher> {
    let mut f = file;
    f.seek(SeekFrom::Start(range.0)).map_err(read_failed)?;
    let mut hashed = Hashed {
        inner: f.take(range.1 - range.0),
        crc: crc32fast::Hasher::new(),
        error: None,
        utf8: None,
    };
    let checked = check(&mut hashed);
    if let Some(e) = hashed.error.take() {
        return Err(read_failed(e));
    }
    checked.map_err(|e| {
        corrupt(
            CorruptKind::Damaged,
            format!("not a complete envelope ({e}): truncated, damaged or edited"),
        )
    })?;
    // Whatever `check` did not need is hashed too.
    io::copy(&mut hashed, &mut io::sink()).map_err(read_failed)?;
    Ok(hashed.crc)
}

/// A reader that hashes what passes through (and checks it is UTF-8, when asked).
struct Hashed<'a> {
    inner: io::Take<&'a File>,
    crc: crc32fast::Hasher,
    /// The first read error, kept so that it is not taken for a syntax error.
    error: Option<io::Error>,
    utf8: Option<Utf8>,
}

impl Read for Hashed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.crc.update(&buf[..n]);
                if let Some(u) = &mut self.utf8 {
                    u.feed(&buf[..n]);
                }
                Ok(n)
            }
            Err(e) => {
                let kept = io::Error::new(e.kind(), e.to_string());
                self.error.get_or_insert(e);
                Err(kept)
            }
        }
    }
}

/// UTF-8 validation of a byte stream that arrives in pieces: a character cut by a piece's
/// end waits for the next.
#[derive(Default)]
struct Utf8 {
    /// The start of a character cut by the last piece's end (at most 3 bytes).
    pending: Vec<u8>,
    bad: bool,
}

impl Utf8 {
    fn feed(&mut self, bytes: &[u8]) {
        if self.bad {
            return;
        }
        let mut joined = std::mem::take(&mut self.pending);
        joined.extend_from_slice(bytes);
        match std::str::from_utf8(&joined) {
            Ok(_) => {}
            // Cut at the end: keep the start of that character for the next piece.
            Err(e) if e.error_len().is_none() => {
                self.pending = joined[e.valid_up_to()..].to_vec();
            }
            Err(_) => self.bad = true,
        }
    }

    /// Whether everything fed was UTF-8, with no character left unfinished.
    fn finish(self) -> bool {
        !self.bad && self.pending.is_empty()
    }
}

/// The bytes of `file` from `start`, `len` of them.
fn read_range(file: &File, start: u64, len: u64) -> Result<Vec<u8>> {
    let mut f = file;
    f.seek(SeekFrom::Start(start)).map_err(read_failed)?;
    let mut out = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut out).map_err(read_failed)?;
    if (out.len() as u64) < len {
        // The file shrank while it was read: what it held is no longer there to check.
        return Err(corrupt(
            CorruptKind::Changed,
            "the file changed size while it was verified",
        ));
    }
    Ok(out)
}

/// A read error while verifying: an I/O error of the file (its path is filled in by the
/// caller).
fn read_failed(e: io::Error) -> crate::Error {
    crate::Error::io(crate::Op::Read, std::path::PathBuf::new(), e)
}
