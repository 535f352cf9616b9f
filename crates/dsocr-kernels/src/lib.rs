//! # dsocr-kernels
//!
//! GPU kernels for the hot path of decoding, written in CubeCL and reached from Burn tensors
//! through a backend extension. Each operation has two implementations:
//!
//! - a reference made of plain Burn operations, which runs on every backend (the CPU included)
//!   and defines what the kernel must compute;
//! - with the `cuda` feature, a CubeCL kernel used when the tensors live on a CubeCL device.
//!
//! Callers use the dispatching functions ([`decode_attention`], [`encoder_attention`], [`prefill_attention`], [`rel_pos_terms`], [`add_rms_norm`], [`rms_norm`], [`rope_qkv_cached`],
//! [`route`], [`linear`], [`swiglu`], [`expert_swiglu`], [`expert_down`], [`overwrite_ints`],
//! [`increment_ints`], [`argmax_into`]); each has a `_reference` twin. [`linear_parts`] and
//! [`expert_down_parts`] leave a projection's last sum to the kernel that consumes it
//! ([`PartialSums`]). [`check_kernels`] compares every kernel with an exact host computation on a
//! device (a GPU test, and `dsocr kernels-check`).
//!
//! ```
//! use burn::prelude::*;
//! let device = dsocr_core::DeviceSpec::Cpu.device().unwrap();
//! let x = Tensor::<2>::from_data([[3.0f32, 4.0]], &device);
//! let weight = Tensor::<1>::ones([2], &device);
//! // On the CPU this runs the Burn reference; on a CUDA device, the CubeCL kernel.
//! let y = dsocr_kernels::rms_norm(x, &weight, 0.0).into_data().to_vec::<f32>().unwrap();
//! let rms = (12.5f32).sqrt();
//! assert!((y[0] - 3.0 / rms).abs() < 1e-6 && (y[1] - 4.0 / rms).abs() < 1e-6);
//! ```

#![warn(missing_docs)]

mod argmax;
mod check;
mod check_encoder;
mod check_fused;
mod check_layer;
mod check_projection;
mod decode_attention;
mod encoder_attention;
mod gelu;
mod host_attention;
mod host_experts;
mod host_linear;
mod host_math;
mod ints;
mod norm;
mod parts;
mod prefill_attention;
mod projection;
mod rel_pos;
mod rope;
mod router;

#[cfg(feature = "cuda")]
mod cuda;

pub use argmax::{argmax_into, argmax_into_reference, argmax_rows};
pub use check::{KernelCheck, check_kernels};

pub use decode_attention::{KV_BLOCK, decode_attention, decode_attention_reference, gather_blocks};
pub use encoder_attention::{RelPosBias, encoder_attention, encoder_attention_fused, encoder_attention_reference};
pub use gelu::gelu;
pub use host_attention::{AttentionShape, HostRelPos, QUERY_BLOCK, host_encoder_attention};
pub use host_experts::HostExperts;
pub use host_linear::{SKINNY_ROWS, host_linear, host_matmul};
pub use ints::{increment_ints, increment_ints_reference, overwrite_ints, overwrite_ints_reference};
pub use norm::{add_rms_norm, add_rms_norm_reference, layer_norm, layer_norm_reference, rms_norm, rms_norm_reference};
pub use parts::PartialSums;
pub use prefill_attention::{prefill_attention, prefill_attention_reference};
pub use projection::{
    MAX_EXPERT_PAIRS, MAX_KERNEL_ROWS, expert_down, expert_down_parts, expert_down_reference, expert_kernels_take, expert_swiglu,
    expert_swiglu_reference, linear, linear_layer, linear_parts, linear_reference, swiglu, swiglu_reference,
};
#[cfg(feature = "cuda")]
pub use rel_pos::rel_pos_terms_kernel;
pub use rel_pos::{rel_pos_terms, rel_pos_terms_reference};
pub use rope::{rope_qkv_cached, rope_qkv_cached_reference};
pub use router::{RouterConfig, route, route_reference};

