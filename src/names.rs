//! The names of the files the crate keeps beside a data file: the writer lock's sidecar
//! `.{name}.lock`, and a history's files beside its pointer `{stem}.{ext}`: its versions
//! `{stem}.{generation}.{ext}` (`{name}.{generation}` without an extension) and its
//! manifest `{stem}.manifest.json`.
//!
//! In one place below every layer, so that the lock and the history that make the
//! names, `sweep` (which must tell a pointer swap's temporary link from debris, and
//! find the lock that guards it) and `verify` (which holds every version to having an
//! envelope) read them alike. Names are compared as
//! bytes: they need not be UTF-8.

use std::ffi::{OsStr, OsString};
use std::path::Path;

use crate::sys;

/// The stem and extension of the pointer's file name `name`.
fn parts(name: &OsStr) -> (&OsStr, Option<&OsStr>) {
    let path = Path::new(name);
    match path.file_stem() {
        Some(stem) => (stem, path.extension()),
        None => (name, None),
    }
}

/// The file name of version `generation` of the pointer named `name`.
#[cfg_attr(not(feature = "json"), allow(dead_code))] // made by `history` only
pub(crate) fn version_name(name: &OsStr, generation: u64) -> OsString {
    let (stem, ext) = parts(name);
    let mut out = stem.to_os_string();
    out.push(format!(".{generation}"));
    if let Some(ext) = ext {
        out.push(".");
        out.push(ext);
    }
    out
}

/// The file name of the manifest (a cache of the versions' meta) of the pointer named
/// `name`: `{stem}.manifest.json`.
#[cfg_attr(not(feature = "json"), allow(dead_code))] // made by `history` only
pub(crate) fn manifest_name(name: &OsStr) -> OsString {
    let mut out = parts(name).0.to_os_string();
    out.push(".manifest.json");
    out
}

/// The generation whose version file `candidate` is, for the pointer named `name`;
/// `None` for any other name. One spelling per generation: no leading zeros.
pub(crate) fn version_of(name: &OsStr, candidate: &OsStr) -> Option<u64> {
    let (stem, ext) = parts(name);
    let rest = sys::name_bytes(candidate)
        .strip_prefix(sys::name_bytes(stem))?
        .strip_prefix(b".")?;
    let digits = match ext {
        Some(ext) => rest
            .strip_suffix(sys::name_bytes(ext))?
            .strip_suffix(b".")?,
        None => rest,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let generation: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    (generation.to_string().as_bytes() == digits).then_some(generation)
}

/// The pointer name a snapshot's transaction directory (a generation being written,
/// `.{name}.{12 random characters}.gen`) was made for; `None` for any other name.
pub(crate) fn transaction_dir_base(candidate: &OsStr) -> Option<OsString> {
    let bytes = sys::name_bytes(candidate);
    let rest = bytes.strip_prefix(b".")?.strip_suffix(b".gen")?;
    // `{name}.{random}`: the random part is the last 12 bytes, after a dot.
    let split = rest.len().checked_sub(RANDOM_LEN + 1)?;
    let (base, random) = (&rest[..split], &rest[split + 1..]);
    let random_ok = random
        .iter()
        .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(c));
    (rest[split] == b'.' && random_ok && !base.is_empty())
        .then(|| sys::name_from_bytes(base.to_vec()))
}

/// Whether `candidate` is a snapshot's transaction directory (for the pointer `name`,
/// when given).
pub(crate) fn is_transaction_dir(candidate: &OsStr, name: Option<&OsStr>) -> bool {
    transaction_dir_base(candidate).is_some_and(|base| name.is_none_or(|n| n == base))
}

/// The random characters of a temporary name (the engine's `SUFFIX_LEN`).
const RANDOM_LEN: usize = 12;

/// The longest file name most filesystems allow (`NAME_MAX`).
pub(crate) const NAME_MAX: usize = 255;

/// The writer lock sidecar's name beside the data file `name`: `.{name}.lock`, or
/// `.{prefix}.{hash}.lock` when that would be too long.
pub(crate) fn lock_name(name: &OsStr) -> OsString {
    let bytes = sys::name_bytes(name);
    let mut out = vec![b'.'];
    if bytes.len() + ".".len() + ".lock".len() <= NAME_MAX {
        out.extend_from_slice(bytes);
    } else {
        let hash = format!(".{:016x}", fnv1a(bytes));
        let room = NAME_MAX - ".".len() - hash.len() - ".lock".len();
        out.extend_from_slice(&bytes[..room]);
        out.extend_from_slice(hash.as_bytes());
    }
    out.extend_from_slice(b".lock");
    sys::name_from_bytes(out)
}

/// 64-bit FNV-1a: the same in every process and on every platform, unlike std's
/// randomly keyed hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_recognised_by_their_pointer() {
        let v = |n: &str, c: &str| version_of(OsStr::new(n), OsStr::new(c));
        assert_eq!(v("state.json", "state.7.json"), Some(7));
        assert_eq!(v("state", "state.12"), Some(12));
        assert_eq!(v("state.json", "state.json"), None);
        assert_eq!(v("state.json", "state..json"), None);
        assert_eq!(v("state.json", "state.07.json"), None, "one spelling");
        assert_eq!(v("state.json", "dir/state.7.json"), None);
        assert_eq!(v("link", "state.json"), None);
        assert_eq!(v("a.b.json", "a.b.3.json"), Some(3));
    }

    #[test]
    fn a_version_name_is_recognised_as_its_generation() {
        for name in ["state.json", "state", "a.b.toml"] {
            for g in [0, 1, 42, u64::MAX] {
                let made = version_name(OsStr::new(name), g);
                assert_eq!(version_of(OsStr::new(name), &made), Some(g), "{made:?}");
            }
        }
    }
}
