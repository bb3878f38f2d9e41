//! Names in `--json` output: a JSON string cannot hold a name that is not UTF-8.

use std::ffi::OsStr;

use serde_json::Value;

/// Puts `name` under `key` of `object` as text (not-UTF-8 bytes shown as U+FFFD) and,
/// only when it is not UTF-8, its exact bytes under `{key}_bytes`, so a script can
/// still name the file.
pub fn put_name(object: &mut Value, key: &str, name: Option<&OsStr>) {
    let Value::Object(map) = object else {
        return;
    };
    let text = name.map_or(Value::Null, |n| Value::from(n.to_string_lossy()));
    map.insert(key.to_owned(), text);
    if let Some(bytes) = name.filter(|n| n.to_str().is_none()).and_then(raw_bytes) {
        map.insert(format!("{key}_bytes"), Value::from(bytes));
    }
}

#[cfg(unix)]
fn raw_bytes(name: &OsStr) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    Some(name.as_bytes().to_vec())
}

/// Windows names are UTF-16: there are no bytes to give, only the lossy text.
#[cfg(not(unix))]
fn raw_bytes(_name: &OsStr) -> Option<Vec<u8>> {
    None
}
