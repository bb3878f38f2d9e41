//! `envelope::verify` on the input as a file of the format the first byte picks (JSON,
//! TOML, binary, YAML, RON: `oracle::verify_format`): `Some(meta)` only for an intact envelope by the spec, `None` only for a
//! file the reading rules call plain, otherwise `Corrupt`, never a panic.
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let format = common::oracle::verify_format(sel);
    let _ = common::oracle::check_verify(common::dir(), format, bytes);
});
