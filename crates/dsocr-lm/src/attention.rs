//! Multi-head self-attention of the decoder (Llama-style MHA with rotate-half RoPE; MODEL_SPEC
//! §3.7), reading and extending the KV cache.

use burn::prelude::*;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use dsocr_core::layers::Linear;
use dsocr_core::{CoreError, Weights};

use crate::config::LmConfig;
use crate::kv_cache::KvCache;
use crate::rope::Rope;

/// q/k/v/o projections without bias.
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
}

/// What the attention of one forward pass needs besides its input.
pub struct AttentionContext<'a> {
    /// RoPE tables `[B, 1, T, d]`.
    pub cos: &'a Tensor<4>,
    /// RoPE tables `[B, 1, T, d]`.
    pub sin: &'a Tensor<4>,
    /// `true` where a query may not see a key, `[B, heads, T, L]`; `None` for a single unpadded
    /// sequence (then prefill is causal and a one-token decode step sees everything).
    pub mask: Option<Tensor<4, Bool>>,
    /// Keys to attend over: `cache.len() + T` for a prefill, a [`KvCache::decode_span`] for a
    /// decode step (then `mask` hides the slots past the filled ones), the capacity for the kernel.
    pub span: usize,
    /// A decode step run by dsocr's decode-attention kernel (which reads the pads and the filled
    /// count itself; `mask` is unused).
    pub decode_kernel: bool,
}

impl Attention {
    /// Load `q_proj`, `k_proj`, `v_proj`, `o_proj` under `w`.
    pub fn load(w: &Weights, cfg: &LmConfig) -> Result<Self, CoreError> {
        let h = cfg.hidden_size;
        Ok(Attention {
            q_proj: Linear::load(&w.pp("q_proj"), h, h, false)?,
            k_proj: Linear::load(&w.pp("k_proj"), h, h, false)?,
            v_proj: Linear::load(&w.pp("v_proj"), h, h, false)?,
            o_proj: Linear::load(&w.pp("o_proj"), h, h, false)?,
            heads: cfg.num_attention_heads,
        })
    }

    /// `x` `[B, T, H]` → `[B, T, H]`, writing this layer's keys/values into `cache`.
    pub fn forward(&self, x: Tensor<3>, layer: usize, cache: &mut KvCache, ctx: &AttentionContext<'_>) -> Tensor<3> {
        let [b, t, hidden] = x.dims();
        let (heads, hd) = (self.heads, hidden / self.heads);
        let split = |y: Tensor<3>| y.reshape([b, t, heads, hd]).swap_dims(1, 2); // [B, heads, T, d]
        let q = Rope::apply(split(self.q_proj.forward(x.clone())), ctx.cos, ctx.sin);
        let k = Rope::apply(split(self.k_proj.forward(x.clone())), ctx.cos, ctx.sin);
        let v = split(self.v_proj.forward(x));
        let causal_prefill = ctx.mask.is_none() && cache.is_empty() && t > 1;
        let (keys, values) = cache.append(layer, k, v, ctx.span);
        if ctx.decode_kernel {
            let out = dsocr_kernels::decode_attention(q, keys, values, cache.pad_tensor(), cache.len() + t);
            return self.o_proj.forward(out.swap_dims(1, 2).reshape([b, t, hidden]));
        }
        let options = AttentionModuleOptions { scale: None, softcap: None, is_causal: causal_prefill };
        let out = attention(q, keys, values, ctx.mask.clone(), None, options);
        self.o_proj.forward(out.swap_dims(1, 2).reshape([b, t, hidden]))
    }
}
