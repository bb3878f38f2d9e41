#![cfg(all(
    feature = "json",
    feature = "toml",
    feature = "binary",
    feature = "yaml",
    feature = "ron"
))]
//! Bad input through the loading entry points: random bytes and mutated valid files
//! (multi-byte edits, insertions, deletions, truncations, splices of two valid files,
//! number and line edits of text files, envelopes with meta fields swapped between
//! files or a payload from another value) are loaded with `Persisted::<T>::builder(path)`
//! `.format(f).envelope(on).schema_version(v).open()` and `envelope::verify`, for each
//! format and three kinds of `T`. Nothing panics and nothing wrong loads as good; the
//! oracle is in `bad_input/oracle.rs` (shared with the fuzz targets in `fuzz/`).
//!
//! `tests/typed_corruption.rs` already tries every single-bit flip and truncation of small
//! enveloped files; these go further. Each property runs 256 cases by default;
//! `PROPTEST_CASES=N` raises it.

#[path = "bad_input/oracle.rs"]
mod oracle;

use std::collections::HashMap;
use std::sync::OnceLock;

use atomic_persist::{AnyFormat, Binary, Json, Ron, Toml, Yaml};
use oracle::{Outcome, RefMeta, Ty, check_ty, formats, ref_envelope, ref_write};
use proptest::prelude::*;
use proptest::sample::Index;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(256),
        ..ProptestConfig::default()
    }
}

/// `(enveloped, bytes)` of valid files.
type Files = Vec<(bool, Vec<u8>)>;

/// Valid files of each format, plain and enveloped, written once by the crate.
fn valid(format: AnyFormat) -> &'static [(bool, Vec<u8>)] {
    static FILES: OnceLock<HashMap<AnyFormat, Files>> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        formats()
            .into_iter()
            .map(|f| (f, oracle::valid_files(dir.path(), f)))
            .collect()
    })[&format]
        .as_slice()
}

fn pick(format: AnyFormat, i: &Index) -> &'static [u8] {
    let files = valid(format);
    &files[i.index(files.len())].1
}

fn enveloped(format: AnyFormat) -> Vec<&'static [u8]> {
    valid(format)
        .iter()
        .filter(|(e, _)| *e)
        .map(|(_, b)| b.as_slice())
        .collect()
}

/// Where and how to load: format, type, envelope on, supported schema version.
fn target() -> impl Strategy<Value = (AnyFormat, Ty, bool, u32)> {
    (
        prop::sample::select(formats().to_vec()),
        prop::sample::select(oracle::TYS.to_vec()),
        any::<bool>(),
        prop::sample::select(vec![0u32, 3, u32::MAX]),
    )
}

fn run(target: (AnyFormat, Ty, bool, u32), bytes: &[u8]) -> Outcome {
    let (format, ty, envelope, schema) = target;
    let dir = tempfile::tempdir().unwrap();
    check_ty(dir.path(), format, ty, envelope, schema, bytes)
}

