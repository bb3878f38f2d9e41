//! The platform layer: the only place with platform-specific code.
//!
//! Everything above this module speaks of a [`Dir`] (an open handle on the destination's
//! directory), of file names inside it, and of [`Perms`] to give a new file. Each step of
//! a save is one method here, so the order of the steps, and the reason for each, stays
//! readable in [`crate::atomic`].
//!
//! - `unix.rs`: POSIX `*at` calls through `rustix`, relative to the open directory.
//! - `linux.rs`: what only Linux has: `renameat2(RENAME_NOREPLACE)`, `O_TMPFILE`, and the
//!   btrfs quirk around it.
//! - `portable.rs`: everything else (Windows among them), on `std::fs` alone.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(not(unix))]
mod portable;
#[cfg(unix)]
mod unix;

#[cfg(not(unix))]
pub(crate) use portable::*;

/// Who may change a directory's entries: what the shared-directory rules ask of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirTrust {
    /// The directory's owner.
    pub(crate) owner: u32,
    /// Sticky and writable by others than its owner (group or world), like `/tmp`:
    /// another user can plant names here, and only the sticky bit keeps them from
    /// removing ours. Never on platforms without Unix modes, where access control is
    /// the ACLs', which a rename leaves to the directory.
    pub(crate) shared: bool,
}

/// How far a sync goes on the way to the medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Through the drive's cache: on stable storage once the call returns.
    Full,
    /// Apple's `F_BARRIERFSYNC`: on the drive, and ordered before every write issued
    /// after it, but possibly still in the drive's cache. Elsewhere the same as `Full`.
    Barrier,
}

/// How an existing file is opened by [`open_path`] and `Dir::open_entry`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access {
    /// Read-only.
    Read,
    /// Read and write.
    ReadWrite,
    /// Create it (fails if it exists), read and write, with this mode before the umask
    /// (no meaning where there are no Unix modes).
    Create(#[cfg_attr(not(unix), allow(dead_code, reason = "a Unix mode"))] u32),
}
#[cfg(unix)]
pub(crate) use unix::*;
