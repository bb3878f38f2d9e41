//! What the targets share: the oracle of `tests/bad_input.rs`, and a scratch directory
//! (on tmpfs when there is one) for the file each input is written to.

#[path = "../../tests/bad_input/oracle.rs"]
pub mod oracle;

use std::path::Path;
use std::sync::OnceLock;

/// This process's scratch directory.
pub fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        }
    })
    .path()
}