/// One edit of a file; positions and lengths are taken modulo the file's size.
#[derive(Clone, Debug)]
enum Edit {
    Xor(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    /// Copy a range over another place (duplicated keys, repeated headers).
    Repeat(Index, usize, Index),
    /// Swap two lines (text formats: reordered keys and tables).
    SwapLines(Index, Index),
    /// Replace the digits at a place with another number.
    Number(Index, i64),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Edit::Xor(i, x)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (
            any::<Index>(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..8),
                prop::sample::select(vec![
                    b"\n".to_vec(),
                    b"\n[meta]\n".to_vec(),
                    b"\"".to_vec(),
                    b",".to_vec(),
                    b"{".to_vec(),
                    b"}".to_vec(),
                    b"APERSIST".to_vec(),
                    b"atomic_persist = 1\n".to_vec(),
                    b"\"data\":".to_vec(),
                    b"\"meta\":{}".to_vec(),
                    b"\\u0000".to_vec(),
                    b"\xef\xbb\xbf".to_vec(),
                    b" ".to_vec(),
                ]),
            ]
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), 1..32usize).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), 1..64usize, any::<Index>()).prop_map(|(a, n, b)| Edit::Repeat(a, n, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        (
            any::<Index>(),
            prop_oneof![
                any::<i64>(),
                Just(0),
                Just(1),
                Just(-1),
                Just(u32::MAX as i64 + 1)
            ]
        )
            .prop_map(|(i, n)| Edit::Number(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let len = bytes.len();
    match edit {
        Edit::Xor(i, x) if len > 0 => bytes[i.index(len)] ^= x,
        Edit::Set(i, b) if len > 0 => bytes[i.index(len)] = *b,
        Edit::Insert(i, b) => {
            let at = i.index(len + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Edit::Delete(i, n) if len > 0 => {
            let at = i.index(len);
            bytes.drain(at..(at + n).min(len));
        }
        Edit::Truncate(i) => bytes.truncate(i.index(len + 1)),
        Edit::Repeat(a, n, b) if len > 0 => {
            let from = a.index(len);
            let chunk = bytes[from..(from + n).min(len)].to_vec();
            let to = b.index(len + 1);
            bytes.splice(to..to, chunk);
        }
        Edit::SwapLines(a, b) => {
            let mut lines: Vec<Vec<u8>> =
                bytes.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
            let n = lines.len();
            lines.swap(a.index(n), b.index(n));
            *bytes = lines.join(&b'\n');
        }
        Edit::Number(i, n) if len > 0 => {
            // The run of digits nearest after the place (or the place itself).
            let start = i.index(len);
            if let Some(s) = bytes[start..].iter().position(u8::is_ascii_digit) {
                let s = start + s;
                let e = s + bytes[s..].iter().take_while(|c| c.is_ascii_digit()).count();
                bytes.splice(s..e, n.to_string().into_bytes());
            }
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(config())]

    /// Random bytes, sometimes behind a valid start (the envelope's head or magic).
    #[test]
    fn random_bytes(
        target in target(),
        head in prop::sample::select(vec![
            &b""[..],
            b"{\"atomic_persist\":1,\"data\":",
            b"atomic_persist = 1\n",
            b"APERSIST\x01\x00\x00\x00",
            b"{",
        ]),
        tail in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(&tail);
        run(target, &bytes);
    }

    /// Valid files with one to eight edits.
    #[test]
    fn edited_valid_files(
        target in target(),
        which in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..=8),
    ) {
        let mut bytes = pick(target.0, &which).to_vec();
        for e in &edits {
            apply(&mut bytes, e);
        }
        run(target, &bytes);
    }

    /// The start of one valid file joined to the end of another (of the same format, or
    /// any other, as when two writers' bytes interleave).
    #[test]
    fn spliced_valid_files(
        target in target(),
        other_format in prop::sample::select(formats().to_vec()),
        a in any::<Index>(),
        b in any::<Index>(),
        cut_a in any::<Index>(),
        cut_b in any::<Index>(),
        same_format in any::<bool>(),
    ) {
        let first = pick(target.0, &a);
        let second = pick(if same_format { target.0 } else { other_format }, &b);
        let mut bytes = first[..cut_a.index(first.len() + 1)].to_vec();
        bytes.extend_from_slice(&second[cut_b.index(second.len() + 1)..]);
        run(target, &bytes);
    }

    /// Envelopes rebuilt by the spec from the parts of two valid envelopes: a payload
    /// with another file's meta, one meta field taken from another file (checksum kept or
    /// recomputed), or a payload of another value under a correct checksum.
    #[test]
    fn envelopes_with_swapped_parts(
        target in target(),
        a in any::<Index>(),
        b in any::<Index>(),
        field in 0..6usize,
        recompute in any::<bool>(),
    ) {
        let (format, ..) = target;
        let files = enveloped(format);
        let (pa, ma) = ref_envelope(format, files[a.index(files.len())]).unwrap();
        let (pb, mb) = ref_envelope(format, files[b.index(files.len())]).unwrap();
        let mut meta: RefMeta = ma.clone();
        let mut payload = pa;
        match field {
            0 => meta.run_id = mb.run_id,
            1 => meta.written_at = mb.written_at,
            2 => meta.generation = mb.generation,
            3 => meta.schema_version = mb.schema_version,
            4 => meta = mb.clone(),
            _ => payload = pb,
        }
        if recompute {
            meta.checksum = meta.crc(payload);
        }
        let bytes = ref_write(format, payload, &meta);
        let outcome = run(target, &bytes);
        // Without a recomputed checksum, a mix of two different files never loads.
        let mixed = payload != pa || meta.canonical() != ma.canonical();
        if target.2 && !recompute && mixed && meta.checksum == ma.checksum {
            prop_assert_eq!(outcome, Outcome::Rejected);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// Payloads under a checksum that holds: an edited valid payload, a payload of another
    /// format, or random bytes, wrapped by the spec. Whatever loads is the payload's value.
    #[test]
    fn wrapped_payloads(
        target in target(),
        which in any::<Index>(),
        other_format in prop::sample::select(formats().to_vec()),
        random in prop::option::weighted(0.2, prop::collection::vec(any::<u8>(), 0..200)),
        edits in prop::collection::vec(edit(), 0..=4),
    ) {
        let (format, ..) = target;
        let is_random = random.is_some();
        let payload = match random {
            Some(bytes) => bytes,
            None => {
                let files = enveloped(other_format);
                let file = files[which.index(files.len())];
                let mut payload = ref_envelope(other_format, file).unwrap().0.to_vec();
                for e in &edits {
                    apply(&mut payload, e);
                }
                payload
            }
        };
        let file = oracle::wrapped(format, &payload, 1);
        let outcome = run((format, target.1, true, target.3), &file);
        let untouched = !is_random && edits.is_empty() && format == other_format;
        if untouched && target.1 == Ty::Any && format != Binary.into() {
            // An unedited JSON or TOML payload under a good checksum loads as a value of
            // the format's "any" type.
            prop_assert_eq!(outcome, Outcome::Enveloped);
        }
    }
}

/// A history of three versions, shared by the history property (each case restores it).
fn history() -> &'static oracle::HistoryFixture {
    static FIXTURE: OnceLock<(tempfile::TempDir, oracle::HistoryFixture)> = OnceLock::new();
    &FIXTURE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let fx = oracle::history_fixture(dir.path());
            (dir, fx)
        })
        .1
}

proptest! {
    #![proptest_config(config())]

    /// The history's manifest, or version 2's file, edited (or replaced by random bytes):
    /// values come only from intact versions, and `versions()` reports only what a file
    /// or the manifest's cache entry for a file of that size says.
    #[test]
    fn history_with_a_damaged_manifest_or_version(
        damage_version in any::<bool>(),
        random in prop::option::weighted(0.1, prop::collection::vec(any::<u8>(), 0..300)),
        edits in prop::collection::vec(edit(), 1..=6),
    ) {
        let fx = history();
        let bytes = match random {
            Some(bytes) => bytes,
            None => {
                let mut bytes = if damage_version { fx.v2.clone() } else { fx.manifest.clone() };
                for e in &edits {
                    apply(&mut bytes, e);
                }
                bytes
            }
        };
        // One test thread at a time uses the fixture (this property is its only user).
        oracle::check_history(fx, u8::from(damage_version), &bytes);
    }
}

/// The valid files load as themselves (the oracle's positive side), with every type.
#[test]
fn valid_files_pass_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let mut loaded = 0;
    for format in formats() {
        for (enveloped, bytes) in valid(format) {
            for ty in oracle::TYS {
                let outcome = check_ty(dir.path(), format, ty, *enveloped, u32::MAX, bytes);
                loaded += (outcome != Outcome::Rejected) as usize;
            }
            assert!(ref_envelope(format, bytes).is_some_and(|(p, m)| m.holds(p)) == *enveloped);
        }
    }
    assert!(loaded > 40, "{loaded}");
}

/// The oracle can fail: had the crate loaded an envelope whose checksum does not hold,
/// or a value other than the payload's, the checks would say so, in every text format
/// (binary's reference reader is checked by `valid_files_pass_the_oracle`).
#[test]
fn the_oracle_catches_a_bad_checksum_or_value() {
    let dir = tempfile::tempdir().unwrap();
    for format in formats().into_iter().filter(|f| *f != Binary.into()) {
        let path = dir.path().join(format!("x.{}", oracle::ext(format)));
        let mut p = atomic_persist::Persisted::<Vec<u32>>::builder(&path)
            .format(format)
            .envelope(true)
            .open_or_else(|| vec![1, 2])
            .unwrap();
        p.commit().unwrap();
        let meta = p.meta().unwrap().clone();
        let good = std::fs::read(&path).unwrap();
        oracle::assert_enveloped_load::<Vec<u32>>(format, &good, &meta, "[1, 2]", "good");
        // The first `2` of the file is the payload's: the head has none.
        let tampered = String::from_utf8(good).unwrap().replacen('2', "3", 1);
        let caught = |bytes: Vec<u8>, value: &'static str| {
            let meta = meta.clone();
            std::panic::catch_unwind(move || {
                oracle::assert_enveloped_load::<Vec<u32>>(format, &bytes, &meta, value, "bad")
            })
            .is_err()
        };
        assert!(
            caught(tampered.into_bytes(), "[1, 3]"),
            "{format:?}: a bad checksum"
        );
        assert!(
            caught(std::fs::read(&path).unwrap(), "[1, 3]"),
            "{format:?}: a wrong value"
        );
    }
}

/// Every input under `fuzz/seeds/` and `fuzz/regressions/` (minimized inputs the fuzz
/// targets once failed on, named after their target) replayed through the targets' own
/// checks.
#[test]
fn fuzz_seeds_and_regressions_replay() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let dir = tempfile::tempdir().unwrap();
    let history_dir = tempfile::tempdir().unwrap();
    let fx = oracle::history_fixture(history_dir.path());
    let mut replayed = 0;
    for kind in ["seeds", "regressions"] {
        for target in [
            "load_json",
            "load_toml",
            "load_binary",
            "load_yaml",
            "load_ron",
            "verify",
            "history",
        ] {
            let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
                continue;
            };
            for entry in entries {
                let data = std::fs::read(entry.unwrap().path()).unwrap();
                let Some((&sel, bytes)) = data.split_first() else {
                    continue;
                };
                match target {
                    "load_json" => {
                        oracle::fuzz_one(dir.path(), Json.into(), &data);
                    }
                    "load_toml" => {
                        oracle::fuzz_one(dir.path(), Toml.into(), &data);
                    }
                    "load_binary" => {
                        oracle::fuzz_one(dir.path(), Binary.into(), &data);
                    }
                    "load_yaml" => {
                        oracle::fuzz_one(dir.path(), Yaml.into(), &data);
                    }
                    "load_ron" => {
                        oracle::fuzz_one(dir.path(), Ron.into(), &data);
                    }
                    "verify" => {
                        let format = oracle::verify_format(sel);
                        let _ = oracle::check_verify(dir.path(), format, bytes);
                    }
                    _ => oracle::check_history(&fx, sel, bytes),
                }
                replayed += 1;
            }
        }
    }
    assert!(replayed > 100, "{replayed}");
}

