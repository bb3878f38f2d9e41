//! The `inspect`, `verify`, `history` and `rollback` subcommands, run as a user would on
//! real files: intact, plain, corrupted, truncated, missing, and a directory of mixed
//! files; every exit status.
#![cfg(all(feature = "cli", unix))]

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use atomic_persist::Persisted;
use atomic_persist::history::History;
use predicates::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_atomic-persist");

fn cmd() -> Command {
    Command::new(BIN)
}

/// An enveloped JSON file at generation 2 holding `[1, 2, 3]`.
fn enveloped(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let mut p = Persisted::<Vec<u32>>::builder(&path)
        .envelope(true)
        .open_or_default()
        .unwrap();
    p.set(vec![1, 2]).unwrap();
    p.set(vec![1, 2, 3]).unwrap();
    path
}

/// A history `state.json` with generations 1..=3 holding 10, 20, 30.
fn history(dir: &Path) -> PathBuf {
    let path = dir.join("state.json");
    let mut h = History::<u32>::builder(&path).open_or_default().unwrap();
    for v in [10, 20, 30] {
        h.set(v).unwrap();
    }
    path
}

/// Flips one byte of the payload (a digit), keeping the file valid JSON.
fn flip_a_digit(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let at = bytes.iter().position(|&b| b == b'3').unwrap();
    bytes[at] = b'4';
    fs::write(path, bytes).unwrap();
}

fn stdout_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

// ---------------------------------------------------------------------------------------
// inspect

#[test]
fn inspect_prints_format_size_and_envelope_meta() {
    let dir = tempfile::tempdir().unwrap();
    let path = enveloped(dir.path(), "job.json");
    let size = fs::metadata(&path).unwrap().len();
    let a = cmd().arg("inspect").arg(&path).assert().success();
    let out = stdout_of(&a);
    let keys: Vec<&str> = out.lines().map(|l| l.split(": ").next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "path",
            "format",
            "size",
            "envelope",
            "generation",
            "written_at",
            "run_id",
            "schema_version",
            "checksum"
        ],
        "{out}"
    );
    assert!(out.contains("format: json\n"), "{out}");
    assert!(out.contains(&format!("size: {size}\n")), "{out}");
    assert!(out.contains("envelope: 1\n"), "{out}");
    assert!(out.contains("generation: 2\n"), "{out}");
    assert!(out.contains("checksum: crc32:"), "{out}");
}

#[test]
fn inspect_json_is_one_object_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let path = enveloped(dir.path(), "job.json");
    let a = cmd()
        .args(["inspect", "--json"])
        .arg(&path)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v["format"], "json");
    assert_eq!(v["size"], fs::metadata(&path).unwrap().len());
    assert_eq!(v["envelope"]["generation"], 2);
    assert_eq!(v["envelope"]["version"], 1);
    assert_eq!(v["envelope"]["run_id"].as_str().unwrap().len(), 36);
    assert!(v["corrupt"].is_null());
    assert!(v["points_to"].is_null());
}

#[test]
fn inspect_a_plain_file_says_no_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    fs::write(&path, "volume = 3\n").unwrap();
    cmd()
        .arg("inspect")
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "format: toml\nsize: 11\nenvelope: none\n",
        ));
    let a = cmd()
        .args(["inspect", "--json"])
        .arg(&path)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert!(v["envelope"].is_null());
    // An unknown extension is still inspected.
    let other = dir.path().join("notes.txt");
    fs::write(&other, "hi").unwrap();
    cmd()
        .arg("inspect")
        .arg(&other)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "format: unknown\nsize: 2\nenvelope: none\n",
        ));
}

#[test]
fn inspect_a_corrupt_file_prints_the_reason_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = enveloped(dir.path(), "job.json");
    flip_a_digit(&path);
    cmd()
        .arg("inspect")
        .arg(&path)
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "envelope: corrupt: checksum mismatch",
        ))
        .stderr(predicate::str::contains(path.display().to_string()));
    let a = cmd()
        .args(["inspect", "--json"])
        .arg(&path)
        .assert()
        .code(1);
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert!(v["corrupt"].as_str().unwrap().contains("checksum"));
}

