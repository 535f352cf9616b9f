//! Tensor-core products past a few activation rows: the projections of a decode step with many
//! pages in flight, of a prefill and of the vision encoders (thousands of rows), and the experts
//! of a batch or a prefill, grouped by expert (docs/model.md §4.2).
//!
//! Burn's matmul tiles for large products: at 32-256 rows against a `[1280, 1280]` weight it runs
//! a few dozen cubes and reads the weight at ≈ 0.1 TB/s (docs/perf.md, session 7). Here a cube
//! owns a [`TILE_ROWS`] × [`TILE_COLS`] block of the output and one range of `K` (split `K` when
//! the output alone has too few blocks to fill the GPU), so the grid is wide at any row count and
//! every weight element is read once per row block. Per step of [`TILE_K`] rows of `K` the cube
//! stages its activation rows and weight rows in shared memory (16-byte loads); each of its
//! [`PLANES`] planes multiplies its 16 rows by the 64 columns as four 16×16 tensor-core tiles
//! (bf16/f16 in, f32 accumulation).
//!
//! Rows are read through a row table, so one kernel serves:
//! - a dense linear (`grouped` false): rows `block·64 ..` of `x`, output `[splits·M, N]` (f32
//!   partial sums when `K` is split, else the product in the float type);
//! - the experts of a batch (`grouped` true): cube row `z` is expert `z`, its rows the (token,
//!   slot) pairs `p` listed for it (`lists[z, block·64 ..counts[z]]`), reading `x` row `p / x_div`
//!   (tokens for the SwiGLU half, pairs for the down projection) and writing output row `p`.
//!
//! With `swiglu` the cube multiplies by two weights (`gate`, `up`) and writes `SiLU(x·G) ⊙ (x·U)`.
//! This file holds only CubeCL code (no Burn).

use cubecl::prelude::*;

/// Lanes per plane the kernel is written for (NVIDIA warps).
pub(super) const PLANE: u32 = 32;
/// Planes per cube; plane `p` owns rows `16p .. 16p + 16` of the cube's block.
pub(super) const PLANES: u32 = 4;
/// Output rows per cube.
pub(super) const TILE_ROWS: u32 = 64;
/// Output columns per cube.
pub(super) const TILE_COLS: u32 = 64;
/// Rows of `K` staged per step.
pub(super) const TILE_K: u32 = 64;
/// Elements per 16-byte load of a 16-bit float type (the only types the kernel takes).
pub(super) const VEC: u32 = 8;
// The staging loop and the planes' row tiles assume these relations between the shapes.
const _: () = assert!(PLANES * 16 == TILE_ROWS && TILE_ROWS == TILE_K && TILE_COLS == 64 && PLANE * PLANES >= TILE_ROWS);
const _: () = assert!((TILE_ROWS * TILE_COLS).is_multiple_of(VEC * PLANE * PLANES));

/// Row stride of the staged tiles, in elements: whole 16-byte vectors for the tensor-core loads,
/// off a multiple of 128 bytes against bank conflicts.
const STRIDE: u32 = 72;
/// Row stride of a plane's f32 scratch (a multiple of 4, as tensor-core stores need).
const SCRATCH_STRIDE: u32 = 68;

