//! `#[derive(Persist)]` on real files: round trips per format, the migration chain,
//! newer files, plain files, the default path, and hand-written impls.
#![cfg(all(feature = "derive", feature = "json", feature = "toml"))]

use std::path::Path;

use atomic_persist::persist::{Payload, decode_current};
use atomic_persist::{AnyFormat, Durability, Error, Persist, Persisted, Result};
use serde::{Deserialize, Serialize};

fn schema_version(path: &Path) -> u32 {
    atomic_persist::envelope::verify(path)
        .unwrap()
        .expect("an enveloped file")
        .schema_version
}

// ---------------------------------------------------------------------------------------
// Round trips

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default, Persist)]
#[persist(path = "state.json")]
struct Plain {
    name: String,
    items: Vec<u32>,
    ratio: f64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default, Persist)]
#[persist(path = "state.json", envelope = true, durability = "data", version = 7)]
struct Enveloped {
    name: String,
    items: Vec<u32>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone, Default, Persist)]
#[persist(path = "state.txt", format = "json-pretty", envelope = true)]
struct Pretty {
    name: String,
}

fn plain() -> Plain {
    Plain {
        name: "plain".into(),
        items: vec![1, 2, 3],
        ratio: 0.1,
    }
}

#[test]
fn constants_come_from_the_attribute() {
    assert_eq!(Plain::PATH, "state.json");
    assert_eq!(Plain::FORMAT, None);
    const { assert!(!Plain::ENVELOPE) };
    assert_eq!(Plain::DURABILITY, Durability::Full);
    assert_eq!(Plain::VERSION, 0);
    assert_eq!(Plain::APP, None);
    const { assert!(Enveloped::ENVELOPE) };
    assert_eq!(Enveloped::DURABILITY, Durability::Data);
    assert_eq!(Enveloped::VERSION, 7);
    assert_eq!(Pretty::FORMAT, Some(AnyFormat::JsonPretty));
}

#[test]
fn round_trip_per_format_from_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let mut extensions = vec!["json", "toml"];
    if cfg!(feature = "binary") {
        extensions.push("bin");
    }
    for ext in extensions {
        let path = dir.path().join(format!("plain.{ext}"));
        plain().save_to(&path).unwrap();
        assert_eq!(Plain::load_from(&path).unwrap(), plain(), "{ext}");
        assert!(atomic_persist::envelope::verify(&path).unwrap().is_none());

        let path = dir.path().join(format!("enveloped.{ext}"));
        let value = Enveloped {
            name: ext.into(),
            items: vec![4, 5],
        };
        value.save_to(&path).unwrap();
        assert_eq!(Enveloped::load_from(&path).unwrap(), value, "{ext}");
        assert_eq!(schema_version(&path), 7);
    }
}

#[test]
fn a_named_format_overrides_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pretty.txt");
    let value = Pretty {
        name: "indented".into(),
    };
    value.save_to(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("{\n  \"atomic_persist\": 1,"), "{text}");
    assert_eq!(Pretty::load_from(&path).unwrap(), value);
}

#[cfg(feature = "binary")]
#[test]
fn binary_format_by_attribute() {
    #[derive(Serialize, Deserialize, Debug, PartialEq, Persist)]
    #[persist(path = "state.dat", format = "binary", envelope = true, version = 1)]
    struct Compact {
        id: u64,
        tags: Vec<String>,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.dat");
    let value = Compact {
        id: 1 << 40,
        tags: vec!["a".into()],
    };
    value.save_to(&path).unwrap();
    assert!(std::fs::read(&path).unwrap().starts_with(b"APERSIST"));
    assert_eq!(Compact::load_from(&path).unwrap(), value);
}

#[test]
fn load_or_default_and_persisted_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    assert!(matches!(
        Plain::load_from(&path),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        Plain::load_or_default_from(&path).unwrap(),
        Plain::default()
    );
    assert!(!path.exists(), "loading a default writes nothing");

    let mut p: Persisted<Enveloped> = Enveloped::builder_at(&path).open_or_default().unwrap();
    p.update(|v| v.items.push(1)).unwrap();
    p.update(|v| v.items.push(2)).unwrap();
    assert_eq!(p.meta().unwrap().generation, 2);
    assert_eq!(p.meta().unwrap().schema_version, 7);
    // `save_to` carries the generation on.
    let mut v = Enveloped::load_from(&path).unwrap();
    v.name = "saved".into();
    v.save_to(&path).unwrap();
    let meta = atomic_persist::envelope::verify(&path).unwrap().unwrap();
    assert_eq!(meta.generation, 3);
}

#[test]
fn save_of_an_unchanged_value_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let value = Enveloped {
        name: "same".into(),
        items: vec![],
    };
    value.save_to(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    value.save_to(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before, "no new generation");
}

#[test]
fn save_keeps_the_comments_of_a_plain_toml_file() {
    #[derive(Serialize, Deserialize, Debug, PartialEq, Default, Persist)]
    #[persist(path = "settings.toml")]
    struct Settings {
        theme: String,
        font_size: u32,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(
        &path,
        "# my settings\ntheme = \"dark\" # the best one\nfont_size = 12\n",
    )
    .unwrap();
    let mut s = Settings::load_from(&path).unwrap();
    s.font_size += 1;
    s.save_to(&path).unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "# my settings\ntheme = \"dark\" # the best one\nfont_size = 13\n"
    );
}

#[test]
fn save_over_a_damaged_envelope_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    Enveloped::default().save_to(&path).unwrap();
    let damaged = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"name\":\"\"", "\"name\":\"x\"");
    std::fs::write(&path, &damaged).unwrap();
    let e = Enveloped {
        name: "new".into(),
        items: vec![],
    }
    .save_to(&path)
    .unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), damaged);
}

