//! 10. The CLI under a file size limit.

use super::*;

#[cfg(feature = "cli")]
#[test]
fn the_cli_reports_efbig_with_the_path_under_a_file_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    std::fs::write(&path, b"old").unwrap();
    let exe = assert_cmd::cargo::cargo_bin("atomic-persist");
    // `ulimit -f 1`: 1024-byte blocks; the write of 64 KiB passes it.
    let script = format!(
        "ulimit -f 1; head -c 65536 /dev/zero | '{}' write '{}'",
        exe.display(),
        path.display()
    );
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "killed by a signal? {stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert!(common::temps(dir.path()).is_empty());
}
