//! Rotary position embedding on the fused q/k/v projection (MODEL_SPEC §3.7: Llama/NeoX
//! "rotate-half" over the full head dimension): the projection's `[B·T, 3H]` output becomes the
//! rotated queries and keys and the values, each `[B, heads, T, d]`.

use burn::prelude::*;

/// Split `qkv` `[B·T, 3H]` (columns `[q | k | v]`) into heads and rotate q and k by the tables
/// `cos`/`sin` `[B, 1, T, d]` (each row the angles' cos/sin, halves duplicated). Returns
/// `(q, k, v)` `[B, heads, T, d]`. One kernel on a CubeCL device; the Burn definition elsewhere.
pub fn rope_qkv(qkv: Tensor<2>, cos: &Tensor<4>, sin: &Tensor<4>, heads: usize) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    #[cfg(feature = "cuda")]
    if crate::kernels_enabled(&qkv.device()) && qkv.dtype() == cos.dtype() && qkv.dtype() == sin.dtype() && cos.dims()[3] % 2 == 0 {
        return crate::cuda::rope_qkv(qkv, cos.clone(), sin.clone(), heads);
    }
    rope_qkv_reference(qkv, cos, sin, heads)
}

/// The Burn definition of [`rope_qkv`].
pub fn rope_qkv_reference(qkv: Tensor<2>, cos: &Tensor<4>, sin: &Tensor<4>, heads: usize) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let [b, _, t, d] = cos.dims();
    let hidden = heads * d;
    let split = |part: usize| qkv.clone().narrow(1, part * hidden, hidden).reshape([b, t, heads, d]).swap_dims(1, 2);
    (rotate(split(0), cos, sin), rotate(split(1), cos, sin), split(2))
}

/// `x·cos + rotate_half(x)·sin` with `rotate_half([x1, x2]) = [−x2, x1]`.
fn rotate(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let d = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, d / 2);
    let x2 = x.clone().narrow(3, d / 2, d / 2);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}
