#![cfg(all(unix, feature = "json", feature = "toml", feature = "binary"))]
//! `Persisted<T>`: opening, committing, the envelope's meta rules, validation, and what
//! a commit leaves on disk.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use atomic_persist::{Durability, Error, Json, JsonPretty, Persisted, Toml};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default, Debug, Clone, PartialEq)]
struct State {
    done: u64,
    name: String,
    tags: Vec<String>,
}

fn state(done: u64) -> State {
    State {
        done,
        name: "job".into(),
        tags: vec!["a".into(), "b".into()],
    }
}

/// Every file in `dir`, with inode, size and mtime.
fn listing(dir: &Path) -> BTreeMap<String, (u64, u64, i64, i64)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                (m.ino(), m.size(), m.mtime(), m.mtime_nsec()),
            )
        })
        .collect()
}

fn dir_mtime(dir: &Path) -> (i64, i64) {
    let m = fs::metadata(dir).unwrap();
    (m.mtime(), m.mtime_nsec())
}

const EXTENSIONS: [&str; 3] = ["json", "toml", "bin"];

#[test]
fn open_or_default_then_update_round_trips_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    for ext in EXTENSIONS {
        for envelope in [false, true] {
            let path = dir.path().join(format!("s-{envelope}.{ext}"));
            let mut p = Persisted::<State>::builder(&path)
                .envelope(envelope)
                .open_or_default()
                .unwrap();
            assert!(!path.exists(), "open_or_default writes nothing");
            p.update(|s| *s = state(5)).unwrap();
            let q = Persisted::<State>::builder(&path)
                .envelope(envelope)
                .open()
                .unwrap();
            assert_eq!(*q, state(5), "{ext} envelope={envelope}");
            assert_eq!(q.meta().is_some(), envelope);
            assert_eq!(q.meta(), p.meta());
        }
    }
}

#[test]
fn missing_empty_and_garbage_files_give_three_different_errors() {
    let dir = tempfile::tempdir().unwrap();
    for ext in EXTENSIONS {
        let path = dir.path().join(format!("x.{ext}"));
        let e = Persisted::<State>::open(&path).unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{ext}: {e:?}");

        fs::write(&path, b"").unwrap();
        let e = Persisted::<State>::open(&path).unwrap_err();
        assert!(
            matches!(&e, Error::Corrupt { reason, .. } if reason.contains("empty")),
            "{ext}: {e:?}"
        );

        fs::write(&path, b"\xff\xfe garbage {{{ [[[").unwrap();
        let e = Persisted::<State>::open(&path).unwrap_err();
        assert!(matches!(e, Error::Deserialize { .. }), "{ext}: {e:?}");
        assert_eq!(e.path(), path);
    }
}

