//! DeepSeek-OCR 2's second stage (docs/model-ocr2.md §5): a Qwen2 decoder used as an encoder. A view's
//! SAM tokens are followed by as many learned queries; the image tokens attend to each other both
//! ways and never to the queries, the queries attend to every image token and causally to each
//! other; only the query positions are kept.

use burn::prelude::*;
use burn::tensor::activation::silu;

use dsocr_core::layers::{Linear, RmsNorm, apply_rope, rope_tables};
use dsocr_core::{CoreError, StreamCopy, Weights};
use dsocr_kernels::{encoder_attention, linear_layer};

use crate::config::Qwen2EncoderConfig;

/// One pre-norm Qwen2 layer: grouped-query attention with q/k/v biases and RoPE, SwiGLU MLP.
#[derive(Debug, Clone)]
struct Qwen2Layer {
    input_layernorm: RmsNorm,
    /// q, k and v side by side: `[dim, (heads + 2·kv_heads)·head_dim]`, with their biases.
    qkv_proj: Linear,
    o_proj: Linear,
    post_attention_layernorm: RmsNorm,
    /// gate and up side by side: `[dim, 2·intermediate]`.
    gate_up_proj: Linear,
    down_proj: Linear,
}

impl Qwen2Layer {
    fn load(w: &Weights, cfg: &Qwen2EncoderConfig) -> Result<Self, CoreError> {
        let (d, kv) = (cfg.dim, cfg.kv_heads * cfg.head_dim());
        let attn = w.pp("self_attn");
        let [q, k, v] = [("q_proj", d), ("k_proj", kv), ("v_proj", kv)].map(|(name, out)| Linear::load(&attn.pp(name), d, out, true));
        let (q, k, v) = (q?, k?, v?);
        let bias = |l: &Linear| l.bias.clone().expect("loaded with a bias");
        let qkv_proj = Linear {
            bias: Some(Tensor::cat(vec![bias(&q), bias(&k), bias(&v)], 0)),
            weight: Tensor::cat(vec![q.weight, k.weight, v.weight], 1),
        };
        let [gate, up] = ["gate_proj", "up_proj"].map(|name| Linear::load(&w.pp("mlp").pp(name), d, cfg.intermediate_size, false));
        Ok(Qwen2Layer {
            input_layernorm: RmsNorm::load(&w.pp("input_layernorm"), d, cfg.eps)?,
            qkv_proj,
            o_proj: Linear::load(&attn.pp("o_proj"), d, d, false)?,
            post_attention_layernorm: RmsNorm::load(&w.pp("post_attention_layernorm"), d, cfg.eps)?,
            gate_up_proj: Linear { weight: Tensor::cat(vec![gate?.weight, up?.weight], 1), bias: None },
            down_proj: Linear::load(&w.pp("mlp.down_proj"), cfg.intermediate_size, d, false)?,
        })
    }

    fn forward(&self, x: Tensor<3>, ctx: &LayerContext, cfg: &Qwen2EncoderConfig) -> Tensor<3> {
        let h = x.clone() + self.attention(rms_norm(x, &self.input_layernorm), ctx, cfg);
        let gate_up = linear_layer(&self.gate_up_proj, rms_norm(h.clone(), &self.post_attention_layernorm));
        let inter = cfg.intermediate_size;
        let gate = gate_up.clone().narrow(2, 0, inter);
        let up = gate_up.narrow(2, inter, inter);
        h + linear_layer(&self.down_proj, silu(gate) * up)
    }

    fn attention(&self, x: Tensor<3>, ctx: &LayerContext, cfg: &Qwen2EncoderConfig) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (heads, kv_heads, hd) = (cfg.heads, cfg.kv_heads, cfg.head_dim());
        let qkv = linear_layer(&self.qkv_proj, x);
        let split = |start: usize, count: usize| qkv.clone().narrow(2, start * hd, count * hd).reshape([b, t, count, hd]).swap_dims(1, 2);
        let q = apply_rope(split(0, heads), &ctx.cos, &ctx.sin);
        let k = apply_rope(split(heads, kv_heads), &ctx.cos, &ctx.sin);
        let v = split(heads + kv_heads, kv_heads);
        // Grouped queries (query head h reads key/value head h / (heads / kv_heads)); the mask:
        // key j is hidden from query i when j is a query position after i.
        let out = encoder_attention(q, k, v, None, Some(ctx.image_tokens)); // [B, T, heads, hd]
        linear_layer(&self.o_proj, out.reshape([b, t, heads * hd]))
    }
}

/// What every layer of one forward pass shares: RoPE tables for positions `0..2n` and the mask's
/// boundary.
#[derive(Debug, Clone)]
struct LayerContext {
    cos: Tensor<2>,
    sin: Tensor<2>,
    /// `n`: the image tokens, which every position sees; the `n` queries after them are seen
    /// causally ([`dsocr_kernels::encoder_attention`]'s `causal_from`).
    image_tokens: usize,
}

/// The Qwen2 encoder with its two query tables (`query_768`: 144 queries for 768-pixel views,
/// `query_1024`: 256 for 1024-pixel views).
#[derive(Debug, Clone)]
pub struct Qwen2Encoder {
    layers: Vec<Qwen2Layer>,
    norm: RmsNorm,
    query_768: Tensor<2>,
    query_1024: Tensor<2>,
    /// The layer contexts of 768- and 1024-pixel views (144 and 256 tokens), built once at load:
    /// a vision batch then launches no table work.
    contexts: Box<[LayerContext; 2]>,
    config: Qwen2EncoderConfig,
}

