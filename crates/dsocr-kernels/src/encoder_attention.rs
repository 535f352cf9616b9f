//! Attention of the vision encoders (SAM, CLIP-L, DeepSeek-OCR 2's Qwen2 encoder): every query of
//! a view against every key, with SAM's decomposed relative-position bias or the Qwen2 encoder's
//! mask where they have them (docs/model.md §4.1, §4.5).
//!
//! On a CUDA device in bf16/f16 this is one fused kernel (flash style, tensor cores, nothing
//! `n × n` in memory); on the CPU in f32 the host kernel of [`crate::host_encoder_attention`]
//! (blocks of queries, nothing `n × n` in memory either; off with [`crate::KernelSettings::enabled`]
//! as dsocr's GPU kernels are); elsewhere the reference below, which
//! materialises the bias and mask as the official code does.

use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

/// SAM's decomposed relative-position bias (docs/model.md §4.1): for a query at grid cell
/// `(qy, qx)` and a key at `(ky, kx)` of a `Gh × Gw` grid (tokens row-major, `n = Gh·Gw`), the
/// bias is `rel_h[bh, qy, qx, ky] + rel_w[bh, qy, qx, kx]`, `bh` = batch × heads + head.
#[derive(Debug, Clone)]
pub struct RelPosBias {
    /// `[B·heads, Gh, Gw, Gh]`: each query's term for every key row.
    pub rel_h: Tensor<4>,
    /// `[B·heads, Gh, Gw, Gw]`: each query's term for every key column.
    pub rel_w: Tensor<4>,
}

impl RelPosBias {
    /// The whole bias `[B, heads, n, n]` (what the reference adds to the scores).
    pub fn materialize(&self, batch: usize, heads: usize) -> Tensor<4> {
        let [bh, gh, gw, _] = self.rel_h.dims();
        let n = gh * gw;
        debug_assert_eq!(bh, batch * heads);
        let bias = self.rel_h.clone().unsqueeze_dim::<5>(4) + self.rel_w.clone().unsqueeze_dim::<5>(3); // [bh, qy, qx, ky, kx]
        bias.reshape([batch, heads, n, n])
    }
}

/// Whether [`encoder_attention`] runs as dsocr's fused kernel on `device` for tensors of `dtype`
/// with heads of `head_dim` (then nothing `n × n` is in memory; the engine sizes its vision
/// batches by it): a CUDA device in a `cuda` build with dsocr's kernels on (not `--no-kernels`),
/// bf16 or f16, head size 64.
pub fn encoder_attention_fused(device: &Device, dtype: burn::tensor::DType, head_dim: usize) -> bool {
    crate::kernels_enabled(device) && matches!(dtype, DType::BF16 | DType::F16) && head_dim == 64
}

/// `softmax(q·kᵀ/√d + bias, masked)·v` over whole sequences, returned as `[B, n, heads, d]`
/// (tokens first: the layout the output projection reads).
///
/// `q` `[B, heads, n, d]`; `k`, `v` `[B, kv_heads, n, d]` with `heads` a multiple of `kv_heads`
/// (query head `h` reads key/value head `h / (heads / kv_heads)`); any strides (views of a fused
/// QKV projection need no copy). `bias`: SAM's relative-position terms. `causal_from`: keys at or
/// past this position are hidden from earlier queries (`j ≥ causal_from && j > i`), DeepSeek-OCR
/// 2's encoder mask (bidirectional over the image tokens, causal over the learned queries).
pub fn encoder_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<RelPosBias>, causal_from: Option<usize>) -> Tensor<4> {
    #[cfg(feature = "cuda")]
    if encoder_attention_fused(&q.device(), q.dtype(), q.dims()[3]) && crate::cuda::encoder_attention_supported(&q, &k, &v, bias.as_ref()) {
        let n = q.dims()[2];
        return crate::cuda::encoder_attention(q, k, v, bias, causal_from.unwrap_or(n).min(n), 0);
    }
    if crate::host_kernels_enabled(&q.device(), q.dtype()) {
        return encoder_attention_host(q, k, v, bias, causal_from);
    }
    encoder_attention_reference(q, k, v, bias, causal_from)
}