#[test]
fn deserialize_errors_carry_path_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    fs::write(
        &path,
        "{\n  \"done\": 1,\n  \"name\": 7,\n  \"tags\": []\n}",
    )
    .unwrap();
    match Persisted::<State>::open(&path).unwrap_err() {
        Error::Deserialize {
            path: p,
            format,
            line,
            column,
            ..
        } => {
            assert_eq!(p, path);
            assert_eq!(format, "json");
            assert_eq!(line, Some(3));
            assert!(column.is_some());
        }
        e => panic!("{e:?}"),
    }
    let path = dir.path().join("s.toml");
    fs::write(&path, "# settings\ndone = 1\nname = 7\ntags = []\n").unwrap();
    match Persisted::<State>::open(&path).unwrap_err() {
        Error::Deserialize {
            format,
            line,
            column,
            ..
        } => {
            assert_eq!(format, "toml");
            assert_eq!((line, column), (Some(3), Some(8)));
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn enveloped_payload_errors_point_into_the_file() {
    #[derive(Serialize, Deserialize, Default, Debug)]
    struct Other {
        done: String,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let mut p = Persisted::<State>::builder(&path)
        .format(JsonPretty)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set(state(1)).unwrap();
    match Persisted::<Other>::builder(&path)
        .envelope(true)
        .open()
        .unwrap_err()
    {
        Error::Deserialize { line, .. } => {
            // `"done": 1` is on line 4 of the enveloped, indented file.
            let text = fs::read_to_string(&path).unwrap();
            let want = text.lines().position(|l| l.contains("\"done\"")).unwrap() + 1;
            assert_eq!(line, Some(want), "{text}");
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn unknown_extension_is_a_clear_error() {
    let e = Persisted::<State>::open("/nonexistent/settings.ini").unwrap_err();
    assert!(matches!(e, Error::UnknownFormat { .. }), "{e:?}");
    assert!(e.to_string().contains(".ini"), "{e}");
    // An explicit format makes any name work.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.conf");
    let mut p = Persisted::<State>::builder(&path)
        .format(Toml)
        .open_or_default()
        .unwrap();
    p.set(state(2)).unwrap();
    assert!(fs::read_to_string(&path).unwrap().contains("done = 2"));
}

#[test]
fn generation_increments_and_run_id_is_the_process_one() {
    let dir = tempfile::tempdir().unwrap();
    for ext in EXTENSIONS {
        let path = dir.path().join(format!("g.{ext}"));
        let mut p = Persisted::<State>::builder(&path)
            .envelope(true)
            .open_or_default()
            .unwrap();
        assert!(p.meta().is_none());
        let mut last_time = None;
        for i in 1..=5 {
            p.set(state(i)).unwrap();
            let meta = p.meta().unwrap().clone();
            assert_eq!(meta.generation, i, "{ext}");
            assert_eq!(meta.run_id, atomic_persist::run_id());
            if let Some(t) = last_time {
                assert!(meta.written_at >= t, "timestamps never go back");
            }
            last_time = Some(meta.written_at);
            // What is on disk says the same.
            let q = Persisted::<State>::builder(&path)
                .envelope(true)
                .open()
                .unwrap();
            assert_eq!(q.meta(), Some(&meta));
        }
        // A second handle continues the count.
        let mut q = Persisted::<State>::builder(&path)
            .envelope(true)
            .open()
            .unwrap();
        q.set(state(100)).unwrap();
        assert_eq!(q.meta().unwrap().generation, 6);
    }
}

#[test]
fn run_id_can_be_set_on_the_builder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    let id = atomic_persist::uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let mut p = Persisted::<State>::builder(&path)
        .envelope(true)
        .run_id(id)
        .open_or_default()
        .unwrap();
    p.set(state(1)).unwrap();
    let q = Persisted::<State>::builder(&path)
        .envelope(true)
        .open()
        .unwrap();
    assert_eq!(q.meta().unwrap().run_id, id);
}

#[test]
fn unchanged_commit_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for ext in EXTENSIONS {
        for envelope in [false, true] {
            let path = dir.path().join(format!("u-{envelope}.{ext}"));
            let mut p = Persisted::<State>::builder(&path)
                .envelope(envelope)
                .open_or_default()
                .unwrap();
            p.set(state(3)).unwrap();
            let before = (listing(dir.path()), dir_mtime(dir.path()));
            p.commit().unwrap();
            p.set(state(3)).unwrap();
            p.update(|s| s.done = 3).unwrap();
            assert_eq!((listing(dir.path()), dir_mtime(dir.path())), before);
            let generation = p.meta().map(|m| m.generation);

            // A fresh handle that loaded the file skips it too.
            let mut q = Persisted::<State>::builder(&path)
                .envelope(envelope)
                .open()
                .unwrap();
            q.commit().unwrap();
            assert_eq!((listing(dir.path()), dir_mtime(dir.path())), before);
            assert_eq!(q.meta().map(|m| m.generation), generation);

            // A change is written, with a new inode (rename).
            let ino = fs::metadata(&path).unwrap().ino();
            q.update(|s| s.done = 4).unwrap();
            assert_ne!(fs::metadata(&path).unwrap().ino(), ino, "{ext} {envelope}");
        }
    }
}

/// A value whose serialization fails halfway through.
#[derive(Deserialize, Default, Debug)]
struct Fails {
    items: Vec<u32>,
    poison: bool,
}

impl Serialize for Fails {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeStruct};
        let mut st = s.serialize_struct("Fails", 2)?;
        st.serialize_field("items", &self.items)?;
        if self.poison {
            return Err(S::Error::custom("poisoned value"));
        }
        st.serialize_field("poison", &self.poison)?;
        st.end()
    }
}

#[test]
fn serialization_failure_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    for ext in EXTENSIONS {
        for envelope in [false, true] {
            let path = dir.path().join(format!("f-{envelope}.{ext}"));
            let mut p = Persisted::<Fails>::builder(&path)
                .envelope(envelope)
                .open_or_default()
                .unwrap();
            p.update(|f| f.items = vec![1, 2, 3]).unwrap();
            let before = (listing(dir.path()), dir_mtime(dir.path()));
            let disk = fs::read(&path).unwrap();
            let e = p
                .update(|f| {
                    f.items = (0..100_000).collect();
                    f.poison = true;
                })
                .unwrap_err();
            assert!(matches!(e, Error::Serialize { .. }), "{e:?}");
            if ext != "bin" {
                // postcard drops a custom serializer message; JSON and TOML keep it.
                assert!(e.to_string().contains("poisoned"), "{e}");
            }
            assert_eq!(e.path(), path);
            assert_eq!((listing(dir.path()), dir_mtime(dir.path())), before);
            assert_eq!(fs::read(&path).unwrap(), disk);
        }
    }
}

#[test]
fn validate_refuses_commits_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    for ext in EXTENSIONS {
        let path = dir.path().join(format!("v.{ext}"));
        let open = || {
            Persisted::<State>::builder(&path)
                .envelope(true)
                .validate(|s| {
                    if s.done <= 10 {
                        Ok(())
                    } else {
                        Err(format!("done = {} is past the end", s.done))
                    }
                })
                .open_or_default()
        };
        let mut p = open().unwrap();
        p.set(state(10)).unwrap();
        let disk = fs::read(&path).unwrap();
        let e = p.set(state(11)).unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { reason, .. } if reason.contains("past the end")),
            "{e:?}"
        );
        assert_eq!(fs::read(&path).unwrap(), disk, "file untouched");

        // A file that fails validation does not load.
        Persisted::<State>::builder(&path)
            .envelope(true)
            .open()
            .unwrap()
            .set(state(50))
            .unwrap();
        let e = open().unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
    }
}

