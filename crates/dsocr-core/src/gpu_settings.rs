//! Where and how the GPU backend keeps what it learns on a first run (docs/gpu.md, "First run and
//! the on-disk caches").
//!
//! A first run on a GPU JIT-compiles every kernel and autotunes the matmul, convolution and fused
//! element-wise variants of each new shape; CubeCL persists both in one database file
//! (`default.db`, SQLite format) so the next process starts warm. That file is only valid for the
//! GPU model, driver and dsocr version that wrote it (its autotune rows name neither the GPU nor the
//! driver), so dsocr gives each combination its own directory:
//! `<cache root>/<dsocr version>/<gpu model>_driver-<version>/default.db`. A database that does not
//! open as one (truncated, overwritten) would make CubeCL fall back to memory on every run; dsocr
//! moves it and its write-ahead files aside at start so it is rebuilt. Concurrent processes share a
//! directory safely: CubeCL opens the database in multi-process WAL mode, and the checks here only
//! rename files nobody has written for a minute.
//!
//! This part is plain file handling, compiled and tested in every build; handing the settings to
//! CubeCL is the `cuda` feature's `configure_gpu`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::CoreError;

/// The database CubeCL keeps under a cache directory (its default environment name).
pub const CACHE_DATABASE: &str = "default.db";

/// How hard the autotuner works on a shape it has not seen (CubeCL's autotune level): a lower level
/// groups more shapes under one decision and settles for a candidate sooner, so a first run
/// compiles and times fewer kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Autotune {
    /// Fewest tuning runs: shapes grouped coarsely, the first candidate within 60 % of the
    /// roofline kept.
    #[default]
    Minimal,
    /// CubeCL's default.
    Balanced,
    /// More shapes and candidates timed.
    Extensive,
    /// Every shape and every candidate timed.
    Full,
}

impl FromStr for Autotune {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "minimal" => Ok(Autotune::Minimal),
            "balanced" => Ok(Autotune::Balanced),
            "extensive" => Ok(Autotune::Extensive),
            "full" => Ok(Autotune::Full),
            other => Err(CoreError::Device(format!("unknown autotune level {other:?}; use minimal, balanced, extensive or full"))),
        }
    }
}

impl fmt::Display for Autotune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Autotune::Minimal => "minimal",
            Autotune::Balanced => "balanced",
            Autotune::Extensive => "extensive",
            Autotune::Full => "full",
        })
    }
}

/// The GPU backend's settings that must be fixed before the first GPU is used (the CLI's
/// `--autotune`, `--gpu-cache-dir` and `--no-gpu-disk-cache`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuSettings {
    /// The cache root (default: the user cache directory, `~/.cache/dsocr/gpu` on Linux); the
    /// database goes under a subdirectory per dsocr version, GPU model and driver.
    pub cache_root: Option<PathBuf>,
    /// The autotune level (`None`: CubeCL's `CUBECL_AUTOTUNE_LEVEL` or configuration file if one
    /// sets it, else [`Autotune::Minimal`]).
    pub autotune: Option<Autotune>,
    /// Keep nothing on disk (every process compiles and tunes from scratch).
    pub no_disk_cache: bool,
}

impl GpuSettings {
    /// The cache root these settings name.
    pub fn cache_root(&self) -> PathBuf {
        self.cache_root.clone().unwrap_or_else(|| dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("dsocr").join("gpu"))
    }

    /// The directory the database of this GPU, driver and dsocr version lives in.
    pub fn cache_dir(&self, gpu: &GpuIdentity) -> PathBuf {
        self.cache_root().join(env!("CARGO_PKG_VERSION")).join(gpu.slug())
    }
}

/// The GPUs and driver of this machine, as the NVIDIA kernel driver lists them under
/// `/proc/driver/nvidia` (read without initialising CUDA, which must wait for the cache settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuIdentity {
    /// Each GPU's model name (`NVIDIA H200`), sorted, without repeats.
    pub models: Vec<String>,
    /// The kernel driver's version (`580.159.04`).
    pub driver: Option<String>,
}

impl GpuIdentity {
    /// This machine's GPUs and driver (empty where `/proc/driver/nvidia` is absent: the cache
    /// directory is then named `unknown-gpu`).
    pub fn detect() -> Self {
        Self::from_proc(Path::new("/proc/driver/nvidia"))
    }

