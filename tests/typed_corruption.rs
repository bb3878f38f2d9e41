#![cfg(all(feature = "json", feature = "toml", feature = "binary"))]
//! A damaged enveloped file never loads as a value: every truncation and every single
//! bit flip of a small enveloped file of each format is `Corrupt` or `Deserialize` (or,
//! where the damage only touched layout the envelope does not cover, the exact original
//! value and meta), and never a panic.

use std::fs;
use std::path::Path;

use atomic_persist::{AnyFormat, Binary, Error, Json, JsonPretty, Meta, Persisted, Toml};
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

fn formats() -> [(&'static str, AnyFormat); 4] {
    [
        ("json", Json.into()),
        ("json", JsonPretty.into()),
        ("toml", Toml.into()),
        ("bin", Binary.into()),
    ]
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
    for (ext, format) in formats() {
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
    assert!(matches!(e, Error::Serialize { .. }), "{e:?}");
    assert!(e.to_string().contains("not self-describing"), "{e}");

    let mut bytes = Vec::new();
    Binary.serialize(&7u32, &mut bytes).unwrap();
    let e = Binary.deserialize::<Untagged>(&bytes).unwrap_err();
    assert!(matches!(e, Error::Deserialize { .. }), "{e:?}");
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
