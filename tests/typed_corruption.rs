#![cfg(all(feature = "json", feature = "toml", feature = "binary"))]
//! A damaged enveloped file never loads as a value: every truncation and every single
//! bit flip of a small enveloped file of each format is `Corrupt` or `Deserialize` (or,
//! where the damage only touched layout the envelope does not cover, the exact original
//! value and meta), and never a panic.

mod common;

use std::fs;
use std::path::Path;

use atomic_persist::{AnyFormat, Binary, Error, JsonPretty, Meta, Persisted};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct Strict {
    done: u64,
    name: String,
    ratio: f64,
    tags: Vec<String>,
}

/// Every field optional: the easiest type to mistake a damaged file for.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(default)]
struct Lenient {
    done: u64,
    name: String,
    ratio: f64,
    tags: Vec<String>,
}

fn value<T: From<Strict>>() -> T {
    T::from(Strict {
        done: 42,
        name: "checkpoint".into(),
        ratio: 0.25,
        tags: vec!["x".into(), "y".into()],
    })
}

impl From<Strict> for Lenient {
    fn from(s: Strict) -> Self {
        Lenient {
            done: s.done,
            name: s.name,
            ratio: s.ratio,
            tags: s.tags,
        }
    }
}

fn open<T: Serialize + DeserializeOwned>(
    path: &Path,
    format: AnyFormat,
) -> atomic_persist::Result<Persisted<T>> {
    Persisted::<T>::builder(path)
        .format(format)
        .envelope(true)
        .open()
}

/// Loads `bytes` and checks the outcome; returns whether it was an error.
fn check<T>(path: &Path, format: AnyFormat, bytes: &[u8], good: &T, meta: &Meta, what: &str) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    fs::write(path, bytes).unwrap();
    match open::<T>(path, format) {
        Err(Error::Corrupt { .. } | Error::Deserialize { .. }) => true,
        Err(e) => panic!("{what}: unexpected error kind {e:?}"),
        Ok(p) => {
            assert_eq!(p.get(), good, "{what}: a wrong value loaded as good");
            assert_eq!(p.meta(), Some(meta), "{what}: a wrong meta loaded as good");
            false
        }
    }
}

fn damage_everywhere<T>(good: T)
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug + Clone,
{
    let dir = tempfile::tempdir().unwrap();
    for (ext, format) in common::formats() {
        let path = dir.path().join(format!("state.{ext}"));
        let _ = fs::remove_file(&path);
        let mut p = Persisted::<T>::builder(&path)
            .format(format)
            .envelope(true)
            .open_or_else(|| good.clone())
            .unwrap();
        p.commit().unwrap();
        let meta = p.meta().unwrap().clone();
        let original = fs::read(&path).unwrap();
        assert!(original.len() < 1024, "keep the file small");

        let mut errors = 0;
        for len in 0..original.len() {
            let what = format!("{format:?} truncated to {len} of {}", original.len());
            errors += check(&path, format, &original[..len], &good, &meta, &what) as usize;
        }
        // Only a trailing newline may go without changing anything.
        assert!(
            errors + 1 >= original.len(),
            "{format:?}: {errors} truncations detected"
        );

        let mut undetected = 0;
        for i in 0..original.len() {
            for bit in 0..8 {
                let mut bytes = original.clone();
                bytes[i] ^= 1 << bit;
                let what = format!("{format:?} byte {i} bit {bit} flipped");
                if !check(&path, format, &bytes, &good, &meta, &what) {
                    undetected += 1;
                }
            }
        }
        // Flips that still load are harmless ones (equal value and meta, checked above).
        assert!(
            undetected * 50 < original.len() * 8,
            "{format:?}: {undetected} flips went unnoticed"
        );
    }
}

#[test]
fn every_truncation_and_bit_flip_is_detected_strict_type() {
    damage_everywhere::<Strict>(value());
}

#[test]
fn every_truncation_and_bit_flip_is_detected_lenient_type() {
    damage_everywhere::<Lenient>(value());
}

#[test]
fn a_hand_edit_of_an_enveloped_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut p = Persisted::<Strict>::builder(&path)
        .format(JsonPretty)
        .envelope(true)
        .open_or_else(value)
        .unwrap();
    p.commit().unwrap();
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("\"done\": 42", "\"done\": 43")).unwrap();
    let e = open::<Strict>(&path, JsonPretty.into()).unwrap_err();
    assert!(
        matches!(&e, Error::Corrupt { reason, .. } if reason.contains("checksum")),
        "{e:?}"
    );
    assert!(atomic_persist::envelope::verify(&path).is_err());
}

