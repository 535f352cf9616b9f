//! The decoder: embeddings, decoder layers, final norm and output head (MODEL_SPEC §3.6-3.7).

use burn::prelude::*;
use burn::tensor::DType;

use dsocr_core::layers::{Linear, RmsNorm};
use dsocr_core::{CoreError, Weights};
use dsocr_kernels::PartialSums;

use crate::attention::{Attention, AttentionContext};
use crate::config::LmConfig;
use crate::kv_cache::KvCache;
use crate::mlp::{FeedForward, Mlp, Moe};
use crate::rope::Rope;

/// `h = x + Attn(RMSNorm(x)); y = h + FFN(RMSNorm(h))`.
#[derive(Debug, Clone)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: FeedForward,
}

impl DecoderLayer {
    fn load(w: &Weights, cfg: &LmConfig, index: usize) -> Result<Self, CoreError> {
        let h = cfg.hidden_size;
        let mlp = if cfg.is_moe_layer(index) {
            FeedForward::Moe(Box::new(Moe::load(&w.pp("mlp"), cfg)?))
        } else {
            FeedForward::Dense(Box::new(Mlp::load(&w.pp("mlp"), h, cfg.intermediate_size)?))
        };
        Ok(DecoderLayer {
            input_layernorm: RmsNorm::load(&w.pp("input_layernorm"), h, cfg.rms_norm_eps)?,
            self_attn: Attention::load(&w.pp("self_attn"), cfg)?,
            post_attention_layernorm: RmsNorm::load(&w.pp("post_attention_layernorm"), h, cfg.rms_norm_eps)?,
            mlp,
        })
    }

    /// Run the layer on `residual` `[B, T, H]` given `normed` = `input_layernorm(residual)`;
    /// returns the layer's output and `next_norm` applied to it (the next layer's input norm or
    /// the final norm), so each residual add and the norm after it run as one step.
    fn forward(
        &self,
        residual: Tensor<3>,
        normed: Tensor<3>,
        next_norm: &RmsNorm,
        index: usize,
        cache: &mut KvCache,
        ctx: &AttentionContext<'_>,
    ) -> (Tensor<3>, Tensor<3>) {
        let attn = self.self_attn.forward(normed, index, cache, ctx);
        let (h, normed) = add_norm(residual, attn, &self.post_attention_layernorm);
        let mlp = self.mlp.forward(normed);
        add_norm(h, mlp, next_norm)
    }
}

/// `(x + delta, norm(x + delta))` for `x` `[B, T, H]` and `delta` rows `[B·T, H]` (one kernel on
/// the GPU, which also sums the delta's parts).
fn add_norm(x: Tensor<3>, delta: PartialSums, norm: &RmsNorm) -> (Tensor<3>, Tensor<3>) {
    let dims = x.dims();
    let rows = x.reshape([dims[0] * dims[1], dims[2]]);
    let (sum, normed) = dsocr_kernels::add_rms_norm(rows, delta, &norm.weight, norm.eps);
    (sum.reshape(dims), normed.reshape(dims))
}

/// The DeepSeek-OCR language model.
#[derive(Debug, Clone)]
pub struct DeepseekLm {
    embed_tokens: Tensor<2>,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: Rope,
    config: LmConfig,
    /// Run decode attention with dsocr's kernel (see [`DeepseekLm::set_decode_kernel`]).
    decode_kernel: bool,
    /// Capture the decode step as a graph (see [`DeepseekLm::set_decode_graph`]).
    decode_graph: bool,
}

impl DeepseekLm {
    /// Load from the release names (`model.embed_tokens`, `model.layers.N.*`, `model.norm`,
    /// `lm_head`); `w` is the checkpoint root.
    pub fn load(w: &Weights, config: &LmConfig) -> Result<Self, CoreError> {
        let m = w.pp("model");
        let (v, h) = (config.vocab_size, config.hidden_size);
        let layers = (0..config.num_hidden_layers)
            .map(|i| DecoderLayer::load(&m.pp(format!("layers.{i}")), config, i))
            .collect::<Result<Vec<_>, _>>()?;
        let dtype = w.float().dtype();
        Ok(DeepseekLm {
            embed_tokens: m.tensor("embed_tokens.weight", [v, h])?,
            layers,
            norm: RmsNorm::load(&m.pp("norm"), h, config.rms_norm_eps)?,
            lm_head: Linear::load(&w.pp("lm_head"), h, v, false)?,
            rope: Rope::new(config.head_dim(), config.rope_theta, config.max_position_embeddings, w.device(), dtype),
            config: config.clone(),
            decode_kernel: dsocr_kernels::kernels_enabled(w.device()),
            decode_graph: dsocr_kernels::kernels_enabled(w.device()) && !graph_disabled_by_env(),
        })
    }

