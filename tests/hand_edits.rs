#![cfg(all(unix, feature = "json", feature = "toml", feature = "binary"))]
//! Hand edits of enveloped files: refused by default, accepted on request
//! (`accept_hand_edits`, `HAND_EDITS`) and re-stamped by the next commit, or sealed once
//! with `envelope::seal` / `atomic-persist seal`. Damage that is not an edit stays
//! `Corrupt` either way.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use atomic_persist::envelope::{Sealed, seal, verify};
use atomic_persist::{CorruptKind, Error, Persisted};

type Settings = BTreeMap<String, u32>;

/// The extensions of the text formats this build has: the ones a person edits.
fn text_extensions() -> Vec<&'static str> {
    let mut exts: Vec<_> = common::formats()
        .into_iter()
        .map(|(ext, _)| ext)
        .filter(|&ext| ext != "bin")
        .collect();
    exts.dedup(); // compact and indented JSON share `.json`
    exts
}

/// An enveloped file at `path` holding `{"volume": 3, "width": 80}`, generation 1.
fn enveloped(path: &Path) {
    let mut p = Persisted::<Settings>::builder(path)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.update(|s| {
        s.insert("volume".into(), 3);
        s.insert("width".into(), 80);
    })
    .unwrap();
}

/// Replaces `from` with `to` in the file's text, as a person with an editor would.
fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {text}");
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn open(path: &Path, accept: bool) -> atomic_persist::Result<Persisted<Settings>> {
    Persisted::<Settings>::builder(path)
        .envelope(true)
        .accept_hand_edits(accept)
        .open()
}

fn is_corrupt(r: &atomic_persist::Result<impl std::fmt::Debug>, want: CorruptKind) -> bool {
    matches!(r, Err(Error::Corrupt { kind, .. }) if *kind == want)
}

#[test]
fn a_hand_edit_is_corrupt_by_default() {
    let dir = tempfile::tempdir().unwrap();
    for ext in text_extensions() {
        let path = dir.path().join(format!("s.{ext}"));
        enveloped(&path);
        edit(&path, "3", "4");
        let opened = open(&path, false);
        assert!(
            is_corrupt(&opened, CorruptKind::Checksum),
            "{ext}: {opened:?}"
        );
    }
}

#[test]
fn an_accepted_hand_edit_loads_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    for ext in text_extensions() {
        let path = dir.path().join(format!("s.{ext}"));
        enveloped(&path);
        edit(&path, "3", "4");
        let p = open(&path, true).unwrap();
        assert_eq!(p["volume"], 4, "{ext}");
        assert!(p.hand_edited(), "{ext}");
        assert_eq!(
            p.meta().unwrap().generation,
            1,
            "{ext}: the meta from before"
        );
    }
}

#[test]
fn an_intact_file_is_not_reported_as_edited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    enveloped(&path);
    assert!(!open(&path, true).unwrap().hand_edited());
}

#[test]
fn the_next_commit_restamps_an_edit_even_with_the_value_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for ext in text_extensions() {
        let path = dir.path().join(format!("s.{ext}"));
        enveloped(&path);
        edit(&path, "3", "4");
        let mut p = open(&path, true).unwrap();
        p.commit().unwrap();
        assert!(!p.hand_edited(), "{ext}");
        let meta = verify(&path).unwrap().expect("enveloped");
        assert_eq!(meta.generation, 2, "{ext}");
        assert_eq!(open(&path, false).unwrap()["volume"], 4, "{ext}");
    }
}

#[test]
fn an_edited_toml_envelope_keeps_its_comments_through_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    enveloped(&path);
    edit(
        &path,
        "volume = 3",
        "# quieter at night\nvolume = 2 # was 3",
    );
    let mut p = open(&path, true).unwrap();
    p.update(|s| s.insert("width".into(), 100)).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("# quieter at night\nvolume = 2 # was 3"),
        "{text}"
    );
    assert!(text.contains("width = 100"), "{text}");
    assert!(verify(&path).unwrap().is_some(), "intact again: {text}");
}

#[test]
fn a_truncated_envelope_stays_corrupt_with_edits_accepted() {
    let dir = tempfile::tempdir().unwrap();
    for ext in text_extensions() {
        let path = dir.path().join(format!("s.{ext}"));
        enveloped(&path);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 30]).unwrap();
        let opened = open(&path, true);
        assert!(
            matches!(opened, Err(Error::Corrupt { .. })),
            "{ext}: {opened:?}"
        );
    }
}

#[test]
fn a_meta_that_does_not_parse_stays_corrupt_with_edits_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    enveloped(&path);
    edit(&path, "generation = 1", "generation = \"one\"");
    let opened = open(&path, true);
    assert!(is_corrupt(&opened, CorruptKind::Damaged), "{opened:?}");
}

#[test]
fn a_binary_checksum_mismatch_stays_corrupt_with_edits_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.bin");
    enveloped(&path);
    let mut bytes = fs::read(&path).unwrap();
    bytes[13] ^= 1; // inside the payload
    fs::write(&path, &bytes).unwrap();
    let opened = open(&path, true);
    assert!(is_corrupt(&opened, CorruptKind::Checksum), "{opened:?}");
}

