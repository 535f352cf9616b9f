//! A projection's result left as the parts its kernel produced, for the next kernel to sum.
//!
//! Two decode-step kernels end with a second, tiny launch that only sums: a linear layer split
//! over `K` (f32 partial products, one per split) and the chosen experts' down projections (one
//! product per (token, expert slot), summed with the routing weights). The kernel that consumes
//! the result — the residual add + RMSNorm, or RoPE — can read the parts and sum them itself,
//! which saves that launch (≈ 3.5-4.3 µs each, three per decoder layer at batch 1).
//! [`PartialSums`] carries such a result to its consumer; anything else calls
//! [`PartialSums::sum`].

use burn::prelude::*;
use burn::tensor::DType;

/// An `[M, N]` result, either whole or as parts still to be summed.
#[derive(Debug, Clone)]
pub struct PartialSums {
    pub(crate) parts: Tensor<2>,
    pub(crate) layout: PartsLayout,
}

/// How the rows of [`PartialSums::parts`] add up to the result. Only the kernels produce parts
/// (a build without them has whole results only).
/// (The weights make `Slots` larger than the others; a layout lives for one call, on the stack.)
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
#[allow(clippy::large_enum_variant)]
pub(crate) enum PartsLayout {
    /// `parts` is the result.
    Whole,
    /// `parts` `[S·M, N]` (f32): `result[m] = round(Σ_s parts[s·M + m])` to `dtype`, summed in
    /// split order.
    Splits { count: usize, dtype: DType },
    /// `parts` `[M·S, N]` (the result's float type): `result[m] = round(Σ_s weights[m, s] ·
    /// parts[m·S + s])`, summed in f32 in slot order; `weights` `[M, S]` (f32).
    Slots { weights: Tensor<2> },
}

impl From<Tensor<2>> for PartialSums {
    fn from(whole: Tensor<2>) -> Self {
        PartialSums { parts: whole, layout: PartsLayout::Whole }
    }
}

impl PartialSums {
    /// The result's shape `[M, N]`.
    pub fn dims(&self) -> [usize; 2] {
        let [rows, n] = self.parts.dims();
        [rows / self.count(), n]
    }

    /// The result's float type.
    pub fn dtype(&self) -> DType {
        match &self.layout {
            PartsLayout::Splits { dtype, .. } => *dtype,
            _ => self.parts.dtype(),
        }
    }

    /// The device the parts live on.
    pub fn device(&self) -> Device {
        self.parts.device()
    }

    /// How many parts make each row (1 when whole).
    pub(crate) fn count(&self) -> usize {
        match &self.layout {
            PartsLayout::Whole => 1,
            PartsLayout::Splits { count, .. } => *count,
            PartsLayout::Slots { weights } => weights.dims()[1],
        }
    }

    /// The result as one tensor `[M, N]`, summed with Burn's operations (the order of the f32
    /// sums may differ from the consuming kernels' by rounding).
    pub fn sum(self) -> Tensor<2> {
        let [m, n] = self.dims();
        match self.layout {
            PartsLayout::Whole => self.parts,
            PartsLayout::Splits { count, dtype } => self.parts.reshape([count, m, n]).sum_dim(0).reshape([m, n]).cast(dtype),
            PartsLayout::Slots { weights } => {
                let (dtype, s) = (self.parts.dtype(), weights.dims()[1]);
                let weighted = self.parts.reshape([m, s, n]).cast(DType::F32) * weights.cast(DType::F32).unsqueeze_dim::<3>(2);
                weighted.sum_dim(1).reshape([m, n]).cast(dtype)
            }
        }
    }
}
