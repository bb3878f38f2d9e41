//! The environment the bench binaries read: rounds, and where to write.
#![allow(dead_code)] // each bench uses a subset

use std::path::PathBuf;

/// `var` as a number, or `default` when it is not set; a value that is not a number
/// stops the bench rather than run something else than asked.
pub fn usize_or(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// `BENCH_DIR`, or a directory under Cargo's `CARGO_TARGET_TMPDIR` (on the disk that
/// holds `target/`).
pub fn disk_base() -> PathBuf {
    std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// `BENCH_TMPFS_DIR`, or `/dev/shm`.
pub fn tmpfs_base() -> PathBuf {
    std::env::var_os("BENCH_TMPFS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

/// Whether the binary runs as a bench (`--bench`), not as `cargo test --benches`' smoke.
pub fn timing() -> bool {
    std::env::args().any(|a| a == "--bench")
}
