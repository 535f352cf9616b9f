//! Skinny matrix products for decoding: a few rows of activations times a weight matrix, the
//! shape of every projection in a decode step. Burn's matmul is built for large tiles; here the
//! work is bound by reading the weights once, so the kernels are organised around that read.
//!
//! Layout: weights are `[K, N]` row-major (dsocr stores linear weights transposed, `[d_in, d_out]`),
//! optionally stacked into a bank `[E, K, N]` for experts. A cube of 256 units covers a block of
//! `col_threads` vectors of output columns (8 bf16 or 4 f32 each, one 16-byte load) and splits the
//! `K` rows among `k_threads` lanes, so consecutive units read consecutive 16-byte pieces of a row
//! (coalesced) and every weight element is read once per cube. Each unit keeps its partial sums
//! in f32 registers; the lanes' partials are then summed through shared memory. A cube's third
//! grid coordinate picks the rows (or the (token, expert slot) pair) it serves.

//!
//! This file holds only the CubeCL code (no Burn), so the kernels can be compiled and run on any
//! CubeCL runtime; `skinny_launch.rs` launches them on Burn's tensors.

use cubecl::prelude::*;

/// Sum `value` over the cube's `k_threads` lanes (`UNIT_POS_Y`); the total is returned to the
/// units of lane 0 (other lanes get partial sums). Leaves `smem` free for the next call.
#[cube]
pub(super) fn sum_over_k_lanes<N: Size>(
    smem: &mut Shared<[Vector<f32, N>]>,
    value: Vector<f32, N>,
    #[comptime] col_threads: u32,
    #[comptime] k_threads: u32,
) -> Vector<f32, N> {
    let k_levels = comptime!(k_threads.trailing_zeros());
    let cx = UNIT_POS_X as usize;
    let ky = UNIT_POS_Y as usize;
    let cols = col_threads as usize;
    smem[ky * cols + cx] = value;
    sync_cube();
    #[unroll]
    for level in 0..k_levels {
        let stride = (k_threads >> (level + 1)) as usize;
        if ky < stride {
            smem[ky * cols + cx] = smem[ky * cols + cx] + smem[(ky + stride) * cols + cx];
        }
        sync_cube();
    }
    let total = smem[cx];
    sync_cube();
    total
}

/// `out[s·M + m, :] = x[m, K_s] · w[K_s, :]` for the rows `g·rows ..` of `x` `[M, K]`, `w`
/// `[K, N]`, where `CUBE_POS_Z = g · splits + s` and `K_s` is the `s`-th of `splits` equal
/// ranges of `K`. With one split `out` is the product `[M, N]` in the float type; with more (a
/// narrow output, too few column blocks to fill the GPU) `out` holds f32 partial sums
/// `[splits · M, N]` for [`sum_splits_kernel`].
#[cube(launch)]
pub(super) fn skinny_linear_kernel<F: Float, O: Float, N: Size>(
    x: &Tensor<F>,
    w: &Tensor<Vector<F, N>>,
    out: &mut Tensor<Vector<O, N>>,
    splits: u32,
    #[comptime] rows: u32,
    #[comptime] col_threads: u32,
    #[comptime] k_threads: u32,
    #[define(F, O)] _dtypes: [ElemType; 2],
) {
    let vec = w.vector_size();
    let col = CUBE_POS_X as usize * col_threads as usize + UNIT_POS_X as usize;
    let n_vecs = w.shape(1) / vec;
    let live = col < n_vecs;
    let (group, split) = ((CUBE_POS_Z / splits) as usize, (CUBE_POS_Z % splits) as usize);
    let row0 = group * rows as usize;
    let m_total = x.shape(0);
    let chunk = x.shape(1).div_ceil(splits as usize);
    let k_begin = split * chunk;
    let k_total = clamp_max(k_begin + chunk, x.shape(1));
    let w_row = w.stride(0) / vec;

    let mut acc = Array::<Vector<f32, N>>::new(rows as usize);
    #[unroll]
    for r in 0..rows as usize {
        acc[r] = Vector::broadcast(f32::new(0.0));
    }
    if live {
        let step = k_threads as usize;
        let mut k = k_begin + UNIT_POS_Y as usize;
        // Two weight rows per iteration, loaded together (same sums, same order).
        while k + step < k_total {
            let (w0, w1) = (w[k * w_row + col], w[(k + step) * w_row + col]);
            #[unroll]
            for r in 0..rows as usize {
                let row = row0 + r;
                if row < m_total {
                    let xv = f32::cast_from(x[row * x.stride(0) + k * x.stride(1)]);
                    acc[r] += Vector::<f32, N>::cast_from(w0) * Vector::broadcast(xv);
                    let xv = f32::cast_from(x[row * x.stride(0) + (k + step) * x.stride(1)]);
                    acc[r] += Vector::<f32, N>::cast_from(w1) * Vector::broadcast(xv);
                }
            }
            k += 2 * step;
        }
        while k < k_total {
            let wv = Vector::<f32, N>::cast_from(w[k * w_row + col]);
            #[unroll]
            for r in 0..rows as usize {
                let row = row0 + r;
                if row < m_total {
                    let xv = f32::cast_from(x[row * x.stride(0) + k * x.stride(1)]);
                    acc[r] += wv * Vector::broadcast(xv);
                }
            }
            k += step;
        }
    }

    let mut smem = Shared::<[Vector<f32, N>]>::new_slice((col_threads * k_threads) as usize);
    let out_row = out.stride(0) / vec;
    #[unroll]
    for r in 0..rows as usize {
        let total = sum_over_k_lanes::<N>(&mut smem, acc[r], col_threads, k_threads);
        let row = row0 + r;
        if UNIT_POS_Y == 0 && live && row < m_total {
            out[(split * m_total + row) * out_row + col] = Vector::cast_from(total);
        }
    }
}

