//! Handing dsocr's GPU settings ([`GpuSettings`]) to CubeCL: the cache directory of this GPU,
//! driver and dsocr version, and the autotune level. CubeCL reads its configuration once, before
//! the first GPU is used, so the first call here (or the first CUDA device made) decides.
//!
//! A `cubecl.toml` (or `burn.toml` with a `[cubecl]` section) found from the working directory
//! keeps precedence for the cache location, and `CUBECL_*` environment variables other than the
//! autotune level still apply (docs/gpu.md).

use std::path::PathBuf;
use std::sync::OnceLock;

use cubecl::config::autotune::AutotuneLevel;
use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

use crate::gpu_settings::{Autotune, CacheState, GpuIdentity, GpuSettings, prepare_cache_dir};

/// The cache directory in use, once configured (`None`: nothing kept on disk).
static CONFIGURED: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Whether a CubeCL configuration file is visible from the working directory.
fn has_config_file() -> bool {
    let Ok(mut dir) = std::env::current_dir() else { return false };
    loop {
        if ["cubecl.toml", "CubeCL.toml", "burn.toml", "Burn.toml"].iter().any(|f| dir.join(f).is_file()) {
            return true;
        }
        if !dir.pop() {
            return false;
        }
    }
}

fn level(a: Autotune) -> AutotuneLevel {
    match a {
        Autotune::Minimal => AutotuneLevel::Minimal,
        Autotune::Balanced => AutotuneLevel::Balanced,
        Autotune::Extensive => AutotuneLevel::Extensive,
        Autotune::Full => AutotuneLevel::Full,
    }
}

/// Install `settings` unless CubeCL was already configured (by an earlier call, or by another
/// library before dsocr); returns the cache directory in use. Must run before the first CUDA
/// device is used; later calls change nothing.
pub fn configure_gpu(settings: &GpuSettings) -> Option<PathBuf> {
    CONFIGURED
        .get_or_init(|| {
            let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
            config.autotune.level = level(settings.autotune);
            let mut dir = None;
            if settings.no_disk_cache {
                config.autotune.disable_cache = true;
                config.compilation.cache = false;
            } else {
                if settings.cache_root.is_some() || !has_config_file() {
                    let gpu = GpuIdentity::detect();
                    let keyed = settings.cache_dir(&gpu);
                    match prepare_cache_dir(&keyed) {
                        Ok(CacheState::Rebuilt(aside)) => tracing::warn!(
                            "the GPU cache database in {} was damaged; moved to {} and rebuilding it (this run compiles and tunes again)",
                            keyed.display(),
                            aside.display()
                        ),
                        // Said at the default log level: otherwise a first run is minutes of silence.
                        Ok(CacheState::Empty) => tracing::warn!(
                            "first run with {} here: GPU kernels are compiled and tuned as the first pages need them (minutes, once; kept in {}; `dsocr warmup` does it ahead of time)",
                            gpu.slug(),
                            keyed.display()
                        ),
                        Ok(CacheState::Present) => {}
                        Err(e) => tracing::warn!(
                            "cannot use the GPU cache directory {}: {e}; kernels will be compiled and tuned again on every run (set --gpu-cache-dir)",
                            keyed.display()
                        ),
                    }
                    config.environment.path = CacheConfig::Directory(keyed);
                }
                config.compilation.cache = true;
                dir = Some(config.environment.path.root());
            }
            let shown = dir.as_ref().map_or("none (--no-gpu-disk-cache)".to_string(), |d| d.display().to_string());
            if CubeClRuntimeConfig::try_set(config) {
                tracing::info!("GPU kernel and autotune cache: {shown}; autotune {}", settings.autotune);
                dir
            } else {
                tracing::debug!("CubeCL was configured before dsocr; its cache and autotune settings are kept");
                Some(CubeClRuntimeConfig::get().environment.path.root())
            }
        })
        .clone()
}

/// The GPU cache directory in use (configuring with the default settings if nothing did yet).
pub(crate) fn gpu_cache_dir() -> Option<PathBuf> {
    configure_gpu(&GpuSettings::default())
}
