//! Compile errors of `#[derive(Persist)]` (`tests/ui/fail`, each with the `.stderr` it
//! must produce; `tests/ui/no-app-dirs` when the `app-dirs` feature is off) and types
//! it must accept (`tests/ui/pass`). Regenerate the expected
//! messages with `TRYBUILD=overwrite cargo test --all-features --test ui`, then review
//! the diff: the messages depend on the compiler version.
#![cfg(all(feature = "derive", feature = "json", feature = "toml"))]

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
    // Only without the feature (so not under `--all-features`): `app` is refused.
    #[cfg(not(feature = "app-dirs"))]
    t.compile_fail("tests/ui/no-app-dirs/*.rs");
}
