//! Attention of the decoder's prefill (docs/model.md §6.2): a chunk of a sequence's queries, at
//! slots `start..start + T`, over every slot up to its own (causal; a later chunk also sees all
//! earlier slots).
//!
//! On a CUDA device in bf16/f16 this is the flash-style kernel the encoders use
//! ([`crate::encoder_attention`]), with head size 128 and the queries offset by `start`: one
//! kernel, compiled once, chosen by rule. Burn's attention, which it replaces, is autotuned for
//! each new prompt length on a fresh machine (≈ 21 s of a first page on an H100) and falls back to
//! materialised scores and tuned matrix products when a chunk is not a whole number of its
//! stages (docs/perf.md, session 26). Elsewhere the reference below.

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

/// Whether [`prefill_attention`] runs as dsocr's fused kernel for these tensors.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn prefill_attention_fused(q: &Tensor<4>, keys: &Tensor<4>, values: &Tensor<4>) -> bool {
    #[cfg(feature = "cuda")]
    {
        crate::kernels_enabled(&q.device()) && crate::cuda::encoder_attention_supported(q, keys, values, None)
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (q, keys, values);
        false
    }
}

/// `softmax(q·kᵀ/√d, causal)·v` for queries `q` `[B, heads, T, d]` at slots `start..start + T`
/// over `keys`/`values` `[B, heads, start + T, d]` (the sequences' live slots), returned tokens
/// first, `[B, T, heads, d]` (the layout the output projection reads).
pub fn prefill_attention(q: Tensor<4>, keys: Tensor<4>, values: Tensor<4>, start: usize) -> Tensor<4> {
    let [_, _, t, _] = q.dims();
    assert_eq!(keys.dims()[2], start + t, "prefill attention: {t} queries from slot {start} need {} keys", start + t);
    #[cfg(feature = "cuda")]
    if prefill_attention_fused(&q, &keys, &values) {
        // Keys at or past slot 0 are hidden from the queries before them: plainly causal.
        return crate::cuda::encoder_attention(q, keys, values, None, 0, start);
    }
    prefill_attention_reference(q, keys, values, start)
}

/// The plain Burn definition of [`prefill_attention`]: Burn's attention, causal for a first
/// chunk, with a mask of the later slots for a chunk after it.
pub fn prefill_attention_reference(q: Tensor<4>, keys: Tensor<4>, values: Tensor<4>, start: usize) -> Tensor<4> {
    let [b, heads, t, _] = q.dims();
    let live = start + t;
    let mask = (start > 0).then(|| {
        let slots = Tensor::<1, Int>::arange(0..live as i64, &q.device()).reshape([1, live]);
        let queries = Tensor::<1, Int>::arange(start as i64..live as i64, &q.device()).reshape([t, 1]);
        slots.greater(queries).reshape([1, 1, t, live]).expand([b, heads, t, live])
    });
    let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: start == 0 && t > 1 };
    attention(q, keys, values, mask, None, options).swap_dims(1, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Distribution};

    fn host(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// A first chunk and a later one, against attention written out query by query: each sees
    /// exactly the slots up to its own, and the output comes back tokens first.
    #[test]
    fn reference_is_causal_from_the_chunk_start() {
        let dev = dsocr_core::DeviceSpec::Cpu.device().unwrap();
        let (b, heads, d) = (2, 3, 8);
        for (start, t) in [(0usize, 7usize), (5, 4), (9, 1)] {
            let live = start + t;
            let normal = |n: usize| Tensor::<4>::random([b, heads, n, d], Distribution::Normal(0.0, 1.0), (&dev, DType::F32));
            let (q, k, v) = (normal(t), normal(live), normal(live));
            let got = host(prefill_attention(q.clone(), k.clone(), v.clone(), start));
            let (q, k, v) = (host(q), host(k), host(v));
            assert_eq!(got.len(), b * t * heads * d);
            for bi in 0..b {
                for h in 0..heads {
                    for i in 0..t {
                        // Row `j` of a `[B, heads, n, d]` tensor of this batch and head.
                        let row = |n: usize, j: usize| ((bi * heads + h) * n + j) * d;
                        let seen = start + i + 1;
                        let scores: Vec<f32> = (0..seen)
                            .map(|j| (0..d).map(|e| q[row(t, i) + e] * k[row(live, j) + e]).sum::<f32>() / (d as f32).sqrt())
                            .collect();
                        let top = scores.iter().fold(f32::NEG_INFINITY, |a, &s| a.max(s));
                        let weights: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
                        let total: f32 = weights.iter().sum();
                        for e in 0..d {
                            let want: f32 = (0..seen).map(|j| weights[j] * v[row(live, j) + e]).sum::<f32>() / total;
                            let at = ((bi * t + i) * heads + h) * d + e;
                            assert!((got[at] - want).abs() < 1e-5, "start {start} b {bi} h {h} i {i} e {e}: {} vs {want}", got[at]);
                        }
                    }
                }
            }
        }
    }
}