/// Whether `device` runs CubeCL kernels (a CUDA device in a `cuda` build).
pub fn runs_cube_kernels(device: &burn::tensor::Device) -> bool {
    #[cfg(feature = "cuda")]
    {
        matches!(device.as_dispatch(), burn::backend::DispatchDevice::Cube(_))
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = device;
        false
    }
}

/// Most activation rows one launch of the tile kernel covers: a cube per 64 rows along the grid's
/// second dimension, which CUDA limits to 65,535. (The kernel also takes only operands of fewer
/// than 2³² elements, for its 32-bit offsets: `crate::cuda::tile_takes_linear`.)
pub const TILE_MAX_ROWS: usize = 65_535 * 64;

/// Process-wide choices of which kernels run, for comparing them (the defaults are the fast
/// ones). Set with [`configure`] before running a model (the engine's options carry them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSettings {
    /// Run dsocr's kernels (default): the CubeCL kernels on a GPU, the host attention of the
    /// vision encoders on the CPU; off: Burn's generic kernels everywhere (to compare).
    pub enabled: bool,
    /// Tokens from which the MoE experts run grouped by expert rather than per (token, expert)
    /// pair (default 32; docs/perf.md, session 6).
    pub grouped_from: usize,
    /// Most activation rows a linear runs on dsocr's tensor-core tile kernel (past
    /// [`MAX_KERNEL_ROWS`]; more rows: Burn's matmul); 0: never. By default every linear the
    /// kernel takes, up to [`TILE_MAX_ROWS`]: the prefill's and the encoders' too, without Burn's
    /// autotuning on a first run; warm, as fast for one page and up to 12 % slower on batches of
    /// views (docs/perf.md, sessions 15 and 25).
    pub tile_rows: usize,
    /// Tokens from which the MoE experts run on the tensor-core tile kernel, grouped by expert
    /// (decode batches and prefill chunks); `usize::MAX`: never.
    pub tile_experts_from: usize,
    /// SAM's relative-position terms on dsocr's kernel (`rel_pos_terms_kernel`, in `cuda`
    /// builds) instead of two batched products on Burn's autotuned matmul. Off by default until
    /// the kernel's corrected version has passed `kernels-check` and bf16 parity on a GPU: its
    /// first version wrote its output as if unpadded, but CubeCL's CUDA runtime pads each row of
    /// a new tensor to a power of two bytes (SAM's windows: 28 terms a row), which CubeCL's CPU
    /// runtime does not (docs/perf.md, session 26).
    pub rel_pos_kernel: bool,
}

impl KernelSettings {
    /// The defaults (measured on an H200: docs/perf.md).
    pub const DEFAULT: KernelSettings =
        KernelSettings { enabled: true, grouped_from: 32, tile_rows: TILE_MAX_ROWS, tile_experts_from: 32, rel_pos_kernel: false };
}

impl Default for KernelSettings {
    fn default() -> Self {
        KernelSettings::DEFAULT
    }
}

static SETTINGS: std::sync::RwLock<KernelSettings> = std::sync::RwLock::new(KernelSettings::DEFAULT);

/// Set the process-wide [`KernelSettings`].
pub fn configure(settings: KernelSettings) {
    *SETTINGS.write().unwrap_or_else(std::sync::PoisonError::into_inner) = settings;
}

/// The current [`KernelSettings`].
pub fn settings() -> KernelSettings {
    *SETTINGS.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether dsocr's kernels run on `device`: a CubeCL device, unless [`KernelSettings::enabled`]
/// is off (Burn's generic kernels everywhere, to compare the two).
pub fn kernels_enabled(device: &burn::tensor::Device) -> bool {
    settings().enabled && runs_cube_kernels(device)
}

/// Whether dsocr's host kernels (the CPU's encoder attention and GELU) run for a tensor on
/// `device` in `dtype`: the CPU in f32, unless [`KernelSettings::enabled`] is off.
pub(crate) fn host_kernels_enabled(device: &burn::tensor::Device, dtype: burn::tensor::DType) -> bool {
    settings().enabled && !runs_cube_kernels(device) && dtype == burn::tensor::DType::F32
}
