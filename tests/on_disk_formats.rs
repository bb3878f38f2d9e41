//! Files written before load after: the on-disk formats (envelope v1 in each format,
//! the history layout, the object layout) read by this release from files an earlier
//! release wrote, committed under `tests/fixtures/v1/` (its `README.md` says which
//! commit wrote them).
//!
//! `write_fixtures` (ignored) is the program that wrote them: run at that commit with
//! `FIXTURES_OUT=DIR cargo test --all-features --test on_disk_formats -- --ignored`.
//! The other tests copy the committed files into a temporary directory (or an in-memory
//! object store) and open them with this release.
#![cfg(all(
    feature = "json",
    feature = "toml",
    feature = "binary",
    feature = "yaml",
    feature = "ron",
    feature = "object-store"
))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use atomic_persist::object::{ObjectHistory, ObjectPersisted};
use atomic_persist::{History, Persisted, envelope};
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// The value every fixture holds (generation `n` of a history holds `value(n)`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct State {
    name: String,
    step: u64,
    ratio: f64,
    tags: Vec<String>,
    limits: BTreeMap<String, i32>,
    blob: String,
}

fn value(n: u64) -> State {
    State {
        name: format!("run «{n}» ✓"),
        step: n,
        ratio: n as f64 / 8.0,
        tags: vec!["a".into(), format!("t{n}")],
        limits: [("cpu".to_owned(), 2), ("mem".to_owned(), -1)].into(),
        blob: String::new(),
    }
}

/// A value large enough to go to the object store as a body behind a pointer.
fn large(n: u64) -> State {
    State {
        blob: "x".repeat(3000),
        ..value(n)
    }
}

/// The run id every fixture was written with.
const RUN_ID: &str = "0190f5e2-7a3b-7c4d-8e9f-0123456789ab";

fn run_id() -> uuid::Uuid {
    RUN_ID.parse().unwrap()
}

/// The single-value files: (file name, enveloped).
const FILES: [(&str, bool); 11] = [
    ("plain.json", false),
    ("plain.toml", false),
    ("plain.bin", false),
    ("enveloped.json", true),
    ("enveloped-pretty.json", true),
    ("enveloped.toml", true),
    ("enveloped.bin", true),
    // Since YAML and RON came (see the fixtures' README).
    ("plain.yaml", false),
    ("plain.ron", false),
    ("enveloped.yaml", true),
    ("enveloped.ron", true),
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1")
}

/// The committed fixtures' `local` directory, copied (symlinks as symlinks) into a
/// fresh temporary directory.
fn local_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixtures().join("local/."))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn persisted(path: &Path, enveloped: bool) -> atomic_persist::PersistedBuilder<State> {
    let b = Persisted::<State>::builder(path)
        .envelope(enveloped)
        .run_id(run_id());
    match path.to_str().unwrap().contains("pretty") {
        true => b.format(atomic_persist::JsonPretty),
        false => b,
    }
}

/// Writes the fixtures into `$FIXTURES_OUT` (see the module docs).
#[test]
#[ignore = "writes the fixtures; run at the commit that is to write them"]
fn write_fixtures() {
    let out = PathBuf::from(std::env::var_os("FIXTURES_OUT").expect("FIXTURES_OUT"));
    let local = out.join("local");
    std::fs::create_dir_all(&local).unwrap();
    for (name, enveloped) in FILES {
        let mut p = persisted(&local.join(name), enveloped)
            .open_or_default()
            .unwrap();
        p.set(value(1)).unwrap();
        if enveloped {
            p.set(value(2)).unwrap(); // generation 2
        }
    }
    let mut h = History::<State>::builder(local.join("history.json"))
        .keep(2)
        .run_id(run_id())
        .open_or_default()
        .unwrap();
    for n in 1..=3 {
        h.set(value(n)).unwrap();
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(write_objects(&out.join("objects")));
}

async fn write_objects(out: &Path) {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut p = ObjectPersisted::<State>::builder(store.clone(), "state.json")
        .envelope(true)
        .run_id(run_id())
        .open_or_default()
        .await
        .unwrap();
    p.set(value(1)).await.unwrap();
    p.set(value(2)).await.unwrap();
    let mut big = ObjectPersisted::<State>::builder(store.clone(), "large.json")
        .envelope(true)
        .run_id(run_id())
        .multipart_threshold(1024)
        .part_size(1024)
        .open_or_default()
        .await
        .unwrap();
    big.set(large(1)).await.unwrap();
    let mut h = ObjectHistory::<State>::builder(store.clone(), "history.json")
        .keep(2)
        .run_id(run_id())
        .open_or_default()
        .await
        .unwrap();
    for n in 1..=3 {
        h.set(value(n)).await.unwrap();
    }
    // Each object as a file named by its key.
    let listed = store.list(None);
    let metas: Vec<_> = futures_collect(listed).await;
    for meta in metas {
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let file = out.join(meta.location.as_ref());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
}

/// Every item of a listing.
async fn futures_collect(
    mut s: futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>,
) -> Vec<object_store::ObjectMeta> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(m) = s.next().await {
        out.push(m.unwrap());
    }
    out
}

/// The committed objects, each put at the key its file's path names.
async fn object_copy() -> Arc<dyn ObjectStore> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let root = fixtures().join("objects");
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let key = path
                .strip_prefix(&root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let bytes = std::fs::read(&path).unwrap();
            store
                .put(&ObjectPath::from(key), PutPayload::from(bytes))
                .await
                .unwrap();
        }
    }
    store
}