#[test]
fn inspect_a_missing_file_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.json");
    cmd()
        .arg("inspect")
        .arg(&path)
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "atomic-persist: {} does not exist\n",
            path.display()
        ));
}

#[test]
fn inspect_follows_a_history_pointer_and_says_where_it_points() {
    let dir = tempfile::tempdir().unwrap();
    let path = history(dir.path());
    cmd()
        .arg("inspect")
        .arg(&path)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "points_to: state.3.json\nenvelope: 1\ngeneration: 3\n",
        ));
}

// ---------------------------------------------------------------------------------------
// verify

#[test]
fn verify_an_intact_file_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = enveloped(dir.path(), "job.json");
    cmd()
        .arg("verify")
        .arg(&path)
        .assert()
        .success()
        .stdout(format!("{}: ok (generation 2)\n", path.display()));
}

#[test]
fn verify_a_named_plain_file_says_so_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain.json");
    fs::write(&path, "[1]").unwrap();
    cmd()
        .arg("verify")
        .arg(&path)
        .assert()
        .success()
        .stdout(format!("{}: plain (no envelope)\n", path.display()));
}

#[test]
fn verify_a_corrupted_file_exits_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = enveloped(dir.path(), "job.json");
    flip_a_digit(&path);
    cmd()
        .arg("verify")
        .arg(&path)
        .assert()
        .code(1)
        .stdout(predicate::str::starts_with(format!(
            "{}: corrupt: checksum mismatch",
            path.display()
        )));
}

#[test]
fn verify_truncated_files_of_every_format_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["a.json", "b.toml"] {
        let path = dir.path().join(name);
        #[derive(serde::Serialize, serde::Deserialize, Default)]
        struct V {
            items: Vec<u32>,
        }
        let mut p = Persisted::<V>::builder(&path)
            .envelope(true)
            .open_or_default()
            .unwrap();
        p.set(V {
            items: (0..50).collect(),
        })
        .unwrap();
        let bytes = fs::read(&path).unwrap();
        // (A JSON file cut after `{` is a plain value's start: the envelope's first key
        // must be there to recognise one.)
        for cut in [bytes.len() / 4, bytes.len() / 2, bytes.len() - 2] {
            fs::write(&path, &bytes[..cut]).unwrap();
            cmd()
                .arg("verify")
                .arg(&path)
                .assert()
                .code(1)
                .stdout(predicate::str::contains(": corrupt: "));
        }
        fs::write(&path, b"").unwrap();
        cmd()
            .arg("verify")
            .arg(&path)
            .assert()
            .code(1)
            .stdout(predicate::str::contains("empty"));
    }
}

#[test]
fn verify_a_missing_file_or_unknown_format_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("gone.json");
    cmd()
        .arg("verify")
        .arg(&missing)
        .assert()
        .code(2)
        .stdout("")
        .stderr(format!(
            "atomic-persist: {} does not exist\n",
            missing.display()
        ));
    let txt = dir.path().join("notes.txt");
    fs::write(&txt, "x").unwrap();
    cmd()
        .arg("verify")
        .arg(&txt)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(txt.display().to_string()));
    // An intact file beside a missing one: still 2, the intact one is reported.
    let ok = enveloped(dir.path(), "ok.json");
    cmd()
        .arg("verify")
        .arg(&ok)
        .arg(&missing)
        .assert()
        .code(2)
        .stdout(format!("{}: ok (generation 2)\n", ok.display()));
}

#[test]
fn verify_corrupt_wins_over_missing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = enveloped(dir.path(), "bad.json");
    flip_a_digit(&bad);
    cmd()
        .arg("verify")
        .arg(dir.path().join("gone.json"))
        .arg(&bad)
        .assert()
        .code(1);
}

#[test]
fn verify_without_a_path_is_a_usage_error() {
    cmd()
        .arg("verify")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Usage"));
}