/// `out[m, :] = Σ_s partial[s·M + m, :]` (f32 sums of [`skinny_linear_kernel`]'s splits, in
/// split order), one unit per output vector.
#[cube(launch)]
pub(super) fn sum_splits_kernel<F: Float, N: Size>(
    partial: &Tensor<Vector<f32, N>>,
    out: &mut Tensor<Vector<F, N>>,
    #[define(F)] _dtype: ElemType,
) {
    let vec = out.vector_size();
    let n_vecs = out.shape(1) / vec;
    let m_total = out.shape(0);
    let splits = partial.shape(0) / m_total;
    let unit = ABSOLUTE_POS;
    if unit < m_total * n_vecs {
        let (m, col) = (unit / n_vecs, unit % n_vecs);
        let p_row = partial.stride(0) / vec;
        let mut acc = Vector::<f32, N>::broadcast(f32::new(0.0));
        for s in 0..splits {
            acc += partial[(s * m_total + m) * p_row + col];
        }
        let at = m * (out.stride(0) / vec) + col;
        out[at] = Vector::cast_from(acc);
    }
}

/// SwiGLU's first half over an expert bank: for pair `p = (m, s)` (`CUBE_POS_Z`),
/// `out[p, :] = SiLU(x[m]·G[e]) ⊙ (x[m]·U[e])` with `e = ids[m, s]` (`e = 0`, one slot, when not
/// `indexed`). `gate`/`up` `[E, K, N]`, `x` `[M, K]`, `ids` `[M, S]`, `out` `[M·S, N]`.
#[cube(launch)]
pub(super) fn swiglu_kernel<F: Float, I: Numeric, N: Size>(
    x: &Tensor<F>,
    gate: &Tensor<Vector<F, N>>,
    up: &Tensor<Vector<F, N>>,
    ids: &Tensor<I>,
    out: &mut Tensor<Vector<F, N>>,
    slots: u32,
    #[comptime] indexed: bool,
    #[comptime] col_threads: u32,
    #[comptime] k_threads: u32,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let vec = gate.vector_size();
    let col = CUBE_POS_X as usize * col_threads as usize + UNIT_POS_X as usize;
    let n_vecs = gate.shape(2) / vec;
    let live = col < n_vecs;
    let pair = CUBE_POS_Z as usize;
    let m = pair / slots as usize;
    let mut expert = 0usize;
    if indexed {
        expert = usize::cast_from(ids[m * ids.stride(0) + (pair % slots as usize) * ids.stride(1)]);
    }
    let (g_base, u_base) = (expert * gate.stride(0) / vec, expert * up.stride(0) / vec);
    let (g_row, u_row) = (gate.stride(1) / vec, up.stride(1) / vec);
    let k_total = x.shape(1);

    let mut acc_g = Vector::<f32, N>::broadcast(f32::new(0.0));
    let mut acc_u = Vector::<f32, N>::broadcast(f32::new(0.0));
    if live {
        let step = k_threads as usize;
        let (x_row, x_col) = (m * x.stride(0), x.stride(1));
        let mut k = UNIT_POS_Y as usize;
        // Four rows per iteration, their loads issued before the sums (more reads in flight per
        // unit); the sums keep the one-row order, so the result is the same to the bit.
        while k + 3 * step < k_total {
            let (k1, k2, k3) = (k + step, k + 2 * step, k + 3 * step);
            let (g0, g1) = (gate[g_base + k * g_row + col], gate[g_base + k1 * g_row + col]);
            let (g2, g3) = (gate[g_base + k2 * g_row + col], gate[g_base + k3 * g_row + col]);
            let (u0, u1) = (up[u_base + k * u_row + col], up[u_base + k1 * u_row + col]);
            let (u2, u3) = (up[u_base + k2 * u_row + col], up[u_base + k3 * u_row + col]);
            let (x0, x1) = (x[x_row + k * x_col], x[x_row + k1 * x_col]);
            let (x2, x3) = (x[x_row + k2 * x_col], x[x_row + k3 * x_col]);
            let xv = Vector::<f32, N>::broadcast(f32::cast_from(x0));
            acc_g += Vector::<f32, N>::cast_from(g0) * xv;
            acc_u += Vector::<f32, N>::cast_from(u0) * xv;
            let xv = Vector::<f32, N>::broadcast(f32::cast_from(x1));
            acc_g += Vector::<f32, N>::cast_from(g1) * xv;
            acc_u += Vector::<f32, N>::cast_from(u1) * xv;
            let xv = Vector::<f32, N>::broadcast(f32::cast_from(x2));
            acc_g += Vector::<f32, N>::cast_from(g2) * xv;
            acc_u += Vector::<f32, N>::cast_from(u2) * xv;
            let xv = Vector::<f32, N>::broadcast(f32::cast_from(x3));
            acc_g += Vector::<f32, N>::cast_from(g3) * xv;
            acc_u += Vector::<f32, N>::cast_from(u3) * xv;
            k += 4 * step;
        }
        while k < k_total {
            let xv = Vector::<f32, N>::broadcast(f32::cast_from(x[x_row + k * x_col]));
            acc_g += Vector::<f32, N>::cast_from(gate[g_base + k * g_row + col]) * xv;
            acc_u += Vector::<f32, N>::cast_from(up[u_base + k * u_row + col]) * xv;
            k += step;
        }
    }

    let mut smem = Shared::<[Vector<f32, N>]>::new_slice((col_threads * k_threads) as usize);
    let g = sum_over_k_lanes::<N>(&mut smem, acc_g, col_threads, k_threads);
    let u = sum_over_k_lanes::<N>(&mut smem, acc_u, col_threads, k_threads);
    if UNIT_POS_Y == 0 && live {
        let one = Vector::<f32, N>::broadcast(f32::new(1.0));
        let silu = g / (one + Vector::exp(Vector::<f32, N>::broadcast(f32::new(0.0)) - g));
        let at = pair * (out.stride(0) / vec) + col;
        out[at] = Vector::cast_from(silu * u);
    }
}

