//! The names of a history's files beside its pointer `{stem}.{ext}`: its versions
//! `{stem}.{generation}.{ext}` (`{name}.{generation}` without an extension) and its
//! manifest `{stem}.manifest.json`.
//!
//! In one place below every layer, so that the history that makes the names, `sweep`
//! (which must tell a pointer swap's temporary link from debris) and `verify` (which
//! holds every version to having an envelope) read them alike. Names are compared as
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
