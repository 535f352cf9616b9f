//! The MoE router as two CubeCL kernels: f32 logits against the router weight, then softmax,
//! top-k, optional renormalisation and the routed scaling factor. They replace a matmul, the
//! softmax's reductions, a top-k and the weight arithmetic (≈ 10 launches).
//!
//! Logits kernel: one plane (32 lanes) per (expert, token), [`PLANES`] experts per cube, so the
//! router weight is read by many SMs at once (one cube per token read it at ≈ 9 GB/s: 36 µs per
//! decode step and layer). Lanes split the hidden size; a plane sum finishes each dot product.
//! Top-k kernel: one plane per token holds `⌈E / 32⌉` probabilities per lane and picks the top k
//! one by one with plane reductions (ties go to the lower expert id). The shared experts, run as
//! always-on experts `E, E + 1, …` with weight 1, follow in the last `shared` columns.
//! This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

use super::lanes::{lanes_max, lanes_min, lanes_sum};

/// Planes (experts) per cube of the logits kernel.
pub(super) const PLANES: u32 = 4;
/// Lanes per plane of NVIDIA GPUs (warps). The kernels take the device's lane count (`lanes`: 32
/// there, 1 on CubeCL's CPU runtime, where they are tested without a GPU).
pub(super) const PLANE: u32 = 32;

/// `logits[m, e] = Σ_j f32(x[m, j]) · gate[e, j]` for `x` `[M, H]` and the router weight `gate`
/// `[E, H]` (f32, as released); cube `(c, m)`, plane `p` takes expert `c · PLANES + p`.
#[cube(launch)]
pub(super) fn router_logits_kernel<F: Float>(
    x: &Tensor<F>,
    gate: &Tensor<f32>,
    logits: &mut Tensor<f32>,
    #[comptime] hidden: u32,
    #[comptime] lanes: u32,
    #[define(F)] _dtype: ElemType,
) {
    let e = (CUBE_POS_X * PLANES + UNIT_POS_Y) as usize;
    let m = CUBE_POS_Y as usize;
    let lane = UNIT_POS_X as usize;
    let h_len = hidden as usize;
    // The whole plane takes the same branch (one expert per plane), as the plane sum needs.
    if e < gate.shape(0) {
        let (x_row, g_row) = (m * x.stride(0), e * gate.stride(0));
        let mut dot = f32::new(0.0);
        // Unrolled so each lane has its loads in flight together.
        #[unroll]
        for i in 0..comptime!(hidden.div_ceil(lanes)) as usize {
            let j = lane + i * lanes as usize;
            if j < h_len {
                dot += f32::cast_from(x[x_row + j * x.stride(1)]) * gate[g_row + j * gate.stride(1)];
            }
        }
        let logit = lanes_sum::<f32>(dot, lanes);
        if lane == 0 {
            let at = m * logits.stride(0) + e * logits.stride(1);
            logits[at] = logit;
        }
    }
}

/// `ids[m, :]`, `weights[m, :]` (top-k experts of token `m`, best first, then the `shared`
/// always-on experts) from the router logits `[M, E]`; one plane per token.
#[cube(launch)]
pub(super) fn router_topk_kernel<I: Int>(
    logits: &Tensor<f32>,
    ids: &mut Tensor<I>,
    weights: &mut Tensor<f32>,
    scaling: f32,
    #[comptime] experts: u32,
    #[comptime] top_k: u32,
    #[comptime] shared: u32,
    #[comptime] renormalise: bool,
    #[comptime] lanes: u32,
    #[define(I)] _dtype: ElemType,
) {
    let row = CUBE_POS_X as usize;
    let lane = UNIT_POS_X as usize;
    let e_len = experts as usize;
    let l_row = row * logits.stride(0);
    let l_col = logits.stride(1);
    // Lane `l` holds experts `l, l + lanes, …`; slots past the last expert hold −1, below
    // every probability, so they are never chosen.
    let per_lane = comptime!(experts.div_ceil(lanes)) as usize;
    let mut probs = Array::<f32>::new(per_lane);
    let mut top = f32::new(-3.0e38);
    #[unroll]
    for s in 0..per_lane {
        let id = s * lanes as usize + lane;
        probs[s] = logits[l_row + clamp_max(id, e_len - 1) * l_col];
        top = select(id < e_len, f32::max(top, probs[s]), top);
    }
    let top = lanes_max::<f32>(top, lanes);
    let mut total = f32::new(0.0);
    #[unroll]
    for s in 0..per_lane {
        let id = s * lanes as usize + lane;
        probs[s] = select(id < e_len, f32::exp(probs[s] - top), f32::new(0.0));
        total += probs[s];
    }
    let total = lanes_sum::<f32>(total, lanes);
    #[unroll]
    for s in 0..per_lane {
        let id = s * lanes as usize + lane;
        probs[s] = select(id < e_len, probs[s] / total, f32::new(-1.0));
    }

    let mut chosen = Array::<f32>::new(top_k as usize);
    let mut chosen_sum = f32::new(0.0);
    #[unroll]
    for k in 0..top_k as usize {
        let mut best = f32::new(-1.0);
        #[unroll]
        for s in 0..per_lane {
            best = f32::max(best, probs[s]);
        }
        let best = lanes_max::<f32>(best, lanes);
        // The lowest expert id holding the maximum.
        let mut candidate = experts.runtime();
        #[unroll]
        for s in 0..per_lane {
            let id = (s * lanes as usize + lane) as u32;
            if probs[s] == best && id < candidate {
                candidate = id;
            }
        }
        let winner = lanes_min::<u32>(candidate, lanes);
        #[unroll]
        for s in 0..per_lane {
            if (s * lanes as usize + lane) as u32 == winner {
                probs[s] = f32::new(-1.0);
            }
        }
        chosen[k] = best;
        chosen_sum += best;
        if lane == 0 {
            let at = row * ids.stride(0) + k * ids.stride(1);
            ids[at] = I::cast_from(winner);
        }
    }
    if lane == 0 {
        let norm = if renormalise { chosen_sum + 1.0e-20 } else { f32::new(1.0) };
        #[unroll]
        for k in 0..top_k as usize {
            let at = row * weights.stride(0) + k * weights.stride(1);
            weights[at] = chosen[k] / norm * scaling;
        }
        #[unroll]
        for j in 0..shared as usize {
            let slot = top_k as usize + j;
            let at = row * ids.stride(0) + slot * ids.stride(1);
            ids[at] = I::cast_from(e_len + j);
            let at = row * weights.stride(0) + slot * weights.stride(1);
            weights[at] = f32::new(1.0);
        }
    }
}
