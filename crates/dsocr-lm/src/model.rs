//! The decoder: embeddings, decoder layers, final norm and output head (docs/model.md §5.2, §6.1).

use burn::prelude::*;
use burn::tensor::DType;

use dsocr_core::layers::RmsNorm;
use dsocr_core::{CoreError, Weights};
use dsocr_kernels::PartialSums;

use crate::attention::{Attention, AttentionContext};
use crate::config::LmConfig;
use crate::kv_pool::{KvPool, StepSlots};
use crate::mlp::{FeedForward, Mlp, Moe, PreparedExperts};
use crate::projection::Projection;
use crate::rope::Rope;

/// `h = x + Attn(RMSNorm(x)); y = h + FFN(RMSNorm(h))`.
#[derive(Debug, Clone)]
struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: FeedForward,
}

/// The decoder layers under `m` (`model`). On a device, each MoE layer's experts (most of the
/// checkpoint's bytes) are read and laid out on the host by a helper thread (on every core) while
/// this thread uploads the layer before: done one after the other, the other cores sat idle
/// during every upload (docs/perf.md, session 24). At most two layers' experts are on the host
/// at once. The uploads stay on this thread, the stream the model runs on.
fn load_layers(m: &Weights, config: &LmConfig) -> Result<Vec<DecoderLayer>, CoreError> {
    let layer = |i: usize| m.pp(format!("layers.{i}"));
    let ahead = |i: usize| i < config.num_hidden_layers && config.is_moe_layer(i) && Moe::experts_on_device(m);
    std::thread::scope(|s| {
        let prepare = |i: usize| ahead(i).then(|| s.spawn(move || Moe::prepare_experts(&layer(i).pp("mlp"), config)));
        let mut next = prepare(0);
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let experts = next.take().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).transpose()?;
            // The next layer's experts are read while this one is uploaded.
            next = prepare(i + 1);
            layers.push(DecoderLayer::load(&layer(i), config, i, experts)?);
        }
        Ok(layers)
    })
}

