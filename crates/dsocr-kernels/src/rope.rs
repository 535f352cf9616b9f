//! Rotary position embedding on the fused q/k/v projection (docs/model.md §6.2: Llama/NeoX
//! "rotate-half" over the full head dimension), with the rotated keys and the values written
//! into the KV pool: the projection's `[B·T, 3H]` output becomes the rotated queries
//! `[B, heads, T, d]` and, for each sequence, slots `starts[b]..starts[b] + T` of its own pool row.
//!
//! Every sequence has its own row (`rows[b]`) and length: the token in slot `s` has position `s`,
//! with no padding between sequences. Rows and first slots are device tensors, so a decode step
//! issues the same launch at every position (see `dsocr_engine`'s captured decode step).

use burn::prelude::*;

use crate::ints::host_ints;
use crate::parts::PartialSums;

/// Split `qkv` `[B·T, 3H]` (columns `[q | k | v]`) into heads, rotate q and k by the rows of the
/// tables `cos`/`sin` `[P, d]` (row `p`: the cos/sin of position `p`'s angles, halves
/// duplicated) at each token's position, and write k and v into slots `starts[b]..starts[b] + T`
/// of row `rows[b]` of `keys`/`values` `[R, heads, S, d]`. `rows`, `starts` `[B]`; the caller
/// keeps `starts[b] + T ≤ S` and the positions below `P`. Returns `(q, keys, values)` with q
/// `[B, heads, T, d]`. The caches are written in place when nothing else holds them. One kernel
/// on a CubeCL device (which also sums `qkv`'s split-K parts, see [`crate::linear_parts`]); the
/// Burn definition elsewhere.
#[allow(clippy::too_many_arguments)]
pub fn rope_qkv_cached(
    qkv: impl Into<PartialSums>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    rows: &Tensor<1, Int>,
    starts: &Tensor<1, Int>,
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
        && rows.dtype() == starts.dtype()
        && cos.dims()[1].is_multiple_of(2)
    {
        let splits = qkv.count();
        return crate::cuda::rope_qkv_cached(
            qkv.parts,
            splits,
            cos.clone(),
            sin.clone(),
            rows.clone(),
            starts.clone(),
            heads,
            keys,
            values,
        );
    }
    rope_qkv_cached_reference(qkv.sum(), cos, sin, rows, starts, heads, keys, values)
}

/// The Burn definition of [`rope_qkv_cached`]. It reads `rows` and `starts` back to the host (to
/// pick the table rows and the cache slots), so it waits for the device.
#[allow(clippy::too_many_arguments)]
pub fn rope_qkv_cached_reference(
    qkv: Tensor<2>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    rows: &Tensor<1, Int>,
    starts: &Tensor<1, Int>,
    heads: usize,
    mut keys: Tensor<4>,
    mut values: Tensor<4>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let d = cos.dims()[1];
    let rows = host_ints(rows);
    let starts = host_ints(starts);
    let b = rows.len();
    let t = qkv.dims()[0] / b;
    let positions: Vec<i64> = starts.iter().flat_map(|&start| start..start + t as i64).collect();
    let positions = Tensor::<1, Int>::from_data(TensorData::new(positions, [b * t]), &qkv.device());
    let table_rows = |table: &Tensor<2>| table.clone().select(0, positions.clone()).reshape([b, 1, t, d]);
    let (cos, sin) = (table_rows(cos), table_rows(sin));
    let hidden = heads * d;
    let split = |part: usize| qkv.clone().narrow(1, part * hidden, hidden).reshape([b, t, heads, d]).swap_dims(1, 2);
    let k = rotate(split(1), &cos, &sin);
    let v = split(2);
    for (i, (&row, &start)) in rows.iter().zip(&starts).enumerate() {
        let (row, start) = (row as usize, start as usize);
        let slots = [row..row + 1, 0..heads, start..start + t, 0..d];
        keys = keys.slice_assign(slots.clone(), k.clone().narrow(0, i, 1));
        values = values.slice_assign(slots, v.clone().narrow(0, i, 1));
    }
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
