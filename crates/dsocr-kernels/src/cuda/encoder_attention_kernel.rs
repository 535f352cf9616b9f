//! Attention in one CubeCL kernel, flash style, on tensor cores: the vision encoders' (docs/model.md
//! §4.1, §4.5) and the decoder's prefill (causal, from an offset; §6.2).
//!
//! A cube is [`PLANES`] planes (warps) of 32 lanes and owns [`BLOCK_Q`] queries of one (batch,
//! head): each plane keeps its 16 queries as `d / 16` 16×16 `A` fragments. For every block of
//! [`BLOCK_K`] keys the cube stages keys and values in shared memory (zeros past the sequence),
//! then each plane:
//! 1. computes its 16×64 scores `Q·Kᵀ` with `4 · d / 16` tensor-core products into f32 and stores
//!    them to its scratch in shared memory;
//! 2. (SAM) in plain lanes, one per key column: scales and adds the decomposed relative-position
//!    bias `rel_h[q, key row] + rel_w[q, key column]` (each lane's key row and column divided out
//!    once per block, the table reads of a query row contiguous); then, two lanes per query row
//!    (32 scores each, visited in a per-lane rotation that keeps shared-memory banks apart): scales
//!    (without bias), masks (keys past the sequence; keys `j > i + query_offset` at or past
//!    `causal_from`: DeepSeek-OCR 2's encoder hides the later learned queries, the decoder's
//!    prefill every later slot), and folds the block into the row's running maximum and sum
//!    (online softmax); the probabilities go to shared memory as the storage type;
//! 3. multiplies them by the values, 64 columns of the head at a time (16 tensor-core products
//!    each) into its scratch, which the lanes add to their rescaled f32 accumulators (each lane
//!    holds half of the row's columns).
//!
//! Nothing `n × n` is ever in memory. The output is written as `[B, n, heads, d]`, the layout the
//! output projection reads, so no transpose follows. Queries, keys and values are read through
//! their strides (views of the fused QKV projection need no copy); query head `h` reads key/value
//! head `h / (heads / kv_heads)` (grouped queries). Head size 64 (SAM, CLIP-L, the Qwen2 encoder)
//! or 128 (the decoder); bf16 or f16 storage, f32 arithmetic.
//! This file holds only CubeCL code (no Burn), so it compiles for any CubeCL runtime.

use cubecl::prelude::*;

/// The head sizes the kernel is written for.
pub(super) const HEAD_DIMS: [usize; 2] = [64, 128];
/// Planes per cube.
pub(super) const PLANES: u32 = 4;
/// Lanes per plane the kernel is written for (NVIDIA warps).
pub(super) const PLANE: u32 = 32;
/// Query rows per plane (one tensor-core tile).
const ROWS: u32 = 16;
/// Queries per cube.
pub(super) const BLOCK_Q: u32 = PLANES * ROWS;
/// Keys per iteration.
const BLOCK_K: u32 = 64;
/// Columns of the probability tile, and of the head handled per pass of the value product.
const COLS: u32 = 64;
/// Padding of a shared-memory row past its columns, in elements: rows stay a whole number of
/// 16-byte vectors (as tensor-core loads need) and off multiples of 128 bytes against bank
/// conflicts.
const PAD: u32 = 8;
/// Row stride of the probability tile (and of the queries' staging), in elements.
const P_STRIDE: u32 = COLS + PAD;
/// Row stride of a plane's f32 scratch: 68 words (a multiple of 4, as tensor-core stores need) puts
/// row `r` on bank `4r`, so with the column rotation of the softmax pass the 32 lanes of a plane
/// read 32 different banks (a stride of 64 put every lane on one bank: 32-way conflicts).
const SCRATCH_STRIDE: u32 = 68;
/// Stands in for −∞ (exp of a difference of two of them is 1, not NaN; masked keys get weight 0
/// by test, not by exp).
const NEG_BIG: f32 = -1.0e30;

/// A 16×16×16 tensor-core fragment of `ident` read from `tile` (row stride `stride`).
#[cube]
fn fragment<F: Float>(
    #[comptime] ident: cmma::MatrixIdent,
    #[comptime] layout: cmma::MatrixLayout,
    tile: &[F],
    stride: u32,
) -> cmma::Matrix<F> {
    cmma::Matrix::<F>::from_slice(ident, 16usize, 16usize, 16usize, layout, tile, stride)
}

