//! Decode attention in two CubeCL kernels, flash-decoding style: the keys are cut into chunks of
//! [`CHUNK`] slots and every (head, sequence, chunk) gets its own cube, so a step runs hundreds
//! of cubes at once instead of one per head; a second kernel merges the chunks.
//!
//! Split kernel: a cube is [`PLANES`] planes (warps) of `lanes` lanes (32 on NVIDIA GPUs; 1 on
//! CubeCL's CPU runtime, where the kernel is tested without a GPU); each lane holds `d / lanes`
//! query elements (`⌈d / lanes⌉`). A plane takes [`GROUP`] keys at a time (independent loads in flight): the lanes'
//! partial dot products are summed across the plane, and an online softmax (running maximum,
//! running sum, rescaled accumulator) folds the keys' value rows into the lanes' accumulators.
//! The planes then meet through shared memory, and the cube writes its chunk's unnormalised
//! output with the chunk's maximum and sum. Merge kernel: one cube per (head, sequence), one unit
//! per output element, rescales the chunks to a common maximum and divides by the total.
//!
//! All arithmetic is in f32 whatever the storage type. Each sequence reads its own blocks of the
//! KV pool (`tables[b, ..]`: slot `s` is slot `s % L` of block `tables[b, s / L]`, `L` a multiple
//! of [`CHUNK`], so a chunk lies in one block) and its live slots end at its newest key's slot
//! (`newest[b]`); both are read from device tensors (not launch arguments), and the grid depends
//! only on the tables' width,
//! so every step is the same launch: one compiled kernel, and a step that can be captured as a
//! CUDA graph and replayed.
//! This file holds only CubeCL code (no Burn), so it compiles for any CubeCL runtime.

use cubecl::prelude::*;

use super::lanes::lanes_sum;

/// Key slots per cube of the split kernel.
pub(super) const CHUNK: u32 = 64;
/// Planes per cube of the split kernel on NVIDIA GPUs. On CubeCL's CPU runtime (one-lane planes) a cube is one unit: its cube barrier spins
/// one thread per unit, far slower than the work once units outnumber cores.
pub(super) const PLANES: u32 = 4;
/// Keys a plane scores per iteration.
const GROUP: u32 = 4;
/// Lanes per plane of NVIDIA GPUs (warps): the vectorised kernel's plane width.
pub(super) const PLANE: u32 = 32;
/// Stands in for −∞ in running maxima (exp of a difference of two of them is 1, not NaN).
const NEG_BIG: f32 = -1.0e30;