/// Hand-made shapes around the reading rules' edges, for every type and both envelope
/// settings.
#[test]
fn edge_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let json: &[&[u8]] = &[
        b"{\"data\":1,\"meta\":2,\"data\":3,\"meta\":4}",
        b"{\"data\":{},\"data\":{}}",
        b"{\"atomic\\u005fpersist\":1,\"data\":{},\"meta\":{}}",
        b"{\"atomic\\u005fpersist\":1,\"data\":{},\"meta\":{},\"x\":0}",
        b"\xef\xbb\xbf{\"atomic_persist\":1}",
        b" \r\n\t{ \"atomic_persist\" : 1 }",
        b"{\"data\":{\"id\":1},\"other\":2}",
        b"null",
        b"{}",
    ];
    let toml: &[&[u8]] = &[
        b"atomic_persist = 1\r\n\n[data]\nid = 1\n\n[meta]\n",
        b"atomic_persist = 1\n[meta]\n",
        b"atomic_persist = 1\n\n[meta]",
        b"atomic_persist=1\n",
        b"atomic_persist = 2\n",
        b"data = 1\nmeta = 2\n",
        b"\"atomic_persist\" = 1\ndata = {}\nmeta = {}\n",
        b"[data]\n[meta]\n",
        b"",
    ];
    let binary: &[&[u8]] = &[
        b"APERSIST",
        b"APERSIS",
        b"\x00APERSIST",
        b"",
        b"\x00",
        b"\x03abc",
    ];
    let yaml: &[&[u8]] = &[
        b"atomic_persist: 1\r\ndata:\n  id: 1\nmeta:\n",
        b"atomic_persist: 1\nmeta:\n",
        b"atomic_persist: 1\n\nmeta:",
        b"atomic_persist:1\n",
        b"atomic_persist: 2\n",
        b"data: 1\nmeta: 2\n",
        b"\"atomic_persist\": 1\ndata: {}\nmeta: {}\n",
        b"data: &a 1\nmeta: *a\n",
        b"---\natomic_persist: 1\n",
        b"{atomic_persist: 1, data: 1, meta: 2}",
        b"data: 1\n---\nmeta: 2\n",
        // Non-finite floats where a key or an "any" value is read (found by `load_yaml`).
        b".nan: o\nx: .inf\n",
        b"",
    ];
    let ron: &[&[u8]] = &[
        b"(atomic_persist:1)",
        b"/* c */(atomic_persist:1,data:1,meta:())",
        b"(atomic_persist_x:1,data:1,meta:2)",
        b"(data:1,meta:2)",
        b"{\"atomic_persist\":1,\"data\":1,\"meta\":2}",
        b"Envelope(atomic_persist:1,data:1,meta:2)",
        b"(atomic_persist:1,data:1,meta:(run_id:\"x\"))",
        b"// only a comment",
        b"/* unclosed",
        b"/*/ (atomic_persist:1) */ 5",
        // White space RON skips that JSON does not (found by `load_ron`).
        b"\x0b(atomic_persist:1,data:1,meta:2)",
        "\u{2028}\u{85}(atomic_persist:1,data:1,meta:2)".as_bytes(),
        // Extension attributes and struct names: never written, so never an envelope.
        b"#![enable(implicit_some)](atomic_persist:1,data:1,meta:2)",
        b"#![enable(implicit_some)] (data:1,meta:2)",
        b"",
    ];
    for (format, inputs) in [
        (AnyFormat::from(Json), json),
        (Toml.into(), toml),
        (Binary.into(), binary),
        (Yaml.into(), yaml),
        (Ron.into(), ron),
    ] {
        for bytes in inputs {
            for ty in oracle::TYS {
                for envelope in [false, true] {
                    check_ty(dir.path(), format, ty, envelope, 0, bytes);
                }
            }
        }
    }
}

