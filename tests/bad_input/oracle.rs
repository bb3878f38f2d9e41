//! The oracle for bad input, shared by `tests/bad_input.rs` and the fuzz targets in
//! `fuzz/` (which include this file by path).
//!
//! [`check`] writes some bytes to a file, loads them through the public entry points
//! (`Persisted::<T>::builder(path).format(f).envelope(on).schema_version(v).open()` and
//! `envelope::verify(path)`) and panics when an invariant breaks:
//!
//! 1. Nothing panics; every error is `Corrupt`, `Deserialize`, `SchemaVersion` or (the
//!    envelope off, a file that starts like one) `UnexpectedEnvelope`, and
//!    names the file's path.
//! 2. An enveloped load (`meta()` is `Some(m)`) means the checksum held: a reference
//!    reader written from the on-disk spec (`src/envelope.rs`), independent of the
//!    crate's reader, finds the payload bytes `P` and the meta fields in the file, the
//!    CRC-32 of `P` and the 56 canonical meta bytes equals the stored checksum, `m`
//!    equals the reference meta field by field, and the value equals what the format's
//!    own parser makes of exactly `P`. `verify` returns the same `Some(m)`.
//! 3. Re-serializing the loaded value with the loaded meta (by the spec, with the
//!    reference writer) reproduces a file that loads and verifies: the same value (by
//!    `Debug`) and the same meta, its checksum recomputed over the new payload.
//! 4. A plain load with the envelope on (`meta()` is `None`) happens only for a file the
//!    reading rules call plain: not empty, not starting like an envelope, not shaped like
//!    one; its value is what the format's parser makes of the whole file; `verify` says
//!    `Ok(None)`. With the envelope off, a load is never of a file that starts like an
//!    envelope, and its value is the format's parse of the whole file.
//! 5. Consistency: when `verify` accepts a file, the schema version is supported and the
//!    format's parser accepts the payload as `T`, the load succeeds.
//!
//! Values are compared by their `Debug` text, so NaN equals NaN and -0.0 differs from 0.0.
#![allow(dead_code)] // the test and the fuzz targets use different parts

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use atomic_persist::{
    AnyFormat, Binary, Error, Json, JsonPretty, Meta, Persisted, Ron, Toml, Yaml,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// Representative value types

/// Strings, numbers, a nested vec of structs, an option and an enum.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Record {
    pub id: u64,
    pub delta: i32,
    pub name: String,
    pub ratio: f64,
    pub tags: Vec<String>,
    pub limit: Option<u32>,
    pub mode: Mode,
    pub nested: Vec<Nested>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Nested {
    pub label: String,
    pub values: Vec<i16>,
    pub on: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub enum Mode {
    #[default]
    Idle,
    Every(u32),
    Window {
        from: u32,
        to: u32,
    },
}

/// Every field optional: the type a damaged file is easiest to mistake for.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
pub struct Lenient {
    pub id: u64,
    pub name: String,
    pub ratio: f64,
    pub tags: Vec<String>,
    pub limit: Option<u32>,
    pub mode: Mode,
    pub nested: Vec<Nested>,
}

/// Sample values to build valid files from.
pub fn records() -> Vec<Record> {
    vec![
        Record {
            id: 42,
            delta: -7,
            name: "checkpoint".into(),
            ratio: 0.25,
            tags: vec!["x".into(), "y z".into()],
            limit: Some(1000),
            mode: Mode::Window { from: 1, to: 9 },
            nested: vec![
                Nested {
                    label: "a".into(),
                    values: vec![1, -2, 300],
                    on: true,
                },
                Nested::default(),
            ],
        },
        Record {
            id: i64::MAX as u64, // TOML integers are i64
            delta: i32::MIN,
            name: "ünïcode \"quoted\" \\ [meta]\n".into(),
            ratio: -1.5e300,
            tags: vec![],
            limit: None,
            mode: Mode::Every(5),
            nested: vec![],
        },
        Record {
            id: 0,
            delta: 0,
            name: String::new(),
            ratio: 0.0,
            tags: vec![String::new()],
            limit: Some(0),
            mode: Mode::Idle,
            nested: vec![Nested {
                label: "atomic_persist".into(),
                values: vec![i16::MIN, i16::MAX],
                on: false,
            }],
        },
    ]
}

impl From<Record> for Lenient {
    fn from(r: Record) -> Self {
        Lenient {
            id: r.id,
            name: r.name,
            ratio: r.ratio,
            tags: r.tags,
            limit: r.limit,
            mode: r.mode,
            nested: r.nested,
        }
    }
}

/// The types loaded from each format: index with a selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Record,
    Lenient,
    /// `serde_json::Value` for JSON, `toml::Table` for TOML, `Vec<u8>` for binary (which
    /// has no self-describing "any" type).
    Any,
}

pub const TYS: [Ty; 3] = [Ty::Record, Ty::Lenient, Ty::Any];

/// The formats with the extension their files get.
pub fn formats() -> [AnyFormat; 6] {
    [
        Json.into(),
        JsonPretty.into(),
        Toml.into(),
        Binary.into(),
        Yaml.into(),
        Ron.into(),
    ]
}

pub fn ext(format: AnyFormat) -> &'static str {
    match format {
        AnyFormat::Toml => "toml",
        AnyFormat::Binary => "bin",
        AnyFormat::Yaml => "yaml",
        AnyFormat::Ron => "ron",
        _ => "json",
    }
}

/// The format the `verify` fuzz target's selector byte picks.
pub fn verify_format(sel: u8) -> AnyFormat {
    match sel % 5 {
        0 => Json.into(),
        1 => Toml.into(),
        2 => Binary.into(),
        3 => Yaml.into(),
        _ => Ron.into(),
    }
}