// ---------------------------------------------------------------------------------------
// Generics and enums

#[derive(Serialize, Deserialize, Debug, PartialEq, Default, Persist)]
#[persist(path = "list.json", envelope = true)]
struct List<T> {
    items: Vec<T>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Persist)]
#[persist(path = "mode.json")]
enum Mode {
    Off,
    Every { minutes: u32 },
}

#[test]
fn generic_structs_and_enums() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("list.json");
    let list = List {
        items: vec!["a".to_string(), "b".to_string()],
    };
    list.save_to(&path).unwrap();
    assert_eq!(List::<String>::load_from(&path).unwrap(), list);
    assert!(List::<u32>::load_from(&path).is_err());

    let path = dir.path().join("mode.json");
    for mode in [Mode::Off, Mode::Every { minutes: 5 }] {
        mode.save_to(&path).unwrap();
        assert_eq!(Mode::load_from(&path).unwrap(), mode);
    }
}

// ---------------------------------------------------------------------------------------
// The migration chain: V1 -> V2 -> V3

/// Version 1: a name and a port.
#[derive(Serialize, Deserialize, Debug, PartialEq, Persist)]
#[persist(path = "server.json", envelope = true, version = 1)]
struct ServerV1 {
    name: String,
    port: u16,
}

/// Version 2: the name split into host and domain.
#[derive(Serialize, Deserialize, Debug, PartialEq, Persist)]
#[persist(path = "server.json", envelope = true, version = 2, migrate_from = ServerV1)]
struct ServerV2 {
    host: String,
    domain: String,
    port: u16,
}

impl From<ServerV1> for ServerV2 {
    fn from(v1: ServerV1) -> ServerV2 {
        let (host, domain) = v1.name.split_once('.').unwrap_or((&v1.name, ""));
        ServerV2 {
            host: host.into(),
            domain: domain.into(),
            port: v1.port,
        }
    }
}

/// Version 3: a list of ports, and a field with a default.
#[derive(Serialize, Deserialize, Debug, PartialEq, Persist)]
#[persist(path = "server.json", envelope = true, version = 3, migrate_from = ServerV2)]
struct Server {
    host: String,
    domain: String,
    ports: Vec<u16>,
    tls: bool,
}

impl From<ServerV2> for Server {
    fn from(v2: ServerV2) -> Server {
        Server {
            host: v2.host,
            domain: v2.domain,
            ports: vec![v2.port],
            tls: v2.port == 443,
        }
    }
}

fn v1() -> ServerV1 {
    ServerV1 {
        name: "www.example.org".into(),
        port: 443,
    }
}

fn v3_from_v1() -> Server {
    Server {
        host: "www".into(),
        domain: "example.org".into(),
        ports: vec![443],
        tls: true,
    }
}

#[test]
fn a_history_written_by_an_older_schema_opens_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    let mut old = ServerV1::history_at(&path).open_or_else(v1).unwrap();
    old.commit().unwrap();
    old.update(|s| s.port = 8443).unwrap();

    let mut h = Server::history_at(&path).open().unwrap();
    let mut current = v3_from_v1();
    current.ports = vec![8443];
    current.tls = false;
    assert_eq!(*h.get(), current);
    // An old version is read through the same chain.
    assert_eq!(h.version(1).unwrap(), v3_from_v1());
    // The next commit is written at the current schema version.
    h.update(|s| s.tls = true).unwrap();
    let schemas: Vec<u32> = h
        .versions()
        .unwrap()
        .iter()
        .map(|v| v.schema_version)
        .collect();
    assert_eq!(schemas, [1, 1, 3]);
}

