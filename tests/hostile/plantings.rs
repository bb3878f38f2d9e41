//! Random plantings.

use super::*;

/// What the other user plants under a name.
#[derive(Clone, Copy, Debug)]
enum Plant {
    Fifo,
    LinkToDevZero,
    /// A link to a forged version (valid envelope, value 666) the other user owns.
    LinkToForgery,
    Directory,
    /// A forged version (valid envelope, value 666, the generation its name says).
    Forgery,
    Empty,
}

const PLANTS: [Plant; 6] = [
    Plant::Fifo,
    Plant::LinkToDevZero,
    Plant::LinkToForgery,
    Plant::Directory,
    Plant::Forgery,
    Plant::Empty,
];

/// The names worth planting beside `h.json`: versions below, at and past the pointer,
/// the manifest, the lock, temp-shaped names.
fn plant_name(i: usize) -> (String, Option<u64>) {
    match i {
        0..=7 => (format!("h.{i}.json"), Some(i as u64)),
        8 => ("h.manifest.json".into(), None),
        9 => (".h.json.lock".into(), None),
        10 => (".h.json.aaaaaaaaaaaa.tmp".into(), None),
        _ => (".h.1.json.bbbbbbbbbbbb.tmp".into(), None),
    }
}

fn plant(dir: &Path, name: &str, generation: Option<u64>, what: Plant) {
    let path = dir.join(name);
    if path.symlink_metadata().is_ok() {
        return; // root's own file: the other user cannot replace it in a sticky dir
    }
    let forged = |g| oracle::wrapped(AnyFormat::Json, b"666", g);
    match what {
        Plant::Fifo => plant_fifo(&path, OTHER),
        Plant::LinkToDevZero => plant_link(Path::new("/dev/zero"), &path, OTHER),
        Plant::LinkToForgery => {
            let target = dir.join(format!("forgery-{name}"));
            plant_file(&target, &forged(generation.unwrap_or(1)), OTHER, 0o644);
            plant_link(&target, &path, OTHER);
        }
        Plant::Directory => {
            std::fs::create_dir(&path).unwrap();
            chown(&path, OTHER);
        }
        Plant::Forgery => plant_file(&path, &forged(generation.unwrap_or(1)), OTHER, 0o644),
        Plant::Empty => plant_file(&path, b"", OTHER, 0o666),
    }
}

/// One case: root commits `values` to `h.json` (keeping `keep`), the other user plants,
/// then root opens, lists, commits once more and sweeps. Nothing may hang (the parent's
/// deadline) or panic, and no value of the other user's may come back.
fn planted_case(
    commits: usize,
    keep: Option<usize>,
    plants: &[(usize, usize)],
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::prop_assert;
    let top = tempfile::tempdir().unwrap();
    common::open_dir_to_all(top.path());
    let dir = top.path().join("tmp");
    std::fs::create_dir(&dir).unwrap();
    chmod(&dir, 0o1777);
    let path = dir.join("h.json");
    let builder = || {
        let b = History::<u32>::builder(&path);
        match keep {
            Some(n) => b.keep(n),
            None => b,
        }
    };
    let mut h = builder().open_or_default().unwrap();
    for v in 1..=commits as u32 {
        h.set(v).unwrap();
    }
    for &(name, what) in plants {
        let (name, g) = plant_name(name);
        plant(&dir, &name, g, PLANTS[what]);
    }
    let opened = builder().open().unwrap();
    prop_assert!(*opened.get() == commits as u32, "opened {}", opened.get());
    let versions = opened.versions().unwrap();
    for v in &versions {
        let value = opened.version(v.generation).unwrap();
        prop_assert!(value != 666, "version {} is the forgery", v.generation);
    }
    let mut next = opened;
    match next.set(100) {
        Ok(()) => {
            let again = builder().open().unwrap();
            prop_assert!(*again.get() == 100, "after the commit: {}", again.get());
        }
        Err(Error::Refused { .. }) => {} // a planted name in the way: refused, not used
        Err(e) => prop_assert!(false, "commit: {e}"),
    }
    sweep(&dir).unwrap();
    Ok(())
}

#[test]
fn planted_entries_never_hang_panic_or_pass_for_a_version() {
    let test = &common::test_name(
        module_path!(),
        "planted_entries_never_hang_panic_or_pass_for_a_version",
    );
    if common::role().is_some() {
        use proptest::prelude::*;
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(64);
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
            cases,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let strategy = (
            1..5usize,
            proptest::option::of(1..3usize),
            proptest::collection::vec((0..12usize, 0..PLANTS.len()), 1..8),
        );
        let result = runner.run(&strategy, |(commits, keep, plants)| {
            planted_case(commits, keep, &plants)
        });
        return say(match result {
            Ok(()) => format!("ok {cases} cases"),
            Err(e) => format!("failed {e}"),
        });
    }
    if !common::is_root() {
        return common::skip(test, "planting files of another user needs root");
    }
    let cmd = common::child(test, "run");
    // A hang in any case is a failure; the whole run takes seconds.
    let got = outcome_within(cmd, test, "run", Duration::from_secs(300));
    common::report(&format!("planted histories: {got}"));
    assert!(got.starts_with("ok"), "{got}");
}