#[test]
fn verify_a_directory_checks_every_file_of_a_known_format_and_says_what_it_checked() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = enveloped(d, "good.json");
    let bad = enveloped(d, "bad.json");
    flip_a_digit(&bad);
    let cut = enveloped(d, "cut.json");
    let bytes = fs::read(&cut).unwrap();
    fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fs::write(d.join("plain.json"), "{\"a\": 1}").unwrap();
    fs::write(d.join("config.toml"), "a = 1\n").unwrap();
    fs::write(d.join("notes.txt"), "not ours").unwrap();
    fs::write(
        d.join(".job.json.abcdefghijkl.tmp"),
        "{\"atomic_persist\":1",
    )
    .unwrap();
    std::os::unix::fs::symlink("bad.json", d.join("link.json")).unwrap();
    fs::create_dir(d.join("sub")).unwrap();
    enveloped(&d.join("sub"), "deep.json");
    let hist = history(&d.join("sub"));
    let a = cmd().arg("verify").arg(d).assert().code(1);
    assert_eq!(
        stdout_of(&a),
        format!(
            "{}: corrupt: checksum mismatch: {}; if the edit was meant, `atomic-persist seal {}` \
             accepts it\n{}: plain (no envelope)\n{}: corrupt: {}\n\
             {}: ok (generation 2)\n{}: plain (no envelope)\n\
             {}: checked 5 files: 1 ok, 2 plain, 2 corrupt\n",
            bad.display(),
            reason_of(&bad),
            bad.display(),
            d.join("config.toml").display(),
            cut.display(),
            reason_of(&cut),
            good.display(),
            d.join("plain.json").display(),
            d.display(),
        )
    );
    // A directory where all is intact, history versions included.
    let a = cmd().arg("verify").arg(d.join("sub")).assert().success();
    let out = stdout_of(&a);
    assert_eq!(
        out.lines().count(),
        5,
        "deep.json, three versions and the summary:\n{out}"
    );
    assert!(out.contains("state.3.json: ok (generation 3)"), "{out}");
    assert!(
        !out.contains("manifest"),
        "the manifest is the history's own: {out}"
    );
    drop(hist);
}

/// The reason the library gives for a corrupt file, after `checksum mismatch: ` when it
/// is one.
fn reason_of(path: &Path) -> String {
    match atomic_persist::envelope::verify(path).unwrap_err() {
        atomic_persist::Error::Corrupt { reason, .. } => reason
            .strip_prefix("checksum mismatch: ")
            .map(str::to_owned)
            .unwrap_or(reason),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// history

#[test]
fn history_lists_generations_with_time_run_id_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = history(dir.path());
    let a = cmd().arg("history").arg(&path).assert().success();
    let out = stdout_of(&a);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["GENERATION", "WRITTEN_AT", "RUN_ID", "SIZE"]);
    for (i, line) in lines[1..].iter().enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let g = i as u64 + 1;
        assert_eq!(cols[0], g.to_string(), "{line}");
        assert!(cols[1].ends_with('Z'), "{line}");
        assert_eq!(cols[2], atomic_persist::run_id().to_string());
        let size = fs::metadata(dir.path().join(format!("state.{g}.json")))
            .unwrap()
            .len();
        assert_eq!(cols[3], size.to_string());
        assert_eq!(cols.get(4).copied(), (g == 3).then_some("latest"), "{line}");
    }
}

/// A snapshot `ckpt` with generations 1 (one file of 3 bytes) and 2 (two files, 5 bytes).
fn snapshot(dir: &Path) -> PathBuf {
    let path = dir.join("ckpt");
    let snap = atomic_persist::Snapshot::builder(&path)
        .open_or_create()
        .unwrap();
    let mut tx = snap.begin().unwrap();
    tx.write("a.bin", b"abc").unwrap();
    tx.commit().unwrap();
    let mut tx = snap.begin().unwrap();
    tx.write("a.bin", b"abc").unwrap();
    tx.write("b.bin", b"de").unwrap();
    tx.commit().unwrap();
    path
}

#[test]
fn history_of_a_snapshot_lists_its_generations_with_files_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot(dir.path());
    let a = cmd().arg("history").arg(&path).assert().success();
    let out = stdout_of(&a);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec!["GENERATION", "FILES", "SIZE"],
            vec!["1", "1", "3"],
            vec!["2", "2", "5", "latest"]
        ],
        "{out}"
    );
    let a = cmd()
        .args(["history", "--json"])
        .arg(&path)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(
        (v["kind"].as_str(), v["latest"].as_u64()),
        (Some("snapshot"), Some(2))
    );
    assert_eq!(v["generations"][1]["files"][1]["name"], "b.bin");
}

