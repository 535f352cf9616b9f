//! RoPE on the fused QKV projection as one CubeCL kernel: reads the `[B·T, 3H]` output of the
//! q/k/v projection, rotates q and k (rotate-half), writes q as a contiguous `[B, heads, T, d]`
//! tensor and k and v straight into their KV-cache slots, replacing the narrow / transpose /
//! negate / concatenate / multiply-add chain of the reference and the two cache writes.
//!
//! One unit per (row, head, pair `i < d/2`) handles elements `i` and `i + d/2` of q, k and v.
//! The products and the sum are computed in the storage type, op by op, as the reference does.
//! Each sequence's block table and first slot are read from device tensors, not launch arguments,
//! so a decode step's launch is the same at every position (what a captured CUDA graph needs).
//! The projection may arrive as the f32 partial products of a linear layer split over `K`
//! ([`crate::PartialSums`]); the kernel sums them (saving the separate summing launch).
//! This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

use super::parts_kernel::part_sum;

/// Column `col` of projection row `row`: the sum of its `splits` f32 parts, rounded to `F`.
#[cube]
fn projected<F: Float, P: Float>(qkv: &Tensor<P>, row: usize, col: usize, rows: usize, #[comptime] splits: u32) -> F {
    F::cast_from(part_sum::<P, P>(qkv, qkv, row, col, rows, splits, false))
}

/// `q` `[B, heads, T, d]` and, for each sequence `b`, slots `starts[b]..starts[b] + T` of its
/// blocks `tables[b, ..]` of `k`, `v` `[blocks, heads, L, d]` (slot `s` is slot `s % L` of block
/// `tables[b, s / L]`), from `qkv` `[B·T, 3·heads·d]` (as `splits` parts `[splits·B·T, 3·heads·d]`)
/// and the RoPE tables `cos`, `sin` `[P, d]`; the token in slot `s` has position `s`. Slots past
/// the table are clamped to its last slot (memory safety only: the caller keeps them within it).
#[cube(launch)]
pub(super) fn rope_qkv_kernel<F: Float, P: Float, I: Numeric>(
    qkv: &Tensor<P>,
    cos: &Tensor<F>,
    sin: &Tensor<F>,
    tables: &Tensor<I>,
    starts: &Tensor<I>,
    q: &mut Tensor<F>,
    k: &mut Tensor<F>,
    v: &mut Tensor<F>,
    #[comptime] splits: u32,
    #[define(F, P, I)] _dtypes: [ElemType; 3],
) {
    let (heads, t_len, d) = (q.shape(1), q.shape(2), q.shape(3));
    let half = d / 2;
    let rows = qkv.shape(0) / splits as usize;
    let pos = ABSOLUTE_POS;
    if pos < rows * heads * half {
        let i = pos % half;
        let head = (pos / half) % heads;
        let row = pos / (half * heads);
        let (b, t) = (row / t_len, row % t_len);
        let hidden = heads * d;
        let lo = head * d + i;
        let hi = lo + half;
        let block_len = k.shape(2);
        let position = clamp_max(u32::cast_from(starts[b * starts.stride(0)]) as usize + t, tables.shape(1) * block_len - 1);
        let block = u32::cast_from(tables[b * tables.stride(0) + (position / block_len) * tables.stride(1)]) as usize;
        let slot = position % block_len;
        // Never past the RoPE tables (the caller keeps positions within them; this only guards memory).
        let position = clamp_max(position, cos.shape(0) - 1);
        let table = position * cos.stride(0);
        let (c_lo, c_hi) = (cos[table + i * cos.stride(1)], cos[table + (i + half) * cos.stride(1)]);
        let table = position * sin.stride(0);
        let (s_lo, s_hi) = (sin[table + i * sin.stride(1)], sin[table + (i + half) * sin.stride(1)]);

        let out = b * q.stride(0) + head * q.stride(1) + t * q.stride(2);
        let (at_lo, at_hi) = (out + i * q.stride(3), out + (i + half) * q.stride(3));
        // Rotate-half: [x1, x2] → [x1·c − x2·s, x2·c + x1·s] (cat(−x2, x1)·sin added).
        let x1 = projected::<F, P>(qkv, row, lo, rows, splits);
        let x2 = projected::<F, P>(qkv, row, hi, rows, splits);
        q[at_lo] = x1 * c_lo - x2 * s_lo;
        q[at_hi] = x2 * c_hi + x1 * s_hi;
        let x1 = projected::<F, P>(qkv, row, hidden + lo, rows, splits);
        let x2 = projected::<F, P>(qkv, row, hidden + hi, rows, splits);
        let out = block * k.stride(0) + head * k.stride(1) + slot * k.stride(2);
        let (at_lo, at_hi) = (out + i * k.stride(3), out + (i + half) * k.stride(3));
        k[at_lo] = x1 * c_lo - x2 * s_lo;
        k[at_hi] = x2 * c_hi + x1 * s_hi;
        let out = block * v.stride(0) + head * v.stride(1) + slot * v.stride(2);
        let (at_lo, at_hi) = (out + i * v.stride(3), out + (i + half) * v.stride(3));
        v[at_lo] = projected::<F, P>(qkv, row, 2 * hidden + lo, rows, splits);
        v[at_hi] = projected::<F, P>(qkv, row, 2 * hidden + hi, rows, splits);
    }
}