/// One chunk of keys per cube: writes `partial[b, h, chunk, :]` (unnormalised, f32) and
/// `stats[b, h, chunk, 0..2]` = (maximum score, sum of exp(score − maximum)).
#[cube(launch)]
pub(super) fn decode_attention_split_kernel<F: Float, I: Numeric>(
    q: &Tensor<F>,
    keys: &Tensor<F>,
    values: &Tensor<F>,
    tables: &Tensor<I>,
    newest: &Tensor<I>,
    partial: &mut Tensor<f32>,
    stats: &mut Tensor<f32>,
    scale: f32,
    #[comptime] head_dim: u32,
    #[comptime] lanes: u32,
    #[comptime] planes: u32,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let h = CUBE_POS_X as usize;
    let b = CUBE_POS_Y as usize;
    let chunk = CUBE_POS_Z as usize;
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let n_lane = comptime!(head_dim.div_ceil(lanes)) as usize;
    let stride = lanes as usize;
    let n_plane = planes as usize;
    let d = head_dim as usize;
    let block_len = keys.shape(2);
    let last_slot = tables.shape(1) * block_len - 1;
    let len = clamp_max(u32::cast_from(newest[b * newest.stride(0)]) as usize, last_slot) + 1;
    let start = chunk * CHUNK as usize;
    // The chunk's block, and the sequence slot of the block's first slot.
    let block_index = clamp_max(start / block_len, tables.shape(1) - 1);
    let row = u32::cast_from(tables[b * tables.stride(0) + block_index * tables.stride(1)]) as usize;
    let first_slot = block_index * block_len;

    let q_base = b * q.stride(0) + h * q.stride(1);
    let k_base = row * keys.stride(0) + h * keys.stride(1);
    let v_base = row * values.stride(0) + h * values.stride(1);
    let (k_slot, k_elem) = (keys.stride(2), keys.stride(3));
    let (v_slot, v_elem) = (values.stride(2), values.stride(3));

    // Lane `l` holds elements `l, l + lanes, …`; with a head size not a multiple of `lanes` the
    // missing elements load a valid one and get a zero query, so they add nothing.
    let mut qv = Array::<f32>::new(n_lane);
    let mut acc = Array::<f32>::new(n_lane);
    let mut elems = Array::<usize>::new(n_lane);
    #[unroll]
    for i in 0..n_lane {
        let e = lane + stride * i;
        elems[i] = clamp_max(e, d - 1);
        qv[i] = select(e < d, f32::cast_from(q[q_base + elems[i] * q.stride(3)]) * scale, f32::new(0.0));
        acc[i] = f32::new(0.0);
    }
    let mut run_max = f32::new(NEG_BIG);
    let mut run_sum = f32::new(0.0);

    // Chunks past the filled slots are never merged; their cubes do nothing.
    if start < len {
        let rounds = (CHUNK / (planes * GROUP)) as usize;
        let mut scores = Array::<f32>::new(GROUP as usize);
        let mut slots = Array::<usize>::new(GROUP as usize);
        for round in 0..rounds {
            let first = start + (round * n_plane + plane) * GROUP as usize;
            let mut group_max = run_max;
            #[unroll]
            for g in 0..GROUP as usize {
                let j = first + g;
                // Dead slots (past the newest) still load from a valid slot, then drop out.
                let slot = clamp_max(j, last_slot) - first_slot;
                slots[g] = slot;
                let mut dot = f32::new(0.0);
                #[unroll]
                for i in 0..n_lane {
                    dot += qv[i] * f32::cast_from(keys[k_base + slot * k_slot + elems[i] * k_elem]);
                }
                let score = lanes_sum::<f32>(dot, lanes);
                scores[g] = f32::new(NEG_BIG);
                if j < len {
                    scores[g] = score;
                }
                group_max = f32::max(group_max, scores[g]);
            }
            let rescale = f32::exp(run_max - group_max);
            run_sum *= rescale;
            #[unroll]
            for i in 0..n_lane {
                acc[i] *= rescale;
            }
            #[unroll]
            for g in 0..GROUP as usize {
                let j = first + g;
                let mut weight = f32::new(0.0);
                if j < len {
                    weight = f32::exp(scores[g] - group_max);
                }
                run_sum += weight;
                #[unroll]
                for i in 0..n_lane {
                    acc[i] += weight * f32::cast_from(values[v_base + slots[g] * v_slot + elems[i] * v_elem]);
                }
            }
            run_max = group_max;
        }
    }

    // Merge the planes: (max, sum) per plane, then the accumulators.
    let mut plane_stats = Shared::<[f32]>::new_slice(2 * n_plane);
    let width = n_lane * stride;
    let mut plane_acc = Shared::<[f32]>::new_slice(n_plane * width);
    if lane == 0 {
        plane_stats[plane] = run_max;
        plane_stats[n_plane + plane] = run_sum;
    }
    #[unroll]
    for i in 0..n_lane {
        plane_acc[plane * width + lane + stride * i] = acc[i];
    }
    sync_cube();
    if plane == 0 && start < len {
        let mut top = f32::new(NEG_BIG);
        #[unroll]
        for p in 0..n_plane {
            top = f32::max(top, plane_stats[p]);
        }
        let mut total = f32::new(0.0);
        #[unroll]
        for p in 0..n_plane {
            total += plane_stats[n_plane + p] * f32::exp(plane_stats[p] - top);
        }
        let p_base = b * partial.stride(0) + h * partial.stride(1) + chunk * partial.stride(2);
        #[unroll]
        for i in 0..n_lane {
            let e = lane + stride * i;
            if e < d {
                let mut sum = f32::new(0.0);
                #[unroll]
                for p in 0..n_plane {
                    sum += plane_acc[p * width + e] * f32::exp(plane_stats[p] - top);
                }
                let at = p_base + e * partial.stride(3);
                partial[at] = sum;
            }
        }
        if lane == 0 {
            let s_base = b * stats.stride(0) + h * stats.stride(1) + chunk * stats.stride(2);
            stats[s_base] = top;
            let at = s_base + stats.stride(3);
            stats[at] = total;
        }
    }
}

