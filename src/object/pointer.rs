//! The pointer object of a large [`ObjectPersisted`](super::ObjectPersisted) value.
//!
//! A value above the multipart threshold is uploaded to a fresh *body* key and the
//! object at the value's own key becomes this small pointer naming it:
//!
//! ```text
//! atomic-persist pointer 1
//! body: jobs/state.json.bodies/019ab6c1-3f0e-7c41-9b8e-5d2a7f10c4e2
//! size: 201326592
//! crc32: 3735928559
//! generation: 7
//! ```
//!
//! `size` and `crc32` are those of the body's bytes (the whole serialized object,
//! envelope included), so a reader checks that it got the body the pointer was written
//! for; `generation` is the envelope's (0 without one), so that a conflict can be
//! reported without downloading the body. Text, not JSON: the pointer must be readable
//! with every format feature off.

use object_store::path::Path as ObjectPath;

use crate::error::{Error, Result};

use super::store::key_path;

/// The first line, which tells a pointer from a value.
const MAGIC: &str = "atomic-persist pointer 1\n";

/// A parsed pointer object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    /// The key of the object holding the value's bytes.
    pub body: ObjectPath,
    /// The body's length in bytes.
    pub size: u64,
    /// CRC-32 of the body's bytes.
    pub crc32: u32,
    /// The envelope generation of the body (0 without the envelope).
    pub generation: u64,
}

impl Pointer {
    /// The bodies of `key` live under this prefix, `{key}.bodies/`.
    pub fn bodies(key: &ObjectPath) -> ObjectPath {
        ObjectPath::from(format!("{key}.bodies"))
    }

    /// A fresh, unique body key for `key`: a UUIDv7, time-ordered, so a listing shows
    /// the newest last (made without `Uuid::now_v7`, which can panic).
    pub fn new_body_key(key: &ObjectPath) -> ObjectPath {
        Self::bodies(key).join(crate::random::uuid_v7().to_string())
    }

    /// The pointer object's bytes.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{MAGIC}body: {}\nsize: {}\ncrc32: {}\ngeneration: {}\n",
            self.body, self.size, self.crc32, self.generation
        )
        .into_bytes()
    }

    /// `None` when `bytes` are not a pointer (a value written by a single PUT); a
    /// pointer that does not parse, or names a body outside `key`'s bodies, is
    /// [`Error::Corrupt`] naming `key`.
    pub fn parse(key: &ObjectPath, bytes: &[u8]) -> Option<Result<Pointer>> {
        let rest = bytes.strip_prefix(MAGIC.as_bytes())?;
        let corrupt =
            |reason: String| Error::corrupt(key_path(key), crate::CorruptKind::BadPointer, reason);
        Some(Self::parse_fields(key, rest).map_err(|e| corrupt(format!("bad pointer: {e}"))))
    }

    fn parse_fields(key: &ObjectPath, rest: &[u8]) -> std::result::Result<Pointer, String> {
        let text = std::str::from_utf8(rest).map_err(|e| e.to_string())?;
        let mut fields = text.lines().map(|l| l.split_once(": ").unwrap_or((l, "")));
        let mut field = |name: &str| match fields.next() {
            Some((n, v)) if n == name => Ok(v),
            _ => Err(format!("expected the field `{name}`")),
        };
        let body = ObjectPath::parse(field("body")?).map_err(|e| e.to_string())?;
        let number = |v: &str, name: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("`{name}` is not a number: {v:?}"))
        };
        let size = number(field("size")?, "size")?;
        let crc32 = number(field("crc32")?, "crc32")?;
        let generation = number(field("generation")?, "generation")?;
        let crc32 = u32::try_from(crc32).map_err(|_| "`crc32` is out of range".to_string())?;
        if body.prefix_match(&Self::bodies(key)).is_none() {
            return Err(format!(
                "the body {body} is not under {}",
                Self::bodies(key)
            ));
        }
        Ok(Pointer {
            body,
            size,
            crc32,
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ObjectPath {
        ObjectPath::from("jobs/state.json")
    }

    fn pointer() -> Pointer {
        Pointer {
            body: Pointer::new_body_key(&key()),
            size: 12,
            crc32: u32::MAX,
            generation: 3,
        }
    }

    #[test]
    fn a_pointer_reads_back_as_written() {
        let p = pointer();
        assert_eq!(Pointer::parse(&key(), &p.encode()).unwrap().unwrap(), p);
    }

    #[test]
    fn a_value_is_not_a_pointer() {
        assert!(Pointer::parse(&key(), b"{\"step\": 1}").is_none());
        assert!(Pointer::parse(&key(), b"").is_none());
    }

    #[test]
    fn a_damaged_pointer_is_corrupt() {
        let good = String::from_utf8(pointer().encode()).unwrap();
        for bad in [
            good.replace("size: 12", "size: twelve"),
            good.replace("crc32: 4294967295", "crc32: 4294967296"),
            good.replace("generation: 3\n", ""),
            good.replace("jobs/state.json.bodies", "jobs/other.json.bodies"),
        ] {
            let r = Pointer::parse(&key(), bad.as_bytes()).unwrap();
            assert!(matches!(r, Err(Error::Corrupt { .. })), "{bad}: {r:?}");
        }
    }
}
