//! The chosen experts' projections for a batch of tokens, grouped by expert: a cube serves up
//! to [`GROUP_ROWS`] (token, slot) pairs that chose the same expert, so each weight row read from
//! memory is used for all of them (the per-pair kernels of `skinny_kernels.rs` read an expert
//! once per pair: fine for one token's eight pairs, ≈ 30× the bank's size at 32 tokens).
//!
//! [`group_pairs_kernel`] lists, per expert, the pairs that chose it (from the router's ids, on
//! the device: no host sync). The projection kernels run one cube row per (expert, chunk of
//! `GROUP_ROWS` pairs); chunks past an expert's count exit at once. Results are per pair, in the
//! per-pair kernels' layout, so the routing-weighted sum that follows is the same.
//! This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

use super::lanes::{lanes_exclusive_sum, lanes_sum};

use super::skinny_kernels::sum_over_k_lanes;

/// Pairs one cube serves (registers hold two f32 vectors per pair in the SwiGLU kernel).
pub(super) const GROUP_ROWS: u32 = 4;
/// Lanes per plane of NVIDIA GPUs (warps); one plane lists one expert's pairs. The listing kernel
/// takes the device's lane count (`lanes`: 32 there, 1 on CubeCL's CPU runtime, where it is tested
/// without a GPU).
pub(super) const PLANE: u32 = 32;
/// Planes (experts) per cube of the listing kernel.
pub(super) const LIST_PLANES: u32 = 4;

/// For expert `e` (cube `c`, plane `p`: `e = c · LIST_PLANES + p`): `lists[e, ..counts[e]]` =
/// the pairs `p = m·S + s` with `ids[m, s] = e`, in increasing order. `ids` `[M, S]`, `lists`
/// `[E, M]` (an expert is chosen at most once per token; more are dropped), `counts` `[E]`.
#[cube(launch)]
pub(super) fn group_pairs_kernel<I: Int>(
    ids: &Tensor<I>,
    lists: &mut Tensor<i32>,
    counts: &mut Tensor<i32>,
    #[comptime] lanes: u32,
    #[define(I)] _dtype: ElemType,
) {
    let e = (CUBE_POS_X * LIST_PLANES + UNIT_POS_Y) as usize;
    let lane = UNIT_POS_X as usize;
    let (slots, capacity) = (ids.shape(1), lists.shape(1));
    let total = ids.shape(0) * slots;
    // The whole plane takes the same branch (one expert per plane), as the plane sums need.
    if e < lists.shape(0) {
        let mut found = 0usize;
        let mut j = 0usize;
        while j < total {
            let p = j + lane;
            let mut hit = 0u32;
            if p < total {
                let id = ids[(p / slots) * ids.stride(0) + (p % slots) * ids.stride(1)];
                if i32::cast_from(id) == e as i32 {
                    hit = 1;
                }
            }
            let at = found + lanes_exclusive_sum::<u32>(hit, lanes) as usize;
            let to = e * lists.stride(0) + at * lists.stride(1);
            if hit == 1 && at < capacity {
                lists[to] = p as i32;
            }
            found += lanes_sum::<u32>(hit, lanes) as usize;
            j += lanes as usize;
        }
        let to = e * counts.stride(0);
        if lane == 0 {
            counts[to] = i32::cast_from(clamp_max(found, capacity));
        }
    }
}

/// The pairs a cube serves: `(expert, first index into its list, how many)`; `how many` is 0
/// for chunks past the expert's count.
#[cube]
fn cube_pairs(counts: &Tensor<i32>, chunks: u32) -> (usize, usize, usize) {
    let expert = (CUBE_POS_Z / chunks) as usize;
    let first = (CUBE_POS_Z % chunks * GROUP_ROWS) as usize;
    let count = u32::cast_from(counts[expert * counts.stride(0)]) as usize;
    let mut served = 0usize;
    if first < count {
        served = clamp_max(count - first, GROUP_ROWS as usize);
    }
    (expert, first, served)
}