    /// Read `version` and `gpus/*/information` under `root` (the layout of `/proc/driver/nvidia`).
    pub fn from_proc(root: &Path) -> Self {
        let driver = std::fs::read_to_string(root.join("version")).ok().and_then(|v| driver_version(&v));
        let mut models: Vec<String> = std::fs::read_dir(root.join("gpus"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|gpu| std::fs::read_to_string(gpu.path().join("information")).ok())
            .filter_map(|info| info.lines().find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string())))
            .filter(|m| !m.is_empty())
            .collect();
        models.sort();
        models.dedup();
        GpuIdentity { models, driver }
    }

    /// A directory name: the models and the driver, lower case, other characters as `-`.
    pub fn slug(&self) -> String {
        let models = if self.models.is_empty() { "unknown-gpu".to_string() } else { self.models.join("+") };
        let name = match &self.driver {
            Some(d) => format!("{models}_driver-{d}"),
            None => models,
        };
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '+' || c == '_' { c.to_ascii_lowercase() } else { '-' })
            .collect()
    }
}

/// The version in `/proc/driver/nvidia/version`'s first line
/// (`NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.04  Tue …`).
fn driver_version(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let after = line.split("Kernel Module").nth(1).unwrap_or(line);
    after.split_whitespace().find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.')).map(str::to_string)
}

/// Without the `cuda` feature there is no GPU backend to configure: nothing is kept on disk.
#[cfg(not(feature = "cuda"))]
pub fn configure_gpu(_settings: &GpuSettings) -> Option<PathBuf> {
    None
}

/// What [`prepare_cache_dir`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheState {
    /// No database yet: this run compiles and tunes, and keeps the results.
    Empty,
    /// A database that opens: this run starts warm for what it holds.
    Present,
    /// A database that was not one, moved aside to this path; this run rebuilds it.
    Rebuilt(PathBuf),
}

/// A database changed this recently may be another process's, half written: it is left alone.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(60);

/// The write-ahead files beside a database.
const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-tshm"];

/// Create `dir` and check its database `db_name` (CubeCL's environment name + `.db`, normally
/// [`CACHE_DATABASE`]): one that is not an SQLite file (truncated, overwritten, a torn copy) is
/// renamed to `<db_name>.corrupt-<pid>`, with its write-ahead files beside it, so the backend
/// starts a new one instead of falling back to memory on every run. Safe when several processes
/// do this at once: only one rename succeeds, the others find the file gone; a database or
/// write-ahead file written in the last minute (possibly another process creating it) is left.
pub fn prepare_cache_dir(dir: &Path, db_name: &str) -> std::io::Result<CacheState> {
    prepare_cache_dir_settled(dir, db_name, SETTLED)
}

fn prepare_cache_dir_settled(dir: &Path, db_name: &str, settled: std::time::Duration) -> std::io::Result<CacheState> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join(db_name);
    // The youngest of the database and its write-ahead files; a time in the future (a copied
    // cache, a skewed clock) counts as settled.
    let side = |s: &str| dir.join(format!("{db_name}{s}"));
    let young = std::iter::once(db.clone())
        .chain(SIDE_FILES.map(side))
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .any(|t| t.elapsed().is_ok_and(|age| age < settled));
    match database_is_valid(&db) {
        None => Ok(CacheState::Empty),
        Some(true) => Ok(CacheState::Present),
        Some(false) if young => Ok(CacheState::Present),
        Some(false) => {
            let aside = dir.join(format!("{db_name}.corrupt-{}", std::process::id()));
            match std::fs::rename(&db, &aside) {
                Ok(()) => {}
                // Another process moved it first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheState::Empty),
                Err(e) => return Err(e),
            }
            for s in SIDE_FILES {
                let _ = std::fs::rename(side(s), dir.join(format!("{db_name}.corrupt-{}{s}", std::process::id())));
            }
            Ok(CacheState::Rebuilt(aside))
        }
    }
}