impl DecoderLayer {
    /// Load layer `index` under `w` (its experts prepared already when `experts` is given).
    fn load(w: &Weights, cfg: &LmConfig, index: usize, experts: Option<PreparedExperts>) -> Result<Self, CoreError> {
        let h = cfg.hidden_size;
        let mlp = if cfg.is_moe_layer(index) {
            FeedForward::Moe(Box::new(Moe::load(&w.pp("mlp"), cfg, experts)?))
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
        pool: &mut KvPool,
        ctx: &AttentionContext<'_>,
    ) -> (Tensor<3>, Tensor<3>) {
        let attn = self.self_attn.forward(normed, index, pool, ctx);
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
    lm_head: Projection,
    rope: Rope,
    config: LmConfig,
}

impl DeepseekLm {
    /// Load from the release names (`model.embed_tokens`, `model.layers.N.*`, `model.norm`,
    /// `lm_head`); `w` is the checkpoint root.
    pub fn load(w: &Weights, config: &LmConfig) -> Result<Self, CoreError> {
        let m = w.pp("model");
        let (v, h) = (config.vocab_size, config.hidden_size);
        let layers = load_layers(&m, config)?;
        let dtype = w.float().dtype();
        Ok(DeepseekLm {
            embed_tokens: m.tensor("embed_tokens.weight", [v, h])?,
            layers,
            norm: RmsNorm::load(&m.pp("norm"), h, config.rms_norm_eps)?,
            lm_head: Projection::load(&w.pp("lm_head"), &["weight"], h, v)?,
            rope: Rope::new(config.head_dim(), config.rope_theta, config.max_position_embeddings, w.device(), dtype),
            config: config.clone(),
        })
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

    /// A pool of `blocks` blocks of [`dsocr_kernels::KV_BLOCK`] slots (see [`KvPool`]).
    pub fn new_pool(&self, blocks: usize) -> KvPool {
        let c = &self.config;
        let device = self.device();
        if dsocr_kernels::runs_cube_kernels(&device) {
            KvPool::new(c.num_hidden_layers, blocks, c.num_attention_heads, c.head_dim(), &device, self.dtype())
        } else {
            KvPool::new_host(c.num_hidden_layers, blocks, c.num_attention_heads, c.head_dim())
        }
    }

    /// A pool for one sequence of up to `slots` slots, and that sequence's blocks (stage-by-stage
    /// runs: the bench, the parity runner).
    pub fn new_single_pool(&self, slots: usize) -> (KvPool, Vec<usize>) {
        let blocks = KvPool::blocks_for(slots);
        (self.new_pool(blocks), (0..blocks).collect())
    }

    /// Bytes one pool block takes.
    pub fn pool_block_bytes(&self) -> u64 {
        let c = &self.config;
        KvPool::block_bytes(c.num_hidden_layers, c.num_attention_heads, c.head_dim(), self.dtype())
    }

    /// Run the decoder on `x` `[B, T, H]`, sequence `b`'s tokens taking slots
    /// `starts[b]..starts[b] + T` of its blocks; returns the final hidden states `[B, T, H]` (after
    /// the last norm). `prefill` is `Some((blocks, start))` for one sequence of `T` tokens.
    fn forward(&self, x: Tensor<3>, pool: &mut KvPool, slots: &StepSlots, prefill: Option<(&[usize], usize)>) -> Tensor<3> {
        let [b, t, _] = x.dims();
        assert_eq!(b, slots.len(), "one block table per sequence");
        let (cos, sin) = self.rope.tables();
        // A host pool's decode step reads its tables and slots once here, not in every layer.
        let host_slots = (prefill.is_none() && pool.host_mut().is_some()).then(|| {
            let width = slots.width();
            let flat = host_usizes(&slots.tables().reshape([b * width]));
            (flat.chunks(width).map(<[usize]>::to_vec).collect(), host_usizes(&slots.starts))
        });
        let ctx = AttentionContext { cos, sin, slots, prefill, host_slots };
        let first_norm = self.layers.first().map_or(&self.norm, |first| &first.input_layernorm);
        let rows = x.clone().reshape([b * t, self.config.hidden_size]);
        let mut normed = dsocr_kernels::rms_norm(rows, &first_norm.weight, first_norm.eps).reshape([b, t, self.config.hidden_size]);
        let mut residual = x;
        for (i, layer) in self.layers.iter().enumerate() {
            let next_norm = self.layers.get(i + 1).map_or(&self.norm, |next| &next.input_layernorm);
            (residual, normed) = layer.forward(residual, normed, next_norm, i, pool, &ctx);
        }
        normed
    }

    /// Logits `[N, V]` (f32) for hidden states `[N, H]`.
    pub fn logits(&self, hidden: Tensor<2>) -> Tensor<2> {
        self.lm_head.forward(hidden).cast(DType::F32)
    }

    /// Prefill one sequence: run `embeds` `[T, H]` as the tokens at slots `start..start + T` of
    /// the sequence whose blocks are `blocks` (slots before `start` already hold its earlier
    /// tokens: a long prompt may come in chunks) and return the logits of the last position `[1, V]`.
    pub fn prefill(&self, embeds: Tensor<2>, blocks: &[usize], start: usize, pool: &mut KvPool) -> Result<Tensor<2>, LmError> {
        let [t, h] = embeds.dims();
        let room = blocks.len() * dsocr_kernels::KV_BLOCK;
        if t == 0 || start + t > room || start + t > self.config.max_position_embeddings || blocks.iter().any(|&b| b >= pool.blocks()) {
            return Err(LmError::Input(format!(
                "prefill of {t} tokens from slot {start} does not fit {} blocks ({room} slots) of a pool of {} blocks (context {})",
                blocks.len(),
                pool.blocks(),
                self.config.max_position_embeddings
            )));
        }
        let slots = StepSlots::new(&[blocks.to_vec()], &[start], &self.device());
        let hidden = self.forward(embeds.reshape([1, t, h]), pool, &slots, Some((blocks, start)));
        Ok(self.logits(hidden.narrow(1, t - 1, 1).reshape([1, h])))
    }

    /// One decode step: embed `tokens` `[B]` (one per sequence), run each at its slot
    /// (`slots.starts`, not advanced here) and return the logits `[B, V]`.
    pub fn decode_step(&self, tokens: Tensor<1, Int>, slots: &StepSlots, pool: &mut KvPool) -> Tensor<2> {
        let b = tokens.dims()[0];
        let h = self.config.hidden_size;
        let x = self.embed_tokens.clone().select(0, tokens).reshape([b, 1, h]);
        let hidden = self.forward(x, pool, slots, None);
        self.logits(hidden.reshape([b, h]))
    }

    /// One decode step whose inputs all live on the device: embed `tokens` `[B]`, run them at
    /// `slots`, return the logits `[B, V]` (f32) and their argmax `[B]`; then, in their own
    /// buffers, `tokens` is overwritten with that argmax (the next step's input unless the caller
    /// writes other choices with [`dsocr_kernels::overwrite_ints`]; one kernel,
    /// [`dsocr_kernels::argmax_into`], writes both) and `slots.starts` advances by one. Nothing is
    /// read from or written by the host, and with dsocr's kernels every launch is the same at
    /// every position: the step can be captured as a CUDA graph and replayed.
    pub fn decode_step_on_device(
        &self,
        tokens: &mut Tensor<1, Int>,
        slots: &mut StepSlots,
        pool: &mut KvPool,
    ) -> (Tensor<2>, Tensor<1, Int>) {
        let logits = self.decode_step(tokens.clone(), slots, pool);
        // Moved out so the kernel holds the buffer's only handle and writes it in place; the
        // stand-in (a handle to the tables, which the kernel does not touch) is replaced at once.
        let input = std::mem::replace(tokens, slots.stand_in());
        let (input, next) = dsocr_kernels::argmax_into(logits.clone(), input);
        *tokens = input;
        let stand_in = slots.stand_in();
        let starts = std::mem::replace(&mut slots.starts, stand_in);
        slots.starts = dsocr_kernels::increment_ints(starts, 1);
        (logits, next)
    }
}

/// Integers `[N]` read to the host.
fn host_usizes(t: &Tensor<1, Int>) -> Vec<usize> {
    t.clone().into_data().convert::<i64>().try_into_vec::<i64>().expect("i64 data").into_iter().map(|v| v as usize).collect()
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