/// SwiGLU's first half for the pairs grouped by expert: `out[p, :] = SiLU(x[m]·G[e]) ⊙
/// (x[m]·U[e])` for every pair `p = m·S + s` in `lists[e]`. `gate`/`up` `[E, K, N]`, `x`
/// `[M, K]`, `out` `[M·S, N]`; cube row `z = e · chunks + c` serves chunk `c` of expert `e`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn grouped_swiglu_kernel<F: Float, N: Size>(
    x: &Tensor<F>,
    gate: &Tensor<Vector<F, N>>,
    up: &Tensor<Vector<F, N>>,
    lists: &Tensor<i32>,
    counts: &Tensor<i32>,
    out: &mut Tensor<Vector<F, N>>,
    chunks: u32,
    slots: u32,
    #[comptime] col_threads: u32,
    #[comptime] k_threads: u32,
    #[define(F)] _dtype: ElemType,
) {
    let (expert, first, served) = cube_pairs(counts, chunks);
    // Uniform per cube: a chunk with no pairs leaves before any shared-memory step.
    if served > 0 {
        let vec = gate.vector_size();
        let col = CUBE_POS_X as usize * col_threads as usize + UNIT_POS_X as usize;
        let live = col < gate.shape(2) / vec;
        let rows = GROUP_ROWS as usize;
        let mut pair = Array::<usize>::new(rows);
        let mut acc_g = Array::<Vector<f32, N>>::new(rows);
        let mut acc_u = Array::<Vector<f32, N>>::new(rows);
        #[unroll]
        for r in 0..rows {
            pair[r] = u32::cast_from(lists[expert * lists.stride(0) + clamp_max(first + r, first + served - 1) * lists.stride(1)]) as usize;
            acc_g[r] = Vector::broadcast(f32::new(0.0));
            acc_u[r] = Vector::broadcast(f32::new(0.0));
        }
        let (g_base, u_base) = (expert * gate.stride(0) / vec, expert * up.stride(0) / vec);
        let (g_row, u_row) = (gate.stride(1) / vec, up.stride(1) / vec);
        if live {
            let step = k_threads as usize;
            let k_total = x.shape(1);
            let mut k = UNIT_POS_Y as usize;
            // Two weight rows per iteration, loaded before the sums (more reads in flight); the
            // sums keep the one-row order.
            while k < k_total {
                let k1 = clamp_max(k + step, k_total - 1);
                let (g0, u0) = (gate[g_base + k * g_row + col], up[u_base + k * u_row + col]);
                let (g1, u1) = (gate[g_base + k1 * g_row + col], up[u_base + k1 * u_row + col]);
                let second = k + step < k_total;
                #[unroll]
                for r in 0..rows {
                    if r < served {
                        let at = (pair[r] / slots as usize) * x.stride(0);
                        let xv = Vector::<f32, N>::broadcast(f32::cast_from(x[at + k * x.stride(1)]));
                        acc_g[r] += Vector::<f32, N>::cast_from(g0) * xv;
                        acc_u[r] += Vector::<f32, N>::cast_from(u0) * xv;
                        if second {
                            let xv = Vector::<f32, N>::broadcast(f32::cast_from(x[at + k1 * x.stride(1)]));
                            acc_g[r] += Vector::<f32, N>::cast_from(g1) * xv;
                            acc_u[r] += Vector::<f32, N>::cast_from(u1) * xv;
                        }
                    }
                }
                k += 2 * step;
            }
        }
        let mut smem = Shared::<[Vector<f32, N>]>::new_slice((col_threads * k_threads) as usize);
        let one = Vector::<f32, N>::broadcast(f32::new(1.0));
        #[unroll]
        for r in 0..rows {
            let g = sum_over_k_lanes::<N>(&mut smem, acc_g[r], col_threads, k_threads);
            let u = sum_over_k_lanes::<N>(&mut smem, acc_u[r], col_threads, k_threads);
            if UNIT_POS_Y == 0 && live && r < served {
                let silu = g / (one + Vector::exp(Vector::<f32, N>::broadcast(f32::new(0.0)) - g));
                let at = pair[r] * (out.stride(0) / vec) + col;
                out[at] = Vector::cast_from(silu * u);
            }
        }
    }
}

/// The down projections of the pairs grouped by expert: `out[p, :] = act[p] · D[e]` for every
/// pair `p` in `lists[e]`, rounded to the float type. `act` `[M·S, K]`, `down` `[E, K, N]`,
/// `out` `[M·S, N]`; cube rows as in [`grouped_swiglu_kernel`].
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn grouped_down_kernel<F: Float, N: Size>(
    act: &Tensor<F>,
    down: &Tensor<Vector<F, N>>,
    lists: &Tensor<i32>,
    counts: &Tensor<i32>,
    out: &mut Tensor<Vector<F, N>>,
    chunks: u32,
    #[comptime] col_threads: u32,
    #[comptime] k_threads: u32,
    #[define(F)] _dtype: ElemType,
) {
    let (expert, first, served) = cube_pairs(counts, chunks);
    if served > 0 {
        let vec = down.vector_size();
        let col = CUBE_POS_X as usize * col_threads as usize + UNIT_POS_X as usize;
        let live = col < down.shape(2) / vec;
        let rows = GROUP_ROWS as usize;
        let mut pair = Array::<usize>::new(rows);
        let mut acc = Array::<Vector<f32, N>>::new(rows);
        #[unroll]
        for r in 0..rows {
            pair[r] = u32::cast_from(lists[expert * lists.stride(0) + clamp_max(first + r, first + served - 1) * lists.stride(1)]) as usize;
            acc[r] = Vector::broadcast(f32::new(0.0));
        }
        let base = expert * down.stride(0) / vec;
        let d_row = down.stride(1) / vec;
        if live {
            let step = k_threads as usize;
            let k_total = act.shape(1);
            let mut k = UNIT_POS_Y as usize;
            // Two weight rows per iteration, as in the SwiGLU kernel.
            while k < k_total {
                let k1 = clamp_max(k + step, k_total - 1);
                let (d0, d1) = (down[base + k * d_row + col], down[base + k1 * d_row + col]);
                let second = k + step < k_total;
                #[unroll]
                for r in 0..rows {
                    if r < served {
                        let at = pair[r] * act.stride(0);
                        let a = f32::cast_from(act[at + k * act.stride(1)]);
                        acc[r] += Vector::<f32, N>::cast_from(d0) * Vector::broadcast(a);
                        if second {
                            let a = f32::cast_from(act[at + k1 * act.stride(1)]);
                            acc[r] += Vector::<f32, N>::cast_from(d1) * Vector::broadcast(a);
                        }
                    }
                }
                k += 2 * step;
            }
        }
        let mut smem = Shared::<[Vector<f32, N>]>::new_slice((col_threads * k_threads) as usize);
        #[unroll]
        for r in 0..rows {
            let total = sum_over_k_lanes::<N>(&mut smem, acc[r], col_threads, k_threads);
            if UNIT_POS_Y == 0 && live && r < served {
                let at = pair[r] * (out.stride(0) / vec) + col;
                out[at] = Vector::cast_from(total);
            }
        }
    }
}