#[test]
fn inspect_of_a_snapshot_says_its_generation_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = snapshot(dir.path());
    let a = cmd().arg("inspect").arg(&path).assert().success();
    let out = stdout_of(&a);
    assert!(
        out.contains("points_to: ckpt.2\nsnapshot: generation 2\nfiles: 2\n"),
        "{out}"
    );
    let a = cmd()
        .args(["inspect", "--json"])
        .arg(&path)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v["snapshot"]["generation"], 2);
    assert_eq!(v["snapshot"]["files"][0]["size"], 3);
}

#[test]
fn verify_of_a_snapshot_checks_the_files_of_its_current_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt");
    let snap = atomic_persist::Snapshot::builder(&path)
        .envelope(true)
        .open_or_create()
        .unwrap();
    let mut tx = snap.begin().unwrap();
    tx.put("state.json", &vec![1, 2, 3]).unwrap();
    tx.put("conf.toml", &std::collections::BTreeMap::from([("k", 1)]))
        .unwrap();
    tx.commit().unwrap();
    let a = cmd().arg("verify").arg(&path).assert().success();
    assert!(stdout_of(&a).contains("checked 2 files: 2 ok, 0 plain, 0 corrupt"));
    let file = snap.current().unwrap().path().join("state.json");
    let text = fs::read_to_string(&file)
        .unwrap()
        .replace("[1,2,3]", "[1,2,4]");
    fs::write(&file, text).unwrap();
    cmd().arg("verify").arg(&path).assert().code(1);
}

#[test]
fn history_json_is_one_object_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let path = history(dir.path());
    let a = cmd()
        .args(["history", "--json"])
        .arg(&path)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v["latest"], 3);
    assert_eq!(v["manifest"], "current");
    let versions = v["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3);
    assert_eq!(versions[0]["file"], "state.1.json");
    assert_eq!(versions[2]["generation"], 3);
    assert!(
        versions[2]["checksum"]
            .as_str()
            .unwrap()
            .starts_with("crc32:")
    );
    // Without the manifest, the same versions, rebuilt.
    fs::remove_file(dir.path().join("state.manifest.json")).unwrap();
    let a = cmd()
        .args(["history", "--json"])
        .arg(&path)
        .assert()
        .success();
    let w: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(w["manifest"], "missing");
    assert_eq!(w["versions"], v["versions"]);
}

#[test]
fn history_of_a_missing_or_plain_file_exits_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.json");
    cmd()
        .arg("history")
        .arg(&missing)
        .assert()
        .code(1)
        .stderr(format!(
            "atomic-persist: {} does not exist\n",
            missing.display()
        ));
    let plain = enveloped(dir.path(), "plain.json");
    cmd()
        .arg("history")
        .arg(&plain)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{} is not a history",
            plain.display()
        )));
}

#[test]
fn history_of_a_directory_says_it_is_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    cmd()
        .arg("history")
        .arg(dir.path())
        .assert()
        .code(1)
        .stderr(format!(
            "atomic-persist: {} is a directory: history takes a history's latest pointer, such as {}\n",
            dir.path().display(),
            dir.path().join("state.json").display()
        ));
}

// ---------------------------------------------------------------------------------------
// rollback

#[test]
fn rollback_makes_an_old_version_the_newest_generation() {
    let dir = tempfile::tempdir().unwrap();
    let path = history(dir.path());
    cmd()
        .args(["rollback"])
        .arg(&path)
        .arg("1")
        .assert()
        .success()
        .stdout(format!(
            "{}: generation 1 rolled back as generation 4 ({})\n",
            path.display(),
            dir.path().join("state.4.json").display()
        ));
    assert_eq!(fs::read_link(&path).unwrap(), Path::new("state.4.json"));
    let h = History::<u32>::open(&path).unwrap();
    assert_eq!((*h, h.generation()), (10, 4));
    assert_eq!(h.versions().unwrap().len(), 4, "nothing removed");
    cmd()
        .arg("verify")
        .arg(dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("state.4.json: ok (generation 4)"));
}

