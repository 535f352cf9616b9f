//! Rotary position embedding on the fused q/k/v projection (docs/model.md §6.2: Llama/NeoX
//! "rotate-half" over the full head dimension), with the rotated keys and the values written
//! into the KV pool: the projection's `[B·T, 3H]` output becomes the rotated queries
//! `[B, heads, T, d]` and, for each sequence, slots `starts[b]..starts[b] + T` of its own blocks.
//!
//! Every sequence has its own blocks (row `b` of the block table: slot `s` is slot `s % L` of
//! block `tables[b, s / L]`) and length: the token in slot `s` has position `s`, with no padding
//! between sequences. Tables and first slots are device tensors, so a decode step issues the same
//! launch at every position (see `dsocr_engine`'s captured decode step).

use burn::prelude::*;

use crate::ints::{host_ints, host_table};
use crate::parts::PartialSums;

/// Split `qkv` `[B·T, 3H]` (columns `[q | k | v]`) into heads, rotate q and k by the rows of the
/// tables `cos`/`sin` `[P, d]` (row `p`: the cos/sin of position `p`'s angles, halves
/// duplicated) at each token's position, and write k and v into slots `starts[b]..starts[b] + T`
/// of sequence `b`'s blocks `tables[b, ..]` of `keys`/`values` `[blocks, heads, L, d]`. `tables`
/// `[B, M]`, `starts` `[B]`; the caller keeps `starts[b] + T ≤ M·L` and the positions below `P`. Returns `(q, keys, values)` with q
/// `[B, heads, T, d]`. The caches are written in place when nothing else holds them. One kernel
/// on a CubeCL device (which also sums `qkv`'s split-K parts, see [`crate::linear_parts`]); the
/// Burn definition elsewhere.
#[allow(clippy::too_many_arguments)]
pub fn rope_qkv_cached(
    qkv: impl Into<PartialSums>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    tables: &Tensor<2, Int>,
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
        && tables.dtype() == starts.dtype()
        && cos.dims()[1].is_multiple_of(2)
    {
        let splits = qkv.count();
        return crate::cuda::rope_qkv_cached(
            qkv.parts,
            splits,
            cos.clone(),
            sin.clone(),
            tables.clone(),
            starts.clone(),
            heads,
            keys,
            values,
        );
    }
    rope_qkv_cached_reference(qkv.sum(), cos, sin, tables, starts, heads, keys, values)
}

/// The Burn definition of [`rope_qkv_cached`]. It reads `tables` and `starts` back to the host
/// (to pick the table rows and the cache slots), so it waits for the device.
#[allow(clippy::too_many_arguments)]
pub fn rope_qkv_cached_reference(
    qkv: Tensor<2>,
    cos: &Tensor<2>,
    sin: &Tensor<2>,
    tables: &Tensor<2, Int>,
    starts: &Tensor<1, Int>,
    heads: usize,
    mut keys: Tensor<4>,
    mut values: Tensor<4>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let d = cos.dims()[1];
    let block_len = keys.dims()[2];
    let tables = host_table(tables);
    let starts = host_ints(starts);
    let b = starts.len();
    let t = qkv.dims()[0] / b;
    let positions: Vec<i64> = starts.iter().flat_map(|&start| start..start + t as i64).collect();
    let positions = Tensor::<1, Int>::from_data(TensorData::new(positions, [b * t]), &qkv.device());
    let table_rows = |table: &Tensor<2>| table.clone().select(0, positions.clone()).reshape([b, 1, t, d]);
    let (cos, sin) = (table_rows(cos), table_rows(sin));
    let hidden = heads * d;
    let split = |part: usize| qkv.clone().narrow(1, part * hidden, hidden).reshape([b, t, heads, d]).swap_dims(1, 2);
    let k = rotate(split(1), &cos, &sin);
    let v = split(2);
    for (i, (blocks, &start)) in tables.iter().zip(&starts).enumerate() {
        // The tokens' slots, cut where they cross into the next block.
        let mut slot = start as usize;
        while slot < start as usize + t {
            let (block, at) = (blocks[slot / block_len] as usize, slot % block_len);
            let run = (block_len - at).min(start as usize + t - slot);
            let from = slot - start as usize;
            let target = [block..block + 1, 0..heads, at..at + run, 0..d];
            let part = |x: &Tensor<4>| x.clone().narrow(0, i, 1).narrow(2, from, run);
            keys = keys.slice_assign(target.clone(), part(&k));
            values = values.slice_assign(target, part(&v));
            slot += run;
        }
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
