//! Simulated power loss, exhaustive: every crash state of one save under a pessimistic
//! persistence model, replayed from the real syscalls of a real save.
//!
//! A child does one save of each kind at each durability level between two marker
//! `open`s, under `strace`. The trace becomes a list of operations on a model
//! filesystem: create a temp (`openat O_CREAT`, or an anonymous `O_TMPFILE`), write,
//! sync a file (`fsync`/`fdatasync`), rename/link/unlink a name, sync the directory.
//! Permission calls (`fchmod`, `fchown`), locks and stats change no content and are left
//! out. Nothing is added to the library: the model only reads what the save did.
//!
//! The model is the pessimistic one of LevelDB's fault-injection environment and of the
//! ALICE study:
//! - a file's data is durable only once the file is synced; data written since may be
//!   lost at a power cut: the file may be cut at any 4 KiB block boundary between its
//!   durable length and its current length, and each block not yet durable may read
//!   back as zeros;
//! - a create, mkdir, rename, link or unlink is durable only once its directory is
//!   synced (that directory: each has its own pending changes); before that, any subset
//!   of the pending ones may have happened (each rename whole or not at all);
//! - `syncfs` makes every file's data and every directory's entries durable.
//!
//! For every crash point (after each operation, and before the first) and every such
//! state, the destination must be absent only if it was absent before, and otherwise be
//! exactly the old or exactly the new content; once a `Durability::Full` save has
//! returned, it must be the new content.
//!
//! And the model must be able to fail: the same `Full` trace with the file sync removed,
//! or with the directory sync removed, must produce violating states. `Data` keeps
//! old-or-new but may come back as the old file after it returned; `None` may leave an
//! empty or torn file: both are asserted to show in the model.
//!
//! A history commit (`History::set` of version 3, `keep(2)` and `keep(1)`, `Full` and
//! `Data`) is replayed the same way from a copy of the directory before it: the model
//! also knows symlinks (a symlink's target is durable with its name) and writes several
//! files. Every crash state must leave the pointer resolving to a complete version, the
//! old latest or the new one (the new one once a `Full` commit returned), and the
//! manifest old or new. Without the version file's sync, or (`keep(1)`, where retention
//! removes the version the old pointer names) without the directory sync after the
//! pointer swap, the model must find violating states.
//!
//! A batch commit (three files, one of them new, each sync mode, at `Full`, `Data` and
//! `None`) is replayed the same way (`batch`). Every destination must be old or new in
//! every crash state (a batch is not all-or-nothing), and new in all once a `Full`
//! commit returned; without the data sync or without the directory sync the model must
//! find violating states.
//!
//! A snapshot commit (`snapshot`: generation 3 of three files over generations 1 and 2;
//! `keep(2)`, `keep(1)`, all kept; `Full`, `Data`, `None`) writes a new directory and
//! renames it: every crash state must leave the pointer naming one whole set, the old or
//! the new one, every file of it complete and of that generation; without the data sync
//! or the parent's sync after the pointer swap the model must find violating states.
//!
//! Modules: `trace` turns the strace log into operations, `model` is the model
//! filesystem, and `single`, `history`, `batch` and `snapshot` each trace and check one
//! kind of save.

#[path = "../common/mod.rs"]
mod common;

mod batch;
mod history;
mod model;
mod single;
mod snapshot;
mod trace;

#[cfg(feature = "json")]
use atomic_persist::Durability;
#[cfg(feature = "json")]
use std::path::Path;

#[cfg(feature = "json")]
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
pub struct Doc {
    pub rev: u32,
    pub text: String,
}

#[cfg(feature = "json")]
pub fn doc_builder(dest: &Path, level: Durability) -> atomic_persist::PersistedBuilder<Doc> {
    atomic_persist::Persisted::<Doc>::builder(dest)
        .format(atomic_persist::Json)
        .envelope(true)
        .durability(level)
}
