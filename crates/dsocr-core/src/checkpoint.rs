//! Memory-mapped safetensors checkpoints, read in place.
//!
//! The release is one 6.7 GB bf16 file. Mapping it costs nothing up front; each tensor's bytes
//! are read once when the model asks for it, converted to the compute type and uploaded.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::CoreError;

/// Where a tensor lives: which file, its element type, shape, and byte range.
#[derive(Debug, Clone)]
pub struct TensorEntry {
    file: usize,
    /// Element type in the file.
    pub dtype: Dtype,
    /// Shape in the file.
    pub shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// One or more safetensors files mapped into memory, indexed by tensor name.
pub struct Checkpoint {
    files: Vec<(PathBuf, Mmap)>,
    entries: HashMap<String, TensorEntry>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("files", &self.files.iter().map(|(p, _)| p).collect::<Vec<_>>())
            .field("tensors", &self.entries.len())
            .finish()
    }
}

impl Checkpoint {
    /// Map every `*.safetensors` file of a model directory (sorted by name).
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<Self, CoreError> {
        let dir = dir.as_ref();
        let read = std::fs::read_dir(dir).map_err(|error| CoreError::Io { path: dir.to_path_buf(), error })?;
        let mut paths: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(CoreError::NoCheckpoint { dir: dir.to_path_buf() });
        }
        Self::open_files(&paths)
    }

    /// Map the given safetensors files.
    pub fn open_files(paths: &[PathBuf]) -> Result<Self, CoreError> {
        let mut files = Vec::with_capacity(paths.len());
        let mut entries = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let file = File::open(path).map_err(|error| CoreError::Io { path: path.clone(), error })?;
            // SAFETY: the map is read-only; the model files are not expected to change while the
            // process runs (the same assumption every mmap-based loader makes).
            let map = unsafe { Mmap::map(&file) }.map_err(|error| CoreError::Io { path: path.clone(), error })?;
            let bad = |reason: String| CoreError::BadCheckpoint { path: path.clone(), reason };
            let (header_len, meta) = SafeTensors::read_metadata(&map).map_err(|e| bad(e.to_string()))?;
            let data_start = 8 + header_len;
            for (name, info) in meta.tensors() {
                let (start, end) = (data_start + info.data_offsets.0, data_start + info.data_offsets.1);
                if end > map.len() {
                    return Err(bad(format!("tensor {name} extends past the end of the file (truncated download?)")));
                }
                let entry = TensorEntry { file: i, dtype: info.dtype, shape: info.shape.clone(), start, end };
                if entries.insert(name.clone(), entry).is_some() {
                    return Err(bad(format!("tensor {name} appears in more than one checkpoint file")));
                }
            }
            files.push((path.clone(), map));
        }
        Ok(Checkpoint { files, entries })
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All tensor names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// A tensor's description, if present.
    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.entries.get(name)
    }

    /// A tensor's raw little-endian bytes.
    pub fn bytes(&self, entry: &TensorEntry) -> &[u8] {
        &self.files[entry.file].1[entry.start..entry.end]
    }

    /// Say that `entry`'s bytes, once copied, are not read again: the kernel unmaps their pages
    /// from this process. Mapped file pages count in the process's resident set until then, so
    /// without it the whole 6.7 GB file would sit in RSS beside the model built from it (the
    /// CPU path's peak, docs/perf.md "CPU"). The page cache keeps them for the next process.
    pub fn release(&self, entry: &TensorEntry) {
        #[cfg(unix)]
        {
            let map = &self.files[entry.file].1;
            // SAFETY: the map is a read-only shared mapping of a file: after MADV_DONTNEED a read
            // faults the same bytes back in from the page cache or the file, so any slice of the
            // map still reads what it read before (the range is widened to whole pages, which
            // may take in a neighbour's first or last bytes: harmless for the same reason).
            let _ = unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, entry.start, entry.end - entry.start) };
        }
        #[cfg(not(unix))]
        let _ = entry;
    }

    /// The files mapped.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }
}