/// One step of `K` (four 16-deep products) for a plane's 16 rows of `xs` (from `a_base`) against
/// the 64 staged columns of `ws`, accumulated into `acc0..acc3` (columns 0-15, …, 48-63).
#[cube]
fn multiply_step<F: Float>(
    xs: &Shared<[F]>,
    ws: &Shared<[F]>,
    a_base: usize,
    acc0: &cmma::Matrix<f32>,
    acc1: &cmma::Matrix<f32>,
    acc2: &cmma::Matrix<f32>,
    acc3: &cmma::Matrix<f32>,
) {
    let stride = STRIDE as usize;
    let a_end = a_base + 16 * stride;
    #[unroll]
    for kk in 0..(TILE_K / 16) as usize {
        let a = cmma::Matrix::<F>::from_slice(
            cmma::MatrixIdent::A,
            16usize,
            16usize,
            16usize,
            cmma::MatrixLayout::RowMajor,
            &xs[a_base + kk * 16..a_end],
            STRIDE,
        );
        let b_row = kk * 16 * stride;
        let b_end = b_row + 16 * stride;
        let b0 = cmma::Matrix::<F>::from_slice(
            cmma::MatrixIdent::B,
            16usize,
            16usize,
            16usize,
            cmma::MatrixLayout::RowMajor,
            &ws[b_row..b_end],
            STRIDE,
        );
        cmma::execute(&a, &b0, acc0, acc0);
        let b1 = cmma::Matrix::<F>::from_slice(
            cmma::MatrixIdent::B,
            16usize,
            16usize,
            16usize,
            cmma::MatrixLayout::RowMajor,
            &ws[b_row + 16..b_end],
            STRIDE,
        );
        cmma::execute(&a, &b1, acc1, acc1);
        let b2 = cmma::Matrix::<F>::from_slice(
            cmma::MatrixIdent::B,
            16usize,
            16usize,
            16usize,
            cmma::MatrixLayout::RowMajor,
            &ws[b_row + 32..b_end],
            STRIDE,
        );
        cmma::execute(&a, &b2, acc2, acc2);
        let b3 = cmma::Matrix::<F>::from_slice(
            cmma::MatrixIdent::B,
            16usize,
            16usize,
            16usize,
            cmma::MatrixLayout::RowMajor,
            &ws[b_row + 48..b_end],
            STRIDE,
        );
        cmma::execute(&a, &b3, acc3, acc3);
    }
}

/// A plane's four accumulators to its 16 × 64 f32 scratch (from `s_base`).
#[cube]
fn store_tiles(
    scratch: &mut Shared<[f32]>,
    s_base: usize,
    acc0: &cmma::Matrix<f32>,
    acc1: &cmma::Matrix<f32>,
    acc2: &cmma::Matrix<f32>,
    acc3: &cmma::Matrix<f32>,
) {
    let s_end = s_base + 16 * SCRATCH_STRIDE as usize;
    cmma::store(&mut scratch[s_base..s_end], acc0, SCRATCH_STRIDE, cmma::MatrixLayout::RowMajor);
    cmma::store(&mut scratch[s_base + 16..s_end], acc1, SCRATCH_STRIDE, cmma::MatrixLayout::RowMajor);
    cmma::store(&mut scratch[s_base + 32..s_end], acc2, SCRATCH_STRIDE, cmma::MatrixLayout::RowMajor);
    cmma::store(&mut scratch[s_base + 48..s_end], acc3, SCRATCH_STRIDE, cmma::MatrixLayout::RowMajor);
}

/// A vector of zeros (what the tiles hold past the rows, columns and `K` there are).
#[cube]
fn zero_vector<F: Float, N: Size>() -> Vector<F, N> {
    Vector::broadcast(F::cast_from(f32::new(0.0)))
}

/// Write vector `value` as scalars to `dst[at ..at + VEC]`.
#[cube]
fn put_vector<F: Float, N: Size>(dst: &mut Shared<[F]>, at: usize, value: Vector<F, N>) {
    #[unroll]
    for j in 0..VEC as usize {
        dst[at + j] = value.extract(j);
    }
}