/// YAML as the spec reads it: one document, at most 128 levels deep (serde_json's limit;
/// the parser's own is 64), `.nan` and `.inf` floats wherever a float may be, other
/// limits as serde-saphyr has them for small files.
fn yaml<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = 128;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;
    serde_saphyr::from_slice_with_options(bytes, options).ok()
}

fn ron<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    ron::Options::default().from_bytes(bytes).ok()
}

// ---------------------------------------------------------------------------------------
// Valid files, written by the crate itself

/// Valid files of `format`: every sample value of every type, plain and enveloped (the
/// enveloped ones at generations 1 and 2), as `(enveloped, bytes)`.
pub fn valid_files(dir: &Path, format: AnyFormat) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    for (i, r) in records().into_iter().enumerate() {
        push_valid(dir, format, r.clone(), &mut out);
        if i == 0 {
            push_valid(dir, format, Lenient::from(r.clone()), &mut out);
            match format {
                AnyFormat::Binary => push_valid(dir, format, vec![1u8, 2, 3], &mut out),
                AnyFormat::Toml => {
                    let t: toml::Table = toml::from_str(&toml::to_string(&r).unwrap()).unwrap();
                    push_valid(dir, format, t, &mut out);
                }
                _ => push_valid(dir, format, serde_json::to_value(&r).unwrap(), &mut out),
            }
        }
    }
    out
}

fn push_valid<T: Serialize + DeserializeOwned + Clone>(
    dir: &Path,
    format: AnyFormat,
    value: T,
    out: &mut Vec<(bool, Vec<u8>)>,
) {
    let path = dir.join(format!("valid.{}", ext(format)));
    for envelope in [false, true] {
        let _ = std::fs::remove_file(&path);
        let mut p = Persisted::<T>::builder(&path)
            .format(format)
            .envelope(envelope)
            .schema_version(if envelope { 3 } else { 0 })
            .open_or_else(|| value.clone())
            .unwrap();
        p.commit().unwrap();
        out.push((envelope, std::fs::read(&path).unwrap()));
        if envelope {
            // A second generation: a new schema version forces a write of the same payload.
            let mut again = Persisted::<T>::builder(&path)
                .format(format)
                .envelope(true)
                .schema_version(4)
                .open()
                .unwrap();
            again.commit().unwrap();
            out.push((envelope, std::fs::read(&path).unwrap()));
        }
    }
    let _ = std::fs::remove_file(&path);
}

// ---------------------------------------------------------------------------------------
// A reference reader and writer, from the on-disk spec in `src/envelope.rs`

/// The meta fields of an envelope, as the spec defines them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefMeta {
    pub run_id: Uuid,
    pub written_at: jiff::Timestamp,
    pub generation: u64,
    pub schema_version: u32,
    pub checksum: u32,
}

impl RefMeta {
    /// The 56 canonical meta bytes.
    pub fn canonical(&self) -> [u8; 56] {
        let mut out = [0u8; 56];
        out[..16].copy_from_slice(b"atomic-persist/1");
        out[16..32].copy_from_slice(self.run_id.as_bytes());
        out[32..40].copy_from_slice(&self.written_at.as_second().to_le_bytes());
        out[40..44].copy_from_slice(&self.written_at.subsec_nanosecond().to_le_bytes());
        out[44..52].copy_from_slice(&self.generation.to_le_bytes());
        out[52..56].copy_from_slice(&self.schema_version.to_le_bytes());
        out
    }

    /// The checksum the spec gives `payload` with this meta.
    pub fn crc(&self, payload: &[u8]) -> u32 {
        let mut h = crc32fast::Hasher::new();
        h.update(payload);
        h.update(&self.canonical());
        h.finalize()
    }

    /// Whether the stored checksum holds for `payload`.
    pub fn holds(&self, payload: &[u8]) -> bool {
        self.crc(payload) == self.checksum
    }

    /// Whether the crate's `Meta` says the same, field by field.
    pub fn matches(&self, m: &Meta) -> bool {
        m.run_id == self.run_id
            && exact_time(m) == self.written_at
            && m.generation == self.generation
            && m.schema_version == self.schema_version
            && m.checksum == self.checksum
    }

    pub fn of(m: &Meta) -> RefMeta {
        RefMeta {
            run_id: m.run_id,
            written_at: exact_time(m),
            generation: m.generation,
            schema_version: m.schema_version,
            checksum: m.checksum,
        }
    }
}

/// A meta's time to the nanosecond, as it displays (a `SystemTime` would round it to
/// the platform's resolution: 100 ns on Windows).
fn exact_time(m: &Meta) -> jiff::Timestamp {
    m.written_at
        .to_string()
        .parse()
        .expect("a meta's time displays as RFC 3339")
}

fn parse_checksum(text: &str) -> Option<u32> {
    let hex = text.strip_prefix("crc32:")?;
    if hex.len() != 8 {
        return None;
    }
    u32::from_str_radix(hex, 16).ok()
}

fn text_meta(
    run_id: &str,
    written_at: &str,
    generation: u64,
    schema_version: u32,
    checksum: &str,
) -> Option<RefMeta> {
    Some(RefMeta {
        run_id: Uuid::try_parse(run_id).ok()?,
        written_at: written_at.parse().ok()?,
        generation,
        schema_version,
        checksum: parse_checksum(checksum)?,
    })
}

