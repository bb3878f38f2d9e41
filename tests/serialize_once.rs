#![cfg(all(unix, feature = "json"))]
//! A commit serializes its value once, whatever its size: a payload past the 1 MiB kept
//! in memory streams on into the temporary file while it is hashed. That temporary file
//! is dropped, never renamed, when the value turns out unchanged, fails to serialize, or
//! loses the generation check. (Run against the two-pass commit this replaced, the
//! first test saw 2 serializations.)

mod common;

use std::cell::Cell;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use atomic_persist::{Error, Persisted, WriteOptions};
use serde::{Deserialize, Serialize, Serializer};

thread_local! {
    /// How many times a `Big` was serialized on this thread.
    static SERIALIZED: Cell<usize> = const { Cell::new(0) };
}

/// About 2.5 MiB of JSON, counting its serializations; with `fail_at`, the
/// serialization fails after that many elements (past the first MiB).
#[derive(Deserialize, Default, Clone, PartialEq, Debug)]
struct Big {
    items: Vec<u64>,
    #[serde(skip)]
    fail_at: Option<usize>,
}

impl Serialize for Big {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeSeq, SerializeStruct};
        SERIALIZED.with(|n| n.set(n.get() + 1));
        struct Items<'a>(&'a Big);
        impl Serialize for Items<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.items.len()))?;
                for (i, x) in self.0.items.iter().enumerate() {
                    if self.0.fail_at == Some(i) {
                        return Err(S::Error::custom("refused half way"));
                    }
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
        }
        let mut st = s.serialize_struct("Big", 1)?;
        st.serialize_field("items", &Items(self))?;
        st.end()
    }
}

fn big() -> Big {
    Big {
        items: (0..300_000).map(|i| 1_000_000 + i).collect(),
        fail_at: None,
    }
}

fn serialized() -> usize {
    SERIALIZED.with(Cell::get)
}

/// A named temporary file, so that a leftover would show in the directory.
fn open(path: &Path) -> Persisted<Big> {
    Persisted::<Big>::builder(path)
        .envelope(true)
        .write_options(WriteOptions::new().anonymous_temp(false))
        .open_or_else(big)
        .unwrap()
}

#[test]
fn a_large_commit_serializes_the_value_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let mut p = open(&path);
    let before = serialized();
    p.commit().unwrap();
    assert_eq!(serialized() - before, 1);
    assert!(
        fs::metadata(&path).unwrap().len() > 2 << 20,
        "past the kept MiB"
    );
    assert_eq!(
        Persisted::<Big>::builder(&path)
            .envelope(true)
            .open()
            .unwrap()
            .items,
        big().items
    );
}

#[test]
fn an_unchanged_large_value_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let mut p = open(&path);
    p.commit().unwrap();
    let inode = fs::metadata(&path).unwrap().ino();
    p.commit().unwrap();
    assert_eq!(fs::metadata(&path).unwrap().ino(), inode, "no rename");
    assert_eq!(p.meta().unwrap().generation, 1);
    common::assert_only(dir.path(), &["big.json", ".big.json.lock"]);
}

#[test]
fn a_large_value_that_fails_half_way_leaves_the_file_and_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let mut p = open(&path);
    p.commit().unwrap();
    let old = fs::read(&path).unwrap();
    p.get_mut().items[0] += 1;
    p.get_mut().fail_at = Some(250_000);
    let committed = p.commit();
    assert!(
        matches!(committed, Err(Error::Serialize { .. })),
        "{committed:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), old);
    common::assert_only(dir.path(), &["big.json", ".big.json.lock"]);
}

#[test]
fn a_large_commit_that_loses_the_generation_check_leaves_no_temp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    let (mut a, mut b) = (open(&path), open(&path));
    a.commit().unwrap();
    b.get_mut().items[0] += 1;
    let committed = b.commit();
    assert!(
        matches!(committed, Err(Error::Conflict { .. })),
        "{committed:?}"
    );
    common::assert_only(dir.path(), &["big.json", ".big.json.lock"]);
}
