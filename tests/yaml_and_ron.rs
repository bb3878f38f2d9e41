#![cfg(all(feature = "yaml", feature = "ron"))]
//! What YAML and RON files add to the rules every format follows (those are checked for
//! every format by `typed_roundtrip`, `typed_corruption`, `hand_edits`, `recover` and
//! `bad_input`): their envelopes stay documents of their format, large YAML states load
//! as they saved, and an alias bomb is an error, not a hang.

use std::collections::BTreeMap;
use std::fs;

use atomic_persist::{AnyFormat, CorruptKind, Error, Format, Persisted, Ron, Yaml};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
struct Settings {
    name: String,
    tags: Vec<String>,
    limits: BTreeMap<String, i32>,
}

fn settings() -> Settings {
    Settings {
        name: "multi\nline\nmeta:\n".into(),
        tags: vec!["a".into(), "- b".into()],
        limits: [("cpu".to_owned(), 2)].into(),
    }
}

fn committed(path: &std::path::Path) -> Persisted<Settings> {
    let mut p = Persisted::<Settings>::builder(path)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set(settings()).unwrap();
    p
}

#[test]
fn yml_and_yaml_name_yaml_and_ron_names_ron() {
    assert_eq!(AnyFormat::from_path("a.yml").unwrap(), AnyFormat::Yaml);
    assert_eq!(AnyFormat::from_path("a.Yaml").unwrap(), AnyFormat::Yaml);
    assert_eq!(AnyFormat::from_path("a.ron").unwrap(), AnyFormat::Ron);
}

#[test]
fn a_yaml_envelope_is_a_yaml_document_with_the_value_under_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    let p = committed(&path);
    #[derive(Deserialize)]
    struct Doc {
        atomic_persist: u32,
        data: Settings,
        meta: BTreeMap<String, String>,
    }
    let doc: Doc = Yaml.deserialize(&fs::read(&path).unwrap()).unwrap();
    assert_eq!((doc.atomic_persist, doc.data), (1, settings()));
    let meta = p.meta().unwrap();
    assert_eq!(doc.meta["generation"], meta.generation.to_string());
    assert_eq!(doc.meta["checksum"], format!("crc32:{:08x}", meta.checksum));
}

#[test]
fn a_ron_envelope_is_a_ron_struct_with_the_value_under_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.ron");
    let p = committed(&path);
    #[derive(Deserialize)]
    struct Doc {
        atomic_persist: u32,
        data: Settings,
        meta: Meta,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Meta {
        run_id: String,
        written_at: String,
        generation: u64,
        schema_version: u32,
        checksum: String,
    }
    let doc: Doc = Ron.deserialize(&fs::read(&path).unwrap()).unwrap();
    assert_eq!((doc.atomic_persist, doc.data), (1, settings()));
    let meta = p.meta().unwrap();
    assert_eq!(doc.meta.generation, meta.generation);
    assert_eq!(doc.meta.checksum, format!("crc32:{:08x}", meta.checksum));
}

#[test]
fn a_ron_envelope_laid_out_by_hand_with_comments_still_verifies_and_loads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.ron");
    committed(&path);
    let text = fs::read_to_string(&path).unwrap();
    // The payload's bytes stay as they were (the checksum covers them); the layout
    // around them changes.
    let at = text.find(",meta:(").unwrap();
    let (head, rest) = text.split_at(at);
    let payload = head.strip_prefix("(atomic_persist:1,data:").unwrap();
    let laid_out = format!(
        "// settings\n(\n    atomic_persist: 1,\n    data: {payload},\n    meta: {}\n)\n",
        rest.strip_prefix(",meta:")
            .unwrap()
            .strip_suffix(')')
            .unwrap()
    );
    fs::write(&path, laid_out).unwrap();
    assert!(atomic_persist::envelope::verify(&path).unwrap().is_some());
    let back = Persisted::<Settings>::builder(&path)
        .envelope(true)
        .open()
        .unwrap();
    assert_eq!(back.get(), &settings());
}

#[test]
fn a_yaml_state_of_300_000_nodes_loads_as_it_saved() {
    // serde-saphyr's default budget stops at 250,000 nodes: a state this size would
    // save and then fail to load, had the limits not been scaled to the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.yaml");
    let value: Vec<u32> = (0..300_000).collect();
    let mut p = Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .durability(atomic_persist::Durability::None)
        .open_or_default()
        .unwrap();
    p.set(value.clone()).unwrap();
    let back = Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .open()
        .unwrap();
    assert_eq!(back.get(), &value);
}

#[test]
fn a_yaml_alias_bomb_is_a_deserialize_error_not_a_hang() {
    // Seven levels of ten aliases: 10^7 nodes from 400 bytes.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.yaml");
    fs::write(&path, &bomb).unwrap();
    let e = Persisted::<serde_json::Value>::open(&path).unwrap_err();
    assert!(
        matches!(e, Error::Deserialize { format: "yaml", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("budget"), "{e}");
}

#[test]
fn a_yaml_envelope_cut_before_its_meta_line_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.yaml");
    committed(&path);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, &text[..text.rfind("\nmeta:\n").unwrap()]).unwrap();
    let e = Persisted::<Settings>::builder(&path)
        .envelope(true)
        .open()
        .unwrap_err();
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
fn yaml_and_ron_errors_point_at_the_line_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, line) in [
        ("s.yaml", "name: x\ntags: [a]\nlimits:\n  cpu: many\n", 4),
        (
            "s.ron",
            "(\n  name: \"x\",\n  tags: [\"a\"],\n  limits: {\"cpu\": many},\n)",
            4,
        ),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, text).unwrap();
        let e = Persisted::<Settings>::open(&path).unwrap_err();
        match e {
            Error::Deserialize { line: got, .. } => assert_eq!(got, Some(line), "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn non_finite_floats_round_trip_in_yaml_and_the_file_verifies() {
    // `.nan` and `.inf` are what a NaN and an infinity serialize to; the document check
    // of `verify` (an "any" read) once refused them.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floats.yaml");
    let value = vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5];
    let mut p = Persisted::<Vec<f64>>::open_or_default(&path).unwrap();
    p.set(value.clone()).unwrap();
    let back = Persisted::<Vec<f64>>::open(&path).unwrap().into_inner();
    let bits = |v: &[f64]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert!(back[0].is_nan());
    assert_eq!(bits(&back[1..]), bits(&value[1..]));
    assert_eq!(atomic_persist::envelope::verify(&path).unwrap(), None);
}