/// [`encoder_attention`] on the CPU: [`crate::host_encoder_attention`] over the tensors' values.
fn encoder_attention_host(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Option<RelPosBias>, causal_from: Option<usize>) -> Tensor<4> {
    let [batch, heads, n, d] = q.dims();
    let shape = crate::AttentionShape { batch, heads, kv_heads: k.dims()[1], n, d };
    let device = q.device();
    let host = |t: Tensor<4>| contiguous_values(t).convert::<f32>().try_into_vec::<f32>().expect("f32 values");
    let (q, k, v) = (host(q), host(k), host(v));
    let grid = bias.as_ref().map(|rel| (rel.rel_h.dims()[1], rel.rel_h.dims()[2]));
    let tables = bias.map(|rel| (host(rel.rel_h), host(rel.rel_w)));
    let rel = tables.as_ref().zip(grid).map(|((rel_h, rel_w), (gh, gw))| crate::HostRelPos { rel_h, rel_w, gh, gw });
    let out = crate::host_encoder_attention(&q, &k, &v, shape, rel, causal_from);
    Tensor::<4>::from_data(TensorData::new(out, [batch, n, heads, d]), (&device, DType::F32))
}

/// A tensor's values in row-major order. q, k and v are views into one projection's output (and
/// SAM's bias terms permuted views), which burn-ndarray's `into_data` walks element by element on
/// one thread: ≈ 17 % of a page's CPU vision time (docs/perf.md, session 18). Assigned into a
/// tensor of its own first, the copy goes lane by lane, and `into_data` then takes the buffer.
fn contiguous_values(t: Tensor<4>) -> TensorData {
    let dims = t.dims();
    let whole = dims.map(|d| 0..d);
    Tensor::<4>::empty(dims, (&t.device(), t.dtype())).slice_assign(whole, t).into_data()
}