/// A zeroed 16×16 f32 accumulator.
#[cube]
fn accumulator() -> cmma::Matrix<f32> {
    cmma::Matrix::<f32>::from_value(cmma::MatrixIdent::Accumulator, 16usize, 16usize, 16usize, cmma::MatrixLayout::Undefined, 0.0)
}

/// One cube per (block of [`BLOCK_Q`] queries, head, batch). Queries `q` `[B, heads, n, d]` sit at
/// positions `query_offset + i` among the keys `k`/`v` `[B, kv_heads, n_k, d]`. `rel_h`
/// `[B·heads, Gh, Gw, Gh]` and `rel_w` `[B·heads, Gh, Gw, Gw]` (read only `with_bias`; then
/// `n = n_k = Gh·Gw`, row-major, and no offset) hold each query's bias towards every key row and
/// key column.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(super) fn encoder_attention_kernel<F: Float>(
    q: &Tensor<F>,
    k: &Tensor<F>,
    v: &Tensor<F>,
    rel_h: &Tensor<F>,
    rel_w: &Tensor<F>,
    out: &mut Tensor<F>,
    scale: f32,
    causal_from: u32,
    query_offset: u32,
    #[comptime] head_dim: u32,
    #[comptime] with_bias: bool,
    #[define(F)] _dtype: ElemType,
) {
    let q_block = CUBE_POS_X as usize;
    let h = CUBE_POS_Y as usize;
    let b = CUBE_POS_Z as usize;
    let lane = UNIT_POS_X as usize;
    let plane = UNIT_POS_Y as usize;
    let thread = plane * PLANE as usize + lane;
    let d = head_dim as usize;
    let kv_stride = comptime!(head_dim + PAD);
    let stride = kv_stride as usize;
    let p_stride = P_STRIDE as usize;
    let passes = comptime!((head_dim / COLS) as usize);
    let n = q.shape(2);
    let n_k = k.shape(2);
    let heads = q.shape(1);
    let kv_h = h / (heads / k.shape(1));
    let offset = query_offset as usize;
    let s_stride = SCRATCH_STRIDE as usize;
    let rows = ROWS as usize;

    let mut keys = Shared::<[F]>::new_aligned_slice(comptime!((BLOCK_K * kv_stride) as usize), 128usize);
    let mut values = Shared::<[F]>::new_aligned_slice(comptime!((BLOCK_K * kv_stride) as usize), 128usize);
    let mut probs = Shared::<[F]>::new_aligned_slice((PLANES * ROWS * P_STRIDE) as usize, 128usize);
    let mut scratch = Shared::<[f32]>::new_aligned_slice((PLANES * ROWS * SCRATCH_STRIDE) as usize, 128usize);
    // Where each of the cube's queries' rows of the bias tables start (`with_bias` only).
    let mut bias_rows = Shared::<[u32]>::new_aligned_slice((2 * BLOCK_Q) as usize, 16usize);
    let p_base = plane * rows * p_stride;
    let p_end = p_base + rows * p_stride;
    let s_base = plane * rows * s_stride;
    let s_end = s_base + rows * s_stride;

    // This plane's queries, 64 columns at a time through its probability tile (zeros past the
    // sequence), then held as `d / 16` A fragments for the whole key loop.
    let row0 = q_block * BLOCK_Q as usize + plane * rows;
    let q_base = b * q.stride(0) + h * q.stride(1);
    let zero = F::cast_from(f32::new(0.0));
    let mut q_frags = Sequence::<cmma::Matrix<F>>::new();
    #[unroll]
    for pass in 0..passes {
        #[unroll]
        for e in 0..(ROWS * COLS / PLANE) as usize {
            let idx = lane + e * PLANE as usize;
            let (r, c) = (idx / COLS as usize, idx % COLS as usize);
            let i = row0 + r;
            let mut value = zero;
            if i < n {
                value = q[q_base + i * q.stride(2) + (pass * COLS as usize + c) * q.stride(3)];
            }
            probs[p_base + r * p_stride + c] = value;
        }
        sync_plane();
        #[unroll]
        for f in 0..4usize {
            q_frags.push(fragment::<F>(cmma::MatrixIdent::A, cmma::MatrixLayout::RowMajor, &probs[p_base + f * 16..p_end], P_STRIDE));
        }
        sync_plane();
    }

    // Keys past the last one any query of this cube may see are skipped (the causal part).
    let cube_end = clamp_max((q_block + 1) * BLOCK_Q as usize, n) + offset;
    let mut key_end = n_k;
    if (causal_from as usize) < n_k {
        key_end = clamp_max(clamp_min(causal_from as usize, cube_end), n_k);
    }
    let blocks = key_end.div_ceil(BLOCK_K as usize);

    // Lane pair (2r, 2r + 1) owns query row r of the plane, columns [c0, c0 + 32) of each pass
    // of 64, visited from a lane's own rotation `rot` (column c0 + ((c + rot) mod 32) at step c,
    // and `acc[32·pass + c]` holds that output column): with SCRATCH_STRIDE's bank 4r per row,
    // rot = r/8 + 2·(lane mod 2) makes the 32 lanes' banks 4(r mod 8) + r/8 + 2·(lane mod 2) all
    // different.
    let r = lane / 2;
    let c0 = (lane % 2) * 32;
    let rot = r / 8 + 2 * (lane % 2);
    let i = row0 + r;
    let mut grid_w = 1;
    if with_bias {
        grid_w = rel_w.shape(3);
        // The bias tables' rows of the cube's queries (clamped: rows past the sequence are
        // computed, never written).
        if thread < BLOCK_Q as usize {
            let bh = b * heads + h;
            let i_c = clamp_max(q_block * BLOCK_Q as usize + thread, n - 1);
            let (qy, qx) = (i_c / grid_w, i_c % grid_w);
            bias_rows[thread] = u32::cast_from(bh * rel_h.stride(0) + qy * rel_h.stride(1) + qx * rel_h.stride(2));
            bias_rows[BLOCK_Q as usize + thread] = u32::cast_from(bh * rel_w.stride(0) + qy * rel_w.stride(1) + qx * rel_w.stride(2));
        }
        sync_cube();
    }
    let mut run_max = f32::new(NEG_BIG);
    let mut run_sum = f32::new(0.0);
    let mut acc = Array::<f32>::new(comptime!(head_dim as usize / 2));
    let mut weights = Array::<f32>::new(32usize);
    #[unroll]
    for c in 0..(head_dim / 2) as usize {
        acc[c] = f32::new(0.0);
    }
    let k_base = b * k.stride(0) + kv_h * k.stride(1);
    let v_base = b * v.stride(0) + kv_h * v.stride(1);

    for kb in 0..blocks {
        let key0 = kb * BLOCK_K as usize;
        // Stage the block's keys and values (every plane still reads the previous block's).
        sync_cube();
        #[unroll]
        for e in 0..(BLOCK_K * head_dim / (PLANES * PLANE)) as usize {
            let idx = thread + e * (PLANES * PLANE) as usize;
            let (kr, kc) = (idx / d, idx % d);
            let j = key0 + kr;
            let mut key = zero;
            let mut value = zero;
            if j < n_k {
                key = k[k_base + j * k.stride(2) + kc * k.stride(3)];
                value = v[v_base + j * v.stride(2) + kc * v.stride(3)];
            }
            keys[kr * stride + kc] = key;
            values[kr * stride + kc] = value;
        }
        sync_cube();

        // Scores: four 16×16 tiles of keys, each the sum of `d / 16` products over the head.
        #[unroll]
        for t in 0..4usize {
            let kt = t * 16 * stride;
            let scores = accumulator();
            #[unroll]
            for f in 0..(head_dim / 16) as usize {
                let kf = fragment::<F>(cmma::MatrixIdent::B, cmma::MatrixLayout::ColMajor, &keys[kt + f * 16..kt + 16 * stride], kv_stride);
                cmma::execute(q_frags.index(f), &kf, &scores, &scores);
            }
            cmma::store(&mut scratch[s_base + t * 16..s_end], &scores, SCRATCH_STRIDE, cmma::MatrixLayout::RowMajor);
        }
        sync_plane();

        if with_bias {
            // Scale and bias, lane = key column (two halves): the key's grid row and column are
            // divided out once per block, the table reads of one query row are contiguous.
            #[unroll]
            for half in 0..2usize {
                let col = lane + half * PLANE as usize;
                let j_c = clamp_max(key0 + col, n_k - 1);
                let (ky, kx) = (j_c / grid_w, j_c % grid_w);
                let (oh, ow) = (ky * rel_h.stride(3), kx * rel_w.stride(3));
                #[unroll]
                for row in 0..ROWS as usize {
                    let qi = plane * rows + row;
                    let at = s_base + row * s_stride + col;
                    let bias = f32::cast_from(rel_h[bias_rows[qi] as usize + oh])
                        + f32::cast_from(rel_w[bias_rows[BLOCK_Q as usize + qi] as usize + ow]);
                    scratch[at] = scratch[at] * scale + bias;
                }
            }
            sync_plane();
        }

        // Online softmax over the lane's 32 scores, then its partner's half of the row.
        let mut block_max = f32::new(NEG_BIG);
        #[unroll]
        for c in 0..32 {
            let col = c0 + ((c + rot) % 32);
            let j = key0 + col;
            let mut s = scratch[s_base + r * s_stride + col];
            if !with_bias {
                s *= scale;
            }
            let visible = j < n_k && (j < causal_from as usize || j <= i + offset);
            weights[c] = select(visible, s, f32::new(NEG_BIG));
            block_max = f32::max(block_max, weights[c]);
        }
        block_max = f32::max(block_max, plane_shuffle_xor(block_max, 1));
        let new_max = f32::max(run_max, block_max);
        let rescale = f32::exp(run_max - new_max);
        let mut block_sum = f32::new(0.0);
        #[unroll]
        for c in 0..32 {
            let mut p = f32::new(0.0);
            if weights[c] > f32::new(NEG_BIG) {
                p = f32::exp(weights[c] - new_max);
            }
            block_sum += p;
            probs[p_base + r * p_stride + c0 + ((c + rot) % 32)] = F::cast_from(p);
        }
        block_sum += plane_shuffle_xor(block_sum, 1);
        run_sum = run_sum * rescale + block_sum;
        run_max = new_max;
        sync_plane();

        // Probabilities × values: per pass, four 16×16 tiles of 64 head columns, each over the
        // block's 64 keys.
        let mut p_frags = Sequence::<cmma::Matrix<F>>::new();
        #[unroll]
        for f in 0..4usize {
            p_frags.push(fragment::<F>(cmma::MatrixIdent::A, cmma::MatrixLayout::RowMajor, &probs[p_base + f * 16..p_end], P_STRIDE));
        }
        #[unroll]
        for pass in 0..passes {
            #[unroll]
            for t in 0..4usize {
                let vt = pass * COLS as usize + t * 16;
                let part = accumulator();
                #[unroll]
                for f in 0..4usize {
                    let vf = fragment::<F>(
                        cmma::MatrixIdent::B,
                        cmma::MatrixLayout::RowMajor,
                        &values[f * 16 * stride + vt..BLOCK_K as usize * stride],
                        kv_stride,
                    );
                    cmma::execute(p_frags.index(f), &vf, &part, &part);
                }
                cmma::store(&mut scratch[s_base + t * 16..s_end], &part, SCRATCH_STRIDE, cmma::MatrixLayout::RowMajor);
            }
            sync_plane();
            #[unroll]
            for c in 0..32 {
                let a = pass * 32 + c;
                acc[a] = acc[a] * rescale + scratch[s_base + r * s_stride + c0 + ((c + rot) % 32)];
            }
            // The next pass (or block's scores) overwrites the scratch this one was read from.
            sync_plane();
        }
    }

    if i < n {
        let inv = f32::new(1.0) / run_sum;
        let o_base = b * out.stride(0) + i * out.stride(1) + h * out.stride(2);
        let o_elem = out.stride(3);
        #[unroll]
        for pass in 0..passes {
            #[unroll]
            for c in 0..32 {
                let col = pass * COLS as usize + c0 + (c + rot) % 32;
                out[o_base + col * o_elem] = F::cast_from(acc[pass * 32 + c] * inv);
            }
        }
    }
}