#[test]
fn a_history_newer_than_the_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    Server::history_at(&path)
        .open_or_else(v3_from_v1)
        .unwrap()
        .commit()
        .unwrap();
    match ServerV2::history_at(&path).open() {
        Err(Error::SchemaVersion {
            found: 3,
            supported: 2,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn migration_chain_v1_to_v3_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["json", "toml"] {
        let path = dir.path().join(format!("server.{ext}"));
        v1().save_to(&path).unwrap();
        assert_eq!(schema_version(&path), 1);
        let before = std::fs::read(&path).unwrap();

        let mut server = Server::load_from(&path).unwrap();
        assert_eq!(server, v3_from_v1(), "{ext}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "loading never writes"
        );

        server.ports.push(8443);
        server.save_to(&path).unwrap();
        assert_eq!(schema_version(&path), 3, "{ext}");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("8443") && !text.contains("www.example.org"),
            "{text}"
        );
        assert_eq!(Server::load_from(&path).unwrap().ports, [443, 8443]);
    }
}

#[test]
fn migration_from_the_middle_of_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    ServerV2::from(v1()).save_to(&path).unwrap();
    assert_eq!(schema_version(&path), 2);
    assert_eq!(Server::load_from(&path).unwrap(), v3_from_v1());
    // And a V2 program reads a V1 file too (a V1 program may not overwrite V2's file).
    assert!(matches!(
        v1().save_to(&path),
        Err(Error::SchemaVersion { found: 2, .. })
    ));
    std::fs::remove_file(&path).unwrap();
    v1().save_to(&path).unwrap();
    assert_eq!(ServerV2::load_from(&path).unwrap(), ServerV2::from(v1()));
}

#[test]
fn a_migrated_file_is_rewritten_even_when_the_value_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    v1().save_to(&path).unwrap();
    let mut p = Server::builder_at(&path).open().unwrap();
    assert_eq!(p.meta().unwrap().schema_version, 1);
    p.commit().unwrap();
    assert_eq!(schema_version(&path), 3);
    assert_eq!(p.meta().unwrap().generation, 2);
}