/// Found by `edge_shapes`: a JSON top level made only of envelope keys, some repeated
/// (`{"data":..,"meta":..,"data":..,"meta":..}`), loaded as a plain map with the envelope
/// on, because the shape check counted keys with their repeats.
#[test]
fn repeated_envelope_keys_are_a_damaged_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, b"{\"data\":1,\"meta\":2,\"data\":3,\"meta\":4}").unwrap();
    let e = atomic_persist::Persisted::<serde_json::Value>::builder(&path)
        .envelope(true)
        .open()
        .unwrap_err();
    assert!(matches!(e, atomic_persist::Error::Corrupt { .. }), "{e:?}");
    assert!(atomic_persist::envelope::verify(&path).is_err());
    // With the envelope off it is a plain value, as before.
    let p = atomic_persist::Persisted::<serde_json::Value>::open(&path).unwrap();
    assert_eq!(p.get(), &serde_json::json!({"data": 3, "meta": 4}));
}

/// Writes the fuzz targets' seed inputs (the valid files behind a selector byte) into
/// the directory `$FUZZ_SEEDS`: `FUZZ_SEEDS=fuzz/seeds cargo test --all-features --test
/// bad_input -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes the fuzz seeds; run by hand"]
fn write_fuzz_seeds() {
    let root = std::path::PathBuf::from(std::env::var("FUZZ_SEEDS").expect("FUZZ_SEEDS"));
    let write = |target: &str, name: String, sel: u8, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let mut input = vec![sel];
        input.extend_from_slice(bytes);
        std::fs::write(dir.join(name), input).unwrap();
    };
    for (target, format, verify_sel) in [
        ("load_json", AnyFormat::from(Json), 0u8),
        ("load_json", atomic_persist::JsonPretty.into(), 0),
        ("load_toml", Toml.into(), 1),
        ("load_binary", Binary.into(), 2),
        ("load_yaml", Yaml.into(), 3),
        ("load_ron", Ron.into(), 4),
    ] {
        let pretty = if format == atomic_persist::JsonPretty.into() {
            16
        } else {
            0
        };
        for (i, (enveloped, bytes)) in valid(format).iter().enumerate() {
            for (t, _) in oracle::TYS.iter().enumerate() {
                let sel = u8::from(*enveloped) | (t as u8) << 1 | 8 | pretty;
                write(target, format!("{pretty}-{i}-{t}"), sel, bytes);
            }
            write(
                "verify",
                format!("{verify_sel}-{pretty}-{i}"),
                verify_sel,
                bytes,
            );
        }
    }
    let fx = history();
    write("history", "manifest".into(), 0, &fx.manifest);
    write("history", "version-2".into(), 1, &fx.v2);
}