#[test]
fn binary_limits_give_a_clear_error() {
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Inner {
        a: u32,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Flat {
        #[serde(flatten)]
        inner: Inner,
    }
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    #[serde(untagged)]
    enum Untagged {
        Num(u32),
        Text(String),
    }
    use atomic_persist::Format;

    let e = Binary
        .serialize(
            &Flat {
                inner: Inner { a: 1 },
            },
            Vec::new(),
        )
        .unwrap_err();
    assert!(!e.is_deserialize(), "{e:?}");
    assert!(e.to_string().contains("not self-describing"), "{e}");

    let mut bytes = Vec::new();
    Binary.serialize(&7u32, &mut bytes).unwrap();
    let e = Binary.deserialize::<Untagged>(&bytes).unwrap_err();
    assert!(e.is_deserialize(), "{e:?}");
    assert!(e.to_string().contains("not self-describing"), "{e}");

    // Through Persisted, the error names the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flat.bin");
    let mut p = Persisted::<Flat>::open_or_else(&path, || Flat {
        inner: Inner { a: 1 },
    })
    .unwrap();
    let e = p.commit().unwrap_err();
    assert_eq!(e.path(), path);
    assert!(!path.exists());
}

/// What `Persisted::<u32>` with the envelope on says of `bytes` in a `.json` file.
fn kind_of(bytes: &[u8]) -> Option<atomic_persist::CorruptKind> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    std::fs::write(&path, bytes).unwrap();
    match Persisted::<u32>::builder(&path).envelope(true).open() {
        Err(Error::Corrupt { kind, .. }) => Some(kind),
        other => panic!("{}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

/// An intact enveloped JSON file holding 7.
fn intact() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    let mut p = Persisted::<u32>::builder(&path)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set(7).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn each_kind_of_damage_is_its_own_corrupt_kind() {
    use atomic_persist::CorruptKind;
    let good = intact();
    let text = String::from_utf8(good.clone()).unwrap();
    assert_eq!(kind_of(b""), Some(CorruptKind::Empty));
    assert_eq!(
        kind_of(&good[..good.len() - 20]),
        Some(CorruptKind::Truncated)
    );
    let flipped = text.replacen("\"data\":7", "\"data\":8", 1);
    assert_eq!(kind_of(flipped.as_bytes()), Some(CorruptKind::Checksum));
    let newer = text.replacen("\"atomic_persist\":1", "\"atomic_persist\":2", 1);
    assert_eq!(
        kind_of(newer.as_bytes()),
        Some(CorruptKind::NewerEnvelope { version: 2 })
    );
    let bad_meta = text.replacen("\"run_id\":\"", "\"run_id\":\"zz", 1);
    assert_eq!(kind_of(bad_meta.as_bytes()), Some(CorruptKind::Damaged));
}

#[test]
fn a_history_pointer_or_version_out_of_place_has_its_kind() {
    use atomic_persist::{CorruptKind, history::History};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.json");
    let mut h = History::<u32>::open_or_default(&path).unwrap();
    h.set(1).unwrap();
    // A version file that is not enveloped.
    std::fs::write(dir.path().join("h.1.json"), b"1").unwrap();
    match History::<u32>::open(&path) {
        Err(Error::Corrupt {
            kind: CorruptKind::BadVersion,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // A pointer that names no version of this history.
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink("other.json", &path).unwrap();
    match History::<u32>::open(&path) {
        Err(Error::Corrupt {
            kind: CorruptKind::BadPointer,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_fall_into_categories() {
    use atomic_persist::Category;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.json");
    std::fs::write(&path, b"").unwrap();
    let damaged = Persisted::<u32>::builder(&path).envelope(true).open();
    assert_eq!(damaged.unwrap_err().category(), Category::Integrity);
    let missing = Persisted::<u32>::open(dir.path().join("missing.json"));
    assert_eq!(missing.unwrap_err().category(), Category::Environment);
    let unknown = Persisted::<u32>::open(dir.path().join("x.unknown"));
    assert_eq!(unknown.unwrap_err().category(), Category::Caller);
    let conflict = Error::Conflict {
        path: path.clone(),
        expected: 1,
        found: 2,
    };
    assert_eq!(conflict.category(), Category::Concurrency);
}
