//! Where CubeCL keeps what it learns about the GPU: autotune decisions and compiled kernels.
//!
//! A first run JIT-compiles every kernel for the GPU present and autotunes each new matmul,
//! attention and fused-block shape (seconds each; minutes for a whole page). Both results are
//! persisted so the next process starts warm. CubeCL's default puts them under the `target/` of
//! the nearest Cargo workspace, or under its own cache directory; dsocr keeps them in one known
//! place instead: `$DSOCR_CACHE_DIR`, else the user cache directory (`~/.cache/dsocr/cubecl`).
//! A `cubecl.toml` (or `burn.toml` with a `[cubecl]` section) found from the working directory
//! keeps precedence for its location, and `CUBECL_*` environment variables still apply.

use std::path::PathBuf;

use cubecl::config::cache::CacheConfig;
use cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};

/// The directory dsocr asks CubeCL to keep its caches in.
pub fn gpu_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DSOCR_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("LOCALAPPDATA").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("dsocr").join("cubecl")
}

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

/// Install dsocr's CubeCL settings (cache location, persisted compiled kernels) unless the
/// configuration was already set or read. Must run before the first CUDA device is used; calling
/// it again is harmless.
pub fn configure_gpu_caches() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        if std::env::var_os("DSOCR_CACHE_DIR").is_some() || !has_config_file() {
            let dir = gpu_cache_dir();
            if let Err(e) = std::fs::create_dir_all(&dir) {
                tracing::warn!("cannot create the GPU cache directory {}: {e}; kernels will be re-tuned on every run", dir.display());
            }
            config.environment.path = CacheConfig::Directory(dir);
        }
        config.compilation.cache = true;
        let where_ = config.environment.path.root();
        if CubeClRuntimeConfig::try_set(config) {
            tracing::info!("GPU autotune and kernel caches: {}", where_.display());
        } else {
            tracing::debug!("CubeCL was configured before dsocr; its cache settings are kept");
        }
    });
}