/// The payload and meta of a complete envelope, as the spec reads it (checksum not
/// checked); `None` when the bytes are not one.
pub fn ref_envelope(format: AnyFormat, bytes: &[u8]) -> Option<(&[u8], RefMeta)> {
    match format {
        AnyFormat::Toml => ref_toml(bytes),
        AnyFormat::Binary => ref_binary(bytes),
        AnyFormat::Yaml => ref_yaml(bytes),
        AnyFormat::Ron => ref_ron(bytes),
        _ => ref_json(bytes),
    }
}

/// The meta fields as the text formats spell them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RefTextMeta {
    run_id: String,
    written_at: String,
    generation: u64,
    schema_version: u32,
    checksum: String,
}

impl RefTextMeta {
    fn parse(self) -> Option<RefMeta> {
        text_meta(
            &self.run_id,
            &self.written_at,
            self.generation,
            self.schema_version,
            &self.checksum,
        )
    }
}

/// The byte offset of the last line exactly `line` in `rest`, not at its start (an
/// empty payload is not an envelope: the writer never makes one).
fn last_line(rest: &[u8], line: &[u8]) -> Option<usize> {
    let mut found = None;
    let mut start = 0;
    while start <= rest.len() {
        let end = rest[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| start + i);
        if start > 0 && &rest[start..end] == line {
            found = Some(start);
        }
        start = end + 1;
    }
    found
}

fn ref_yaml(bytes: &[u8]) -> Option<(&[u8], RefMeta)> {
    const FIRST: &[u8] = b"atomic_persist: 1\n";
    let rest = bytes.strip_prefix(FIRST)?;
    let at = last_line(rest, b"meta:")?;
    let (payload, meta_text) = rest.split_at(at);
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct MetaOnly {
        meta: RefTextMeta,
    }
    let m: MetaOnly = yaml(meta_text)?;
    Some((payload, m.meta.parse()?))
}

fn ref_ron(bytes: &[u8]) -> Option<(&[u8], RefMeta)> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope<'a> {
        atomic_persist: u64,
        #[serde(borrow)]
        data: &'a ron::value::RawValue,
        meta: RefTextMeta,
    }
    // The writer writes no extension attributes (`#![enable(..)]`) and no struct name:
    // an envelope starts with its `(`.
    if !ron_skip(bytes).starts_with(b"(") {
        return None;
    }
    let e: Envelope<'_> = ron::Options::default().from_bytes(bytes).ok()?;
    if e.atomic_persist != 1 {
        return None;
    }
    let payload = e.data.get_ron().as_bytes();
    let start = payload.as_ptr() as usize - bytes.as_ptr() as usize;
    Some((&bytes[start..start + payload.len()], e.meta.parse()?))
}

fn ref_json(bytes: &[u8]) -> Option<(&[u8], RefMeta)> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Envelope<'a> {
        atomic_persist: u64,
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
        meta: TextMeta,
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct TextMeta {
        run_id: String,
        written_at: String,
        generation: u64,
        schema_version: u32,
        checksum: String,
    }
    let e: Envelope<'_> = serde_json::from_slice(bytes).ok()?;
    if e.atomic_persist != 1 {
        return None;
    }
    let m = e.meta;
    let meta = text_meta(
        &m.run_id,
        &m.written_at,
        m.generation,
        m.schema_version,
        &m.checksum,
    )?;
    let payload = e.data.get().as_bytes();
    // The payload must be the file's own bytes, not a copy.
    let start = payload.as_ptr() as usize - bytes.as_ptr() as usize;
    Some((&bytes[start..start + payload.len()], meta))
}

fn ref_toml(bytes: &[u8]) -> Option<(&[u8], RefMeta)> {
    const FIRST: &[u8] = b"atomic_persist = 1\n";
    if !bytes.starts_with(FIRST) {
        return None;
    }
    let rest = &bytes[FIRST.len()..];
    let at = last_line(rest, b"[meta]")?;
    let (payload, meta_text) = rest.split_at(at);
    let table: toml::Table = toml::from_slice(meta_text).ok()?;
    if table.len() != 1 {
        return None;
    }
    let meta = table.get("meta")?.as_table()?;
    if meta.len() != 5 {
        return None;
    }
    let written_at = match meta.get("written_at")? {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        _ => return None,
    };
    let generation = u64::try_from(meta.get("generation")?.as_integer()?).ok()?;
    let schema_version = u32::try_from(meta.get("schema_version")?.as_integer()?).ok()?;
    let m = text_meta(
        meta.get("run_id")?.as_str()?,
        &written_at,
        generation,
        schema_version,
        meta.get("checksum")?.as_str()?,
    )?;
    Some((payload, m))
}

fn ref_binary(bytes: &[u8]) -> Option<(&[u8], RefMeta)> {
    const TRAILER: usize = 8 + 16 + 8 + 4 + 8 + 4 + 4 + 8;
    if bytes.len() < 12 + TRAILER || &bytes[..8] != b"APERSIST" {
        return None;
    }
    let u = |at: usize, n: usize| {
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&bytes[at..at + n]);
        u64::from_le_bytes(b)
    };
    if u(8, 4) != 1 {
        return None;
    }
    let t = bytes.len() - TRAILER;
    if &bytes[bytes.len() - 8..] != b"APERSIST" || u(t, 8) != (t - 12) as u64 {
        return None;
    }
    let seconds = i64::from_le_bytes(bytes[t + 24..t + 32].try_into().unwrap());
    let nanos = i32::from_le_bytes(bytes[t + 32..t + 36].try_into().unwrap());
    let m = RefMeta {
        run_id: Uuid::from_slice(&bytes[t + 8..t + 24]).unwrap(),
        written_at: jiff::Timestamp::new(seconds, nanos).ok()?,
        generation: u(t + 36, 8),
        schema_version: u(t + 44, 4) as u32,
        checksum: u(t + 48, 4) as u32,
    };
    Some((&bytes[12..t], m))
}

