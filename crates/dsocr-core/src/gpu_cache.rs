//! Handing dsocr's GPU settings ([`GpuSettings`]) to CubeCL: the cache directory of this GPU,
//! driver and dsocr version, and the autotune level.
//!
//! [`configure_gpu`] only records the settings (a CPU run touches nothing); CubeCL is configured
//! from them when the first CUDA device is made (CubeCL reads its configuration once, at that
//! moment), and the state of the cache is said when a CUDA device is handed out, so a run that
//! ends up on the CPU prints nothing about GPU caches.
//!
//! A `cubecl.toml` (or a `burn.toml` with a `[cubecl]` section) found from the working directory
//! sets the cache location unless `--gpu-cache-dir` is given; `CUBECL_AUTOTUNE_LEVEL` or such a
//! file sets the autotune level unless `--autotune` is given (docs/gpu.md).

use std::path::PathBuf;
use std::sync::{Once, OnceLock};

use cubecl::config::autotune::AutotuneLevel;
use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

use crate::gpu_settings::{Autotune, CacheState, GpuIdentity, GpuSettings, prepare_cache_dir};

/// The settings recorded by [`configure_gpu`] (default settings if none were).
static SETTINGS: OnceLock<GpuSettings> = OnceLock::new();

/// What configuring CubeCL found: the cache directory in use (`None`: nothing on disk) and the
/// message to give when a CUDA device is first handed out.
static CONFIGURED: OnceLock<(Option<PathBuf>, Option<String>)> = OnceLock::new();

/// Record the GPU settings for this process (the first call wins). Nothing is touched until a CUDA
/// device is made; call it before that. Returns the cache directory the settings name (`None`
/// with `no_disk_cache`).
pub fn configure_gpu(settings: &GpuSettings) -> Option<PathBuf> {
    let settings = SETTINGS.get_or_init(|| settings.clone());
    (!settings.no_disk_cache).then(|| settings.cache_dir(&GpuIdentity::detect()))
}

/// Whether a CubeCL configuration file with cache settings is visible from the working directory.
fn has_config_file() -> bool {
    let Ok(mut dir) = std::env::current_dir() else { return false };
    loop {
        if ["cubecl.toml", "CubeCL.toml"].iter().any(|f| dir.join(f).is_file())
            || ["burn.toml", "Burn.toml"]
                .iter()
                .any(|f| std::fs::read_to_string(dir.join(f)).is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with("[cubecl"))))
        {
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

/// Configure CubeCL from the recorded settings, once, before the first CUDA device is made.
pub(crate) fn ensure_gpu_configured() {
    CONFIGURED.get_or_init(|| {
        let settings = SETTINGS.get_or_init(GpuSettings::default);
        let config_file = has_config_file();
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        // CubeCL's own variable or file keeps its level unless `--autotune` names one.
        let cubecl_level = config_file || std::env::var_os("CUBECL_AUTOTUNE_LEVEL").is_some();
        if let Some(a) = settings.autotune.or((!cubecl_level).then_some(Autotune::default())) {
            config.autotune.level = level(a);
        }
        let mut state = None;
        if settings.no_disk_cache {
            config.autotune.disable_cache = true;
            config.compilation.cache = false;
            config.throughput.disable_cache = true;
        } else {
            if settings.cache_root.is_some() || !config_file {
                let gpu = GpuIdentity::detect();
                let keyed = settings.cache_dir(&gpu);
                state = Some((prepare_cache_dir(&keyed, &format!("{}.db", config.environment.name)), gpu, keyed.clone()));
                config.environment.path = CacheConfig::Directory(keyed);
            }
            config.compilation.cache = true;
        }
        let dir = (!settings.no_disk_cache).then(|| config.environment.path.root());
        let autotune = format!("{:?}", config.autotune.level);
        if !CubeClRuntimeConfig::try_set(config) {
            let message = "CubeCL was configured before dsocr: its cache and autotune settings are kept (--gpu-cache-dir and --autotune have no effect)";
            return (Some(CubeClRuntimeConfig::get().environment.path.root()), Some(message.to_string()));
        }
        tracing::info!("GPU kernel and autotune cache: {}; autotune {autotune}", dir.as_ref().map_or("none".into(), |d| d.display().to_string()));
        let message = state.and_then(|(state, gpu, keyed)| {
            let unkeyed = if gpu.models.is_empty() || gpu.driver.is_none() {
                " (the GPU model or driver could not be read from /proc/driver/nvidia: give each GPU model its own --gpu-cache-dir)"
            } else {
                ""
            };
            match state {
                Ok(CacheState::Present) => None,
                // Said at the default log level: otherwise a first run is minutes of silence.
                Ok(CacheState::Empty) => Some(format!(
                    "first run of this dsocr version on {}: GPU kernels are compiled and tuned as the first pages need them (a minute or more, once; kept in {}{unkeyed}; `dsocr warmup` does it ahead of time)",
                    gpu.slug(),
                    keyed.display()
                )),
                Ok(CacheState::Rebuilt(aside)) => Some(format!(
                    "the GPU cache database in {} was damaged; moved it to {} and rebuilding it (this run compiles and tunes again)",
                    keyed.display(),
                    aside.display()
                )),
                Err(e) => Some(format!(
                    "cannot use the GPU cache directory {}: {e}; kernels are compiled and tuned again on every run (give a writable --gpu-cache-dir)",
                    keyed.display()
                )),
            }
        });
        (dir, message)
    });
}

/// Whether CubeCL was configured to keep nothing on disk (`--no-gpu-disk-cache`).
pub(crate) fn disk_cache_off() -> bool {
    matches!(CONFIGURED.get(), Some((None, _)))
}

/// Say, once, what the GPU cache means for this run (when a CUDA device is handed out).
pub(crate) fn announce_gpu_cache() {
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        if let Some((_, Some(message))) = CONFIGURED.get() {
            tracing::warn!("{message}");
        }
    });
}
