//! The MoE router as one CubeCL kernel: f32 logits against the router weight, softmax, top-k,
//! optional renormalisation and the routed scaling factor, for one token per cube. It replaces
//! a matmul, the softmax's reductions, a top-k and the weight arithmetic (≈ 10 launches).
//!
//! A cube is [`PLANES`] planes of 32 lanes. The token's row is cast to f32 into shared memory;
//! plane `p` computes the logits of experts `p, p + PLANES, …` (lanes split the hidden size, a
//! plane sum finishes each dot product). Plane 0 then holds `⌈E / 32⌉` probabilities per lane and
//! picks the top k one by one with plane reductions (ties go to the lower expert id). The
//! shared experts, run as always-on experts `E, E + 1, …` with weight 1, follow in the last
//! `shared` columns of the outputs.
//! This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

/// Planes per cube.
pub(super) const PLANES: u32 = 8;
/// Lanes per plane (NVIDIA warps).
pub(super) const PLANE: u32 = 32;

/// `ids[m, :]`, `weights[m, :]` (top-k experts of token `m`, best first, then the `shared`
/// always-on experts) from `x` `[M, H]` and the router weight `gate` `[E, H]` (f32, as released).
#[cube(launch)]
pub(super) fn router_kernel<F: Float, I: Int>(
    x: &Tensor<F>,
    gate: &Tensor<f32>,
    ids: &mut Tensor<I>,
    weights: &mut Tensor<f32>,
    scaling: f32,
    #[comptime] experts: u32,
    #[comptime] hidden: u32,
    #[comptime] top_k: u32,
    #[comptime] shared: u32,
    #[comptime] renormalise: bool,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let row = CUBE_POS_X as usize;
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let units = (PLANE * PLANES) as usize;
    let unit = plane * PLANE as usize + lane;
    let h_len = hidden as usize;
    let e_len = experts as usize;

    let mut row_f32 = Shared::<[f32]>::new_slice(h_len);
    let mut logits = Shared::<[f32]>::new_slice(e_len);
    let mut i = unit;
    while i < h_len {
        row_f32[i] = f32::cast_from(x[row * x.stride(0) + i * x.stride(1)]);
        i += units;
    }
    sync_cube();

    let mut e = plane;
    while e < e_len {
        let mut dot = f32::new(0.0);
        let mut j = lane;
        while j < h_len {
            dot += row_f32[j] * gate[e * gate.stride(0) + j * gate.stride(1)];
            j += PLANE as usize;
        }
        let logit = plane_sum(dot);
        if lane == 0 {
            logits[e] = logit;
        }
        e += PLANES as usize;
    }
    sync_cube();

    if plane == 0 {
        // Lane `l` holds experts `l, l + 32, …`; slots past the last expert hold −1, below
        // every probability, so they are never chosen.
        let per_lane = comptime!(experts.div_ceil(PLANE)) as usize;
        let mut probs = Array::<f32>::new(per_lane);
        let mut top = f32::new(-3.0e38);
        #[unroll]
        for s in 0..per_lane {
            let id = s * PLANE as usize + lane;
            probs[s] = logits[clamp_max(id, e_len - 1)];
            top = select(id < e_len, f32::max(top, probs[s]), top);
        }
        let top = plane_max(top);
        let mut total = f32::new(0.0);
        #[unroll]
        for s in 0..per_lane {
            let id = s * PLANE as usize + lane;
            probs[s] = select(id < e_len, f32::exp(probs[s] - top), f32::new(0.0));
            total += probs[s];
        }
        let total = plane_sum(total);
        #[unroll]
        for s in 0..per_lane {
            let id = s * PLANE as usize + lane;
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
            let best = plane_max(best);
            // The lowest expert id holding the maximum.
            let mut candidate = experts.runtime();
            #[unroll]
            for s in 0..per_lane {
                let id = (s * PLANE as usize + lane) as u32;
                if probs[s] == best && id < candidate {
                    candidate = id;
                }
            }
            let winner = plane_min(candidate);
            #[unroll]
            for s in 0..per_lane {
                if (s * PLANE as usize + lane) as u32 == winner {
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
}