/// Whether the file starts like an envelope (or a truncated start of one): the reading
/// rules then demand a complete, intact envelope.
pub fn starts_like_envelope(format: AnyFormat, bytes: &[u8]) -> bool {
    fn prefix(bytes: &[u8], start: &[u8], full: &[u8]) -> bool {
        bytes.starts_with(start) || (!bytes.is_empty() && full.starts_with(bytes))
    }
    match format {
        AnyFormat::Toml => prefix(bytes, b"atomic_persist =", b"atomic_persist = 1\n"),
        AnyFormat::Binary => prefix(bytes, b"APERSIST", b"APERSIST"),
        AnyFormat::Yaml => prefix(bytes, b"atomic_persist:", b"atomic_persist: 1\n"),
        AnyFormat::Ron => {
            let rest = ron_skip(bytes);
            let Some(rest) = rest.strip_prefix(b"(") else {
                return false;
            };
            let rest = ron_skip(rest);
            rest.strip_prefix(b"atomic_persist").is_some_and(|after| {
                !after
                    .first()
                    .is_some_and(|&c| c == b'_' || c.is_ascii_alphanumeric())
            })
        }
        _ => {
            let ws = |b: &[u8]| {
                let n = b
                    .iter()
                    .take_while(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
                    .count();
                b[n..].to_vec()
            };
            let rest = ws(bytes);
            rest.first() == Some(&b'{') && ws(&rest[1..]).starts_with(b"\"atomic_persist\"")
        }
    }
}

/// RON's white space (its parser's `is_whitespace_char`: Unicode's pattern white space)
/// and comments (`//` to the end of the line, `/* */` nested), skipped.
fn ron_skip(bytes: &[u8]) -> &[u8] {
    let mut text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        // Up to the first byte that is not UTF-8: RON is UTF-8 text.
        Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap(),
    };
    let start = text.as_ptr();
    loop {
        let trimmed = text.trim_start_matches(|c| {
            matches!(
                c,
                ' ' | '\t'
                    | '\n'
                    | '\r'
                    | '\x0B'
                    | '\x0C'
                    | '\u{85}'
                    | '\u{200E}'
                    | '\u{200F}'
                    | '\u{2028}'
                    | '\u{2029}'
            )
        });
        if let Some(rest) = trimmed.strip_prefix("//") {
            // A slice of `rest` even when empty: the offset is taken from its pointer.
            text = &rest[rest.find('\n').unwrap_or(rest.len())..];
        } else if trimmed.starts_with("/*") {
            let mut depth = 0;
            let mut rest = trimmed;
            loop {
                if rest.is_empty() {
                    break;
                } else if let Some(r) = rest.strip_prefix("/*") {
                    depth += 1;
                    rest = r;
                } else if let Some(r) = rest.strip_prefix("*/") {
                    depth -= 1;
                    rest = r;
                    if depth == 0 {
                        break;
                    }
                } else {
                    let mut chars = rest.chars();
                    chars.next();
                    rest = chars.as_str();
                }
            }
            text = rest;
        } else {
            text = trimmed;
            break;
        }
    }
    let skipped = text.as_ptr() as usize - start as usize;
    &bytes[skipped..]
}

/// Whether the file has the shape of an envelope: a top level with two of the three
/// envelope keys and nothing else, or (binary) a file ending with the magic.
pub fn looks_enveloped(format: AnyFormat, bytes: &[u8]) -> bool {
    let keys: Vec<String> = match format {
        AnyFormat::Binary => return bytes.ends_with(b"APERSIST"),
        AnyFormat::Toml => match toml::from_slice::<toml::Table>(bytes) {
            Ok(t) => t.keys().cloned().collect(),
            Err(_) => return false,
        },
        AnyFormat::Yaml | AnyFormat::Ron => {
            let parsed = match format {
                AnyFormat::Yaml => yaml::<serde_json::Value>(bytes),
                _ => ron::<serde_json::Value>(bytes),
            };
            match parsed {
                Some(serde_json::Value::Object(o)) => o.keys().cloned().collect(),
                _ => return false,
            }
        }
        _ => match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(serde_json::Value::Object(o)) => o.keys().cloned().collect(),
            _ => return false,
        },
    };
    let envelope_keys = ["atomic_persist", "data", "meta"];
    keys.len() >= 2 && keys.iter().all(|k| envelope_keys.contains(&k.as_str()))
}

/// What the format's own parser makes of a whole plain file.
pub fn decode_plain<T: DeserializeOwned>(format: AnyFormat, bytes: &[u8]) -> Option<T> {
    match format {
        AnyFormat::Toml => toml::from_slice(bytes).ok(),
        AnyFormat::Binary => match postcard::take_from_bytes(bytes) {
            Ok((v, [])) => Some(v),
            _ => None,
        },
        AnyFormat::Yaml => yaml(bytes),
        AnyFormat::Ron => ron(bytes),
        _ => serde_json::from_slice(bytes).ok(),
    }
}

#[derive(Serialize, Deserialize)]
struct Data<T> {
    data: T,
}

/// What the format's own parser makes of an envelope's payload.
pub fn decode_payload<T: DeserializeOwned>(format: AnyFormat, payload: &[u8]) -> Option<T> {
    match format {
        AnyFormat::Toml => toml::from_slice::<Data<T>>(payload).ok().map(|d| d.data),
        AnyFormat::Yaml => yaml::<Data<T>>(payload).map(|d| d.data),
        _ => decode_plain(format, payload),
    }
}