/// `None` when `path` is absent or empty (an empty file is an empty SQLite database); otherwise
/// whether it has an SQLite header with a valid page size and a length that is a whole number of
/// pages.
fn database_is_valid(path: &Path) -> Option<bool> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    if len == 0 {
        return None;
    }
    let mut header = [0u8; 100];
    if len < 100 || file.read_exact(&mut header).is_err() || &header[..16] != b"SQLite format 3\0" {
        return Some(false);
    }
    let page = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        p => u64::from(p),
    };
    Some(page.is_power_of_two() && (512..=65_536).contains(&page) && len % page == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dsocr-gpu-cache-{tag}-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A minimal well-formed database file: an SQLite header with 4096-byte pages, two pages long.
    fn valid_db() -> Vec<u8> {
        let mut bytes = vec![0u8; 8192];
        bytes[..16].copy_from_slice(b"SQLite format 3\0");
        bytes[16..18].copy_from_slice(&4096u16.to_be_bytes());
        bytes
    }

    #[test]
    fn identity_from_the_driver_files() {
        let root = tempdir("proc");
        std::fs::write(
            root.join("version"),
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22)\nGCC version: gcc 12\n",
        )
        .unwrap();
        for (bus, model) in [("0000:19:00.0", "NVIDIA H200"), ("0000:3b:00.0", "NVIDIA H200"), ("0000:4c:00.0", "NVIDIA RTX 5090")] {
            std::fs::create_dir_all(root.join("gpus").join(bus)).unwrap();
            std::fs::write(root.join("gpus").join(bus).join("information"), format!("Model: \t\t {model}\nIRQ: 1\n")).unwrap();
        }
        let id = GpuIdentity::from_proc(&root);
        assert_eq!(id.models, vec!["NVIDIA H200".to_string(), "NVIDIA RTX 5090".to_string()]);
        assert_eq!(id.driver.as_deref(), Some("580.159.04"));
        assert_eq!(id.slug(), "nvidia-h200+nvidia-rtx-5090_driver-580.159.04");
        assert_eq!(GpuIdentity::from_proc(&root.join("absent")).slug(), "unknown-gpu");
    }

    #[test]
    fn another_gpu_driver_or_version_gets_another_directory() {
        let settings = GpuSettings { cache_root: Some("/c".into()), ..Default::default() };
        let h200 = GpuIdentity { models: vec!["NVIDIA H200".into()], driver: Some("580.159.04".into()) };
        let other_driver = GpuIdentity { driver: Some("575.57.08".into()), ..h200.clone() };
        let other_gpu = GpuIdentity { models: vec!["NVIDIA GB10".into()], ..h200.clone() };
        let dir = settings.cache_dir(&h200);
        assert_eq!(dir, Path::new("/c").join(env!("CARGO_PKG_VERSION")).join("nvidia-h200_driver-580.159.04"));
        assert_ne!(dir, settings.cache_dir(&other_driver));
        assert_ne!(dir, settings.cache_dir(&other_gpu));
        assert!(GpuSettings::default().cache_root().ends_with("dsocr/gpu"));
    }

    #[test]
    fn a_corrupt_database_is_moved_aside_and_a_good_one_kept() {
        let dir = tempdir("corrupt");
        let db = dir.join(CACHE_DATABASE);
        let prepare = |d: &Path| prepare_cache_dir_settled(d, CACHE_DATABASE, std::time::Duration::ZERO);
        assert_eq!(prepare(&dir.join("new")).unwrap(), CacheState::Empty);
        std::fs::write(&db, valid_db()).unwrap();
        assert_eq!(prepare(&dir).unwrap(), CacheState::Present);
        std::fs::write(&db, b"").unwrap();
        assert_eq!(prepare(&dir).unwrap(), CacheState::Empty, "an empty file is an empty database");
        std::fs::write(&db, b"half written by another process").unwrap();
        assert_eq!(prepare_cache_dir(&dir, CACHE_DATABASE).unwrap(), CacheState::Present, "a file written just now is left alone");
        let truncated = valid_db()[..5000].to_vec();
        let not_sqlite = b"{\"autotune\": \"json from something else\"}".to_vec();
        for bad in [truncated, not_sqlite, valid_db()[..40].to_vec()] {
            std::fs::write(&db, &bad).unwrap();
            std::fs::write(dir.join("default.db-wal"), b"wal").unwrap();
            let CacheState::Rebuilt(aside) = prepare(&dir).unwrap() else { panic!("a bad database was kept") };
            assert_eq!(std::fs::read(&aside).unwrap(), bad, "the bad file is kept aside for a bug report");
            assert!(!db.exists() && !dir.join("default.db-wal").exists());
            assert_eq!(std::fs::read(dir.join(format!("default.db.corrupt-{}-wal", std::process::id()))).unwrap(), b"wal");
            assert_eq!(prepare(&dir).unwrap(), CacheState::Empty);
        }
    }

    #[test]
    fn processes_checking_one_corrupt_database_at_once_agree() {
        let dir = tempdir("race");
        std::fs::write(dir.join(CACHE_DATABASE), b"garbage").unwrap();
        let barrier = std::sync::Barrier::new(8);
        let states: Vec<CacheState> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        prepare_cache_dir_settled(&dir, CACHE_DATABASE, std::time::Duration::ZERO).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // One (this test's threads share a pid) moved it aside; the others found it gone or moved.
        assert!(states.iter().any(|s| matches!(s, CacheState::Rebuilt(_))), "{states:?}");
        assert!(states.iter().all(|s| matches!(s, CacheState::Rebuilt(_) | CacheState::Empty)), "{states:?}");
        assert!(!dir.join(CACHE_DATABASE).exists());
    }

    #[test]
    fn autotune_levels_parse_and_print() {
        for level in [Autotune::Minimal, Autotune::Balanced, Autotune::Extensive, Autotune::Full] {
            assert_eq!(level.to_string().parse::<Autotune>().unwrap(), level);
        }
        let e = "max".parse::<Autotune>().unwrap_err().to_string();
        assert!(e.contains("minimal, balanced, extensive or full"), "{e}");
    }
}
