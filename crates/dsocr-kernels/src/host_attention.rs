//! The vision encoders' attention on the CPU ([`crate::encoder_attention`] in f32 on a device
//! without CubeCL kernels), in blocks of queries: nothing `n × n` in memory.
//!
//! Burn's reference materialises the scores, SAM's relative-position bias and the softmax for all
//! heads at once: at SAM's global blocks (4,096 tokens, 12 heads) each is an 805 MB array, made and
//! read several times per block, and on the CPU that memory traffic (and the kernel zeroing the new
//! pages) cost more than the products themselves (docs/perf.md, session 17). Here each head runs
//! in blocks of [`QUERY_BLOCK`] queries: the block's scores by one GEMM, the bias added from the
//! `rel_h`/`rel_w` tables and the softmax taken row by row on every core, the output by a second
//! GEMM written in place into the tokens-first layout. The products are matrixmultiply's (the
//! GEMM burn-ndarray runs), threaded by itself.

use rayon::prelude::*;

/// Queries per block: a block's scores are `QUERY_BLOCK × n` f32 (4 MB at n = 4,096; 1,024 measured no faster).
pub const QUERY_BLOCK: usize = 256;

/// Shapes of one attention: `q` `[batch, heads, n, d]`, `k`/`v` `[batch, kv_heads, n, d]`.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    /// Batch.
    pub batch: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (`heads` is a multiple).
    pub kv_heads: usize,
    /// Tokens.
    pub n: usize,
    /// Head size.
    pub d: usize,
}

/// SAM's relative-position terms on the host ([`crate::RelPosBias`]): `rel_h` `[B·heads, gh, gw,
/// gh]`, `rel_w` `[B·heads, gh, gw, gw]`, row-major; tokens are the `gh × gw` grid row-major.
#[derive(Debug, Clone, Copy)]
pub struct HostRelPos<'a> {
    /// Each query's term by key row.
    pub rel_h: &'a [f32],
    /// Each query's term by key column.
    pub rel_w: &'a [f32],
    /// Grid rows.
    pub gh: usize,
    /// Grid columns.
    pub gw: usize,
}

/// `softmax(q·kᵀ/√d + bias, masked)·v` on host slices (row-major, shapes in `shape`), returned as
/// `[batch, n, heads, d]`. `causal_from`: keys at or past it are hidden from earlier queries, as
/// in [`crate::encoder_attention`].
pub fn host_encoder_attention(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    shape: AttentionShape,
    bias: Option<HostRelPos<'_>>,
    causal_from: Option<usize>,
) -> Vec<f32> {
    let AttentionShape { batch, heads, kv_heads, n, d } = shape;
    assert!(kv_heads > 0 && heads.is_multiple_of(kv_heads), "heads {heads} not a multiple of key/value heads {kv_heads}");
    assert_eq!(q.len(), batch * heads * n * d, "q is [batch, heads, n, d]");
    assert_eq!((k.len(), v.len()), (batch * kv_heads * n * d, batch * kv_heads * n * d), "k and v are [batch, kv_heads, n, d]");
    if let Some(rel) = bias {
        assert_eq!(rel.gh * rel.gw, n, "the bias grid covers the tokens");
        assert_eq!(rel.rel_h.len(), batch * heads * n * rel.gh, "rel_h is [B·heads, gh, gw, gh]");
        assert_eq!(rel.rel_w.len(), batch * heads * n * rel.gw, "rel_w is [B·heads, gh, gw, gw]");
    }
    let mut out = vec![0.0f32; batch * n * heads * d];
    if n == 0 || d == 0 {
        return out;
    }
    let scale = 1.0 / (d as f32).sqrt();
    let group = heads / kv_heads;
    let mut scores = vec![0.0f32; QUERY_BLOCK.min(n) * n];
    for b in 0..batch {
        for h in 0..heads {
            let bh = b * heads + h;
            let kv = (b * kv_heads + h / group) * n * d;
            let (qh, kh, vh) = (&q[bh * n * d..][..n * d], &k[kv..][..n * d], &v[kv..][..n * d]);
            for start in (0..n).step_by(QUERY_BLOCK) {
                let rows = QUERY_BLOCK.min(n - start);
                let s = &mut scores[..rows * n];
                // SAFETY: matrixmultiply reads `rows × d` of `qh` from `start` (row stride d),
                // `d × n` of kᵀ (element (e, j) at j·d + e: all within `kh`'s n·d) and writes the
                // `rows × n` of `s`; the slices hold exactly that and do not overlap.
                unsafe {
                    matrixmultiply::sgemm(
                        rows,
                        d,
                        n,
                        scale,
                        qh[start * d..].as_ptr(),
                        d as isize,
                        1,
                        kh.as_ptr(),
                        1,
                        d as isize,
                        0.0,
                        s.as_mut_ptr(),
                        n as isize,
                        1,
                    );
                }
                s.par_chunks_mut(n).enumerate().for_each(|(r, row)| {
                    let i = start + r;
                    if let Some(rel) = bias {
                        let (gh, gw) = (rel.gh, rel.gw);
                        let (rh, rw) = (&rel.rel_h[(bh * n + i) * gh..][..gh], &rel.rel_w[(bh * n + i) * gw..][..gw]);
                        for (ky, keys) in row.chunks_exact_mut(gw).enumerate() {
                            for (s, &w) in keys.iter_mut().zip(rw) {
                                *s += rh[ky] + w;
                            }
                        }
                    }
                    if let Some(from) = causal_from {
                        let hidden = from.max(i + 1).min(n);
                        row[hidden..].fill(f32::NEG_INFINITY);
                    }
                    crate::host_math::softmax_in_place(row);
                });
                // SAFETY: reads the `rows × n` probabilities and `n × d` of `vh`; writes `rows × d`
                // elements of `out` at ((b·n + start + r)·heads + h)·d + e (row stride heads·d),
                // all within `out`'s batch·n·heads·d.
                unsafe {
                    matrixmultiply::sgemm(
                        rows,
                        n,
                        d,
                        1.0,
                        s.as_ptr(),
                        n as isize,
                        1,
                        vh.as_ptr(),
                        d as isize,
                        1,
                        0.0,
                        out[((b * n + start) * heads + h) * d..].as_mut_ptr(),
                        (heads * d) as isize,
                        1,
                    );
                }
            }
        }
    }
    out
}