/// The chosen experts' down projections, one (token, slot) pair per cube row (`CUBE_POS_Z`):
/// `out[p, :] = act[p] · D[ids[m, s]]` for `p = m·S + s`, rounded to the float type as the
/// reference's batched matmul rounds it. `act` `[M·S, K]`, `down` `[E, K, N]`, `ids` `[M, S]`,
/// `out` `[M·S, N]`. A pair per cube row spreads a decode step's eight experts over ≈ 8× more
/// cubes than a token per cube row did (which left most SMs idle: 36 µs per layer).
#[cube(launch)]
pub(super) fn expert_down_kernel<F: Float, I: Numeric, N: Size>(
    act: &Tensor<F>,
    down: &Tensor<Vector<F, N>>,
    ids: &Tensor<I>,
    out: &mut Tensor<Vector<F, N>>,
    #[comptime] col_threads: u32,
    #[comptime] k_threads: u32,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let vec = down.vector_size();
    let col = CUBE_POS_X as usize * col_threads as usize + UNIT_POS_X as usize;
    let n_vecs = down.shape(2) / vec;
    let live = col < n_vecs;
    let pair = CUBE_POS_Z as usize;
    let slots = ids.shape(1);
    let (m, s) = (pair / slots, pair % slots);
    let expert = usize::cast_from(ids[m * ids.stride(0) + s * ids.stride(1)]);
    let base = expert * down.stride(0) / vec;
    let d_row = down.stride(1) / vec;
    let (a_row, a_col) = (pair * act.stride(0), act.stride(1));
    let k_total = act.shape(1);

    let mut acc = Vector::<f32, N>::broadcast(f32::new(0.0));
    if live {
        let step = k_threads as usize;
        let mut k = UNIT_POS_Y as usize;
        // Four rows per iteration, loads first (as in the SwiGLU kernel; same sums, same order).
        while k + 3 * step < k_total {
            let (k1, k2, k3) = (k + step, k + 2 * step, k + 3 * step);
            let (d0, d1) = (down[base + k * d_row + col], down[base + k1 * d_row + col]);
            let (d2, d3) = (down[base + k2 * d_row + col], down[base + k3 * d_row + col]);
            let (a0, a1) = (act[a_row + k * a_col], act[a_row + k1 * a_col]);
            let (a2, a3) = (act[a_row + k2 * a_col], act[a_row + k3 * a_col]);
            acc += Vector::<f32, N>::cast_from(d0) * Vector::<f32, N>::broadcast(f32::cast_from(a0));
            acc += Vector::<f32, N>::cast_from(d1) * Vector::<f32, N>::broadcast(f32::cast_from(a1));
            acc += Vector::<f32, N>::cast_from(d2) * Vector::<f32, N>::broadcast(f32::cast_from(a2));
            acc += Vector::<f32, N>::cast_from(d3) * Vector::<f32, N>::broadcast(f32::cast_from(a3));
            k += 4 * step;
        }
        while k < k_total {
            let a = Vector::<f32, N>::broadcast(f32::cast_from(act[a_row + k * a_col]));
            acc += Vector::<f32, N>::cast_from(down[base + k * d_row + col]) * a;
            k += step;
        }
    }

    let mut smem = Shared::<[Vector<f32, N>]>::new_slice((col_threads * k_threads) as usize);
    let total = sum_over_k_lanes::<N>(&mut smem, acc, col_threads, k_threads);
    if UNIT_POS_Y == 0 && live {
        let at = pair * (out.stride(0) / vec) + col;
        out[at] = Vector::cast_from(total);
    }
}