/// Keys a plane scores per iteration in [`decode_attention_split_vec_kernel`].
const VEC_GROUP: u32 = 8;

/// [`decode_attention_split_kernel`] for head sizes of 32·`N` elements with unit-stride rows:
/// lane `l` holds elements `l·N .. l·N + N` as one vector, so a key or value row is one load of
/// the whole plane (256 bytes at `d` = 128 in bf16; the scalar kernel issues `d / 32` loads of 64
/// bytes per row), and a plane has [`VEC_GROUP`] rows in flight. Same outputs, same layout.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn decode_attention_split_vec_kernel<F: Float, I: Numeric, N: Size>(
    q: &Tensor<F>,
    keys: &Tensor<Vector<F, N>>,
    values: &Tensor<Vector<F, N>>,
    tables: &Tensor<I>,
    newest: &Tensor<I>,
    partial: &mut Tensor<f32>,
    stats: &mut Tensor<f32>,
    scale: f32,
    #[comptime] head_dim: u32,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let h = CUBE_POS_X as usize;
    let b = CUBE_POS_Y as usize;
    let chunk = CUBE_POS_Z as usize;
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    // The launch makes `N` = head_dim / 32.
    let vec = comptime!(head_dim / PLANE) as usize;
    let n_plane = PLANES as usize;
    let d = head_dim as usize;
    let block_len = keys.shape(2);
    let last_slot = tables.shape(1) * block_len - 1;
    let len = clamp_max(u32::cast_from(newest[b * newest.stride(0)]) as usize, last_slot) + 1;
    let start = chunk * CHUNK as usize;
    // The chunk's block, and the sequence slot of the block's first slot.
    let block_index = clamp_max(start / block_len, tables.shape(1) - 1);
    let row = u32::cast_from(tables[b * tables.stride(0) + block_index * tables.stride(1)]) as usize;
    let first_slot = block_index * block_len;

    let q_base = b * q.stride(0) + h * q.stride(1);
    // Offsets in vectors (the launch checks that the strides are whole vectors).
    let k_base = (row * keys.stride(0) + h * keys.stride(1)) / vec + lane;
    let v_base = (row * values.stride(0) + h * values.stride(1)) / vec + lane;
    let (k_slot, v_slot) = (keys.stride(2) / vec, values.stride(2) / vec);

    let mut qv = Vector::<f32, N>::broadcast(f32::new(0.0));
    #[unroll]
    for i in 0..vec {
        qv.insert(i, f32::cast_from(q[q_base + (lane * vec + i) * q.stride(3)]) * scale);
    }
    let mut acc = Vector::<f32, N>::broadcast(f32::new(0.0));
    let mut run_max = f32::new(NEG_BIG);
    let mut run_sum = f32::new(0.0);

    // Chunks past the filled slots are never merged; their cubes do nothing.
    if start < len {
        let rounds = (CHUNK / (PLANES * VEC_GROUP)) as usize;
        let mut scores = Array::<f32>::new(VEC_GROUP as usize);
        let mut slots = Array::<usize>::new(VEC_GROUP as usize);
        for round in 0..rounds {
            let first = start + (round * n_plane + plane) * VEC_GROUP as usize;
            let mut group_max = run_max;
            #[unroll]
            for g in 0..VEC_GROUP as usize {
                // Dead slots (past the newest) still load from a valid slot, then drop out.
                slots[g] = clamp_max(first + g, last_slot) - first_slot;
            }
            #[unroll]
            for g in 0..VEC_GROUP as usize {
                let prod = qv * Vector::<f32, N>::cast_from(keys[k_base + slots[g] * k_slot]);
                let mut dot = f32::new(0.0);
                #[unroll]
                for i in 0..vec {
                    dot += prod.extract(i);
                }
                let score = plane_sum(dot);
                scores[g] = f32::new(NEG_BIG);
                if first + g < len {
                    scores[g] = score;
                }
                group_max = f32::max(group_max, scores[g]);
            }
            let rescale = f32::exp(run_max - group_max);
            run_sum *= rescale;
            acc *= Vector::broadcast(rescale);
            #[unroll]
            for g in 0..VEC_GROUP as usize {
                let mut weight = f32::new(0.0);
                if first + g < len {
                    weight = f32::exp(scores[g] - group_max);
                }
                run_sum += weight;
                acc += Vector::<f32, N>::cast_from(values[v_base + slots[g] * v_slot]) * Vector::broadcast(weight);
            }
            run_max = group_max;
        }
    }

    // Merge the planes: (max, sum) per plane, then the accumulators.
    let mut plane_stats = Shared::<[f32]>::new_slice(2 * n_plane);
    let mut plane_acc = Shared::<[f32]>::new_slice(n_plane * d);
    if lane == 0 {
        plane_stats[plane] = run_max;
        plane_stats[n_plane + plane] = run_sum;
    }
    #[unroll]
    for i in 0..vec {
        plane_acc[plane * d + lane * vec + i] = acc.extract(i);
    }
    sync_cube();
    if plane == 0 && start < len {
        let mut top = f32::new(NEG_BIG);
        #[unroll]
        for p in 0..n_plane {
            top = f32::max(top, plane_stats[p]);
        }
        let mut total = f32::new(0.0);
        #[unroll]
        for p in 0..n_plane {
            total += plane_stats[n_plane + p] * f32::exp(plane_stats[p] - top);
        }
        let p_base = b * partial.stride(0) + h * partial.stride(1) + chunk * partial.stride(2);
        #[unroll]
        for i in 0..vec {
            let e = lane * vec + i;
            let mut sum = f32::new(0.0);
            #[unroll]
            for p in 0..n_plane {
                sum += plane_acc[p * d + e] * f32::exp(plane_stats[p] - top);
            }
            let at = p_base + e * partial.stride(3);
            partial[at] = sum;
        }
        if lane == 0 {
            let s_base = b * stats.stride(0) + h * stats.stride(1) + chunk * stats.stride(2);
            stats[s_base] = top;
            let at = s_base + stats.stride(3);
            stats[at] = total;
        }
    }
}

