//! A format of your own (`CustomFormat`): MessagePack through rmp-serde, used by every
//! handle as the built-in formats are.

use std::fs;
use std::io::Write;
use std::path::Path;

use atomic_persist::{
    AnyFormat, BoxError, CorruptKind, CustomFormat, Error, History, Payload, Persisted,
};
use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};

/// MessagePack, field names kept.
struct MessagePack;

impl CustomFormat for MessagePack {
    fn name(&self) -> &'static str {
        "msgpack"
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(
        &self,
        value: &T,
        mut out: W,
    ) -> Result<(), BoxError> {
        Ok(value.serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())?)
    }

    fn deserialize<'de, S: DeserializeSeed<'de>>(
        &self,
        bytes: &'de [u8],
        seed: S,
    ) -> Result<S::Value, BoxError> {
        let mut rest = bytes;
        let value = seed.deserialize(&mut rmp_serde::Deserializer::new(&mut rest))?;
        // A whole document: bytes left over are another value, not this one.
        match rest.len() {
            0 => Ok(value),
            n => Err(format!("{n} bytes left over after the value").into()),
        }
    }
}

/// A format that cannot write anything.
struct Refusing;

impl CustomFormat for Refusing {
    fn name(&self) -> &'static str {
        "refusing"
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(&self, _: &T, _: W) -> Result<(), BoxError> {
        Err("this format writes nothing".into())
    }

    fn deserialize<'de, S: DeserializeSeed<'de>>(
        &self,
        _: &'de [u8],
        _: S,
    ) -> Result<S::Value, BoxError> {
        Err("this format reads nothing".into())
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct State {
    step: u64,
    name: String,
    scores: Vec<i32>,
}

fn state(step: u64) -> State {
    State {
        step,
        name: format!("run {step}"),
        scores: vec![-1, 2, 3],
    }
}

fn open(path: &Path, envelope: bool) -> atomic_persist::Result<Persisted<State>> {
    Persisted::<State>::builder(path)
        .format(&MessagePack)
        .envelope(envelope)
        .open()
}

fn committed(path: &Path, envelope: bool, step: u64) -> Persisted<State> {
    let mut p = Persisted::<State>::builder(path)
        .format(&MessagePack)
        .envelope(envelope)
        .open_or_default()
        .unwrap();
    p.set(state(step)).unwrap();
    p
}

#[test]
fn a_plain_file_is_the_formats_own_document() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.msgpack");
    committed(&path, false, 1);
    let raw: State = rmp_serde::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(raw, state(1));
    assert_eq!(open(&path, false).unwrap().get(), &state(1));
}

#[test]
fn an_enveloped_file_is_framed_and_loads_with_its_meta() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.msgpack");
    let mut p = committed(&path, true, 1);
    p.set(state(2)).unwrap();
    let bytes = fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"APERSIST") && bytes.ends_with(b"APERSIST"));
    let back = open(&path, true).unwrap();
    assert_eq!(back.get(), &state(2));
    assert_eq!(back.meta().unwrap().generation, 2);
    let verified = atomic_persist::envelope::verify_as(&path, &MessagePack).unwrap();
    assert_eq!(verified.as_ref(), back.meta());
}

#[test]
fn an_unchanged_value_is_not_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.msgpack");
    let mut p = committed(&path, true, 1);
    p.commit().unwrap();
    p.set(state(1)).unwrap();
    assert_eq!(p.meta().unwrap().generation, 1, "the same bytes: no commit");
}

#[test]
fn every_bit_flip_of_an_enveloped_file_is_refused_while_a_plain_file_takes_some() {
    // The envelope is what catches damage: the same flips in a plain file give a wrong
    // value at least once, so this check can fail.
    let dir = tempfile::tempdir().unwrap();
    let (mut wrong_plain, mut tried) = (0, 0);
    for envelope in [true, false] {
        let path = dir.path().join(format!("s-{envelope}.msgpack"));
        committed(&path, envelope, 7);
        let good = fs::read(&path).unwrap();
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bytes = good.clone();
                bytes[i] ^= 1 << bit;
                fs::write(&path, &bytes).unwrap();
                match open(&path, envelope) {
                    Ok(p) if p.get() == &state(7) && envelope => {
                        panic!("byte {i} bit {bit}: a damaged envelope loaded")
                    }
                    Ok(p) if p.get() != &state(7) => {
                        assert!(!envelope, "byte {i} bit {bit}: a wrong value loaded");
                        wrong_plain += 1;
                    }
                    Ok(_) => {}
                    Err(Error::Corrupt { .. } | Error::Deserialize { .. }) => {}
                    Err(e) => panic!("byte {i} bit {bit}: {e:?}"),
                }
                tried += usize::from(envelope);
            }
        }
    }
    assert!(tried > 500, "{tried}");
    assert!(
        wrong_plain > 0,
        "the plain control never loaded a wrong value"
    );
}

