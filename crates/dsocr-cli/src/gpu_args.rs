//! The GPU backend's flags (cache and autotuning), shared by every command that runs the model.
//! They take effect before the first GPU is touched (`--device auto` probes it while parsing).

use std::path::PathBuf;

use clap::Args;
use dsocr::common::{Autotune, GpuSettings};

#[derive(Args, Debug, Clone)]
pub struct GpuArgs {
    /// Where compiled GPU kernels and autotune decisions are kept, one subdirectory per dsocr
    /// version, GPU model and driver (default: the user cache directory, ~/.cache/dsocr/gpu).
    #[arg(long, env = "DSOCR_CACHE_DIR", value_name = "DIR")]
    pub gpu_cache_dir: Option<PathBuf>,
    /// How hard a first run tunes GPU kernels for shapes it has not seen: minimal, balanced,
    /// extensive or full (docs/gpu.md, "First run and the on-disk caches").
    #[arg(long, default_value_t = Autotune::default())]
    pub autotune: Autotune,
    /// Keep no GPU cache on disk (every process compiles and tunes again).
    #[arg(long)]
    pub no_gpu_disk_cache: bool,
}

impl GpuArgs {
    /// The settings these flags make.
    pub fn settings(&self) -> GpuSettings {
        GpuSettings { cache_root: self.gpu_cache_dir.clone(), autotune: self.autotune, no_disk_cache: self.no_gpu_disk_cache }
    }

    /// Hand the settings to the GPU backend (a build without CUDA has none); the cache directory
    /// in use.
    pub fn apply(&self) -> Option<PathBuf> {
        dsocr::common::configure_gpu(&self.settings())
    }
}
