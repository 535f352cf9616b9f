//! A decoder weight matrix held where its backend multiplies fastest (docs/perf.md, "CPU").
//!
//! On a GPU it is a device tensor `[d_in, d_out]` for dsocr's kernels and Burn's. On the CPU it
//! stays in host memory in the checkpoint's float type ([`HostMatrix`], bf16 for the release:
//! half the memory of f32) and is multiplied by [`dsocr_kernels::host_linear`], which streams the
//! weight once for the few rows of a decode step instead of packing it for a GEMM each call.

use burn::prelude::*;

use dsocr_core::{CoreError, HostMatrix, Weights};
use dsocr_kernels::PartialSums;

/// A linear layer's weight (no bias): `y = x · W`.
// A handful per layer, held for the model's life: the size of a CUDA tensor handle is no cost.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Projection {
    /// `[d_in, d_out]` on the device.
    Device(Tensor<2>),
    /// PyTorch layout `[d_out, d_in]` in host memory.
    Host(HostMatrix),
}

impl Projection {
    /// The weights `names` (each `[d_out, d_in]` in the checkpoint, under `w`) side by side along
    /// their outputs: one matrix of `names.len() · d_out` outputs.
    pub fn load(w: &Weights, names: &[&str], d_in: usize, d_out: usize) -> Result<Self, CoreError> {
        if dsocr_kernels::runs_cube_kernels(w.device()) {
            let parts = names.iter().map(|n| w.linear_weight(n, d_in, d_out)).collect::<Result<Vec<_>, _>>()?;
            return Ok(Projection::Device(if parts.len() == 1 { parts.into_iter().next().expect("one") } else { Tensor::cat(parts, 1) }));
        }
        let mut parts = names.iter().map(|n| w.host_linear(n, d_in, d_out)).collect::<Result<Vec<_>, _>>()?;
        Ok(Projection::Host(if parts.len() == 1 { parts.pop().expect("one") } else { HostMatrix::stack_rows(parts) }))
    }

    /// `x` `[N, d_in]` → `[N, d_out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Projection::Device(weight) => dsocr_kernels::linear(x, weight),
            Projection::Host(weight) => dsocr_kernels::host_linear(x, weight),
        }
    }

    /// [`Projection::forward`] left as the parts its kernel produced (see [`PartialSums`]).
    pub fn parts(&self, x: Tensor<2>) -> PartialSums {
        match self {
            Projection::Device(weight) => dsocr_kernels::linear_parts(x, weight),
            Projection::Host(weight) => dsocr_kernels::host_linear(x, weight).into(),
        }
    }
}
