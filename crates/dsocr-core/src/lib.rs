//! # dsocr-core
//!
//! The foundation shared by dsocr's model crates (`dsocr-vision`, `dsocr-lm`):
//!
//! - [`DeviceSpec`] and [`FloatType`]: where the model runs (`cpu`, `cuda:N`) and in which float
//!   type, with errors that say which build feature is missing;
//! - [`Checkpoint`]: memory-mapped safetensors files with the release tensor names;
//! - [`Weights`]: the one loading path of both networks: name-scoped access, shape checks against
//!   `config.json`, conversion to the compute type, PyTorch→Burn transposition of linear weights,
//!   and a record of every requested tensor so missing, mis-shaped and unused tensors are errors
//!   that name them;
//! - [`HostMatrix`]: weights kept in host memory in the checkpoint's float type (the CPU MoE);
//! - [`config_json`]: typed sections of `config.json` (release defaults, errors that name the key);
//! - [`GpuSettings`] ([`gpu_settings`]): the GPU backend's on-disk cache (one per GPU model, driver
//!   and dsocr version; a damaged one rebuilt) and autotune level;
//! - [`layers`]: the small building blocks both networks use (linear, LayerNorm, RMSNorm).
//!
//! ```
//! use dsocr_core::{DeviceSpec, FloatType};
//! let gpu: DeviceSpec = "cuda:1".parse().unwrap();
//! assert_eq!((gpu, gpu.to_string()), (DeviceSpec::Cuda(1), "cuda:1".to_string()));
//! let e = "tpu".parse::<DeviceSpec>().unwrap_err().to_string();
//! assert!(e.contains("use auto, cpu, cuda or cuda:N"), "{e}");
//! assert_eq!(DeviceSpec::Cpu.default_dtype(), FloatType::F32);
//! ```

#![warn(missing_docs)]

mod checkpoint;
pub mod config_json;
mod device;
mod error;
mod gpu_build;
#[cfg(feature = "cuda")]
mod gpu_cache;
pub mod gpu_settings;
mod host_matrix;
pub mod layers;
mod stream_copy;
mod weights;

pub use checkpoint::{Checkpoint, TensorEntry};
pub use device::{AUTO_MIN_GPU_BYTES, DeviceSpec, FloatType, device_memory_bytes, host_memory_bytes};
pub use error::{CoreError, Result};
pub use gpu_build::{GpuBuildTime, KernelOrigin, gpu_build_time};
#[cfg(feature = "cuda")]
pub use gpu_cache::configure_gpu;
#[cfg(not(feature = "cuda"))]
pub use gpu_settings::configure_gpu;
pub use gpu_settings::{Autotune, GpuSettings};
pub use host_matrix::{HostElems, HostMatrix};
pub use stream_copy::StreamCopy;
pub use weights::{PreparedTensor, RandomInit, Weights, random_init};

/// Re-export of the Burn version the model crates are built on.
pub use burn;
