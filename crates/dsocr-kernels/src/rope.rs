//! Rotary position embedding on the fused q/k/v projection (MODEL_SPEC §3.7: Llama/NeoX
//! "rotate-half" over the full head dimension), with the rotated keys and the values written
//! into the KV cache: the projection's `[B·T, 3H]` output becomes the rotated queries
//! `[B, heads, T, d]` and cache slots `start..start + T`.
//!
//! Sequences of a batch are left-padded: the token in cache slot `s` of sequence `b` has position
//! `max(s − pads[b], 0)` (padding slots take position 0; their results are never attended to).
//! The first slot and the pads are device tensors, so a decode step issues the same launch at
//! every position (see `dsocr_lm`'s captured decode step).

use burn::prelude::*;

use crate::ints::host_ints;
use crate::parts::PartialSums;

/// Split `qkv` `[B·T, 3H]` (columns `[q | k | v]`) into heads, rotate q and k by the rows of the
/// tables `cos`/`sin` `[P, d]` (row `p`: the cos/sin of position `p`'s angles, halves
/// duplicated) at each token's position, and write k and v into slots `start[0]..start[0] + T`
/// of `keys`/`values` `[B, heads, S, d]`. `pads` `[B]`, `start` `[1]`; the caller keeps
/// `start[0] + T ≤ S` and the positions below `P`. Returns `(q, keys, values)` with q
/// `[B, heads, T, d]`. The caches are written in place when nothing else holds them. One kernel
/// on a CubeCL device (which also sums `qkv`'s split-K parts, see [`crate::linear_parts`]); the
/// Burn definition elsewhere.
#[allow(clippy::too_many_arguments)]
pub fn rope_qkv_cached(
    qkv: impl Into<PartialSums>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    pads: &Tensor<1, Int>,
    start: &Tensor<1, Int>,
    heads: usize,
    keys: Tensor<4>,
    values: Tensor<4>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let qkv = qkv.into();
    #[cfg(feature = "cuda")]
    if crate::kernels_enabled(&qkv.device())
        && !matches!(qkv.layout, crate::parts::PartsLayout::Slots { .. })
        && qkv.dtype() == cos.dtype()
        && qkv.dtype() == sin.dtype()
        && qkv.dtype() == keys.dtype()
        && qkv.dtype() == values.dtype()
        && pads.dtype() == start.dtype()
        && cos.dims()[1].is_multiple_of(2)
    {
        let splits = qkv.count();
        return crate::cuda::rope_qkv_cached(qkv.parts, splits, cos.clone(), sin.clone(), pads.clone(), start.clone(), heads, keys, values);
    }
    rope_qkv_cached_reference(qkv.sum(), cos, sin, pads, start, heads, keys, values)
}

/// The Burn definition of [`rope_qkv_cached`]. It reads `start` and `pads` back to the host (to
/// pick the table rows and the cache slots), so it waits for the device.
#[allow(clippy::too_many_arguments)]
pub fn rope_qkv_cached_reference(
    qkv: Tensor<2>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    pads: &Tensor<1, Int>,
    start: &Tensor<1, Int>,
    heads: usize,
    keys: Tensor<4>,
    values: Tensor<4>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let d = cos.dims()[1];
    let pads = host_ints(pads);
    let start = host_ints(start)[0] as usize;
    let b = pads.len();
    let t = qkv.dims()[0] / b;
    let positions: Vec<i64> = pads.iter().flat_map(|&pad| (start..start + t).map(move |slot| (slot as i64 - pad).max(0))).collect();
    let positions = Tensor::<1, Int>::from_data(TensorData::new(positions, [b * t]), &qkv.device());
    let rows = |table: &Tensor<2>| table.clone().select(0, positions.clone()).reshape([b, 1, t, d]);
    let (cos, sin) = (rows(cos), rows(sin));
    let hidden = heads * d;
    let split = |part: usize| qkv.clone().narrow(1, part * hidden, hidden).reshape([b, t, heads, d]).swap_dims(1, 2);
    let slots = [0..b, 0..heads, start..start + t, 0..d];
    let keys = keys.slice_assign(slots.clone(), rotate(split(1), &cos, &sin));
    let values = values.slice_assign(slots, split(2));
    (rotate(split(0), &cos, &sin), keys, values)
}

/// `x·cos + rotate_half(x)·sin` with `rotate_half([x1, x2]) = [−x2, x1]`.
fn rotate(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let d = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, d / 2);
    let x2 = x.clone().narrow(3, d / 2, d / 2);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone() + rotated * sin.clone()
}