/// `out[o_row(r), col0 + c] = (x[x_row(r), K_s] · w[e, K_s, col0 + c])` for the cube's block
/// (module docs); `w`/`w2` `[E, K, N]` (a dense weight as a bank of one), `x` `[·, K]`, both with
/// unit-stride rows of whole vectors. `out_rows` is `M` (dense: the rows of one split of `out`);
/// `k_chunk` the length of a split of `K` (dense; `K` when grouped).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn tile_matmul_kernel<F: Float, O: Float, N: Size>(
    x: &Tensor<Vector<F, N>>,
    w: &Tensor<Vector<F, N>>,
    w2: &Tensor<Vector<F, N>>,
    lists: &Tensor<i32>,
    counts: &Tensor<i32>,
    out: &mut Tensor<O>,
    out_rows: u32,
    k_chunk: u32,
    x_div: u32,
    #[comptime] grouped: bool,
    #[comptime] swiglu: bool,
    #[define(F, O)] _dtypes: [ElemType; 2],
) {
    let vec = VEC as usize;
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let tid = plane * PLANE as usize + lane;
    let threads = (PLANE * PLANES) as usize;
    let (tile_rows, tile_cols, tile_k) = (TILE_ROWS as usize, TILE_COLS as usize, TILE_K as usize);
    let stride = STRIDE as usize;
    let col0 = CUBE_POS_X as usize * tile_cols;
    let block0 = CUBE_POS_Y as usize * tile_rows;
    let (n, k_total) = (w.shape(2), w.shape(1));

    // The block's rows: uniform over the cube (every unit reads the same count).
    let mut expert = 0usize;
    let mut split = 0usize;
    let mut available = out_rows as usize;
    if grouped {
        expert = CUBE_POS_Z as usize;
        available = u32::cast_from(counts[expert * counts.stride(0)]) as usize;
    } else {
        split = CUBE_POS_Z as usize;
    }
    let mut rows_here = 0usize;
    if block0 < available {
        rows_here = clamp_max(available - block0, tile_rows);
    }
    let k_begin = split * k_chunk as usize;
    let k_end = clamp_max(k_begin + k_chunk as usize, k_total);

    if rows_here > 0 {
        let mut x_rows = Shared::<[u32]>::new_aligned_slice(TILE_ROWS as usize, 16usize);
        let mut o_rows = Shared::<[u32]>::new_aligned_slice(TILE_ROWS as usize, 16usize);
        let mut xs = Shared::<[F]>::new_aligned_slice((TILE_ROWS * STRIDE) as usize, 128usize);
        let mut ws = Shared::<[F]>::new_aligned_slice((TILE_K * STRIDE) as usize, 128usize);
        let mut ws2 = Shared::<[F]>::new_aligned_slice(comptime![if swiglu { (TILE_K * STRIDE) as usize } else { 128usize }], 128usize);
        let mut scratch = Shared::<[f32]>::new_aligned_slice((PLANES * 16 * SCRATCH_STRIDE) as usize, 128usize);
        if tid < tile_rows {
            let mut x_row = 0u32;
            let mut o_row = 0u32;
            if tid < rows_here {
                if grouped {
                    let p = u32::cast_from(lists[expert * lists.stride(0) + (block0 + tid) * lists.stride(1)]);
                    x_row = p / x_div;
                    o_row = p;
                } else {
                    x_row = (block0 + tid) as u32;
                    o_row = (split * out_rows as usize + block0 + tid) as u32;
                }
            }
            x_rows[tid] = x_row;
            o_rows[tid] = o_row;
        }
        sync_cube();

        let acc0 =
            cmma::Matrix::<f32>::from_value(cmma::MatrixIdent::Accumulator, 16usize, 16usize, 16usize, cmma::MatrixLayout::Undefined, 0.0);
        let acc1 =
            cmma::Matrix::<f32>::from_value(cmma::MatrixIdent::Accumulator, 16usize, 16usize, 16usize, cmma::MatrixLayout::Undefined, 0.0);
        let acc2 =
            cmma::Matrix::<f32>::from_value(cmma::MatrixIdent::Accumulator, 16usize, 16usize, 16usize, cmma::MatrixLayout::Undefined, 0.0);
        let acc3 =
            cmma::Matrix::<f32>::from_value(cmma::MatrixIdent::Accumulator, 16usize, 16usize, 16usize, cmma::MatrixLayout::Undefined, 0.0);
        let up0 =
            cmma::Matrix::<f32>::from_value(cmma::MatrixIdent::Accumulator, 16usize, 16usize, 16usize, cmma::MatrixLayout::Undefined, 0.0);
        let up1 =
            cmma::Matrix::<f32>::from_value(cmma::MatrixIdent::Accumulator, 16usize, 16usize, 16usize, cmma::MatrixLayout::Undefined, 0.0);
        let up2 =
            cmma::Matrix::<f32>::from_value(cmma::MatrixIdent::Accumulator, 16usize, 16usize, 16usize, cmma::MatrixLayout::Undefined, 0.0);
        let up3 =
            cmma::Matrix::<f32>::from_value(cmma::MatrixIdent::Accumulator, 16usize, 16usize, 16usize, cmma::MatrixLayout::Undefined, 0.0);

        let plane_busy = plane * 16 < rows_here;
        let a_base = plane * 16 * stride;
        let w_base = expert * w.stride(0);
        let w2_base = expert * w2.stride(0);
        let (x_pitch, w_pitch, w2_pitch) = (x.stride(0), w.stride(1), w2.stride(1));
        let per_row = tile_cols / vec;
        let mut kb = k_begin;
        while kb < k_end {
            // Every plane is done with the previous step's tiles.
            sync_cube();
            #[unroll]
            for e in 0..(TILE_ROWS * TILE_COLS / (VEC * PLANE * PLANES)) as usize {
                let idx = tid + e * threads;
                let (r, v) = (idx / per_row, idx % per_row);
                // Activation row r, elements kb + 8v ..
                let k = kb + v * vec;
                let mut xv = zero_vector::<F, N>();
                if r < rows_here && k < k_end {
                    xv = x[(x_rows[r] as usize * x_pitch + k) / vec];
                }
                put_vector::<F, N>(&mut xs, r * stride + v * vec, xv);
                // Weight row kb + r, columns col0 + 8v ..
                let kw = kb + r;
                let col = col0 + v * vec;
                let live = kw < k_end && col < n;
                let mut wv = zero_vector::<F, N>();
                if live {
                    wv = w[(w_base + kw * w_pitch + col) / vec];
                }
                put_vector::<F, N>(&mut ws, r * stride + v * vec, wv);
                if swiglu {
                    let mut uv = zero_vector::<F, N>();
                    if live {
                        uv = w2[(w2_base + kw * w2_pitch + col) / vec];
                    }
                    put_vector::<F, N>(&mut ws2, r * stride + v * vec, uv);
                }
            }
            sync_cube();
            if plane_busy {
                multiply_step::<F>(&xs, &ws, a_base, &acc0, &acc1, &acc2, &acc3);
                if swiglu {
                    multiply_step::<F>(&xs, &ws2, a_base, &up0, &up1, &up2, &up3);
                }
            }
            kb += tile_k;
        }

        // The plane's 16 × 64 results through its scratch, lanes on consecutive columns.
        if plane_busy {
            let s_base = plane * 16 * SCRATCH_STRIDE as usize;
            let s_stride = SCRATCH_STRIDE as usize;
            let each = (16 * TILE_COLS / PLANE) as usize;
            store_tiles(&mut scratch, s_base, &acc0, &acc1, &acc2, &acc3);
            sync_plane();
            let mut values = Array::<f32>::new(each);
            #[unroll]
            for e in 0..each {
                let idx = lane + e * PLANE as usize;
                values[e] = scratch[s_base + (idx / tile_cols) * s_stride + idx % tile_cols];
            }
            if swiglu {
                sync_plane();
                store_tiles(&mut scratch, s_base, &up0, &up1, &up2, &up3);
                sync_plane();
                let one = f32::new(1.0);
                #[unroll]
                for e in 0..each {
                    let idx = lane + e * PLANE as usize;
                    let g = values[e];
                    values[e] = g / (one + f32::exp(f32::new(0.0) - g)) * scratch[s_base + (idx / tile_cols) * s_stride + idx % tile_cols];
                }
            }
            let (o_pitch, o_step) = (out.stride(0), out.stride(1));
            #[unroll]
            for e in 0..each {
                let idx = lane + e * PLANE as usize;
                let (r, c) = (plane * 16 + idx / tile_cols, col0 + idx % tile_cols);
                if r < rows_here && c < n {
                    out[o_rows[r] as usize * o_pitch + c * o_step] = O::cast_from(values[e]);
                }
            }
        }
    }
}