    /// Choose whether [`crate::generate`] captures the decode step once per request and replays
    /// it (a CUDA graph: one launch per step instead of one per kernel) or issues every step's
    /// kernels itself. Same results either way. On by default where dsocr's kernels run, unless
    /// the environment variable `DSOCR_DECODE_GRAPH=off` is set; elsewhere a "capture" just
    /// re-runs the step, so turning it on there only exercises the same code path.
    pub fn set_decode_graph(&mut self, on: bool) {
        self.decode_graph = on;
    }

    /// Whether [`crate::generate`] captures the decode step (see [`DeepseekLm::set_decode_graph`]).
    pub fn decode_graph(&self) -> bool {
        self.decode_graph
    }

    /// Choose how decode steps compute attention: dsocr's CubeCL kernel over the whole cache
    /// (`true`; only takes effect on a CubeCL device) or Burn's attention over a masked span.
    /// The default is the kernel wherever dsocr's kernels run ([`dsocr_kernels::kernels_enabled`]).
    pub fn set_decode_kernel(&mut self, on: bool) {
        self.decode_kernel = on && dsocr_kernels::runs_cube_kernels(&self.device());
    }

    /// The sizes this model was built with.
    pub fn config(&self) -> &LmConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.embed_tokens.device()
    }

    /// The compute float type.
    pub fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    /// Token embeddings `[T, H]` for `ids`.
    pub fn embed(&self, ids: &[u32]) -> Tensor<2> {
        let idx: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [ids.len()]), &self.device());
        self.embed_tokens.clone().select(0, idx)
    }

    /// Decoder input `[T, H]`: token embeddings, with the k-th `true` position of
    /// `images_seq_mask` taking row k of `image_rows` (the encoder output, images in order).
    pub fn embed_prompt(&self, ids: &[u32], images_seq_mask: &[bool], image_rows: Option<Tensor<2>>) -> Result<Tensor<2>, LmError> {
        let positions = images_seq_mask.iter().filter(|&&m| m).count();
        if images_seq_mask.len() != ids.len() {
            return Err(LmError::Input(format!("image mask has {} entries for {} prompt ids", images_seq_mask.len(), ids.len())));
        }
        let text = self.embed(ids);
        let Some(rows) = image_rows else {
            return if positions == 0 {
                Ok(text)
            } else {
                Err(LmError::Input(format!("the prompt has {positions} image positions but no image rows were given")))
            };
        };
        let [n, h] = rows.dims();
        if n != positions || h != self.config.hidden_size {
            return Err(LmError::Input(format!("{n}×{h} image rows for {positions} image positions of width {}", self.config.hidden_size)));
        }
        // One gather from [text rows ++ image rows]: position p takes its text row or the next image row.
        let mut next_image = ids.len() as i64;
        let idx: Vec<i64> = images_seq_mask
            .iter()
            .enumerate()
            .map(|(p, &is_image)| {
                if is_image {
                    next_image += 1;
                    next_image - 1
                } else {
                    p as i64
                }
            })
            .collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [ids.len()]), &self.device());
        Ok(Tensor::cat(vec![text, rows.cast(self.dtype())], 0).select(0, idx))
    }

    /// A cache for `batch` sequences of up to `capacity` tokens.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> KvCache {
        let c = &self.config;
        KvCache::new(c.num_hidden_layers, batch, c.num_attention_heads, c.head_dim(), capacity, &self.device(), self.dtype())
    }

    /// Run the decoder on `x` `[B, T, H]` whose tokens occupy cache slots `cache.len()..+T`,
    /// returning the final hidden states `[B, T, H]` (after the last norm).
    pub fn forward(&self, x: Tensor<3>, cache: &mut KvCache) -> Tensor<3> {
        let [b, t, _] = x.dims();
        assert_eq!(b, cache.batch(), "batch size differs from the cache's");
        let start = cache.len();
        let (cos, sin) = self.rope.tables();
        let heads = self.config.num_attention_heads;
        let decode = t == 1 && start > 0;
        let decode_kernel = decode && self.decode_kernel;
        let (mask, span) = if decode_kernel {
            (None, cache.capacity())
        } else if decode {
            (cache.decode_mask(start + 1, heads), cache.decode_span(start + 1))
        } else {
            (self.attention_mask(cache, t), start + t)
        };
        let ctx = AttentionContext { cos, sin, mask, span, decode_kernel };
        let first_norm = self.layers.first().map_or(&self.norm, |first| &first.input_layernorm);
        let rows = x.clone().reshape([b * t, self.config.hidden_size]);
        let mut normed = dsocr_kernels::rms_norm(rows, &first_norm.weight, first_norm.eps).reshape([b, t, self.config.hidden_size]);
        let mut residual = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let next_norm = self.layers.get(i + 1).map_or(&self.norm, |next| &next.input_layernorm);
            (residual, normed) = layer.forward(residual, normed, next_norm, i, cache, &ctx);
        }
        cache.advance(t);
        normed
    }

    /// Which keys each query of a prefill (or multi-token continuation) may not see: later slots
    /// (causal) and other sequences' padding. A padded query slot sees itself so its (unused) row
    /// stays finite. `None` when the plain causal rule of a single unpadded sequence applies.
    fn attention_mask(&self, cache: &KvCache, t: usize) -> Option<Tensor<4, Bool>> {
        let start = cache.len();
        if !cache.has_padding() && start == 0 {
            return None;
        }
        let (b, l, heads) = (cache.batch(), start + t, self.config.num_attention_heads);
        let mut mask = Vec::with_capacity(b * t * l);
        for &pad in cache.pads() {
            for q in start..start + t {
                mask.extend((0..l).map(|k| k > q || (k < pad && k != q)));
            }
        }
        let mask = Tensor::<4, Bool>::from_data(TensorData::new(mask, [b, 1, t, l]), &self.device());
        Some(mask.expand([b, heads, t, l]))
    }

    /// Logits `[N, V]` (f32) for hidden states `[N, H]`.
    pub fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        dsocr_kernels::linear(hidden, &self.lm_head.weight).cast(DType::F32)
    }

    /// Prefill: run the prompts `[T_b, H]` (left-padded to a common length) through a fresh
    /// cache and return the logits of each prompt's last position `[B, V]`.
    pub fn prefill(&self, prompts: Vec<Tensor<2>>, cache: &mut KvCache) -> Tensor<2> {
        let lens: Vec<usize> = prompts.iter().map(|p| p.dims()[0]).collect();
        let t = *lens.iter().max().expect("at least one prompt");
        let h = self.config.hidden_size;
        let rows: Vec<Tensor<3>> = prompts
            .into_iter()
            .zip(&lens)
            .map(|(p, &len)| {
                let p = if len < t { Tensor::cat(vec![Tensor::zeros([t - len, h], (&self.device(), self.dtype())), p], 0) } else { p };
                p.unsqueeze::<3>()
            })
            .collect();
        cache.set_pads(lens.iter().map(|&len| t - len).collect());
        let b = rows.len();
        let hidden = self.forward(Tensor::cat(rows, 0), cache);
        self.logits(hidden.narrow(1, t - 1, 1).reshape([b, h]))
    }

    /// One decode step: embed `tokens` (one per sequence), run them, return logits `[B, V]`.
    pub fn decode_step(&self, tokens: Tensor<1, Int>, cache: &mut KvCache) -> Tensor<2> {
        let b = tokens.dims()[0];
        let h = self.config.hidden_size;
        let x = self.embed_tokens.clone().select(0, tokens).reshape([b, 1, h]);
        let hidden = self.forward(x, cache);
        self.logits(hidden.reshape([b, h]))
    }

    /// One decode step whose inputs all live on the device: embed `tokens` `[B]`, run them at
    /// the cache's next slot, and return the logits `[B, V]` (f32) and their argmax `[B]`; then
    /// `tokens` is overwritten, in its own buffer, with that argmax (the next step's input unless
    /// the caller writes other choices with [`dsocr_kernels::overwrite_ints`]; one kernel,
    /// [`dsocr_kernels::argmax_into`], writes both). Nothing is read
    /// from or written by the host, and with dsocr's kernels every launch is the same at every
    /// position: the step can be captured as a CUDA graph and replayed ([`crate::generate`]).
    pub fn decode_step_on_device(&self, tokens: &mut Tensor<1, Int>, cache: &mut KvCache) -> (Tensor<2>, Tensor<1, Int>) {
        let logits = self.decode_step(tokens.clone(), cache);
        // Moved out so the kernel holds the buffer's only handle and writes it in place; the
        // stand-in (a handle to the slot counter, which the kernel does not touch) is replaced
        // at once.
        let input = std::mem::replace(tokens, cache.len_tensor().clone());
        let (input, next) = dsocr_kernels::argmax_into(logits.clone(), input);
        *tokens = input;
        (logits, next)
    }
}

/// Whether `DSOCR_DECODE_GRAPH=off` asks for uncaptured decode steps (to compare the two).
fn graph_disabled_by_env() -> bool {
    std::env::var("DSOCR_DECODE_GRAPH").is_ok_and(|v| v.eq_ignore_ascii_case("off"))
}

/// Errors of the language model's inputs and generation settings.
#[derive(Debug, thiserror::Error)]
pub enum LmError {
    /// Inconsistent inputs (prompt ids, image rows, lengths).
    #[error("invalid language-model input: {0}")]
    Input(String),
    /// Invalid generation settings.
    #[error("invalid generation settings: {0}")]
    Settings(String),
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] CoreError),
}