#[test]
fn a_newer_file_is_a_schema_version_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    v3_from_v1().save_to(&path).unwrap();
    let before = std::fs::read(&path).unwrap();
    for e in [
        ServerV1::load_from(&path).unwrap_err(),
        ServerV2::load_from(&path).unwrap_err(),
        // A save by an older program does not overwrite the newer file.
        v1().save_to(&path).unwrap_err(),
    ] {
        match e {
            Error::SchemaVersion {
                path: p,
                found,
                supported,
            } => {
                assert_eq!(p, path);
                assert_eq!(found, 3);
                assert!(supported < 3);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_damaged_old_file_is_corrupt_not_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    v1().save_to(&path).unwrap();
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"port\":443", "\"port\":444");
    std::fs::write(&path, text).unwrap();
    assert!(matches!(
        Server::load_from(&path),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn an_older_payload_of_the_wrong_shape_names_the_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    // Schema version 1 in the envelope, but not ServerV1's shape.
    Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .schema_version(1)
        .open_or_else(|| vec![1])
        .unwrap()
        .commit()
        .unwrap();
    match Server::load_from(&path).unwrap_err() {
        Error::Deserialize {
            path: p,
            line,
            column,
            ..
        } => {
            assert_eq!(p, path);
            assert_eq!(line, Some(1));
            assert!(column.is_some());
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Without the envelope: the version is unknown, the current type is tried

#[derive(Serialize, Deserialize, Debug, PartialEq, Persist)]
#[persist(path = "prefs.json")]
struct PrefsOld {
    volume: u8,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Persist)]
#[persist(path = "prefs.json")]
struct PrefsNew {
    volume: u8,
    #[serde(default)]
    muted: bool,
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Persist)]
#[persist(path = "prefs.json")]
struct PrefsRenamed {
    level: u8,
}

#[test]
fn without_the_envelope_the_current_type_is_tried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prefs.json");
    PrefsOld { volume: 3 }.save_to(&path).unwrap();
    // A compatible shape loads as the current type...
    assert_eq!(
        PrefsNew::load_from(&path).unwrap(),
        PrefsNew {
            volume: 3,
            muted: false
        }
    );
    // ...an incompatible one is a Deserialize error, never a guess.
    assert!(matches!(
        PrefsRenamed::load_from(&path),
        Err(Error::Deserialize { .. })
    ));
}

#[test]
fn a_plain_file_under_a_versioned_type_is_read_as_the_current_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    std::fs::write(
        &path,
        r#"{"host":"db","domain":"lan","ports":[5432],"tls":false}"#,
    )
    .unwrap();
    let server = Server::load_from(&path).unwrap();
    assert_eq!(server.ports, [5432]);
    // A v1-shaped plain file is not migrated: its version is not known.
    std::fs::write(&path, r#"{"name":"db.lan","port":5432}"#).unwrap();
    assert!(matches!(
        Server::load_from(&path),
        Err(Error::Deserialize { .. })
    ));
    // It gains the envelope, at the current version, on its next save.
    server.save_to(&path).unwrap();
    assert_eq!(schema_version(&path), 3);
}

// ---------------------------------------------------------------------------------------
// Hand-written impls and the default path

/// A hand-written impl whose `decode` reads a bare number at schema version 0.
#[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
struct Counter {
    count: u64,
}

impl Persist for Counter {
    const PATH: &'static str = concat!(env!("CARGO_TARGET_TMPDIR"), "/derive-counter.json");
    const ENVELOPE: bool = true;
    const VERSION: u32 = 1;

    fn decode(found: u32, payload: Payload<'_>) -> Result<Self> {
        if found == 0 {
            assert!(payload.meta().is_some());
            assert_eq!(payload.format(), AnyFormat::Json);
            return Ok(Counter {
                count: payload.deserialize()?,
            });
        }
        decode_current(found, payload)
    }
}

#[test]
fn a_hand_written_impl_with_its_own_decode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counter.json");
    Persisted::<u64>::builder(&path)
        .envelope(true)
        .open_or_else(|| 41)
        .unwrap()
        .commit()
        .unwrap();
    let mut c = Counter::load_from(&path).unwrap();
    assert_eq!(c.count, 41);
    c.count += 1;
    c.save_to(&path).unwrap();
    assert_eq!(schema_version(&path), 1);
    assert_eq!(Counter::load_from(&path).unwrap().count, 42);
}

#[test]
fn load_save_and_persisted_use_the_default_path() {
    let path = Counter::default_path().unwrap();
    assert_eq!(path, Path::new(Counter::PATH));
    let _ = std::fs::remove_file(&path);
    assert!(matches!(Counter::load(), Err(Error::NotFound { .. })));
    assert_eq!(Counter::load_or_default().unwrap(), Counter::default());
    Counter { count: 5 }.save().unwrap();
    assert_eq!(Counter::load().unwrap().count, 5);
    let mut p = Counter::persisted().unwrap();
    p.update(|c| c.count += 1).unwrap();
    assert_eq!(Counter::load().unwrap().count, 6);
    std::fs::remove_file(&path).unwrap();
}

#[cfg(feature = "app-dirs")]
#[test]
fn app_places_a_relative_path_in_the_config_directory() {
    #[derive(Serialize, Deserialize, Persist)]
    #[persist(path = "settings.toml", app = "atomic-persist-test")]
    struct AppSettings {
        theme: String,
    }
    assert_eq!(AppSettings::APP, Some("atomic-persist-test"));
    let path = AppSettings::default_path().unwrap();
    assert!(path.is_absolute(), "{}", path.display());
    assert!(
        path.ends_with("settings.toml") && path.to_string_lossy().contains("atomic-persist-test"),
        "{}",
        path.display()
    );
}

/// Version 2 of a setting that keeps the file version 1 wrote before migrating it.
#[derive(Serialize, Deserialize, Debug, PartialEq, Persist)]
#[persist(
    path = "server.json",
    envelope = true,
    version = 2,
    migrate_from = ServerV1,
    backup_before_migrate = true
)]
struct ServerKept {
    host: String,
    domain: String,
    port: u16,
}

impl From<ServerV1> for ServerKept {
    fn from(v1: ServerV1) -> ServerKept {
        let ServerV2 { host, domain, port } = ServerV2::from(v1);
        ServerKept { host, domain, port }
    }
}

#[test]
fn backup_before_migrate_keeps_the_older_schemas_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    v1().save_to(&path).unwrap();
    let old = std::fs::read(&path).unwrap();
    let migrated = ServerKept::load_from(&path).unwrap();
    assert_eq!(migrated.host, "www");
    migrated.save_to(&path).unwrap();
    let kept = dir.path().join("server.json.schema-1.bak");
    assert_eq!(std::fs::read(kept).unwrap(), old);
    assert_ne!(std::fs::read(&path).unwrap(), old);
}
