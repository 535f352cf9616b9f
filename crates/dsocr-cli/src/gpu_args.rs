//! The GPU backend's flags (cache and autotuning), shared by every command that can run on a GPU.
//! They are recorded before the device is chosen and take effect when a CUDA device is first made.

use std::path::PathBuf;

use clap::Args;
use dsocr::common::{Autotune, GpuSettings};

#[derive(Args, Debug, Clone)]
pub struct GpuArgs {
    /// Where compiled GPU kernels and autotune decisions are kept, one subdirectory per dsocr
    /// version, GPU model and driver (default: the user cache directory, ~/.cache/dsocr/gpu).
    #[arg(long, env = "DSOCR_CACHE_DIR", value_name = "DIR")]
    pub gpu_cache_dir: Option<String>,
    /// How hard a first run tunes GPU kernels for shapes it has not seen: minimal (the default,
    /// unless CUBECL_AUTOTUNE_LEVEL or a cubecl.toml says otherwise), balanced, extensive or full
    /// (docs/gpu.md, "First run and the on-disk caches").
    #[arg(long)]
    pub autotune: Option<Autotune>,
    /// Keep no GPU cache on disk (every process compiles and tunes again).
    #[arg(long)]
    pub no_gpu_disk_cache: bool,
}

impl GpuArgs {
    /// The settings these flags make (an empty `DSOCR_CACHE_DIR` is as unset).
    pub fn settings(&self) -> GpuSettings {
        GpuSettings {
            cache_root: self.gpu_cache_dir.as_ref().filter(|d| !d.is_empty()).map(PathBuf::from),
            autotune: self.autotune,
            no_disk_cache: self.no_gpu_disk_cache,
        }
    }

    /// Record the settings for the GPU backend (a build without CUDA has none); the cache
    /// directory they name.
    pub fn apply(&self) -> Option<PathBuf> {
        dsocr::common::configure_gpu(&self.settings())
    }
}