/// One cube per (head, sequence), one unit per output element: combine the live chunks'
/// partial outputs into `output[b, h, 0, :]`.
#[cube(launch)]
pub(super) fn decode_attention_merge_kernel<F: Float, I: Numeric>(
    partial: &Tensor<f32>,
    stats: &Tensor<f32>,
    newest: &Tensor<I>,
    output: &mut Tensor<F>,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let h = CUBE_POS_X as usize;
    let b = CUBE_POS_Y as usize;
    let e = UNIT_POS_X as usize;
    // As the split kernel's clamp of `newest` to the last slot: never more chunks than it wrote.
    let chunks = clamp_max((u32::cast_from(newest[b * newest.stride(0)]) as usize + 1).div_ceil(CHUNK as usize), partial.shape(2));
    let s_base = b * stats.stride(0) + h * stats.stride(1);
    let (s_chunk, s_field) = (stats.stride(2), stats.stride(3));
    let mut top = f32::new(NEG_BIG);
    for c in 0..chunks {
        top = f32::max(top, stats[s_base + c * s_chunk]);
    }
    let p_base = b * partial.stride(0) + h * partial.stride(1) + e * partial.stride(3);
    let mut total = f32::new(0.0);
    let mut sum = f32::new(0.0);
    for c in 0..chunks {
        let factor = f32::exp(stats[s_base + c * s_chunk] - top);
        total += stats[s_base + c * s_chunk + s_field] * factor;
        sum += partial[p_base + c * partial.stride(2)] * factor;
    }
    let at = b * output.stride(0) + h * output.stride(1) + e * output.stride(3);
    output[at] = F::cast_from(sum / total);
}
