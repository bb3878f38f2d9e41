//! Which errnos each call is failed with, and which calls are not faulted.

use crate::DEST;
use crate::common::strace::Call;

/// Syscalls that are not faulted, with the reason.
pub fn exempt(name: &str) -> Option<&'static str> {
    Some(match name {
        "mmap" | "munmap" | "mprotect" | "mremap" | "madvise" | "brk" => {
            "memory allocation: failure aborts any Rust program"
        }
        "futex" | "sched_yield" | "rt_sigprocmask" | "sigaltstack" | "rseq" => "scheduling",
        "getpid" | "gettid" | "getuid" | "geteuid" | "getgid" | "getegid" => "cannot fail",
        "clock_gettime" | "gettimeofday" => "clock",
        "fcntl" => {
            "std's debug-build check that an fd is still open before close (not in release builds)"
        }
        _ => return None,
    })
}

/// The errnos worth injecting into `c`; `None` for a syscall this table does not know
/// (the test fails on it: a new syscall in the save needs a decision).
pub fn errnos_for(c: &Call) -> Option<Vec<&'static str>> {
    let creates = c.args.contains("O_CREAT") || c.args.contains("O_TMPFILE");
    Some(match c.name.as_str() {
        "open" | "openat" | "openat2" => {
            let mut v = vec!["EIO", "EACCES", "EPERM"];
            if creates {
                v.extend(["ENOSPC", "EDQUOT"]);
            }
            if c.args.contains("O_TMPFILE") {
                v.push("EOPNOTSUPP"); // the filesystem has no O_TMPFILE: named temp
            }
            v
        }
        "newfstatat" | "fstatat64" | "statx" | "lstat" | "stat" | "readlink" | "readlinkat" => {
            vec!["EIO", "EACCES"]
        }
        "fstat" | "fstatfs" | "statfs" => vec!["EIO"],
        "flock" => vec!["ENOLCK", "EAGAIN"], // EAGAIN: a sweep holds it; start over
        "fchown" | "fchmod" | "fchownat" | "fchmodat" => vec!["EPERM", "EIO"],
        "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => {
            vec!["EIO", "ENOSPC", "EDQUOT"]
        }
        "fsync" | "fdatasync" => vec!["EIO", "ENOSPC", "EDQUOT", "EINVAL"],
        "rename" | "renameat" => vec!["EIO", "ENOSPC", "EDQUOT", "EXDEV", "EACCES", "EPERM"],
        "renameat2" => vec![
            "EIO", "ENOSPC", "EDQUOT", "EXDEV", "EACCES", "EPERM", "EINVAL",
        ],
        "link" | "linkat" => vec![
            "EIO", "ENOSPC", "EDQUOT", "EXDEV", "EACCES", "EPERM", "ENOENT",
        ],
        "unlink" | "unlinkat" => vec!["EIO", "EACCES", "EPERM"],
        "close" => vec!["EIO", "ENOSPC", "EDQUOT"],
        "getrandom" => vec!["EPERM"], // seccomp says EPERM; std falls back to /dev/urandom
        "read" => vec!["EIO"],
        "getdents64" => vec!["EIO"],
        // The history's temporary symlink (EEXIST: the name is taken; another name).
        "symlink" | "symlinkat" => vec!["EIO", "ENOSPC", "EDQUOT", "EACCES", "EPERM", "EEXIST"],
        // The replaced file's extended attributes (its ACL among them), read to carry
        // them over; EOPNOTSUPP: the filesystem has none.
        "llistxattr" | "lgetxattr" => vec!["EIO", "EACCES", "ENOMEM", "EOPNOTSUPP"],
        "fsetxattr" => vec!["EIO", "EPERM", "ENOSPC", "EOPNOTSUPP"],
        _ => return None,
    })
}

/// Whether a save may still succeed after this fault, and why.
pub fn may_succeed(c: &Call, errno: &str) -> bool {
    match (c.name.as_str(), errno) {
        // Rust ignores close errors; by then the file was synced (or None asked not to).
        ("close", _) => true,
        // Another process holds the new temp's lock: the writer starts over.
        ("flock", "EAGAIN") => true,
        // No O_TMPFILE here: a named temp is used.
        ("openat", "EOPNOTSUPP") if c.args.contains("O_TMPFILE") => true,
        // renameat2 unsupported (ZFS, old kernels): link + unlink.
        ("renameat2", "EINVAL") => true,
        // linkat(AT_EMPTY_PATH) refused: linkat of /proc/self/fd/N.
        ("linkat", "ENOENT" | "EPERM") if c.args.contains("AT_EMPTY_PATH") => true,
        // The btrfs probe: not btrfs as far as anyone can tell.
        ("fstatfs" | "statfs", _) => true,
        // std's random keys fall back to /dev/urandom.
        ("getrandom", "EPERM") => true,
        // No xattrs on this filesystem: nothing to carry over.
        ("llistxattr", "EOPNOTSUPP") => true,
        // A lock's explicit release when it is dropped, after the work it guarded: the
        // close that follows releases it too.
        ("flock", _) if c.args.contains("LOCK_UN") => true,
        // The temporary symlink's name is taken: the history tries another.
        ("symlink" | "symlinkat", "EEXIST") => true,
        // The writer lock's file may not be opened for writing: it is opened read-only
        // (a read-only handle can be locked too).
        ("open" | "openat", "EACCES" | "EPERM") if c.args.contains(".lock\"") => true,
        // After the rename, the handle notes the new file's identity (fstat, reopen
        // read-only) only to skip reading it at the next commit's generation check;
        // without it, that check reads the file: slower, never wrong.
        // (std's `File::metadata` is the only statx of a descriptor in a save; the
        // engine's own fstat of a new temp must fail the save, and is not listed here.)
        ("statx", _) if c.args.contains("AT_EMPTY_PATH") => true,
        // The read-only reopen of the renamed file that pins its identity.
        ("open" | "openat", _) if c.args.contains("O_RDONLY") && !c.args.contains(".lock") => {
            c.args.contains(DEST) && !c.args.contains("O_DIRECTORY")
        }
        _ => false,
    }
}
