//! Rotary position embedding on the fused q/k/v projection (MODEL_SPEC §3.7: Llama/NeoX
//! "rotate-half" over the full head dimension), with the rotated keys and the values written
//! into the KV cache: the projection's `[B·T, 3H]` output becomes the rotated queries
//! `[B, heads, T, d]` and cache slots `start..start + T`.

use burn::prelude::*;

/// Split `qkv` `[B·T, 3H]` (columns `[q | k | v]`) into heads, rotate q and k by the tables
/// `cos`/`sin` `[B, 1, T, d]` (each row the angles' cos/sin, halves duplicated), and write k and
/// v into slots `start..start + T` of `keys`/`values` `[B, heads, S, d]`. Returns `(q, keys,
/// values)` with q `[B, heads, T, d]`. The caches are written in place when nothing else holds
/// them. One kernel on a CubeCL device; the Burn definition elsewhere.
pub fn rope_qkv_cached(
    qkv: Tensor<2>,
    cos: &Tensor<4>,
    sin: &Tensor<4>,
    heads: usize,
    keys: Tensor<4>,
    values: Tensor<4>,
    start: usize,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    #[cfg(feature = "cuda")]
    if crate::kernels_enabled(&qkv.device())
        && qkv.dtype() == cos.dtype()
        && qkv.dtype() == sin.dtype()
        && qkv.dtype() == keys.dtype()
        && qkv.dtype() == values.dtype()
        && cos.dims()[3] % 2 == 0
    {
        return crate::cuda::rope_qkv_cached(qkv, cos.clone(), sin.clone(), heads, keys, values, start);
    }
    rope_qkv_cached_reference(qkv, cos, sin, heads, keys, values, start)
}

/// The Burn definition of [`rope_qkv_cached`].
pub fn rope_qkv_cached_reference(
    qkv: Tensor<2>,
    cos: &Tensor<4>,
    sin: &Tensor<4>,
    heads: usize,
    keys: Tensor<4>,
    values: Tensor<4>,
    start: usize,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let [b, _, t, d] = cos.dims();
    let hidden = heads * d;
    let split = |part: usize| qkv.clone().narrow(1, part * hidden, hidden).reshape([b, t, heads, d]).swap_dims(1, 2);
    let slots = [0..b, 0..heads, start..start + t, 0..d];
    let keys = keys.slice_assign(slots.clone(), rotate(split(1), cos, sin));
    let values = values.slice_assign(slots, split(2));
    (rotate(split(0), cos, sin), keys, values)
}

/// `x·cos + rotate_half(x)·sin` with `rotate_half([x1, x2]) = [−x2, x1]`.
fn rotate(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let d = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, d / 2);
    let x2 = x.clone().narrow(3, d / 2, d / 2);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}
