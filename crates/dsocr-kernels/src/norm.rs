//! The residual add and RMSNorm that sit between a decoder layer's blocks (docs/model.md §6.1):
//! `h = x + delta`, then `RMSNorm(h) · weight` computed in f32 and rounded to the float type
//! before the weight is applied, as the reference does; and the plain RMSNorm that opens the first
//! layer (nothing to add yet); and the encoders' LayerNorm (docs/model.md §4.1).

use burn::prelude::*;

use crate::parts::PartialSums;

/// `(x + delta, RMSNorm(x + delta) · weight)` over the last dimension of `x`/`delta` `[M, H]`;
/// `weight` `[H]`. `delta` may be a projection's parts ([`PartialSums`]), summed by the kernel.
/// One kernel on a CubeCL device; the Burn definition elsewhere.
pub fn add_rms_norm(x: Tensor<2>, delta: impl Into<PartialSums>, weight: &Tensor<1>, eps: f64) -> (Tensor<2>, Tensor<2>) {
    let delta = delta.into();
    assert_eq!(x.dims(), delta.dims(), "add_rms_norm: the residual and the delta differ in shape");
    #[cfg(feature = "cuda")]
    if crate::kernels_enabled(&x.device()) && x.dtype() == delta.dtype() && x.dtype() == weight.dtype() {
        return crate::cuda::add_rms_norm(x, delta, weight.clone(), eps as f32);
    }
    add_rms_norm_reference(x, delta.sum(), weight, eps)
}

/// The Burn definition of [`add_rms_norm`].
pub fn add_rms_norm_reference(x: Tensor<2>, delta: Tensor<2>, weight: &Tensor<1>, eps: f64) -> (Tensor<2>, Tensor<2>) {
    let h = x + delta;
    let norm = dsocr_core::layers::RmsNorm { weight: weight.clone(), eps };
    (h.clone(), norm.forward(h))
}

/// `RMSNorm(x) · weight` over rows `[M, H]`: the first decoder layer's input norm (the residual
/// stream has no delta yet). On a CubeCL device the add + RMSNorm kernel with nothing to add (Burn's
/// reduction took 4 µs per decode step at one row and 100 µs at 32 rows); the Burn definition
/// elsewhere.
pub fn rms_norm(x: Tensor<2>, weight: &Tensor<1>, eps: f64) -> Tensor<2> {
    #[cfg(feature = "cuda")]
    if crate::kernels_enabled(&x.device()) && x.dtype() == weight.dtype() {
        return crate::cuda::rms_norm(x, weight.clone(), eps as f32);
    }
    rms_norm_reference(x, weight, eps)
}

/// The Burn definition of [`rms_norm`].
pub fn rms_norm_reference(x: Tensor<2>, weight: &Tensor<1>, eps: f64) -> Tensor<2> {
    dsocr_core::layers::RmsNorm { weight: weight.clone(), eps }.forward(x)
}

/// `norm` (LayerNorm over the last dimension) applied to `x`. On a CubeCL device in bf16/f16 one
/// kernel, a plane per row (Burn's fused reduction ran on 16 cubes: 210 µs for SAM's 4096 rows,
/// ≈10 ms of a page's vision pass); elsewhere Burn's definition ([`layer_norm_reference`]).
pub fn layer_norm<const D: usize>(x: Tensor<D>, norm: &dsocr_core::layers::LayerNorm) -> Tensor<D> {
    #[cfg(feature = "cuda")]
    {
        let dims = x.dims();
        let width = dims[D - 1];
        let same = x.dtype() == norm.weight.dtype() && x.dtype() == norm.bias.dtype();
        let rows = dims.iter().product::<usize>() / width.max(1);
        if crate::kernels_enabled(&x.device()) && same && crate::cuda::layer_norm_supported(x.dtype(), rows, width) {
            let y = crate::cuda::layer_norm(x.reshape([rows, width]), norm.weight.clone(), norm.bias.clone(), norm.eps as f32);
            return y.reshape(dims);
        }
    }
    layer_norm_reference(x, norm)
}

/// The Burn definition of [`layer_norm`].
pub fn layer_norm_reference<const D: usize>(x: Tensor<D>, norm: &dsocr_core::layers::LayerNorm) -> Tensor<D> {
    norm.forward(x)
}
