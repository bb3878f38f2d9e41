//! 2. Ownership.

use super::*;

#[test]
fn root_does_not_hand_a_secret_to_the_user_who_planted_the_file() {
    let test = &common::test_name(
        module_path!(),
        "root_does_not_hand_a_secret_to_the_user_who_planted_the_file",
    );
    if let Some(role) = common::role() {
        return say(format!(
            "{:?}",
            std::fs::read(arg(&role).1).map(|b| b.len())
        ));
    }
    let Some(s) = Shared::new(test) else { return };
    let path = s.tmp.join("secret.txt");
    plant_file(&path, b"planted", OTHER, 0o666);
    let saved = WriteOptions::new().mode(0o600).write(&path, b"root secret");
    assert!(
        matches!(
            saved,
            Err(Error::Refused {
                reason: Refusal::ForeignFile { owner: OTHER },
                ..
            })
        ),
        "{saved:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"planted", "left as it was");
    let read = s.run_as(OTHER, test, &format!("read {}", path.display()));
    assert!(
        !read.starts_with(&format!("Ok({})", b"root secret".len())),
        "the other user reads root's secret: {read}"
    );
}

#[test]
fn an_explicit_mode_gives_the_file_to_the_caller() {
    let test = &common::test_name(
        module_path!(),
        "an_explicit_mode_gives_the_file_to_the_caller",
    );
    if !common::is_root() {
        return common::skip(test, "chown needs root");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    plant_file(&path, b"old", OTHER, 0o644);
    WriteOptions::new()
        .mode(0o600)
        .write(&path, b"new key")
        .unwrap();
    let m = std::fs::metadata(&path).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (0, 0o600));
}

#[test]
fn another_user_cannot_forge_a_history_version_that_root_commits() {
    let test = &common::test_name(
        module_path!(),
        "another_user_cannot_forge_a_history_version_that_root_commits",
    );
    if let Some(role) = common::role() {
        let (_, path) = arg(&role);
        let forged = std::fs::read(path.with_extension("forged")).unwrap();
        let written = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(path.with_extension("1.json"))
            .and_then(|mut f| f.write_all(&forged));
        return say(format!("{written:?}"));
    }
    let Some(s) = Shared::new(test) else { return };
    // The forgery: a valid version 1 holding 666, from a history of the other user's.
    let scratch = s.top().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    History::<u32>::open_or_default(scratch.join("h.json"))
        .unwrap()
        .set(666)
        .unwrap();
    let forged = std::fs::read(scratch.join("h.1.json")).unwrap();
    plant_file(&s.tmp.join("h.forged"), &forged, OTHER, 0o644);
    // The other user pre-creates the name of root's first version.
    plant_file(&s.tmp.join("h.1.json"), b"", OTHER, 0o666);
    let committed =
        History::<u32>::open_or_default(s.tmp.join("h.json")).and_then(|mut h| h.set(1));
    assert!(
        matches!(
            committed,
            Err(Error::Refused {
                reason: Refusal::ForeignFile { owner: OTHER },
                ..
            })
        ),
        "{committed:?}"
    );
    s.run_as(OTHER, test, &format!("forge {}", s.tmp.join("h").display()));
    if committed.is_ok()
        && let Ok(h) = History::<u32>::open(s.tmp.join("h.json"))
    {
        assert_eq!(
            *h.get(),
            1,
            "root's history returned the other user's value"
        );
    }
}
