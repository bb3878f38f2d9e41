//! The saves swept: the old and new content, the values, and each kind of save.

use std::path::Path;

use crate::common;
use crate::{SLOPPY_TEST, TEST};

/// The old file: small, a pattern of its own.
pub fn old_bytes() -> Vec<u8> {
    (0..5_000u32).map(|i| b'o' ^ (i % 7) as u8).collect()
}

/// The new file: large enough that a streamed save flushes several times.
pub fn new_bytes() -> Vec<u8> {
    (0..150_000u32)
        .map(|i| (common::mix(u64::from(i)) & 0xff) as u8)
        .collect()
}

/// The value of the enveloped kind: revision 2 is large enough to stream in pieces.
#[cfg(feature = "json")]
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
pub struct Doc {
    pub rev: u32,
    pub text: String,
}

#[cfg(feature = "json")]
pub fn doc(rev: u32) -> Doc {
    let len = if rev == 1 { 5_000 } else { 150_000 };
    Doc {
        rev,
        text: (0..len)
            .map(|i| char::from(b'a' + (common::mix(i) % 26) as u8))
            .collect(),
    }
}

#[cfg(feature = "json")]
pub fn doc_builder(dest: &Path) -> atomic_persist::PersistedBuilder<Doc> {
    atomic_persist::Persisted::<Doc>::builder(dest)
        .format(atomic_persist::Json)
        .envelope(true)
}

/// The value of version `rev` of the history kind: small, one of its own per version.
#[cfg(feature = "json")]
pub fn hdoc(rev: u32) -> Doc {
    Doc {
        rev,
        text: doc(1).text,
    }
}

/// The history of the history kind: `dest.bin` is the pointer, versions `dest.{g}.bin`,
/// the newest two kept.
#[cfg(feature = "json")]
pub fn history_builder(dest: &Path) -> atomic_persist::history::HistoryBuilder<Doc> {
    atomic_persist::history::History::<Doc>::builder(dest)
        .format(atomic_persist::Json)
        .keep(2)
}

#[cfg(feature = "json")]
pub const HISTORY_MANIFEST: &str = "dest.manifest.json";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `WriteOptions::write`, no destination yet.
    New,
    /// `WriteOptions::write` over an existing file of mode 0640 and, when the test runs
    /// as root, owned by 65534: the save copies both (`fchown`, `fchmod`).
    Replace,
    /// `no_clobber(true)`, no destination yet (`renameat2(RENAME_NOREPLACE)`).
    NoClobber,
    /// `anonymous_temp(true)` over an existing file (`O_TMPFILE`, `linkat`, `renameat`).
    Anonymous,
    /// `anonymous_temp(true)` + `no_clobber(true)`: linked straight into place.
    AnonymousNoClobber,
    /// `AtomicFile` over an existing file, written in 40 KB pieces, then committed.
    Stream,
    /// `Persisted<Doc>` with the envelope (JSON), opened from an enveloped file, then
    /// `set` to a new value: the commit streams head, payload and tail into an
    /// `AtomicFile`.
    #[cfg(feature = "json")]
    Enveloped,
    /// `History<Doc>` with versions 1 and 2 and `keep(2)`: `set` commits version 3
    /// (version file through the engine, pointer swap, retention removes version 1,
    /// manifest rewritten), all under the writer lock.
    #[cfg(feature = "json")]
    History,
    /// Not the crate: `File::create` of a temp, `write_all`, fsync with its result
    /// ignored, rename, no cleanup on error. The sweep must flag it.
    Sloppy,
}

/// The save kinds of the crate.
pub fn kinds() -> Vec<Kind> {
    let v = vec![
        Kind::New,
        Kind::Replace,
        Kind::NoClobber,
        Kind::Anonymous,
        Kind::AnonymousNoClobber,
        Kind::Stream,
    ];
    // The enveloped kind needs a format feature.
    #[cfg(feature = "json")]
    let v = [v, vec![Kind::Enveloped, Kind::History]].concat();
    v
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::New => "new",
            Kind::Replace => "replace",
            Kind::NoClobber => "no-clobber",
            Kind::Anonymous => "anonymous",
            Kind::AnonymousNoClobber => "anonymous-no-clobber",
            Kind::Stream => "stream",
            #[cfg(feature = "json")]
            Kind::Enveloped => "enveloped",
            #[cfg(feature = "json")]
            Kind::History => "history",
            Kind::Sloppy => "sloppy",
        }
    }

    pub fn from_name(s: &str) -> Kind {
        kinds()
            .into_iter()
            .chain([Kind::Sloppy])
            .find(|k| k.name() == s)
            .unwrap()
    }

    /// Whether the destination exists before the save.
    pub fn existing(self) -> bool {
        matches!(
            self,
            Kind::Replace | Kind::Anonymous | Kind::Stream | Kind::Sloppy
        ) || self.enveloped()
    }

    pub fn enveloped(self) -> bool {
        #[cfg(feature = "json")]
        if matches!(self, Kind::Enveloped | Kind::History) {
            return true;
        }
        false
    }

    pub fn is_history(self) -> bool {
        #[cfg(feature = "json")]
        if self == Kind::History {
            return true;
        }
        false
    }

    /// Writes the old file (if the kind has one) and returns its bytes.
    pub fn prepare(self, dest: &Path) -> Option<Vec<u8>> {
        if !self.existing() {
            return None;
        }
        #[cfg(feature = "json")]
        if self == Kind::Enveloped {
            let mut p = doc_builder(dest).open_or_else(|| doc(1)).unwrap();
            p.commit().unwrap();
            return Some(std::fs::read(dest).unwrap());
        }
        #[cfg(feature = "json")]
        if self == Kind::History {
            let mut h = history_builder(dest).open_or_else(|| hdoc(1)).unwrap();
            h.commit().unwrap();
            h.set(hdoc(2)).unwrap();
            // What the pointer resolves to.
            return Some(std::fs::read(dest).unwrap());
        }
        std::fs::write(dest, old_bytes()).unwrap();
        if self == Kind::Replace {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dest, std::fs::Permissions::from_mode(0o640)).unwrap();
            if common::is_root() {
                std::os::unix::fs::chown(dest, Some(65534), Some(65534)).unwrap();
            }
        }
        Some(old_bytes())
    }

    /// Whether `dest` holds what the save was to write.
    pub fn is_new(self, dest: &Path, bytes: &[u8]) -> bool {
        #[cfg(feature = "json")]
        if self == Kind::Enveloped {
            // The meta (time, run id) differs from run to run: load it, checksum and all.
            return doc_builder(dest)
                .open()
                .is_ok_and(|p| *p.get() == doc(2) && p.meta().is_some_and(|m| m.generation == 2));
        }
        let _ = dest;
        bytes == new_bytes()
    }

    pub fn test(self) -> &'static str {
        if self == Kind::Sloppy {
            SLOPPY_TEST
        } else {
            TEST
        }
    }
}