/// The payload of `value` as the spec writes it; `None` when the format cannot hold it.
pub fn ref_payload<T: Serialize>(format: AnyFormat, value: &T) -> Option<Vec<u8>> {
    match format {
        AnyFormat::Toml => {
            let mut text = toml::to_string(&Data { data: value }).ok()?;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            Some(format!("\n{text}").into_bytes())
        }
        AnyFormat::Binary => postcard::to_stdvec(value).ok(),
        AnyFormat::Yaml => {
            let mut text = serde_saphyr::to_string(&Data { data: value }).ok()?;
            if !text.ends_with('\n') {
                text.push('\n');
            }
            Some(text.into_bytes())
        }
        AnyFormat::Ron => ron::to_string(value).ok().map(String::into_bytes),
        _ => serde_json::to_vec(value).ok(),
    }
}

/// A whole enveloped file, as the spec lays it out.
pub fn ref_write(format: AnyFormat, payload: &[u8], m: &RefMeta) -> Vec<u8> {
    let mut out = Vec::new();
    let time = m.written_at.to_string();
    match format {
        AnyFormat::Toml => {
            out.extend_from_slice(b"atomic_persist = 1\n");
            out.extend_from_slice(payload);
            // TOML date-times have four-digit years; other times go as strings.
            let time = if time.starts_with(['-', '+']) {
                format!("\"{time}\"")
            } else {
                time
            };
            out.extend_from_slice(
                format!(
                    "[meta]\nrun_id = \"{}\"\nwritten_at = {time}\ngeneration = {}\n\
                     schema_version = {}\nchecksum = \"crc32:{:08x}\"\n",
                    m.run_id, m.generation, m.schema_version, m.checksum
                )
                .as_bytes(),
            );
        }
        AnyFormat::Yaml => {
            out.extend_from_slice(b"atomic_persist: 1\n");
            out.extend_from_slice(payload);
            out.extend_from_slice(
                format!(
                    "meta:\n  run_id: \"{}\"\n  written_at: \"{time}\"\n  generation: {}\n  \
                     schema_version: {}\n  checksum: \"crc32:{:08x}\"\n",
                    m.run_id, m.generation, m.schema_version, m.checksum
                )
                .as_bytes(),
            );
        }
        AnyFormat::Ron => {
            out.extend_from_slice(b"(atomic_persist:1,data:");
            out.extend_from_slice(payload);
            out.extend_from_slice(
                format!(
                    ",meta:(run_id:\"{}\",written_at:\"{time}\",generation:{},\
                     schema_version:{},checksum:\"crc32:{:08x}\"))",
                    m.run_id, m.generation, m.schema_version, m.checksum
                )
                .as_bytes(),
            );
        }
        AnyFormat::Binary => {
            out.extend_from_slice(b"APERSIST");
            out.extend_from_slice(&1u32.to_le_bytes());
            out.extend_from_slice(payload);
            out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
            out.extend_from_slice(m.run_id.as_bytes());
            out.extend_from_slice(&m.written_at.as_second().to_le_bytes());
            out.extend_from_slice(&m.written_at.subsec_nanosecond().to_le_bytes());
            out.extend_from_slice(&m.generation.to_le_bytes());
            out.extend_from_slice(&m.schema_version.to_le_bytes());
            out.extend_from_slice(&m.checksum.to_le_bytes());
            out.extend_from_slice(b"APERSIST");
        }
        _ => {
            out.extend_from_slice(b"{\"atomic_persist\":1,\"data\":");
            out.extend_from_slice(payload);
            out.extend_from_slice(
                format!(
                    ",\"meta\":{{\"run_id\":\"{}\",\"written_at\":\"{time}\",\"generation\":{},\
                     \"schema_version\":{},\"checksum\":\"crc32:{:08x}\"}}}}",
                    m.run_id, m.generation, m.schema_version, m.checksum
                )
                .as_bytes(),
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The checks

/// How a load ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Rejected,
    Plain,
    Enveloped,
}

fn dbg<T: Debug>(v: &T) -> String {
    format!("{v:?}")
}

fn show(bytes: &[u8]) -> String {
    format!(
        "{:?}",
        String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
    )
}

/// Checks `envelope::verify` on `bytes` written to `dir/input.EXT`; returns its answer.
/// Whether `bytes` is a document of `format` (any binary is, without a type to check).
pub fn is_document(format: AnyFormat, bytes: &[u8]) -> bool {
    match format {
        AnyFormat::Json | AnyFormat::JsonPretty => {
            serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
        }
        AnyFormat::Toml => std::str::from_utf8(bytes)
            .ok()
            .is_some_and(|t| t.parse::<toml::Table>().is_ok()),
        AnyFormat::Yaml => yaml::<serde::de::IgnoredAny>(bytes).is_some(),
        AnyFormat::Ron => ron::<serde::de::IgnoredAny>(bytes).is_some(),
        _ => true,
    }
}

pub fn check_verify(
    dir: &Path,
    format: AnyFormat,
    bytes: &[u8],
) -> (PathBuf, atomic_persist::Result<Option<Meta>>) {
    let path = dir.join(format!("input.{}", ext(format)));
    std::fs::write(&path, bytes).unwrap();
    let verified = atomic_persist::envelope::verify(&path);
    let reference = ref_envelope(format, bytes);
    let intact = reference.as_ref().filter(|(p, m)| m.holds(p));
    match &verified {
        Ok(Some(m)) => {
            let (_, rm) = intact.unwrap_or_else(|| {
                panic!(
                    "verify accepted a {format:?} file that is not an intact envelope by \
                     the spec: {m:?}\n{}",
                    show(bytes)
                )
            });
            assert!(
                rm.matches(m),
                "verify's meta {m:?} is not the file's {rm:?}"
            );
        }
        Ok(None) => assert!(
            !bytes.is_empty()
                && !starts_like_envelope(format, bytes)
                && !looks_enveloped(format, bytes)
                && is_document(format, bytes),
            "verify called a damaged {format:?} file plain: {}",
            show(bytes)
        ),
        Err(e) => {
            assert!(matches!(e, Error::Corrupt { .. }), "verify: {e:?}");
            assert_eq!(e.path(), path, "the error names the file");
            assert!(
                intact.is_none(),
                "verify refused an intact {format:?} envelope ({e}): {}",
                show(bytes)
            );
        }
    }
    (path, verified)
}

/// Loads `bytes` as a `T` of `format` through `Persisted` (and `verify`) and checks every
/// invariant of the module docs; panics when one breaks.
pub fn check<T>(dir: &Path, format: AnyFormat, envelope: bool, schema: u32, bytes: &[u8]) -> Outcome
where
    T: Serialize + DeserializeOwned + Debug,
{
    let (path, verified) = check_verify(dir, format, bytes);
    let intact = ref_envelope(format, bytes).filter(|(p, m)| m.holds(p));
    let loaded = Persisted::<T>::builder(&path)
        .format(format)
        .envelope(envelope)
        .schema_version(schema)
        .open();
    let what = || {
        format!(
            "{format:?} as {}, envelope {envelope}, schema {schema}: {}",
            std::any::type_name::<T>(),
            show(bytes)
        )
    };
    let p = match loaded {
        Err(e) => {
            assert_eq!(e.path(), path, "the error names the file: {e:?}");
            match &e {
                Error::Corrupt { .. } | Error::Deserialize { .. } => {}
                // Only with the envelope off, and only for a file that starts like one.
                Error::UnexpectedEnvelope { .. } => assert!(
                    !envelope && starts_like_envelope(format, bytes),
                    "{e:?} for {}",
                    what()
                ),
                Error::SchemaVersion {
                    found, supported, ..
                } => assert!(
                    envelope
                        && *supported == schema
                        && *found > schema
                        && intact.as_ref().map(|(_, m)| m.schema_version) == Some(*found),
                    "{e:?} for {}",
                    what()
                ),
                other => panic!("unexpected error {other:?} for {}", what()),
            }
            // An intact envelope whose payload parses as T loads.
            if envelope
                && let Some((payload, m)) = &intact
                && m.schema_version <= schema
                && decode_payload::<T>(format, payload).is_some()
            {
                panic!(
                    "refused an intact envelope whose payload parses ({e}): {}",
                    what()
                );
            }
            // With the envelope off, a file that does not start like one and parses loads.
            if !envelope
                && !starts_like_envelope(format, bytes)
                && decode_plain::<T>(format, bytes).is_some()
            {
                panic!("refused a plain file that parses ({e}): {}", what());
            }
            return Outcome::Rejected;
        }
        Ok(p) => p,
    };
    let value = dbg(p.get());
    match p.meta() {
        Some(m) => {
            assert!(envelope, "a meta with the envelope off: {}", what());
            assert_enveloped_load::<T>(format, bytes, m, &value, &what());
            assert!(m.schema_version <= schema, "{m:?} above {schema}");
            assert!(
                matches!(&verified, Ok(Some(vm)) if vm == m),
                "verify disagrees with the load: {verified:?} vs {m:?}"
            );
            reserialized(dir, format, schema, p.get(), m);
            Outcome::Enveloped
        }
        None => {
            assert!(
                !starts_like_envelope(format, bytes),
                "a file that starts like an envelope loaded as plain: {}",
                what()
            );
            if envelope {
                assert!(
                    !bytes.is_empty() && !looks_enveloped(format, bytes),
                    "a damaged envelope loaded as plain: {}",
                    what()
                );
                assert!(
                    matches!(verified, Ok(None)),
                    "verify disagrees: {verified:?}"
                );
            }
            let direct = decode_plain::<T>(format, bytes).map(|v| dbg(&v));
            assert_eq!(
                Some(&value),
                direct.as_ref(),
                "the loaded value is not the file's: {}",
                what()
            );
            Outcome::Plain
        }
    }
}

/// The checks of an enveloped load of `bytes` that gave `m` and a value whose `Debug`
/// text is `value`: the checksum holds by the spec, and the value is the payload's.
pub fn assert_enveloped_load<T: DeserializeOwned + Debug>(
    format: AnyFormat,
    bytes: &[u8],
    m: &Meta,
    value: &str,
    what: &str,
) {
    let intact = ref_envelope(format, bytes).filter(|(p, m)| m.holds(p));
    let (payload, rm) = intact.unwrap_or_else(|| {
        panic!(
            "loaded as enveloped ({m:?}), but the file is not an intact envelope by the \
             spec: {what}"
        )
    });
    assert!(rm.matches(m), "loaded meta {m:?} is not the file's {rm:?}");
    let direct = decode_payload::<T>(format, payload).map(|v| dbg(&v));
    assert_eq!(
        Some(value),
        direct.as_deref(),
        "the loaded value is not the payload's: {what}"
    );
}

/// The value and meta of an enveloped load, written again by the spec, load and verify
/// as the same value and meta (the checksum recomputed for the new payload).
fn reserialized<T>(dir: &Path, format: AnyFormat, schema: u32, value: &T, m: &Meta)
where
    T: Serialize + DeserializeOwned + Debug,
{
    let Some(payload) = ref_payload(format, value) else {
        return; // a value the format cannot write (not a loading matter)
    };
    let mut rm = RefMeta::of(m);
    rm.checksum = rm.crc(&payload);
    let bytes = ref_write(format, &payload, &rm);
    let path = dir.join(format!("again.{}", ext(format)));
    std::fs::write(&path, &bytes).unwrap();
    let vm = atomic_persist::envelope::verify(&path)
        .unwrap_or_else(|e| {
            panic!(
                "the re-serialized file does not verify: {e}: {}",
                show(&bytes)
            )
        })
        .expect("the re-serialized file is enveloped");
    assert!(rm.matches(&vm), "{vm:?} vs {rm:?}");
    let again = Persisted::<T>::builder(&path)
        .format(format)
        .envelope(true)
        .schema_version(schema)
        .open()
        .unwrap_or_else(|e| {
            panic!(
                "the re-serialized file does not load: {e}: {}",
                show(&bytes)
            )
        });
    assert_eq!(
        dbg(again.get()),
        dbg(value),
        "the value changed on a round trip"
    );
    assert_eq!(again.meta(), Some(&vm));
}

/// Runs [`check`] for the type `ty` of `format`.
pub fn check_ty(
    dir: &Path,
    format: AnyFormat,
    ty: Ty,
    envelope: bool,
    schema: u32,
    bytes: &[u8],
) -> Outcome {
    match (ty, format) {
        (Ty::Record, _) => check::<Record>(dir, format, envelope, schema, bytes),
        (Ty::Lenient, _) => check::<Lenient>(dir, format, envelope, schema, bytes),
        (Ty::Any, AnyFormat::Toml) => check::<toml::Table>(dir, format, envelope, schema, bytes),
        (Ty::Any, AnyFormat::Binary) => check::<Vec<u8>>(dir, format, envelope, schema, bytes),
        (Ty::Any, _) => check::<serde_json::Value>(dir, format, envelope, schema, bytes),
    }
}

/// An envelope around `payload` whose checksum holds, as the spec writes it: the way to
/// reach the payload's decoding with bytes a blind mutation of the file would almost
/// never get past the checksum with.
pub fn wrapped(format: AnyFormat, payload: &[u8], generation: u64) -> Vec<u8> {
    let mut m = RefMeta {
        run_id: Uuid::from_u128(0x0193_e8a4_7c1d_7b6e_9f00_0123_4567_89ab),
        written_at: jiff::Timestamp::new(1_764_099_662, 123_456_789).unwrap(),
        generation,
        schema_version: 0,
        checksum: 0,
    };
    m.checksum = m.crc(payload);
    ref_write(format, payload, &m)
}

/// One fuzz input: the first byte chooses the envelope (bit 0), the type (bits 1-2), the
/// schema version the reader supports (bit 3: 0 or `u32::MAX`), for JSON compact or
/// pretty (bit 4), and whether the rest is the file (bit 5 clear) or the payload of an
/// envelope whose checksum holds ([`wrapped`]; bit 5 set).
pub fn fuzz_one(dir: &Path, format: AnyFormat, data: &[u8]) -> Outcome {
    let Some((&sel, bytes)) = data.split_first() else {
        return Outcome::Rejected;
    };
    let envelope = sel & 1 == 1;
    let ty = TYS[usize::from((sel >> 1) & 3) % TYS.len()];
    let schema = if sel & 8 == 0 { 0 } else { u32::MAX };
    let format = match format {
        AnyFormat::Json | AnyFormat::JsonPretty if sel & 16 != 0 => JsonPretty.into(),
        other => other,
    };
    if sel & 32 != 0 {
        let file = wrapped(format, bytes, 1);
        return check_ty(dir, format, ty, envelope, schema, &file);
    }
    check_ty(dir, format, ty, envelope, schema, bytes)
}

// ---------------------------------------------------------------------------------------
// History: the manifest and the version files

/// A history `state.json` of three versions (the three sample records), with its
/// pristine manifest and version 2's file, to damage one at a time.
pub struct HistoryFixture {
    pub path: PathBuf,
    pub manifest_path: PathBuf,
    pub v2_path: PathBuf,
    pub values: Vec<Record>,
    pub truth: Vec<atomic_persist::VersionInfo>,
    pub manifest: Vec<u8>,
    pub v2: Vec<u8>,
}

pub fn history_fixture(dir: &Path) -> HistoryFixture {
    use atomic_persist::history::History;
    let path = dir.join("state.json");
    let values = records();
    let mut h = History::<Record>::builder(&path)
        .open_or_else(|| values[0].clone())
        .unwrap();
    h.commit().unwrap();
    h.set(values[1].clone()).unwrap();
    h.set(values[2].clone()).unwrap();
    let raw = h.raw();
    let truth = h.versions().unwrap();
    assert_eq!(truth.len(), 3);
    let manifest_path = raw.manifest_path();
    let v2_path = raw.version_path(2);
    HistoryFixture {
        manifest: std::fs::read(&manifest_path).unwrap(),
        v2: std::fs::read(&v2_path).unwrap(),
        path,
        manifest_path,
        v2_path,
        values,
        truth,
    }
}

fn same_info(a: &atomic_persist::VersionInfo, b: &atomic_persist::VersionInfo) -> bool {
    (
        a.generation,
        &a.path,
        a.run_id,
        a.written_at,
        a.schema_version,
        a.size,
        a.checksum,
    ) == (
        b.generation,
        &b.path,
        b.run_id,
        b.written_at,
        b.schema_version,
        b.size,
        b.checksum,
    )
}

/// Whether the manifest `bytes` has an entry that says exactly `info` (the documented
/// cache: an entry is trusted when its generation and size match the file's).
fn manifest_says(bytes: &[u8], info: &atomic_persist::VersionInfo) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return false;
    };
    let Some(entries) = v.get("versions").and_then(|e| e.as_array()) else {
        return false;
    };
    entries.iter().any(|e| {
        let s = |k: &str| e.get(k).and_then(|x| x.as_str()).unwrap_or("");
        let n = |k: &str| e.get(k).and_then(|x| x.as_u64());
        n("generation") == Some(info.generation)
            && n("size") == Some(info.size)
            && n("schema_version") == Some(u64::from(info.schema_version))
            && Uuid::try_parse(s("run_id")).ok() == Some(info.run_id)
            && s("written_at").parse::<jiff::Timestamp>().ok()
                == jiff::Timestamp::try_from(info.written_at.to_system_time()).ok()
            && s("checksum")
                .strip_prefix("crc32:")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                == Some(info.checksum)
    })
}

/// Puts `bytes` in place of the manifest (`which` even) or of version 2's file (`which`
/// odd), reads the history every way a user can, checks, and restores the files.
///
/// - Opening gives the newest value, generation 3, whatever the manifest says.
/// - `version(g)` gives version g's true value; for a damaged version 2, only an intact
///   envelope (by the reference reader) of generation 2 loads, as its payload's value.
/// - `versions()` lists generations 1 and 3 always, 2 when its file verifies or the
///   manifest's cache entry has its size; each entry is the truth, or what the manifest
///   says for a file of that generation and size (the documented cache rule).
/// - `manifest_state()` is `Current` only for a manifest of version 1 naming latest 3.
pub fn check_history(fx: &HistoryFixture, which: u8, bytes: &[u8]) {
    use atomic_persist::history::{History, ManifestState};
    let damage_v2 = which & 1 == 1;
    let (manifest, v2) = if damage_v2 {
        (&fx.manifest[..], bytes)
    } else {
        (bytes, &fx.v2[..])
    };
    std::fs::write(&fx.manifest_path, manifest).unwrap();
    std::fs::write(&fx.v2_path, v2).unwrap();
    let what = || format!("damaged v2 {damage_v2}: {}", show(bytes));

    let h = History::<Record>::builder(&fx.path)
        .open()
        .unwrap_or_else(|e| panic!("open: {e} ({})", what()));
    assert_eq!(h.get(), &fx.values[2], "{}", what());
    assert_eq!(h.generation(), 3);
    for g in [1u64, 2, 3] {
        let value = h.version(g);
        if g != 2 || !damage_v2 {
            assert_eq!(
                value.as_ref().ok(),
                Some(&fx.values[g as usize - 1]),
                "{}",
                what()
            );
            continue;
        }
        match value {
            Ok(v) => {
                let m = RefMeta::of(
                    &atomic_persist::envelope::verify(&fx.v2_path)
                        .unwrap()
                        .unwrap(),
                );
                assert_eq!(m.generation, 2, "{}", what());
                let intact = ref_envelope(Json.into(), v2).filter(|(p, m)| m.holds(p));
                let (payload, rm) =
                    intact.unwrap_or_else(|| panic!("a damaged version loaded: {}", what()));
                assert_eq!(rm, m);
                assert_eq!(
                    decode_payload::<Record>(Json.into(), payload).as_ref(),
                    Some(&v),
                    "{}",
                    what()
                );
            }
            Err(e) => assert!(
                matches!(
                    e,
                    Error::Corrupt { .. } | Error::Deserialize { .. } | Error::NotFound { .. }
                ),
                "{e:?}"
            ),
        }
    }

    let versions = h
        .versions()
        .unwrap_or_else(|e| panic!("versions: {e} ({})", what()));
    let generations: Vec<u64> = versions.iter().map(|v| v.generation).collect();
    let v2_verifies =
        ref_envelope(Json.into(), v2).is_some_and(|(p, m)| m.holds(p) && m.generation == 2);
    let v2_cached = fx.truth[1].size == v2.len() as u64;
    if damage_v2 {
        assert!(
            generations == [1, 2, 3] && (v2_verifies || v2_cached)
                || generations == [1, 3] && !v2_verifies,
            "{generations:?}: {}",
            what()
        );
    } else {
        assert_eq!(generations, [1, 2, 3], "{}", what());
    }
    for info in &versions {
        let truth = &fx.truth[info.generation as usize - 1];
        if same_info(info, truth) {
            continue;
        }
        if damage_v2 && info.generation == 2 && v2_verifies {
            // A new, intact version 2: its own envelope.
            let m = atomic_persist::envelope::verify(&fx.v2_path)
                .unwrap()
                .unwrap();
            assert_eq!(
                (info.run_id, info.checksum, info.size),
                (m.run_id, m.checksum, v2.len() as u64)
            );
            continue;
        }
        assert!(
            manifest_says(manifest, info),
            "versions() says {info:?}, neither the file nor the manifest does: {}",
            what()
        );
    }
    let state = h.raw().manifest_state().unwrap();
    if state == ManifestState::Current {
        let v: Option<serde_json::Value> = serde_json::from_slice(manifest).ok();
        assert!(
            v.as_ref()
                .and_then(|v| v.get("atomic_persist_manifest")?.as_u64())
                == Some(1)
                && v.as_ref().and_then(|v| v.get("latest")?.as_u64()) == Some(3),
            "a manifest called current: {}",
            what()
        );
    }
    std::fs::write(&fx.manifest_path, &fx.manifest).unwrap();
    std::fs::write(&fx.v2_path, &fx.v2).unwrap();
}