#[test]
fn an_edit_that_does_not_fit_the_type_is_a_deserialize_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    enveloped(&path);
    edit(&path, "3", "\"loud\"");
    let opened = open(&path, true);
    assert!(
        matches!(opened, Err(Error::Deserialize { .. })),
        "{opened:?}"
    );
}

#[test]
fn an_edit_still_goes_through_validation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    enveloped(&path);
    edit(&path, "3", "300");
    let opened = Persisted::<Settings>::builder(&path)
        .envelope(true)
        .accept_hand_edits(true)
        .validate(|s| match s["volume"] <= 10 {
            true => Ok(()),
            false => Err("volume above 10".into()),
        })
        .open();
    assert!(matches!(opened, Err(Error::Invalid { .. })), "{opened:?}");
}

#[test]
fn a_running_writer_does_not_overwrite_a_hand_edit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    enveloped(&path);
    let mut running = open(&path, false).unwrap();
    edit(&path, "3", "7");
    let committed = running.update(|s| s.insert("width".into(), 90));
    assert!(
        matches!(committed, Err(Error::Conflict { .. })),
        "{committed:?}"
    );
    assert!(
        fs::read_to_string(&path).unwrap().contains('7'),
        "the edit is kept"
    );
}

#[test]
fn seal_restamps_an_edit_keeping_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for ext in text_extensions() {
        let path = dir.path().join(format!("s.{ext}"));
        enveloped(&path);
        edit(&path, "3", "4 ");
        let edited = fs::read_to_string(&path).unwrap();
        let Sealed::Resealed { was, now } = seal(&path).unwrap() else {
            panic!("{ext}: an edit must be resealed");
        };
        assert_eq!((was.generation, now.generation), (1, 2), "{ext}");
        assert_eq!(verify(&path).unwrap(), Some(now), "{ext}");
        let sealed = fs::read_to_string(&path).unwrap();
        let payload_end = edited.find("meta").unwrap();
        assert_eq!(sealed[..payload_end], edited[..payload_end], "{ext}");
        assert!(!open(&path, false).unwrap().hand_edited(), "{ext}");
    }
}

#[test]
fn seal_of_an_intact_file_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    enveloped(&path);
    let inode = fs::metadata(&path).unwrap().ino();
    let sealed = seal(&path).unwrap();
    assert!(
        matches!(sealed, Sealed::Intact(ref m) if m.generation == 1),
        "{sealed:?}"
    );
    assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
}

#[test]
fn seal_keeps_the_files_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.json");
    enveloped(&path);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    edit(&path, "3", "4");
    seal(&path).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o640);
}

#[test]
fn seal_refuses_a_plain_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.json");
    fs::write(&path, b"{\"volume\": 3}").unwrap();
    let sealed = seal(&path);
    assert!(
        matches!(sealed, Err(Error::NotEnveloped { .. })),
        "{sealed:?}"
    );
}

#[test]
fn seal_refuses_an_edit_that_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    enveloped(&path);
    edit(&path, "volume = 3", "volume = = 3");
    let before = fs::read(&path).unwrap();
    let sealed = seal(&path);
    assert!(
        matches!(sealed, Err(Error::Deserialize { .. })),
        "{sealed:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), before, "nothing written");
}

#[test]
fn seal_refuses_a_binary_checksum_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.bin");
    enveloped(&path);
    let mut bytes = fs::read(&path).unwrap();
    bytes[13] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(is_corrupt(&seal(&path), CorruptKind::Checksum));
}

#[cfg(feature = "derive")]
#[test]
fn a_derived_type_with_hand_edits_loads_an_edited_file() {
    use atomic_persist::Persist;
    #[derive(serde::Serialize, serde::Deserialize, Default, Persist)]
    #[persist(path = "unused.toml", envelope = true, version = 1, hand_edits = true)]
    struct Config {
        volume: u32,
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    Config { volume: 3 }.save_to(&path).unwrap();
    edit(&path, "volume = 3", "volume = 5");
    let p = Config::builder_at(&path).open().unwrap();
    assert!(p.hand_edited());
    assert_eq!(p.volume, 5);
}

#[cfg(feature = "cli")]
mod cli {
    use super::*;
    use assert_cmd::Command;
    use predicates::prelude::*;

    fn cmd() -> Command {
        Command::new(env!("CARGO_BIN_EXE_atomic-persist"))
    }

    #[test]
    fn seal_prints_the_new_generation_and_verify_then_passes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        enveloped(&path);
        edit(&path, "volume = 3", "volume = 4");
        let line = format!("{}: sealed as generation 2 (was 1)\n", path.display());
        cmd().arg("seal").arg(&path).assert().success().stdout(line);
        cmd().arg("verify").arg(&path).assert().success();
    }

    #[test]
    fn verify_names_seal_for_a_text_checksum_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        enveloped(&path);
        edit(&path, "3", "4");
        let hint = format!("`atomic-persist seal {}` accepts it", path.display());
        cmd()
            .arg("verify")
            .arg(&path)
            .assert()
            .code(1)
            .stdout(predicate::str::contains(hint));
    }

    #[test]
    fn seal_of_a_plain_file_exits_1_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.json");
        fs::write(&path, b"{}").unwrap();
        cmd()
            .arg("seal")
            .arg(&path)
            .assert()
            .code(1)
            .stderr(predicate::str::contains("has no atomic-persist envelope"));
    }
}
