//! Multi-head self-attention of the decoder (Llama-style MHA with rotate-half RoPE, applied by
//! [`dsocr_kernels::rope_qkv_cached`]; MODEL_SPEC §3.7), reading and extending the KV cache.

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use dsocr_core::layers::Linear;
use dsocr_core::{CoreError, Weights};
use dsocr_kernels::PartialSums;

use crate::config::LmConfig;
use crate::kv_cache::KvCache;

/// q/k/v/o projections without bias; q, k and v side by side in one `[H, 3H]` weight so a
/// decode step reads them in one launch.
#[derive(Debug, Clone)]
pub struct Attention {
    qkv_proj: Linear,
    o_proj: Linear,
    heads: usize,
}

/// What the attention of one forward pass needs besides its input.
pub struct AttentionContext<'a> {
    /// RoPE table `[P, d]` (cosines).
    pub cos: &'a Tensor<2>,
    /// RoPE table `[P, d]` (sines).
    pub sin: &'a Tensor<2>,
    /// `true` where a query may not see a key, `[B, heads, T, L]`; `None` for a single unpadded
    /// sequence (then prefill is causal and a one-token decode step sees everything).
    pub mask: Option<Tensor<4, Bool>>,
    /// Keys to attend over: `cache.len() + T` for a prefill, a [`KvCache::decode_span`] for a
    /// decode step (then `mask` hides the slots past the filled ones), the capacity for the kernel.
    pub span: usize,
    /// A decode step run by dsocr's decode-attention kernel (which reads the pads and the filled
    /// count from the device itself; `mask` is unused).
    pub decode_kernel: bool,
}

impl Attention {
    /// Load `q_proj`, `k_proj`, `v_proj`, `o_proj` under `w`.
    pub fn load(w: &Weights, cfg: &LmConfig) -> Result<Self, CoreError> {
        let h = cfg.hidden_size;
        let parts = ["q_proj", "k_proj", "v_proj"].map(|name| Linear::load(&w.pp(name), h, h, false).map(|l| l.weight));
        let [q, k, v] = parts;
        Ok(Attention {
            qkv_proj: Linear { weight: Tensor::cat(vec![q?, k?, v?], 1), bias: None },
            o_proj: Linear::load(&w.pp("o_proj"), h, h, false)?,
            heads: cfg.num_attention_heads,
        })
    }

    /// `x` `[B, T, H]` → rows `[B·T, H]` (left as the output projection's parts, for the residual
    /// add + norm to sum), writing this layer's keys/values into `cache`.
    pub fn forward(&self, x: Tensor<3>, layer: usize, cache: &mut KvCache, ctx: &AttentionContext<'_>) -> PartialSums {
        let [b, t, hidden] = x.dims();
        let heads = self.heads;
        // RoPE sums the projection's split-K parts itself.
        let qkv = dsocr_kernels::linear_parts(x.reshape([b * t, hidden]), &self.qkv_proj.weight);
        let causal_prefill = ctx.mask.is_none() && cache.is_empty() && t > 1;
        // Columns [q | k | v] → heads, q and k rotated; k and v go into the cache.
        let (q, keys, values) = cache.rope_append(layer, qkv, (ctx.cos, ctx.sin), heads, ctx.span);
        if ctx.decode_kernel {
            // The step's key is in slot `len` (the counter advances after the last layer).
            let out = dsocr_kernels::decode_attention(q, keys, values, cache.pad_tensor(), cache.len_tensor().clone());
            return self.project_out(out, [b, t, hidden]);
        }
        let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: causal_prefill };
        let out = attention(q, keys, values, ctx.mask.clone(), None, options);
        self.project_out(out, [b, t, hidden])
    }

    /// Heads `[B, heads, T, d]` → rows `[B·T, H]` through `o_proj`.
    fn project_out(&self, heads: Tensor<4>, [b, t, hidden]: [usize; 3]) -> PartialSums {
        let rows = heads.swap_dims(1, 2).reshape([b * t, hidden]);
        dsocr_kernels::linear_parts(rows, &self.o_proj.weight)
    }
}