#[test]
fn plain_file_gains_the_envelope_and_enveloped_file_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    for ext in EXTENSIONS {
        let path = dir.path().join(format!("m.{ext}"));
        Persisted::<State>::open_or_default(&path)
            .unwrap()
            .set(state(1))
            .unwrap();
        assert_eq!(atomic_persist::envelope::verify(&path).unwrap(), None);
        let mut p = Persisted::<State>::builder(&path)
            .envelope(true)
            .open()
            .unwrap();
        assert!(p.meta().is_none(), "a plain file loads without meta");
        assert_eq!(*p, state(1));
        p.commit().unwrap();
        assert_eq!(
            p.meta().unwrap().generation,
            1,
            "unchanged value still migrates"
        );
        assert_eq!(
            atomic_persist::envelope::verify(&path).unwrap().unwrap(),
            p.meta().unwrap().clone()
        );

        let e = Persisted::<State>::open(&path).unwrap_err();
        assert!(
            matches!(&e, Error::UnexpectedEnvelope { path: p } if *p == path),
            "{ext}: {e:?}"
        );
    }
}

#[test]
fn newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    let mut p = Persisted::<State>::builder(&path)
        .envelope(true)
        .schema_version(3)
        .open_or_default()
        .unwrap();
    p.set(state(1)).unwrap();
    let e = Persisted::<State>::builder(&path)
        .envelope(true)
        .schema_version(2)
        .open()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::SchemaVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn reload_reads_what_another_handle_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.json");
    let mut a = Persisted::<State>::builder(&path)
        .envelope(true)
        .durability(Durability::None)
        .open_or_default()
        .unwrap();
    a.set(state(1)).unwrap();
    let mut b = Persisted::<State>::builder(&path)
        .envelope(true)
        .open()
        .unwrap();
    b.set(state(2)).unwrap();
    a.reload().unwrap();
    assert_eq!(a.get().done, 2);
    assert_eq!(a.meta().unwrap().generation, 2);
    assert_eq!(a.path(), path);
    assert_eq!(a.into_inner(), state(2));
}

