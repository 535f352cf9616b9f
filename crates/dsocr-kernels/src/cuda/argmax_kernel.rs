//! Greedy decoding's argmax over the vocabulary as one CubeCL kernel, written straight into the
//! decode loop's input-token buffer as well as a fresh output (replacing Burn's argmax, 33 µs at
//! 129,280 logits, and the separate token write).
//!
//! One cube of [`PLANES`] planes per row: each unit scans a strided share of the row keeping its
//! first maximum, then plane reductions (largest value, then the lowest index holding it) and a
//! pass over the planes' winners give the row's first maximum, as `torch.argmax` picks.
//! This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

use super::lanes::{lanes_max, lanes_min};

/// Planes per cube on NVIDIA GPUs. On CubeCL's CPU runtime (one-lane planes) a cube is one unit: its cube barrier spins
/// one thread per unit, far slower than the work once units outnumber cores.
pub(super) const PLANES: u32 = 32;
/// Lanes per plane of NVIDIA GPUs (warps). The kernel takes the device's lane count (`lanes`: 32
/// there, 1 on CubeCL's CPU runtime, where it is tested without a GPU).
pub(super) const PLANE: u32 = 32;
/// Index of no element (larger than any row).
const NONE: u32 = 0xFFFF_FFFF;

/// `tokens[b] = next[b] = argmax(logits[b, :])` (the first maximum) for `logits` `[B, V]`.
#[cube(launch)]
pub(super) fn argmax_rows_kernel<F: Float, I: Int>(
    logits: &Tensor<F>,
    tokens: &mut Tensor<I>,
    next: &mut Tensor<I>,
    #[comptime] lanes: u32,
    #[comptime] planes: u32,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let b = CUBE_POS_X as usize;
    let units = (lanes * planes) as usize;
    let unit = UNIT_POS_Y as usize * lanes as usize + UNIT_POS_X as usize;
    let (row, col) = (b * logits.stride(0), logits.stride(1));
    let width = logits.shape(1);

    // Every unit starts from the row's first element (index 0, below any other) and keeps the
    // first of equal values it meets (strict `>`); NaN logits are never chosen.
    let mut best = f32::cast_from(logits[row]);
    let mut index = 0u32;
    let mut i = unit;
    // Four loads in flight per iteration; compared in index order (first maximum kept).
    while i + 3 * units < width {
        let v0 = f32::cast_from(logits[row + i * col]);
        let v1 = f32::cast_from(logits[row + (i + units) * col]);
        let v2 = f32::cast_from(logits[row + (i + 2 * units) * col]);
        let v3 = f32::cast_from(logits[row + (i + 3 * units) * col]);
        if v0 > best {
            best = v0;
            index = i as u32;
        }
        if v1 > best {
            best = v1;
            index = (i + units) as u32;
        }
        if v2 > best {
            best = v2;
            index = (i + 2 * units) as u32;
        }
        if v3 > best {
            best = v3;
            index = (i + 3 * units) as u32;
        }
        i += 4 * units;
    }
    while i < width {
        let v = f32::cast_from(logits[row + i * col]);
        if v > best {
            best = v;
            index = i as u32;
        }
        i += units;
    }

    // The plane's largest value, then the lowest index among the lanes holding it.
    let top = lanes_max::<f32>(best, lanes);
    let mut candidate = index;
    if best != top {
        candidate = NONE;
    }
    let first = lanes_min::<u32>(candidate, lanes);
    let mut values = Shared::<[f32]>::new_slice(planes as usize);
    let mut indices = Shared::<[u32]>::new_slice(planes as usize);
    if UNIT_POS_X == 0 {
        values[UNIT_POS_Y as usize] = top;
        indices[UNIT_POS_Y as usize] = first;
    }
    sync_cube();
    if unit == 0 {
        let mut best_all = values[0];
        let mut index_all = indices[0];
        for p in 1..planes as usize {
            let (v, at) = (values[p], indices[p]);
            if v > best_all || (v == best_all && at < index_all) {
                best_all = v;
                index_all = at;
            }
        }
        let (at_tokens, at_next) = (b * tokens.stride(0), b * next.stride(0));
        tokens[at_tokens] = I::cast_from(index_all);
        next[at_next] = I::cast_from(index_all);
    }
}
