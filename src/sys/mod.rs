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
#[cfg(unix)]
pub(crate) use unix::*;