#[test]
fn every_single_value_file_loads_with_its_value_and_meta() {
    let dir = local_copy();
    for (name, enveloped) in FILES {
        let path = dir.path().join(name);
        let p = persisted(&path, enveloped).open().unwrap();
        let want = if enveloped { value(2) } else { value(1) };
        assert_eq!(*p, want, "{name}");
        match p.meta() {
            Some(m) => {
                assert!(enveloped, "{name}: plain, yet a meta");
                assert_eq!((m.generation, m.run_id), (2, run_id()), "{name}");
            }
            None => assert!(!enveloped, "{name}: enveloped, yet no meta"),
        }
    }
}

#[test]
fn every_enveloped_file_verifies() {
    let dir = local_copy();
    for (name, enveloped) in FILES {
        let meta = envelope::verify(dir.path().join(name)).unwrap();
        assert_eq!(meta.is_some(), enveloped, "{name}");
    }
}

#[test]
fn a_committed_file_is_committed_again_at_the_next_generation() {
    let dir = local_copy();
    let path = dir.path().join("enveloped.json");
    let mut p = persisted(&path, true).open().unwrap();
    p.set(value(3)).unwrap();
    let again = persisted(&path, true).open().unwrap();
    assert_eq!((*again).clone(), value(3));
    assert_eq!(again.meta().unwrap().generation, 3);
}

#[test]
fn a_history_loads_its_versions_and_commits_on() {
    let dir = local_copy();
    let path = dir.path().join("history.json");
    let mut h = History::<State>::open(&path).unwrap();
    assert_eq!((*h).clone(), value(3));
    let generations: Vec<u64> = h.versions().unwrap().iter().map(|v| v.generation).collect();
    assert_eq!(generations, [2, 3], "keep(2) pruned generation 1");
    assert_eq!(h.version(2).unwrap(), value(2));
    assert!(h.raw().damaged().unwrap().is_empty());
    h.set(value(4)).unwrap();
    assert_eq!(h.generation(), 4);
}

#[tokio::test]
async fn objects_load_with_their_values() {
    let store = object_copy().await;
    let p = ObjectPersisted::<State>::builder(store.clone(), "state.json")
        .envelope(true)
        .open()
        .await
        .unwrap();
    assert_eq!((*p).clone(), value(2));
    assert_eq!(p.meta().unwrap().generation, 2);
    let big = ObjectPersisted::<State>::builder(store.clone(), "large.json")
        .envelope(true)
        .open()
        .await
        .unwrap();
    assert_eq!((*big).clone(), large(1), "a body behind a pointer");
}

#[tokio::test]
async fn an_object_history_loads_its_versions_and_commits_on() {
    let store = object_copy().await;
    let mut h = ObjectHistory::<State>::open(store, "history.json")
        .await
        .unwrap();
    assert_eq!((*h).clone(), value(3));
    let generations: Vec<u64> = (h.versions().await.unwrap().iter())
        .map(|v| v.generation)
        .collect();
    assert_eq!(generations, [2, 3]);
    assert_eq!(h.version(2).await.unwrap(), value(2));
    h.set(value(4)).await.unwrap();
    assert_eq!(h.generation(), 4);
}