impl Qwen2Encoder {
    /// Load from `model.qwen2_model.*`: the layers and final norm under `model.model.` (the release
    /// nesting), the query tables beside them.
    pub fn load(w: &Weights, cfg: &Qwen2EncoderConfig) -> Result<Self, CoreError> {
        let inner = w.pp("model.model");
        let layers = (0..cfg.layers).map(|i| Qwen2Layer::load(&inner.pp(format!("layers.{i}")), cfg)).collect::<Result<Vec<_>, _>>()?;
        let (device, dtype) = (w.device(), w.float().dtype());
        Ok(Qwen2Encoder {
            layers,
            norm: RmsNorm::load(&inner.pp("norm"), cfg.dim, cfg.eps)?,
            query_768: w.tensor("query_768.weight", [144, cfg.dim])?,
            query_1024: w.tensor("query_1024.weight", [256, cfg.dim])?,
            contexts: Box::new([Self::context(cfg, 144, device, dtype), Self::context(cfg, 256, device, dtype)]),
            config: cfg.clone(),
        })
    }

    /// SAM features `[B, C, g, g]` → the query outputs `[B, g², C]` (after the final norm).
    ///
    /// # Panics
    /// When `g²` is neither 144 nor 256: the release has learned queries only for 768- and
    /// 1024-pixel views. [`dsocr_preprocess::ModeSpec::validate`] allows no other views for this
    /// architecture, and the engine refuses pages prepared for the other one before encoding.
    pub fn forward(&self, sam_features: Tensor<4>) -> Tensor<3> {
        let hidden = self.forward_hidden(sam_features);
        let [_, t, _] = hidden.dims();
        hidden.narrow(1, t / 2, t / 2)
    }

    /// The whole final hidden state `[B, 2·g², C]`: the image positions, then the queries (what
    /// [`Qwen2Encoder::forward`] keeps). The parity recordings hold it to check each half.
    pub fn forward_hidden(&self, sam_features: Tensor<4>) -> Tensor<3> {
        let [b, c, gh, gw] = sam_features.dims();
        let n = gh * gw;
        let (queries, ctx) = match n {
            144 => (self.query_768.clone(), &self.contexts[0]),
            256 => (self.query_1024.clone(), &self.contexts[1]),
            _ => panic!("DeepSeek-OCR 2's encoder has learned queries for 144 or 256 tokens (768- or 1024-pixel views), not {n}"),
        };
        let tokens = sam_features.reshape([b, c, n]).swap_dims(1, 2);
        let queries = queries.unsqueeze::<3>().expand([b, n, c]);
        let mut x = Tensor::cat(vec![tokens, queries], 1);
        for layer in &self.layers {
            x = layer.forward(x, ctx, &self.config);
        }
        rms_norm(x, &self.norm)
    }

    /// RoPE tables for positions `0..2n` (image tokens then queries) and the mask's boundary `n`:
    /// attention hides key `j` from query `i` exactly when `j` is a query position after `i`
    /// (image tokens see image tokens only, queries see every image token and the queries up to
    /// themselves).
    fn context(config: &Qwen2EncoderConfig, n: usize, device: &Device, dtype: burn::tensor::DType) -> LayerContext {
        let t = 2 * n;
        let (cos, sin) = rope_tables(config.head_dim(), config.rope_theta, t, device, dtype);
        LayerContext { cos, sin, image_tokens: n }
    }
}

/// `norm` over the last dimension of `[B, T, D]` rows through [`dsocr_kernels::rms_norm`] (one
/// kernel on a CubeCL device, the reference's f32 arithmetic and rounding; Burn's elsewhere).
fn rms_norm(x: Tensor<3>, norm: &RmsNorm) -> Tensor<3> {
    let [b, t, d] = x.dims();
    dsocr_kernels::rms_norm(x.reshape([b * t, d]), &norm.weight, norm.eps).reshape([b, t, d])
}

impl StreamCopy for Qwen2Layer {
    fn stream_copy(&self) -> Self {
        Qwen2Layer {
            input_layernorm: self.input_layernorm.stream_copy(),
            qkv_proj: self.qkv_proj.stream_copy(),
            o_proj: self.o_proj.stream_copy(),
            post_attention_layernorm: self.post_attention_layernorm.stream_copy(),
            gate_up_proj: self.gate_up_proj.stream_copy(),
            down_proj: self.down_proj.stream_copy(),
        }
    }
}

impl StreamCopy for LayerContext {
    fn stream_copy(&self) -> Self {
        LayerContext { cos: self.cos.stream_copy(), sin: self.sin.stream_copy(), image_tokens: self.image_tokens }
    }
}

impl StreamCopy for Qwen2Encoder {
    fn stream_copy(&self) -> Self {
        let [c768, c1024] = &*self.contexts;
        Qwen2Encoder {
            layers: self.layers.stream_copy(),
            norm: self.norm.stream_copy(),
            query_768: self.query_768.stream_copy(),
            query_1024: self.query_1024.stream_copy(),
            contexts: Box::new([c768.stream_copy(), c1024.stream_copy()]),
            config: self.config.clone(),
        }
    }
}
