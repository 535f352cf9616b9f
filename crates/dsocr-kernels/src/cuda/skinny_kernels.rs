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
fn sum_over_k_lanes<N: Size>(
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

/// `out[m, :] = x[m, :] · w` for the rows `CUBE_POS_Z·rows ..` of `x` `[M, K]`, `w` `[K, N]`.
#[cube(launch)]
pub(super) fn skinny_linear_kernel<F: Float, N: Size>(
    x: &Tensor<F>,
    w: &Tensor<Vector<F, N>>,
    out: &mut Tensor<Vector<F, N>>,
    #[comptime] rows: u32,
    #[comptime] col_threads: u32,
    #[comptime] k_threads: u32,
    #[define(F)] _dtype: ElemType,
) {
    let vec = w.vector_size();
    let col = CUBE_POS_X as usize * col_threads as usize + UNIT_POS_X as usize;
    let n_vecs = w.shape(1) / vec;
    let live = col < n_vecs;
    let row0 = CUBE_POS_Z as usize * rows as usize;
    let (m_total, k_total) = (x.shape(0), x.shape(1));
    let w_row = w.stride(0) / vec;

    let mut acc = Array::<Vector<f32, N>>::new(rows as usize);
    #[unroll]
    for r in 0..rows as usize {
        acc[r] = Vector::broadcast(f32::new(0.0));
    }
    if live {
        let mut k = UNIT_POS_Y as usize;
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
            k += k_threads as usize;
        }
    }

    let mut smem = Shared::<[Vector<f32, N>]>::new_slice((col_threads * k_threads) as usize);
    let out_row = out.stride(0) / vec;
    #[unroll]
    for r in 0..rows as usize {
        let total = sum_over_k_lanes::<N>(&mut smem, acc[r], col_threads, k_threads);
        let row = row0 + r;
        if UNIT_POS_Y == 0 && live && row < m_total {
            out[row * out_row + col] = Vector::cast_from(total);
        }
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
        let mut k = UNIT_POS_Y as usize;
        while k < k_total {
            let xv = Vector::<f32, N>::broadcast(f32::cast_from(x[m * x.stride(0) + k * x.stride(1)]));
            acc_g += Vector::<f32, N>::cast_from(gate[g_base + k * g_row + col]) * xv;
            acc_u += Vector::<f32, N>::cast_from(up[u_base + k * u_row + col]) * xv;
            k += k_threads as usize;
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

/// The experts' down projections combined with the routing weights: for token `m`
/// (`CUBE_POS_Z`), `out[m, :] = Σ_s weights[m, s] · (act[m·S + s] · D[ids[m, s]])`.
/// `act` `[M·S, K]`, `down` `[E, K, N]`, `ids`/`weights` `[M, S]`, `out` `[M, N]`.
#[cube(launch)]
pub(super) fn expert_down_kernel<F: Float, I: Numeric, N: Size>(
    act: &Tensor<F>,
    down: &Tensor<Vector<F, N>>,
    ids: &Tensor<I>,
    weights: &Tensor<f32>,
    out: &mut Tensor<Vector<F, N>>,
    #[comptime] col_threads: u32,
    #[comptime] k_threads: u32,
    #[define(F, I)] _dtypes: [ElemType; 2],
) {
    let vec = down.vector_size();
    let col = CUBE_POS_X as usize * col_threads as usize + UNIT_POS_X as usize;
    let n_vecs = down.shape(2) / vec;
    let live = col < n_vecs;
    let m = CUBE_POS_Z as usize;
    let slots = ids.shape(1);
    let k_total = act.shape(1);
    let d_row = down.stride(1) / vec;

    let mut acc = Vector::<f32, N>::broadcast(f32::new(0.0));
    if live {
        for s in 0..slots {
            let expert = usize::cast_from(ids[m * ids.stride(0) + s * ids.stride(1)]);
            let weight = weights[m * weights.stride(0) + s * weights.stride(1)];
            let base = expert * down.stride(0) / vec;
            let a_row = (m * slots + s) * act.stride(0);
            let mut k = UNIT_POS_Y as usize;
            while k < k_total {
                let a = Vector::<f32, N>::broadcast(weight * f32::cast_from(act[a_row + k * act.stride(1)]));
                acc += Vector::<f32, N>::cast_from(down[base + k * d_row + col]) * a;
                k += k_threads as usize;
            }
        }
    }

    let mut smem = Shared::<[Vector<f32, N>]>::new_slice((col_threads * k_threads) as usize);
    let total = sum_over_k_lanes::<N>(&mut smem, acc, col_threads, k_threads);
    if UNIT_POS_Y == 0 && live {
        let at = m * (out.stride(0) / vec) + col;
        out[at] = Vector::cast_from(total);
    }
}