/// The routing-weighted sum over each token's slots, in f32 as the reference sums:
/// `out[m, :] = Σ_s weights[m, s] · f32(y[m·S + s, :])`, one unit per output vector.
/// `y` `[M·S, N]`, `weights` `[M, S]` (f32), `out` `[M, N]`.
#[cube(launch)]
pub(super) fn combine_slots_kernel<F: Float, N: Size>(
    y: &Tensor<Vector<F, N>>,
    weights: &Tensor<f32>,
    out: &mut Tensor<Vector<F, N>>,
    #[define(F)] _dtype: ElemType,
) {
    let vec = y.vector_size();
    let n_vecs = y.shape(1) / vec;
    let slots = weights.shape(1);
    let unit = ABSOLUTE_POS;
    if unit < out.shape(0) * n_vecs {
        let (m, col) = (unit / n_vecs, unit % n_vecs);
        let y_row = y.stride(0) / vec;
        let mut acc = Vector::<f32, N>::broadcast(f32::new(0.0));
        for s in 0..slots {
            let w = weights[m * weights.stride(0) + s * weights.stride(1)];
            acc += Vector::<f32, N>::cast_from(y[(m * slots + s) * y_row + col]) * Vector::<f32, N>::broadcast(w);
        }
        let at = m * (out.stride(0) / vec) + col;
        out[at] = Vector::cast_from(acc);
    }
}
