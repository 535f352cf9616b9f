//! # dsocr-kernels
//!
//! GPU kernels for the hot path of decoding, written in CubeCL and reached from Burn tensors
//! through a backend extension. Each operation has two implementations:
//!
//! - a reference made of plain Burn operations, which runs on every backend (the CPU included)
//!   and defines what the kernel must compute;
//! - with the `cuda` feature, a CubeCL kernel used when the tensors live on a CubeCL device.
//!
//! Callers use the dispatching function ([`decode_attention`]); tests compare the kernel with
//! the reference on the GPU (skipped without one).

mod check;
mod decode_attention;

#[cfg(feature = "cuda")]
mod cuda;

pub use check::{KernelCheck, check_kernels};
pub use decode_attention::{decode_attention, decode_attention_reference};

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