#[test]
fn a_truncated_envelope_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.msgpack");
    committed(&path, true, 1);
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 9]).unwrap();
    let e = open(&path, true).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Corrupt {
                kind: CorruptKind::Truncated,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn bytes_that_are_not_a_document_are_a_deserialize_error_naming_the_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.msgpack");
    fs::write(&path, b"\xc1 not msgpack").unwrap();
    match open(&path, false).unwrap_err() {
        Error::Deserialize {
            path: at,
            format: "msgpack",
            line: None,
            ..
        } => assert_eq!(at, path),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_value_the_format_cannot_write_is_a_serialize_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.refusing");
    let mut p = Persisted::<State>::builder(&path)
        .format(&Refusing)
        .open_or_default()
        .unwrap();
    match p.set(state(1)).unwrap_err() {
        Error::Serialize { path: at, source } => {
            assert_eq!(at, path);
            assert!(source.to_string().contains("writes nothing"), "{source}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!path.exists());
}

#[test]
fn the_extension_never_picks_a_custom_format() {
    let dir = tempfile::tempdir().unwrap();
    let e = Persisted::<State>::open(dir.path().join("s.msgpack")).unwrap_err();
    assert!(matches!(e, Error::UnknownFormat { .. }), "{e:?}");
}

#[test]
fn a_custom_format_is_compared_by_name_and_shows_it() {
    const MSGPACK: AnyFormat = AnyFormat::custom(&MessagePack);
    assert_eq!(MSGPACK, AnyFormat::from(&MessagePack));
    assert_ne!(MSGPACK, AnyFormat::from(&Refusing));
    assert_eq!(format!("{MSGPACK:?}"), "Custom(Custom(\"msgpack\"))");
    use atomic_persist::Format;
    assert_eq!(MSGPACK.name(), "msgpack");
}

#[test]
fn a_history_in_a_custom_format_keeps_versions_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.msgpack");
    let mut h = History::<State>::builder(&path)
        .format(&MessagePack)
        .keep(3)
        .open_or_default()
        .unwrap();
    for step in 1..=3 {
        h.set(state(step)).unwrap();
    }
    assert_eq!(h.version(2).unwrap(), state(2));
    h.rollback(2).unwrap();
    let again = History::<State>::builder(&path)
        .format(&MessagePack)
        .open()
        .unwrap();
    assert_eq!(again.get(), &state(2));
}

/// The schema before `State` gained its name and scores.
#[derive(Serialize, Deserialize)]
struct V1 {
    step: u64,
}

fn migrate(found: u32, payload: Payload<'_>) -> atomic_persist::Result<State> {
    match found {
        1 => Ok(State {
            step: payload.deserialize::<V1>()?.step,
            ..State::default()
        }),
        _ => payload.deserialize(),
    }
}

#[test]
fn a_migration_reads_the_older_type_through_the_payload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.msgpack");
    let mut old = Persisted::<V1>::builder(&path)
        .format(&MessagePack)
        .envelope(true)
        .schema_version(1)
        .open_or_else(|| V1 { step: 9 })
        .unwrap();
    old.commit().unwrap();
    let p = Persisted::<State>::builder(&path)
        .format(&MessagePack)
        .envelope(true)
        .schema_version(2)
        .decode(migrate)
        .open()
        .unwrap();
    assert_eq!(p.get().step, 9);
}

#[cfg(feature = "object-store")]
#[test]
fn an_object_store_value_in_a_custom_format() {
    use atomic_persist::ObjectPersisted;
    use std::sync::Arc;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store: Arc<dyn object_store::ObjectStore> =
            Arc::new(object_store::memory::InMemory::new());
        let mut p = ObjectPersisted::<State>::builder(store.clone(), "s.msgpack")
            .format(&MessagePack)
            .envelope(true)
            .open_or_default()
            .await
            .unwrap();
        p.set(state(4)).await.unwrap();
        let back = ObjectPersisted::<State>::builder(store, "s.msgpack")
            .format(&MessagePack)
            .envelope(true)
            .open()
            .await
            .unwrap();
        assert_eq!(back.get(), &state(4));
        assert_eq!(back.meta().unwrap().generation, 1);
    });
}

#[cfg(feature = "derive")]
#[test]
fn a_derived_persist_type_names_a_custom_format() {
    use atomic_persist::Persist;
    #[derive(Serialize, Deserialize, Default, Debug, PartialEq, Persist)]
    #[persist(path = "s.msgpack", format = MessagePack, envelope = true)]
    struct Settings {
        volume: u32,
    }
    assert_eq!(Settings::FORMAT, Some(AnyFormat::custom(&MessagePack)));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.msgpack");
    Settings { volume: 3 }.save_to(&path).unwrap();
    assert!(fs::read(&path).unwrap().starts_with(b"APERSIST"));
    assert_eq!(Settings::load_from(&path).unwrap(), Settings { volume: 3 });
}

#[test]
fn a_snapshot_file_in_a_custom_format() {
    let dir = tempfile::tempdir().unwrap();
    let snap = atomic_persist::Snapshot::builder(dir.path().join("set"))
        .envelope(true)
        .open_or_create()
        .unwrap();
    let mut tx = snap.begin().unwrap();
    tx.put_as("state.msgpack", &MessagePack, &state(5)).unwrap();
    tx.commit().unwrap();
    let view = snap.current().unwrap();
    assert_eq!(
        view.get_as::<State>("state.msgpack", &MessagePack).unwrap(),
        state(5)
    );
    let e = view.get::<State>("state.msgpack").unwrap_err();
    assert!(matches!(e, Error::UnknownFormat { .. }), "{e:?}");
}

#[cfg(feature = "watch")]
#[test]
fn a_watch_reads_a_custom_format() {
    use atomic_persist::watch::Update;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.msgpack");
    let mine = committed(&path, true, 1);
    let mut w = mine.watch().unwrap();
    committed(&path, true, 2);
    match w.next_timeout(std::time::Duration::from_secs(10)) {
        Some(Ok(Update::Changed { value, meta })) => {
            assert_eq!(value, state(2));
            assert_eq!(meta.unwrap().generation, 2);
        }
        other => panic!("{other:?}"),
    }
}
