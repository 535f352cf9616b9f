//! Helpers shared by the CLI's integration tests.

use std::path::PathBuf;

/// A fresh directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `dsocr-test-TAG-PID`, emptied first.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("dsocr-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