#[test]
fn enveloped_files_are_valid_documents_of_their_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("doc.json");
    let mut p = Persisted::<State>::builder(&path)
        .format(Json)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set(state(9)).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(v["atomic_persist"], 1);
    assert_eq!(v["data"]["done"], 9);
    assert_eq!(v["meta"]["generation"], 1);

    let path = dir.path().join("doc.toml");
    let mut p = Persisted::<State>::builder(&path)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set(state(9)).unwrap();
    let v: toml::Table = toml::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["data"]["done"].as_integer(), Some(9));
    assert_eq!(v["meta"]["generation"].as_integer(), Some(1));
    assert!(v["meta"]["written_at"].is_datetime());
}

#[test]
fn toml_comments_survive_a_commit() {
    #[derive(Serialize, Deserialize, Debug)]
    struct Config {
        title: String,
        volume: u8,
        server: Server,
    }
    #[derive(Serialize, Deserialize, Debug)]
    struct Server {
        host: String,
        port: u16,
    }
    let text = r#"# My application's settings.
# Edit freely: the app keeps your comments.

title = "demo"   # shown in the window title
volume = 3       # 0 to 10

# Where to listen.
[server]
host = "localhost"
port = 8_080     # needs root below 1024
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    fs::write(&path, text).unwrap();
    let mut p = Persisted::<Config>::open(&path).unwrap();
    p.update(|c| c.volume = 7).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        text.replace("volume = 3 ", "volume = 7 ")
    );
    p.update(|c| c.server.port = 9090).unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        text.replace("volume = 3 ", "volume = 7 ")
            .replace("port = 8_080 ", "port = 9090 ")
    );
    let again = Persisted::<Config>::open(&path).unwrap();
    assert_eq!((again.volume, again.server.port), (7, 9090));
}

#[test]
fn write_options_apply_to_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.json");
    let mut p = Persisted::<State>::builder(&path)
        .write_options(atomic_persist::WriteOptions::new().mode(0o600))
        .open_or_default()
        .unwrap();
    p.set(state(1)).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn a_string_that_looks_like_the_meta_header_stays_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tricky.toml");
    let tricky = State {
        done: 1,
        name: "line\n[meta]\nrun_id = \"x\"\n".into(),
        tags: vec!["\n[meta]\n".into()],
    };
    let mut p = Persisted::<State>::builder(&path)
        .envelope(true)
        .open_or_else(|| tricky.clone())
        .unwrap();
    p.commit().unwrap();
    let q = Persisted::<State>::builder(&path)
        .envelope(true)
        .open()
        .unwrap();
    assert_eq!(*q, tricky);
    assert_eq!(q.meta(), p.meta());
}

#[test]
fn a_value_that_is_empty_in_its_format_reads_back() {
    #[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
    struct Optional {
        limit: Option<u32>,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.toml");
    let mut p = Persisted::<Optional>::open_or_default(&path).unwrap();
    p.commit().unwrap();
    assert_eq!(
        fs::read(&path).unwrap(),
        b"",
        "an empty table is an empty TOML file"
    );
    assert_eq!(
        *Persisted::<Optional>::open(&path).unwrap(),
        Optional::default()
    );
    // With the envelope on, an empty file is never taken for a value.
    let e = Persisted::<Optional>::builder(&path)
        .envelope(true)
        .open()
        .unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
}

#[test]
fn values_either_side_of_the_kept_bytes_limit_round_trip() {
    // Payloads up to 1 MiB are written from the bytes of the first serialization, larger
    // ones are serialized again into the file: both must give the same file.
    let dir = tempfile::tempdir().unwrap();
    for envelope in [false, true] {
        for len in [(1 << 20) - 2, (1 << 20) - 1, 1 << 20, (1 << 20) + 1] {
            // A JSON string of `len - 2` characters is `len` bytes with its quotes.
            let value = "y".repeat(len - 2);
            let path = dir.path().join(format!("k-{envelope}-{len}.json"));
            let mut p = Persisted::<String>::builder(&path)
                .envelope(envelope)
                .open_or_else(|| value.clone())
                .unwrap();
            p.commit().unwrap();
            let q = Persisted::<String>::builder(&path)
                .envelope(envelope)
                .open()
                .unwrap();
            assert_eq!(q.get(), &value, "{envelope} {len}");
            if !envelope {
                assert_eq!(fs::metadata(&path).unwrap().len(), len as u64);
            }
        }
    }
}
