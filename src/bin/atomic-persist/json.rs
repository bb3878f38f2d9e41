//! Names in `--json` output: a JSON string cannot hold a name that is not UTF-8.

use std::ffi::OsStr;

use serde_json::{Map, Value};

/// Puts `name` under `key` as text (not-UTF-8 bytes shown as U+FFFD) and, only when it
/// is not UTF-8, its exact bytes under `{key}_bytes`, so a script can still name the
/// file.
pub fn put_name(object: &mut Value, key: &str, name: Option<&OsStr>) {
    let Value::Object(map) = object else {
        return;
    };
    insert(map, key, name);
}

fn insert(map: &mut Map<String, Value>, key: &str, name: Option<&OsStr>) {
    map.insert(
        key.to_owned(),
        name.map_or(Value::Null, |n| Value::from(n.to_string_lossy())),
    );
    if let Some(bytes) = name.filter(|n| n.to_str().is_none()).map(raw_bytes) {
        map.insert(format!("{key}_bytes"), Value::from(bytes));
    }
}

#[cfg(unix)]
fn raw_bytes(name: &OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes().to_vec()
}

#[cfg(not(unix))]
fn raw_bytes(name: &OsStr) -> Vec<u8> {
    // Windows names are UTF-16; the lossy text is all a JSON reader can use there.
    name.to_string_lossy().into_owned().into_bytes()
}