#[test]
fn rollback_to_generation_zero_or_one_not_yet_written_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let path = history(dir.path());
    for (g, why) in [
        ("7", "generation 7 has not been written yet"),
        ("0", "there is no generation 0: generations start at 1"),
    ] {
        cmd()
            .arg("rollback")
            .arg(&path)
            .arg(g)
            .assert()
            .code(1)
            .stderr(format!(
                "atomic-persist: {}: {why} (the history keeps generations 1 to 3)\n",
                path.display()
            ));
    }
    assert_eq!(fs::read_link(&path).unwrap(), Path::new("state.3.json"));
}

#[test]
fn rollback_to_a_pruned_generation_says_it_was_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut h = History::<u32>::builder(&path)
        .keep(2)
        .open_or_default()
        .unwrap();
    for v in [10, 20, 30, 40] {
        h.set(v).unwrap();
    }
    cmd()
        .arg("rollback")
        .arg(&path)
        .arg("1")
        .assert()
        .code(1)
        .stderr(format!(
            "atomic-persist: {}: generation 1 was pruned (the history keeps generations 3 to 4)\n",
            path.display()
        ));
    assert_eq!(fs::read_link(&path).unwrap(), Path::new("state.4.json"));
}

#[test]
fn rollback_to_a_corrupt_version_exits_1_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = history(dir.path());
    let v1 = dir.path().join("state.1.json");
    let text = fs::read_to_string(&v1).unwrap().replace("10", "11");
    fs::write(&v1, text).unwrap();
    cmd()
        .arg("rollback")
        .arg(&path)
        .arg("1")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "{} is corrupt",
            v1.display()
        )));
    assert_eq!(fs::read_link(&path).unwrap(), Path::new("state.3.json"));
}

#[test]
fn rollback_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = history(dir.path());
    cmd().arg("rollback").arg(&path).assert().code(2);
    cmd().arg("rollback").arg(&path).arg("abc").assert().code(2);
    cmd().arg("rollback").arg(&path).arg("-1").assert().code(2);
}

#[test]
fn rollback_of_a_missing_history_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none.json");
    cmd()
        .arg("rollback")
        .arg(&path)
        .arg("1")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(path.display().to_string()));
    assert!(!path.exists());
}

#[test]
fn help_documents_the_new_subcommands() {
    let a = cmd().arg("--help").assert().success();
    let out = stdout_of(&a);
    for sub in ["inspect", "verify", "history", "rollback"] {
        assert!(out.contains(sub), "{out}");
    }
    cmd()
        .args(["verify", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "Exit status: 0 when nothing is corrupt",
        ));
}

// ---------------------------------------------------------------------------------------
// Damage a plain file's check must catch

/// `verify PATH` of one file: its exit status and line.
fn verify_one(path: &Path) -> (Option<i32>, String) {
    let out = cmd().arg("verify").arg(path).output().unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string(),
    )
}

#[test]
fn verify_calls_a_cut_off_copy_of_an_envelope_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let full = enveloped(dir.path(), "env.json");
    let cut = dir.path().join("t.json");
    fs::write(&cut, &fs::read(&full).unwrap()[..10]).unwrap(); // `head -c 10`
    let (code, line) = verify_one(&cut);
    assert_eq!(code, Some(1), "{line}");
    assert!(line.contains(": corrupt: not a json document"), "{line}");
}

#[test]
fn verify_calls_random_bytes_and_broken_toml_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("random.json");
    fs::write(&json, [0x8f, 0x00, 0x13, 0xfe, 0x41, 0x7b]).unwrap();
    let toml = dir.path().join("config.toml");
    fs::write(&toml, "x = [\n").unwrap();
    for path in [&json, &toml] {
        let (code, line) = verify_one(path);
        assert_eq!(code, Some(1), "{line}");
        assert!(line.contains(": corrupt: not a "), "{line}");
    }
    // A plain file that parses stays plain.
    fs::write(&toml, "x = [1]\n").unwrap();
    assert_eq!(
        verify_one(&toml),
        (Some(0), format!("{}: plain (no envelope)", toml.display()))
    );
}

