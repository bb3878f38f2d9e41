//! A history of three versions read through `History::open`, `version(g)`, `versions()`
//! and `manifest_state()` with the input in place of its manifest `state.manifest.json`
//! (first byte even) or of version 2's file (odd): see `oracle::check_history`.
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use std::sync::OnceLock;

use common::oracle::{HistoryFixture, check_history, history_fixture};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    static FIXTURE: OnceLock<HistoryFixture> = OnceLock::new();
    let fx = FIXTURE.get_or_init(|| history_fixture(common::dir()));
    if let Some((&which, bytes)) = data.split_first() {
        check_history(fx, which, bytes);
    }
});
