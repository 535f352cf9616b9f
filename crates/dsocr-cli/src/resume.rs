//! Resuming `dsocr ocr --out DIR`: an input whose outputs are complete is skipped, so a job that
//! was killed (or a batch task run again) redoes only what is missing.
//!
//! "Complete" is a marker, `DIR/NAME/.dsocr-done.json`, written after every output of the input
//! (written without a page error), through a temporary name and a rename, so that it exists
//! whole or not at all. Output files themselves are written in place and may be half-written
//! when a job is killed; the marker, written last, is what says they are whole. It records the
//! input's path (two inputs of the same file name share a folder) and the settings that shape the
//! outputs: a marker of other settings does not count. A marker is removed before its input is
//! done again, so that a run killed while rewriting leaves none. `--overwrite` redoes everything.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

const MARKER: &str = ".dsocr-done.json";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Marker {
    source: String,
    settings: String,
    version: String,
}

/// The completion markers of one output directory, for one set of settings.
pub struct Resume {
    out: PathBuf,
    settings: String,
}

impl Resume {
    /// `settings`: everything that shapes the outputs, in words (two runs that would write the
    /// same files give the same string).
    pub fn new(out: &Path, settings: String) -> Self {
        Resume { out: out.to_path_buf(), settings }
    }

    fn marker(&self, name: &str) -> PathBuf {
        self.out.join(name).join(MARKER)
    }

    fn expected(&self, input: &str) -> Marker {
        Marker { source: input.to_string(), settings: self.settings.clone(), version: env!("CARGO_PKG_VERSION").to_string() }
    }

    /// Whether `input`'s outputs (folder `name`) are complete for these settings.
    pub fn is_complete(&self, name: &str, input: &str) -> bool {
        let Ok(text) = std::fs::read_to_string(self.marker(name)) else { return false };
        serde_json::from_str::<Marker>(&text).is_ok_and(|m| m == self.expected(input))
    }

    /// Forget that `name` was complete (before it is written again).
    pub fn clear(&self, name: &str) -> anyhow::Result<()> {
        match std::fs::remove_file(self.marker(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot remove {}", self.marker(name).display())),
        }
    }

    /// Record that `input`'s outputs (folder `name`) are complete.
    pub fn mark_complete(&self, name: &str, input: &str) -> anyhow::Result<()> {
        let path = self.marker(name);
        let dir = path.parent().expect("a marker lies in a folder");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = dir.join(format!("{MARKER}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.expected(input))?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_counts_for_its_input_and_settings_only() {
        let dir = std::env::temp_dir().join(format!("dsocr-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let resume = Resume::new(&dir, "task=free mode=tiny".into());
        assert!(!resume.is_complete("a", "in/a.png"));
        resume.mark_complete("a", "in/a.png").unwrap();
        assert!(resume.is_complete("a", "in/a.png"));
        assert!(!resume.is_complete("a", "other/a.png"), "another input of the same name");
        assert!(!Resume::new(&dir, "task=markdown mode=tiny".into()).is_complete("a", "in/a.png"), "other settings");
        std::fs::write(dir.join("a").join(MARKER), "{ half a marker").unwrap();
        assert!(!resume.is_complete("a", "in/a.png"), "a damaged marker");
        resume.clear("a").unwrap();
        resume.clear("a").unwrap();
        assert!(!dir.join("a").join(MARKER).exists());
        assert_eq!(std::fs::read_dir(dir.join("a")).unwrap().count(), 0, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