#[test]
fn a_history_version_without_an_envelope_is_corrupt_and_listed_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let path = history(dir.path());
    // Version 2 replaced by a plain value that parses.
    fs::write(dir.path().join("state.2.json"), "20").unwrap();
    let a = cmd().arg("verify").arg(dir.path()).assert().code(1);
    let out = stdout_of(&a);
    assert!(
        out.contains("state.2.json: corrupt: a history's version must have an envelope"),
        "{out}"
    );
    assert!(
        out.ends_with(": checked 3 files: 2 ok, 0 plain, 1 corrupt\n"),
        "{out}"
    );
    let a = cmd().arg("history").arg(&path).assert().success();
    let out = stdout_of(&a);
    let damaged: Vec<&str> = out.lines().filter(|l| l.contains("damaged")).collect();
    assert_eq!(damaged.len(), 1, "{out}");
    assert!(damaged[0].trim_start().starts_with("2  damaged: "), "{out}");
    let a = cmd()
        .arg("history")
        .arg(&path)
        .arg("--json")
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_str(&stdout_of(&a)).unwrap();
    assert_eq!(v["damaged"][0]["generation"], 2);
    assert_eq!(v["damaged"][0]["file"], "state.2.json");
    assert_eq!(v["versions"].as_array().unwrap().len(), 2);
}

#[test]
fn verify_of_a_directory_of_plain_files_says_what_it_checked() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a.json"), "{}").unwrap();
    fs::write(dir.path().join("b.toml"), "k = 1\n").unwrap();
    let a = cmd().arg("verify").arg(dir.path()).assert().success();
    let out = stdout_of(&a);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.ends_with(": checked 2 files: 0 ok, 2 plain, 0 corrupt\n"),
        "{out}"
    );
}

#[test]
fn an_unknown_format_is_explained_without_library_advice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state");
    fs::write(&path, b"1").unwrap();
    cmd()
        .arg("history")
        .arg(&path)
        .assert()
        .code(1)
        .stderr(format!(
            "atomic-persist: cannot tell the format of {}: the file name has no extension \
             to choose a format by (known: .json, .toml, .yaml, .yml, .ron, .bin)\n",
            path.display()
        ));
}

#[test]
fn the_cli_feature_turns_on_every_format_it_reads() {
    let manifest = include_str!("../Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("cli = ["))
        .expect("a cli feature");
    for format in ["\"json\"", "\"toml\"", "\"binary\"", "\"yaml\"", "\"ron\""] {
        assert!(
            line.contains(format),
            "cli does not enable {format}: {line}"
        );
    }
}

#[test]
fn verify_and_inspect_read_enveloped_bin_yaml_and_ron_files() {
    let dir = tempfile::tempdir().unwrap();
    for (ext, name) in [("bin", "binary"), ("yaml", "yaml"), ("ron", "ron")] {
        let path = dir.path().join(format!("state.{ext}"));
        let mut p = Persisted::<Vec<u32>>::builder(&path)
            .envelope(true)
            .open_or_default()
            .unwrap();
        p.set(vec![1, 2, 3]).unwrap();
        cmd()
            .arg("verify")
            .arg(&path)
            .assert()
            .success()
            .stdout(predicate::str::contains("ok (generation 1)"));
        cmd()
            .arg("inspect")
            .arg(&path)
            .assert()
            .success()
            .stdout(predicate::str::contains(format!("format: {name}\n")));
    }
}

#[test]
fn json_output_gives_the_exact_bytes_of_a_name_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.json");
    let path = dir.path().join(name);
    fs::write(&path, b"{}").unwrap();
    let out = cmd()
        .arg("inspect")
        .arg("--json")
        .arg(&path)
        .assert()
        .success();
    let value: serde_json::Value = serde_json::from_str(&stdout_of(&out)).unwrap();
    let bytes: Vec<u8> = serde_json::from_value(value["path_bytes"].clone()).unwrap();
    assert_eq!(bytes, path.as_os_str().as_bytes());
    assert!(
        value["path"]
            .as_str()
            .unwrap()
            .ends_with("caf\u{fffd}.json")
    );
    assert!(value.get("points_to_bytes").is_none(), "{value}");
}