/// The plain Burn definition of [`encoder_attention`]: the bias and mask materialised, the key
/// and value heads repeated for grouped queries, Burn's attention.
pub fn encoder_attention_reference(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Option<RelPosBias>,
    causal_from: Option<usize>,
) -> Tensor<4> {
    let [b, heads, n, d] = q.dims();
    let kv_heads = k.dims()[1];
    let repeat = |x: Tensor<4>| {
        if kv_heads == heads { x } else { x.unsqueeze_dim::<5>(2).expand([b, kv_heads, heads / kv_heads, n, d]).reshape([b, heads, n, d]) }
    };
    let device = q.device();
    let mask = causal_from.map(|from| {
        let rows = Tensor::<1, Int>::arange(0..n as i64, &device).reshape([n, 1]).expand([n, n]);
        let keys = Tensor::<1, Int>::arange(0..n as i64, &device).reshape([1, n]).expand([n, n]);
        keys.clone().greater(rows).bool_and(keys.greater_equal_elem(from as i64)).reshape([1, 1, n, n]).expand([b, heads, n, n])
    });
    let bias = bias.map(|rel| rel.materialize(b, heads));
    attention(q, repeat(k), repeat(v), mask, bias, AttentionModuleOptions::default()).swap_dims(1, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Distribution};

    fn device() -> Device {
        dsocr_core::DeviceSpec::Cpu.device().unwrap()
    }

    fn host(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// The reference against attention written out by hand for every query: the bias terms by
    /// key row and column, the mask, grouped heads, and the tokens-first output layout.
    #[test]
    fn reference_matches_attention_written_out() {
        let dev = device();
        let (b, heads, kv_heads, gh, gw, d) = (2, 4, 2, 3, 5, 8);
        let n = gh * gw;
        let normal = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let (q, k, v) = (normal([b, heads, n, d]), normal([b, kv_heads, n, d]), normal([b, kv_heads, n, d]));
        let rel = RelPosBias { rel_h: normal([b * heads, gh, gw, gh]), rel_w: normal([b * heads, gh, gw, gw]) };
        let from = 9;
        // The CPU's host kernel and Burn's reference, each against the written-out attention.
        for got in [
            host(encoder_attention_host(q.clone(), k.clone(), v.clone(), Some(rel.clone()), Some(from))),
            host(encoder_attention_reference(q.clone(), k.clone(), v.clone(), Some(rel.clone()), Some(from))),
        ] {
            check_written_out(&got, (&q, &k, &v, &rel), (b, heads, kv_heads, gh, gw, d), from);
        }
    }

    #[allow(clippy::type_complexity)]
    fn check_written_out(
        got: &[f32],
        (q, k, v, rel): (&Tensor<4>, &Tensor<4>, &Tensor<4>, &RelPosBias),
        (b, heads, kv_heads, gh, gw, d): (usize, usize, usize, usize, usize, usize),
        from: usize,
    ) {
        let n = gh * gw;
        assert_eq!(got.len(), b * n * heads * d);
        let (q, k, v, rh, rw) = (host(q.clone()), host(k.clone()), host(v.clone()), host(rel.rel_h.clone()), host(rel.rel_w.clone()));
        let group = heads / kv_heads;
        for bi in 0..b {
            for h in 0..heads {
                let kvh = h / group;
                let bh = bi * heads + h;
                for i in 0..n {
                    let scores: Vec<Option<f32>> = (0..n)
                        .map(|j| {
                            if j >= from && j > i {
                                return None;
                            }
                            let dot: f32 =
                                (0..d).map(|e| q[((bi * heads + h) * n + i) * d + e] * k[((bi * kv_heads + kvh) * n + j) * d + e]).sum();
                            let (qy, qx, ky, kx) = (i / gw, i % gw, j / gw, j % gw);
                            Some(
                                dot / (d as f32).sqrt()
                                    + rh[((bh * gh + qy) * gw + qx) * gh + ky]
                                    + rw[((bh * gh + qy) * gw + qx) * gw + kx],
                            )
                        })
                        .collect();
                    let top = scores.iter().flatten().fold(f32::NEG_INFINITY, |a, &s| a.max(s));
                    let weights: Vec<f32> = scores.iter().map(|s| s.map_or(0.0, |s| (s - top).exp())).collect();
                    let total: f32 = weights.iter().sum();
                    for e in 0..d {
                        let expected: f32 = (0..n).map(|j| weights[j] * v[((bi * kv_heads + kvh) * n + j) * d + e]).sum::<f32>() / total;
                        let at = ((bi * n + i) * heads + h) * d + e;
                        assert!((got[at] - expected).abs() < 1e-5, "b {bi} h {h} i {i} e {e}: {} vs {expected}", got[at]);
                    }
                }
            }
        }
    }

    /// Several query blocks (and a last partial one), SAM's bias on a non-square grid, the mask
    /// starting inside a block, grouped heads: the host kernel equals Burn's reference.
    #[test]
    fn host_kernel_matches_the_reference_over_several_blocks() {
        let dev = device();
        let (b, heads, kv_heads, gh, gw, d) = (2, 4, 2, 15, 20, 16);
        let n = gh * gw;
        assert!(n > crate::QUERY_BLOCK && !n.is_multiple_of(crate::QUERY_BLOCK));
        let normal = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let (q, k, v) = (normal([b, heads, n, d]), normal([b, kv_heads, n, d]), normal([b, kv_heads, n, d]));
        let rel = RelPosBias { rel_h: normal([b * heads, gh, gw, gh]), rel_w: normal([b * heads, gh, gw, gw]) };
        for (bias, from) in [(Some(rel.clone()), Some(200)), (None, None)] {
            let got = host(encoder_attention_host(q.clone(), k.clone(), v.clone(), bias.clone(), from));
            let want = host(encoder_attention_reference(q.clone(), k.clone(), v.clone(), bias, from));
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "largest difference {worst}");
        }
    }

    /// q, k and v as the encoders make them (views into one fused projection, shared by all
    /// three) and SAM's bias terms as permuted views: the host path reads them in their logical
    /// order, as the reference does.
    #[test]
    fn host_kernel_reads_views_of_a_fused_projection() {
        let dev = device();
        let (b, heads, gh, gw, d) = (2, 3, 6, 7, 8);
        let n = gh * gw;
        let qkv = Tensor::<4>::random([b, n, 3 * heads, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let split = |part: usize| qkv.clone().narrow(2, part * heads, heads).swap_dims(1, 2);
        let normal = |shape: [usize; 4]| Tensor::<4>::random(shape, Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
        let rel = RelPosBias {
            rel_h: normal([gh, b * heads, gw, gh]).permute([1, 0, 2, 3]),
            rel_w: normal([gw, b * heads, gh, gw]).permute([1, 2, 0, 3]),
        };
        let got = host(encoder_attention_host(split(0), split(1), split(2), Some(rel.clone()), None));
        let want = host(encoder_attention_reference(split(0), split(1), split(2), Some(rel), None));
        let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-5, "largest difference {worst}");
    }
}
