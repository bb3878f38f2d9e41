//! Loads the input as a RON file through `Persisted::<T>::builder(path).open()` (and
//! `envelope::verify`): the first byte picks envelope on/off, the type and the
//! supported schema version (see `oracle::fuzz_one`), the rest is the file.
#![no_main]

#[path = "../common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    common::oracle::fuzz_one(common::dir(), atomic_persist::Ron.into(), data);
});
